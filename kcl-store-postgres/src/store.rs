//! [`PostgresStore`]: the trait implementations.

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use kcl_core::{
    ApplicationName, CheckpointStore, Error, ExtendedSequenceNumber, Lease, LeaseStore,
    PendingCheckpoint, Result, ShardId, WorkerHeartbeat, WorkerId,
};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{PgPool, Postgres, Row};

use crate::config::{PostgresStoreBuilder, Tables};
use crate::error::map_sqlx;
use crate::row::{Position, id_strings, lease_from_row, signed};
use crate::sql::Statements;

/// How many leases one `list_leases` page reads.
const LIST_PAGE: i64 = 1000;

/// How often a fenced write is re-run when its snapshot said it should have
/// applied but a concurrent write changed the row first.
const RACE_RETRIES: usize = 5;

/// Leases, checkpoints and worker heartbeats in PostgreSQL tables.
///
/// Cheap to clone (clones share the pool). Build with
/// [`PostgresStore::builder`]. Every conditional write is a single SQL
/// statement, so its compare and its write are atomic in the server.
#[derive(Clone)]
pub struct PostgresStore {
    /// The application's pool: yours (with [`PostgresStoreBuilder::pool`])
    /// or the one built from the URL, for your own queries and the
    /// transactions you pass to `checkpoint_in_transaction`.
    pub(crate) pool: PgPool,
    /// The store's own small pool, for every lease, heartbeat and
    /// checkpoint statement: user transactions on `pool` can never starve
    /// a renew of a connection.
    pub(crate) lease_pool: PgPool,
    pub(crate) application: ApplicationName,
    pub(crate) tables: Arc<Tables>,
    pub(crate) sql: Arc<Statements>,
}

impl std::fmt::Debug for PostgresStore {
    // No pool or connect options: they would print the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("application", &self.application)
            .field("schema", &self.tables.schema.as_str())
            .field("leases_table", &self.tables.leases.as_str())
            .field("workers_table", &self.tables.workers.as_str())
            .field("checkpoints_table", &self.tables.checkpoints.as_str())
            .finish_non_exhaustive()
    }
}

/// What a fenced write's single row said.
enum Outcome {
    /// Written; the row holds what the statement returned.
    Written,
    Missing,
    Fenced,
    Backwards,
    /// The snapshot allowed the write but the row changed before it.
    Raced,
}

impl PostgresStore {
    /// A builder; see [`PostgresStoreBuilder`].
    pub fn builder() -> PostgresStoreBuilder {
        PostgresStoreBuilder::default()
    }

    pub(crate) fn new(
        pool: PgPool,
        lease_pool: PgPool,
        application: ApplicationName,
        tables: Tables,
    ) -> Self {
        PostgresStore {
            pool,
            lease_pool,
            application,
            sql: Arc::new(Statements::new(&tables)),
            tables: Arc::new(tables),
        }
    }

    /// The application's pool, to run your own queries on (for example the
    /// transaction you pass to
    /// [`checkpoint_in_transaction`](Self::checkpoint_in_transaction)): the
    /// one you passed to [`PostgresStoreBuilder::pool`], or the one built
    /// from the URL or connect options. The store's own statements run on
    /// a separate small pool (see
    /// [`PostgresStoreBuilder::lease_connections`]), so transactions here
    /// cannot starve its renews.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The application namespace this store acts in.
    pub fn application(&self) -> &ApplicationName {
        &self.application
    }

    /// The schema the tables live in.
    pub fn schema(&self) -> &str {
        self.tables.schema.as_str()
    }

    /// A store on the same pool, schema and tables for another application.
    pub fn with_application(&self, application: ApplicationName) -> Self {
        PostgresStore {
            application,
            ..self.clone()
        }
    }

    /// Create the schema and tables, or bring them up to date. `build` runs
    /// this unless told not to. Idempotent, and safe when many workers
    /// start at once (they queue on an advisory lock). Returns the
    /// migration versions this call applied.
    pub async fn migrate(&self) -> Result<Vec<i32>> {
        crate::migrate::run(&self.lease_pool, &self.tables).await
    }

    fn with_key<'q>(&self, sql: &'q str, shard_id: &ShardId) -> Query<'q, Postgres, PgArguments> {
        sqlx::query(sql)
            .bind(self.application.as_str().to_owned())
            .bind(shard_id.as_str().to_owned())
    }

    /// Run a fenced write (see `sql::fenced_write`): `$3`/`$4` are `held`'s
    /// owner and generation, `bind` adds the statement's own values.
    async fn fenced_write(
        &self,
        sql: &str,
        held: &Lease,
        bind: impl Fn(Query<'_, Postgres, PgArguments>) -> Query<'_, Postgres, PgArguments>,
        backwards_error: impl Fn() -> Error,
    ) -> Result<PgRow> {
        let Some(owner) = held.owner.as_ref() else {
            return Err(Error::conflict(
                held.shard_id.as_str(),
                "the held lease has no owner",
            ));
        };
        let generation = signed(held.generation, "generation")?;
        for _ in 0..RACE_RETRIES {
            let query = self
                .with_key(sql, &held.shard_id)
                .bind(owner.as_str().to_owned())
                .bind(generation);
            let row = bind(query)
                .fetch_one(&self.lease_pool)
                .await
                .map_err(map_sqlx)?;
            match fenced_outcome(&row)? {
                Outcome::Written => return Ok(row),
                Outcome::Missing => return Err(Error::lease_not_found(&held.shard_id)),
                Outcome::Fenced => return Err(Error::lease_fenced(&held.shard_id)),
                Outcome::Backwards => return Err(backwards_error()),
                Outcome::Raced => continue,
            }
        }
        Err(Error::conflict(
            held.shard_id.as_str(),
            "the lease kept changing during the write",
        ))
    }

    async fn checkpoint_backwards_error(
        &self,
        shard_id: &ShardId,
        requested: &ExtendedSequenceNumber,
    ) -> Error {
        match self.get_lease(shard_id).await {
            Ok(Some(stored)) => {
                Error::checkpoint_backwards(shard_id, &stored.checkpoint, requested)
            }
            _ => Error::InvalidCheckpoint(format!(
                "{requested} is below the stored checkpoint of {shard_id}"
            )),
        }
    }
}

fn fenced_outcome(row: &PgRow) -> Result<Outcome> {
    let written: Option<i64> = row.try_get("counter").map_err(map_sqlx)?;
    if written.is_some() {
        return Ok(Outcome::Written);
    }
    let flag = |column: &str| row.try_get::<bool, _>(column).map_err(map_sqlx);
    Ok(if !flag("cur_exists")? {
        Outcome::Missing
    } else if !flag("cur_holds")? {
        Outcome::Fenced
    } else if flag("cur_backwards")? {
        Outcome::Backwards
    } else {
        Outcome::Raced
    })
}

fn bind_position<'q>(
    query: Query<'q, Postgres, PgArguments>,
    position: &Position,
) -> Query<'q, Postgres, PgArguments> {
    query
        .bind(position.rank)
        .bind(position.seq.clone())
        .bind(position.sub)
}

#[async_trait]
impl LeaseStore for PostgresStore {
    async fn create_lease_if_absent(&self, lease: &Lease) -> Result<bool> {
        let checkpoint = Position::encode(&lease.checkpoint)?;
        let pending = lease
            .pending_checkpoint
            .as_ref()
            .map(|p| Position::encode(&p.sequence))
            .transpose()?;
        let query = self
            .with_key(&self.sql.create_lease, &lease.shard_id)
            .bind(lease.owner.as_ref().map(|o| o.as_str().to_owned()))
            .bind(signed(lease.counter, "counter")?)
            .bind(signed(lease.generation, "generation")?)
            .bind(checkpoint.rank)
            .bind(checkpoint.seq)
            .bind(checkpoint.sub)
            .bind(pending.as_ref().map(|p| p.rank))
            .bind(pending.as_ref().map(|p| p.seq.clone()))
            .bind(pending.as_ref().map(|p| p.sub))
            .bind(
                lease
                    .pending_checkpoint
                    .as_ref()
                    .and_then(|p| p.state.clone()),
            )
            .bind(signed(
                lease.owner_switches_since_checkpoint,
                "owner switches",
            )?)
            .bind(id_strings(&lease.parent_shard_ids))
            .bind(id_strings(&lease.child_shard_ids))
            .bind(
                lease
                    .hash_key_range
                    .map(|r| r.starting_hash_key.to_string()),
            )
            .bind(lease.hash_key_range.map(|r| r.ending_hash_key.to_string()))
            .bind(lease.handoff_to.as_ref().map(|w| w.as_str().to_owned()))
            .bind(
                lease
                    .pinned_start
                    .map(|at| signed(Lease::millis_since_epoch(at), "pinned start"))
                    .transpose()?,
            )
            .bind(
                lease
                    .throughput_bytes_per_sec
                    .map(|rate| signed(rate, "throughput"))
                    .transpose()?,
            );
        let created = query
            .fetch_optional(&self.lease_pool)
            .await
            .map_err(map_sqlx)?;
        Ok(created.is_some())
    }

    async fn get_lease(&self, shard_id: &ShardId) -> Result<Option<Lease>> {
        self.with_key(&self.sql.get_lease, shard_id)
            .fetch_optional(&self.lease_pool)
            .await
            .map_err(map_sqlx)?
            .as_ref()
            .map(lease_from_row)
            .transpose()
    }

    async fn list_leases(&self) -> Result<Vec<Lease>> {
        let mut leases = Vec::new();
        let mut after = String::new();
        loop {
            let rows = sqlx::query(&self.sql.list_leases_page)
                .bind(self.application.as_str().to_owned())
                .bind(&after)
                .bind(LIST_PAGE)
                .fetch_all(&self.lease_pool)
                .await
                .map_err(map_sqlx)?;
            let full = rows.len() as i64 == LIST_PAGE;
            for row in &rows {
                leases.push(lease_from_row(row)?);
            }
            match leases.last() {
                Some(last) if full => after = last.shard_id.as_str().to_owned(),
                _ => return Ok(leases),
            }
        }
    }

    async fn take_lease(&self, observed: &Lease, new_owner: &WorkerId) -> Result<Lease> {
        let row = self
            .with_key(&self.sql.take_lease, &observed.shard_id)
            .bind(signed(observed.counter, "counter")?)
            .bind(signed(observed.generation, "generation")?)
            .bind(new_owner.as_str().to_owned())
            // A lease never taken (new or re-created) starts a random epoch,
            // so its fence never repeats an earlier life's.
            .bind(signed(Lease::random_generation_epoch(), "generation")?)
            .fetch_one(&self.lease_pool)
            .await
            .map_err(map_sqlx)?;
        if row
            .try_get::<Option<i64>, _>("counter")
            .map_err(map_sqlx)?
            .is_some()
        {
            return lease_from_row(&row);
        }
        if row.try_get::<bool, _>("cur_exists").map_err(map_sqlx)? {
            Err(Error::conflict(
                observed.shard_id.as_str(),
                "lease changed since it was observed",
            ))
        } else {
            Err(Error::lease_not_found(&observed.shard_id))
        }
    }

    async fn renew_lease(&self, held: &Lease) -> Result<Lease> {
        let rate = held
            .throughput_bytes_per_sec
            .map(|rate| signed(rate, "throughput"))
            .transpose()?;
        let row = self
            .fenced_write(
                &self.sql.renew_lease,
                held,
                |q| q.bind(rate),
                || Error::lease_fenced(&held.shard_id),
            )
            .await?;
        lease_from_row(&row)
    }

    async fn release_lease(&self, held: &Lease, to: Option<&WorkerId>) -> Result<()> {
        let to = to.map(|w| w.as_str().to_owned());
        self.fenced_write(
            &self.sql.release_lease,
            held,
            |q| q.bind(to.clone()),
            || Error::lease_fenced(&held.shard_id),
        )
        .await
        .map(drop)
    }

    async fn request_handoff(&self, observed: &Lease, to: &WorkerId) -> Result<()> {
        self.fenced_write(
            &self.sql.request_handoff,
            observed,
            |q| q.bind(to.as_str().to_owned()),
            || Error::lease_fenced(&observed.shard_id),
        )
        .await
        .map_err(observed_changed)
        .map(drop)
    }

    async fn update_checkpoint(
        &self,
        held: &Lease,
        checkpoint: &ExtendedSequenceNumber,
    ) -> Result<()> {
        let position = Position::encode(checkpoint)?;
        let result = self
            .fenced_write(
                &self.sql.update_checkpoint,
                held,
                |q| bind_position(q, &position),
                || Error::InvalidCheckpoint(String::new()),
            )
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(Error::InvalidCheckpoint(_)) => Err(self
                .checkpoint_backwards_error(&held.shard_id, checkpoint)
                .await),
            Err(e) => Err(e),
        }
    }

    async fn prepare_checkpoint(&self, held: &Lease, pending: &PendingCheckpoint) -> Result<()> {
        let position = Position::encode(&pending.sequence)?;
        let result = self
            .fenced_write(
                &self.sql.prepare_checkpoint,
                held,
                |q| bind_position(q, &position).bind(pending.state.clone()),
                || Error::InvalidCheckpoint(String::new()),
            )
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(Error::InvalidCheckpoint(_)) => Err(self
                .checkpoint_backwards_error(&held.shard_id, &pending.sequence)
                .await),
            Err(e) => Err(e),
        }
    }

    async fn update_child_shard_ids(&self, held: &Lease, children: &[ShardId]) -> Result<()> {
        let children = id_strings(children);
        self.fenced_write(
            &self.sql.update_child_shard_ids,
            held,
            |q| q.bind(children.clone()),
            || Error::lease_fenced(&held.shard_id),
        )
        .await
        .map(drop)
    }

    async fn pin_start(&self, held: &Lease, at: SystemTime) -> Result<()> {
        let millis = signed(Lease::millis_since_epoch(at), "pinned start")?;
        self.fenced_write(
            &self.sql.pin_start,
            held,
            |q| q.bind(millis),
            || Error::lease_fenced(&held.shard_id),
        )
        .await
        .map(drop)
    }

    async fn withdraw_handoff(&self, observed: &Lease, requester: &WorkerId) -> Result<()> {
        self.fenced_write(
            &self.sql.withdraw_handoff,
            observed,
            |q| q.bind(requester.as_str().to_owned()),
            || Error::lease_fenced(&observed.shard_id),
        )
        .await
        .map_err(observed_changed)
        .map(drop)
    }

    async fn delete_lease(&self, shard_id: &ShardId) -> Result<()> {
        self.with_key(&self.sql.delete_lease, shard_id)
            .execute(&self.lease_pool)
            .await
            .map_err(map_sqlx)?;
        Ok(())
    }

    async fn reset_checkpoint(
        &self,
        shard_id: &ShardId,
        checkpoint: &ExtendedSequenceNumber,
    ) -> Result<()> {
        let position = Position::encode(checkpoint)?;
        let updated = self
            .with_key(&self.sql.reset_checkpoint, shard_id)
            .bind(position.rank)
            .bind(position.seq)
            .bind(position.sub)
            .fetch_optional(&self.lease_pool)
            .await
            .map_err(map_sqlx)?;
        match updated {
            Some(_) => {
                tracing::info!(application = %self.application, shard_id = %shard_id, %checkpoint, "checkpoint reset by administrator");
                Ok(())
            }
            None => Err(Error::lease_not_found(shard_id)),
        }
    }

    async fn heartbeat(&self, worker: &WorkerId) -> Result<()> {
        sqlx::query(&self.sql.heartbeat)
            .bind(self.application.as_str().to_owned())
            .bind(worker.as_str().to_owned())
            .execute(&self.lease_pool)
            .await
            .map_err(map_sqlx)?;
        Ok(())
    }

    async fn list_workers(&self) -> Result<Vec<WorkerHeartbeat>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(&self.sql.list_workers)
            .bind(self.application.as_str().to_owned())
            .fetch_all(&self.lease_pool)
            .await
            .map_err(map_sqlx)?;
        rows.into_iter()
            .map(|(worker_id, counter)| {
                Ok(WorkerHeartbeat {
                    worker_id: WorkerId::new(worker_id)?,
                    counter: u64::try_from(counter)
                        .map_err(|_| crate::error::corrupt("negative heartbeat counter"))?,
                })
            })
            .collect()
    }

    async fn remove_worker(&self, worker: &WorkerId) -> Result<()> {
        sqlx::query(&self.sql.remove_worker)
            .bind(self.application.as_str().to_owned())
            .bind(worker.as_str().to_owned())
            .execute(&self.lease_pool)
            .await
            .map_err(map_sqlx)?;
        Ok(())
    }
}

#[async_trait]
impl CheckpointStore for PostgresStore {
    async fn get_checkpoint(&self, shard_id: &ShardId) -> Result<Option<ExtendedSequenceNumber>> {
        let row: Option<(i16, String, i64)> = sqlx::query_as(&self.sql.get_checkpoint)
            .bind(self.application.as_str().to_owned())
            .bind(shard_id.as_str().to_owned())
            .fetch_optional(&self.lease_pool)
            .await
            .map_err(map_sqlx)?;
        row.map(|(rank, seq, sub)| Position::decode(rank, &seq, sub))
            .transpose()
    }

    async fn set_checkpoint(
        &self,
        shard_id: &ShardId,
        checkpoint: &ExtendedSequenceNumber,
    ) -> Result<()> {
        let position = Position::encode(checkpoint)?;
        let written = bind_position(self.with_key(&self.sql.set_checkpoint, shard_id), &position)
            .fetch_optional(&self.lease_pool)
            .await
            .map_err(map_sqlx)?;
        if written.is_some() {
            return Ok(());
        }
        // Nothing written means the stored position was above: say which.
        Err(match self.get_checkpoint(shard_id).await {
            Ok(Some(stored)) => Error::checkpoint_backwards(shard_id, &stored, checkpoint),
            _ => Error::InvalidCheckpoint(format!(
                "{checkpoint} is below the stored checkpoint of {shard_id}"
            )),
        })
    }
}

/// A fenced write on an *observed* lease (a hand-off request or its
/// withdrawal) names what a Conflict means there.
fn observed_changed(e: Error) -> Error {
    match e {
        Error::Conflict { lease, .. } => Error::conflict(
            lease,
            "owner or generation changed since the lease was observed, or it has no owner",
        ),
        other => other,
    }
}
