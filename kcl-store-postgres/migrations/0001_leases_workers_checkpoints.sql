-- kcl-store-postgres, migration 1: the lease, worker and checkpoint tables.
--
-- {schema}, {leases}, {workers} and {checkpoints} are replaced by the
-- validated, double-quoted identifiers the store was built with; nothing
-- else is substituted. Applied inside one transaction that holds an
-- advisory lock on the schema, so concurrent startups are serialized.
--
-- A position (checkpoint or pending checkpoint) is three columns that sort
-- in the KCL order as one row value:
--   *_rank: 0 AT_TIMESTAMP, 1 TRIM_HORIZON, 2 LATEST, 3 a sequence number, 4 SHARD_END
--   *_seq:  the sequence number as an exact NUMERIC (0 for sentinels)
--   *_sub:  the sub-sequence number (0 for sentinels)
-- so (rank, seq, sub) < (rank', seq', sub') is the checkpoint order, and
-- sequence numbers of any length compare as numbers, never as strings.

CREATE TABLE IF NOT EXISTS {schema}.{leases} (
    application      text        NOT NULL,
    shard_id         text        NOT NULL,
    owner            text,
    counter          bigint      NOT NULL DEFAULT 0 CHECK (counter >= 0),
    generation       bigint      NOT NULL DEFAULT 0 CHECK (generation >= 0),
    checkpoint_rank  smallint    NOT NULL CHECK (checkpoint_rank BETWEEN 0 AND 4),
    checkpoint_seq   numeric     NOT NULL,
    checkpoint_sub   bigint      NOT NULL,
    pending_rank     smallint    CHECK (pending_rank BETWEEN 0 AND 4),
    pending_seq      numeric,
    pending_sub      bigint,
    pending_state    bytea,
    owner_switches   bigint      NOT NULL DEFAULT 0,
    parent_shard_ids text[]      NOT NULL DEFAULT ARRAY[]::text[],
    child_shard_ids  text[]      NOT NULL DEFAULT ARRAY[]::text[],
    hash_key_start   numeric,
    hash_key_end     numeric,
    handoff_to       text,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (application, shard_id)
);

CREATE TABLE IF NOT EXISTS {schema}.{workers} (
    application text        NOT NULL,
    worker_id   text        NOT NULL,
    counter     bigint      NOT NULL DEFAULT 1,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (application, worker_id)
);

CREATE TABLE IF NOT EXISTS {schema}.{checkpoints} (
    application     text        NOT NULL,
    shard_id        text        NOT NULL,
    checkpoint_rank smallint    NOT NULL CHECK (checkpoint_rank BETWEEN 0 AND 4),
    checkpoint_seq  numeric     NOT NULL,
    checkpoint_sub  bigint      NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (application, shard_id)
);

-- Raises an error with a kcl SQLSTATE, so a statement inside the user's
-- transaction can fail (and abort that transaction) when its fencing
-- check fails: KC001 fenced (lease lost), KC002 checkpoint backwards,
-- KC003 lease not found.
CREATE OR REPLACE FUNCTION {schema}.kcl_fail(code text, reason text) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $kcl$
BEGIN
    RAISE EXCEPTION USING ERRCODE = code, MESSAGE = reason;
END
$kcl$;
