//! The SQL text of every statement, rendered once per store with its
//! validated, quoted schema and table names.
//!
//! Every write is one statement. A conditional write on a lease is a
//! `WITH cur AS (SELECT …), upd AS (UPDATE … WHERE <condition> RETURNING …)`
//! statement: `upd` is the compare-and-set itself, and `cur` (the row as
//! the statement's snapshot saw it) says why nothing was updated, so the
//! store tells a lost lease (`Conflict`) from a backwards checkpoint
//! (`InvalidCheckpoint`) from a missing lease (`NotFound`) in one round
//! trip. Bind order: `$1` application, `$2` shard id, `$3` held owner,
//! `$4` held generation, then each statement's own values from `$5`.

use crate::config::Tables;
use crate::error::{SQLSTATE_BACKWARDS, SQLSTATE_FENCED, SQLSTATE_NOT_FOUND};
use crate::row::LEASE_COLUMNS;

/// The new position bound as `$5, $6, $7`.
const NEW_POSITION: &str = "($5::smallint, $6::numeric, $7::bigint)";
const STORED_POSITION: &str = "(checkpoint_rank, checkpoint_seq, checkpoint_sub)";

/// Every statement the store runs.
#[derive(Debug)]
pub(crate) struct Statements {
    pub(crate) create_lease: String,
    pub(crate) get_lease: String,
    pub(crate) list_leases_page: String,
    pub(crate) take_lease: String,
    pub(crate) renew_lease: String,
    pub(crate) release_lease: String,
    pub(crate) request_handoff: String,
    pub(crate) update_checkpoint: String,
    pub(crate) prepare_checkpoint: String,
    pub(crate) update_child_shard_ids: String,
    pub(crate) delete_lease: String,
    pub(crate) reset_checkpoint: String,
    pub(crate) pin_start: String,
    pub(crate) withdraw_handoff: String,
    pub(crate) heartbeat: String,
    pub(crate) list_workers: String,
    pub(crate) remove_worker: String,
    pub(crate) get_checkpoint: String,
    pub(crate) set_checkpoint: String,
    pub(crate) checkpoint_in_transaction: String,
    pub(crate) set_checkpoint_in_transaction: String,
}

impl Statements {
    pub(crate) fn new(tables: &Tables) -> Self {
        let leases = tables.qualified(&tables.leases);
        let workers = tables.qualified(&tables.workers);
        let checkpoints = tables.qualified(&tables.checkpoints);
        let fail = format!("{}.kcl_fail", tables.schema.quoted());
        // Only renew needs the lease back; the other writes return a marker.
        let fenced =
            |set: &str, not_backwards: bool| fenced_write(&leases, set, not_backwards, "counter");
        let set_checkpoint_upsert = format!(
            "INSERT INTO {checkpoints} AS c (application, shard_id, checkpoint_rank, checkpoint_seq, checkpoint_sub)
             VALUES ($1, $2, $3::smallint, $4::numeric, $5::bigint)
             ON CONFLICT (application, shard_id) DO UPDATE SET
                 checkpoint_rank = EXCLUDED.checkpoint_rank,
                 checkpoint_seq = EXCLUDED.checkpoint_seq,
                 checkpoint_sub = EXCLUDED.checkpoint_sub,
                 updated_at = now()
             WHERE (c.checkpoint_rank, c.checkpoint_seq, c.checkpoint_sub)
                <= (EXCLUDED.checkpoint_rank, EXCLUDED.checkpoint_seq, EXCLUDED.checkpoint_sub)
             RETURNING 1"
        );
        Statements {
            create_lease: format!(
                "INSERT INTO {leases} (application, shard_id, owner, counter, generation,
                     checkpoint_rank, checkpoint_seq, checkpoint_sub,
                     pending_rank, pending_seq, pending_sub, pending_state,
                     owner_switches, parent_shard_ids, child_shard_ids,
                     hash_key_start, hash_key_end, handoff_to, pinned_start_ms,
                     throughput_bytes_per_sec)
                 VALUES ($1, $2, $3, $4, $5, $6, $7::numeric, $8, $9, $10::numeric, $11, $12,
                     $13, $14, $15, $16::numeric, $17::numeric, $18, $19, $20)
                 ON CONFLICT (application, shard_id) DO NOTHING
                 RETURNING 1"
            ),
            get_lease: format!(
                "SELECT {LEASE_COLUMNS} FROM {leases} WHERE application = $1 AND shard_id = $2"
            ),
            list_leases_page: format!(
                "SELECT {LEASE_COLUMNS} FROM {leases}
                 WHERE application = $1 AND shard_id > $2
                 ORDER BY shard_id LIMIT $3"
            ),
            take_lease: format!(
                "WITH cur AS (
                     SELECT 1 FROM {leases} WHERE application = $1 AND shard_id = $2
                 ), upd AS (
                     UPDATE {leases} SET
                         owner_switches = owner_switches
                             + CASE WHEN owner IS NOT NULL AND owner <> $5 THEN 1 ELSE 0 END,
                         owner = $5, counter = counter + 1,
                         generation = CASE WHEN generation = 0 THEN $6 ELSE generation + 1 END,
                         handoff_to = NULL, updated_at = now()
                     WHERE application = $1 AND shard_id = $2 AND counter = $3 AND generation = $4
                     RETURNING {LEASE_COLUMNS}
                 )
                 SELECT upd.*, EXISTS (SELECT 1 FROM cur) AS cur_exists
                 FROM (SELECT 1) AS one LEFT JOIN upd ON true"
            ),
            // $5: the throughput to record, or NULL to keep the stored one.
            renew_lease: fenced_write(
                &leases,
                "counter = counter + 1,
                 throughput_bytes_per_sec = COALESCE($5::bigint, throughput_bytes_per_sec)",
                false,
                LEASE_COLUMNS,
            ),
            release_lease: fenced(
                "owner_switches = owner_switches
                     + CASE WHEN $5::text IS NOT NULL AND $5::text IS DISTINCT FROM owner
                       THEN 1 ELSE 0 END,
                 owner = $5::text, counter = counter + 1, generation = generation + 1,
                 handoff_to = NULL",
                false,
            ),
            request_handoff: fenced("handoff_to = $5::text", false),
            update_checkpoint: fenced(CHECKPOINT_SET, true),
            prepare_checkpoint: fenced(
                "pending_rank = $5::smallint, pending_seq = $6::numeric,
                 pending_sub = $7::bigint, pending_state = $8::bytea",
                true,
            ),
            update_child_shard_ids: fenced("child_shard_ids = $5::text[]", false),
            pin_start: fenced("pinned_start_ms = $5::bigint", false),
            // Fenced by the observed owner and generation; clears the
            // request only while it names the requester ($5).
            withdraw_handoff: fenced(
                "handoff_to = CASE WHEN handoff_to = $5::text THEN NULL ELSE handoff_to END",
                false,
            ),
            delete_lease: format!("DELETE FROM {leases} WHERE application = $1 AND shard_id = $2"),
            reset_checkpoint: format!(
                "UPDATE {leases} SET
                     checkpoint_rank = $3::smallint, checkpoint_seq = $4::numeric,
                     checkpoint_sub = $5::bigint,
                     pending_rank = NULL, pending_seq = NULL, pending_sub = NULL,
                     pending_state = NULL, owner = NULL, handoff_to = NULL,
                     pinned_start_ms = NULL, counter = counter + 1, generation = generation + 1, updated_at = now()
                 WHERE application = $1 AND shard_id = $2
                 RETURNING 1"
            ),
            heartbeat: format!(
                "INSERT INTO {workers} AS w (application, worker_id) VALUES ($1, $2)
                 ON CONFLICT (application, worker_id)
                 DO UPDATE SET counter = w.counter + 1, updated_at = now()"
            ),
            list_workers: format!(
                "SELECT worker_id, counter FROM {workers} WHERE application = $1 ORDER BY worker_id"
            ),
            remove_worker: format!(
                "DELETE FROM {workers} WHERE application = $1 AND worker_id = $2"
            ),
            get_checkpoint: format!(
                "SELECT checkpoint_rank, checkpoint_seq::text AS checkpoint_seq, checkpoint_sub
                 FROM {checkpoints} WHERE application = $1 AND shard_id = $2"
            ),
            set_checkpoint_in_transaction: format!(
                "WITH ins AS ({set_checkpoint_upsert})
                 SELECT CASE WHEN EXISTS (SELECT 1 FROM ins) THEN true
                     ELSE {fail}('{SQLSTATE_BACKWARDS}', 'kcl: checkpoint would move backwards')
                 END AS ok"
            ),
            set_checkpoint: set_checkpoint_upsert,
            checkpoint_in_transaction: format!(
                "WITH cur AS (
                     SELECT owner, generation, {STORED_POSITION} > {NEW_POSITION} AS backwards
                     FROM {leases} WHERE application = $1 AND shard_id = $2
                 ), upd AS (
                     UPDATE {leases} SET {CHECKPOINT_SET}, updated_at = now()
                     WHERE application = $1 AND shard_id = $2 AND owner = $3 AND generation = $4
                       AND {STORED_POSITION} <= {NEW_POSITION}
                     RETURNING 1
                 )
                 SELECT CASE
                     WHEN EXISTS (SELECT 1 FROM upd) THEN true
                     WHEN NOT EXISTS (SELECT 1 FROM cur)
                         THEN {fail}('{SQLSTATE_NOT_FOUND}', 'kcl: lease not found')
                     WHEN NOT COALESCE((SELECT owner IS NOT DISTINCT FROM $3 AND generation = $4
                                        FROM cur), false)
                         THEN {fail}('{SQLSTATE_FENCED}', 'kcl: lease lost (owner or generation changed)')
                     WHEN COALESCE((SELECT backwards FROM cur), false)
                         THEN {fail}('{SQLSTATE_BACKWARDS}', 'kcl: checkpoint would move backwards')
                     ELSE {fail}('{SQLSTATE_FENCED}', 'kcl: lease changed during the checkpoint')
                 END AS ok"
            ),
        }
    }
}

/// The assignments of a checkpoint under a lease (new position in `$5..$7`).
const CHECKPOINT_SET: &str = "checkpoint_rank = $5::smallint, checkpoint_seq = $6::numeric,
     checkpoint_sub = $7::bigint,
     pending_rank = NULL, pending_seq = NULL, pending_sub = NULL, pending_state = NULL,
     owner_switches = 0";

/// A write fenced by owner (`$3`) and generation (`$4`), optionally also
/// refusing to move the checkpoint below the position in `$5..$7`. Returns
/// one row: `returning` after the write (which must include `counter`; all
/// NULL when nothing was written) and `cur_exists`, `cur_holds`,
/// `cur_backwards` saying why not.
fn fenced_write(leases: &str, set: &str, not_backwards: bool, returning: &str) -> String {
    let (condition, backwards) = if not_backwards {
        (
            format!("AND {STORED_POSITION} <= {NEW_POSITION}"),
            format!("{STORED_POSITION} > {NEW_POSITION}"),
        )
    } else {
        (String::new(), "false".to_owned())
    };
    // `upd` runs first; `cur` is read only when `upd` wrote nothing (its
    // NOT EXISTS is a one-time filter), so a successful write costs one
    // index lookup, like a bare UPDATE. Both see the statement's snapshot.
    format!(
        "WITH upd AS (
             UPDATE {leases} SET {set}, updated_at = now()
             WHERE application = $1 AND shard_id = $2 AND owner = $3 AND generation = $4
               {condition}
             RETURNING {returning}
         ), cur AS (
             SELECT owner IS NOT DISTINCT FROM $3 AND generation = $4 AS holds,
                    {backwards} AS backwards
             FROM {leases}
             WHERE application = $1 AND shard_id = $2 AND NOT EXISTS (SELECT 1 FROM upd)
         )
         SELECT upd.*,
             EXISTS (SELECT 1 FROM cur) AS cur_exists,
             COALESCE((SELECT holds FROM cur), false) AS cur_holds,
             COALESCE((SELECT backwards FROM cur), false) AS cur_backwards
         FROM (SELECT 1) AS one LEFT JOIN upd ON true"
    )
}
