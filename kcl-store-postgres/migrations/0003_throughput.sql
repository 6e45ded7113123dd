-- kcl-store-postgres, migration 3: a lease's recent throughput
-- (Lease::throughput_bytes_per_sec), in bytes per second, as its owner
-- last recorded it on renew; NULL until recorded.

ALTER TABLE {schema}.{leases}
    ADD COLUMN IF NOT EXISTS throughput_bytes_per_sec bigint
        CHECK (throughput_bytes_per_sec >= 0);
