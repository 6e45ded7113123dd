-- kcl-store-postgres, migration 2: where a lease still at LATEST or
-- AT_TIMESTAMP starts reading (Lease::pinned_start), in whole milliseconds
-- since the Unix epoch; NULL when not pinned.

ALTER TABLE {schema}.{leases}
    ADD COLUMN IF NOT EXISTS pinned_start_ms bigint CHECK (pinned_start_ms >= 0);
