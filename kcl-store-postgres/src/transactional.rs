//! Checkpoints that commit or roll back with the user's own writes.
//!
//! A processor that writes its results to the same PostgreSQL database can
//! checkpoint in the same transaction: either both the results and the
//! checkpoint are committed, or neither is, so a crash between the two can
//! never lose records or process them twice.
//!
//! The checkpoint statement is still fenced by the lease. When the lease
//! was lost (another worker took it) or the checkpoint would move
//! backwards, the statement itself raises an error in PostgreSQL, so the
//! user's transaction is aborted: a later `COMMIT` rolls everything back,
//! and the stale worker's rows never appear. The row lock the checkpoint
//! takes on the lease is held until the user's transaction ends, so a
//! concurrent take waits for it and then sees the new checkpoint: either
//! the checkpoint commits while the lease is still held, or it does not
//! commit at all.

use kcl_core::{Error, ExtendedSequenceNumber, Lease, Result, ShardId};
use sqlx::PgConnection;

use crate::error::map_fenced_sqlx;
use crate::row::{Position, signed};
use crate::store::PostgresStore;

impl PostgresStore {
    /// Checkpoint `held`'s shard at `checkpoint` inside the caller's
    /// transaction (pass `&mut tx` for a `sqlx::Transaction<'_, Postgres>`:
    /// it derefs to `PgConnection`). Nothing is visible until the caller
    /// commits; a rollback undoes it with the caller's writes.
    ///
    /// Fenced like [`LeaseStore::update_checkpoint`](kcl_core::LeaseStore::update_checkpoint):
    /// - lease lost (owner or generation changed): [`Error::Conflict`];
    /// - checkpoint below the stored one: [`Error::InvalidCheckpoint`];
    /// - no such lease: [`Error::NotFound`].
    ///
    /// In each of these cases PostgreSQL has raised an error in the
    /// transaction, which is now aborted: committing it rolls back, so the
    /// caller's writes are never committed with a stale checkpoint.
    ///
    /// The transaction must be on the same database as the store's tables
    /// (usually a connection from [`PostgresStore::pool`]), at READ
    /// COMMITTED, PostgreSQL's default (and the default of every
    /// connection of a pool the store makes). Under REPEATABLE READ or
    /// SERIALIZABLE the lease row is renewed by the holder every few
    /// seconds after the transaction's snapshot was taken, so the
    /// checkpoint would fail at random with a serialization error; it is
    /// refused up front instead with [`Error::Config`], before anything
    /// is written (the transaction stays usable).
    ///
    /// ```no_run
    /// # async fn demo(store: kcl_store_postgres::PostgresStore, held: kcl_core::Lease) -> Result<(), Box<dyn std::error::Error>> {
    /// use kcl_core::ExtendedSequenceNumber;
    /// let mut tx = store.pool().begin().await?;
    /// sqlx::query("INSERT INTO orders (id) VALUES ($1)").bind(42_i64).execute(&mut *tx).await?;
    /// store
    ///     .checkpoint_in_transaction(&mut tx, &held, &ExtendedSequenceNumber::at("42".parse()?, 0))
    ///     .await?;
    /// tx.commit().await?;
    /// # Ok(()) }
    /// ```
    pub async fn checkpoint_in_transaction(
        &self,
        tx: &mut PgConnection,
        held: &Lease,
        checkpoint: &ExtendedSequenceNumber,
    ) -> Result<()> {
        let Some(owner) = held.owner.as_ref() else {
            return Err(Error::conflict(
                held.shard_id.as_str(),
                "the held lease has no owner",
            ));
        };
        require_read_committed(tx).await?;
        let position = Position::encode(checkpoint)?;
        sqlx::query(&self.sql.checkpoint_in_transaction)
            .bind(self.application.as_str().to_owned())
            .bind(held.shard_id.as_str().to_owned())
            .bind(owner.as_str().to_owned())
            .bind(signed(held.generation, "generation")?)
            .bind(position.rank)
            .bind(position.seq)
            .bind(position.sub)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| map_fenced_sqlx(e, &held.shard_id, checkpoint))?;
        Ok(())
    }

    /// The [`CheckpointStore`](kcl_core::CheckpointStore) form: set the
    /// checkpoint of `shard_id` inside the caller's transaction, never
    /// backwards. A backwards checkpoint raises an error in PostgreSQL
    /// (aborting the transaction) and returns [`Error::InvalidCheckpoint`].
    pub async fn set_checkpoint_in_transaction(
        &self,
        tx: &mut PgConnection,
        shard_id: &ShardId,
        checkpoint: &ExtendedSequenceNumber,
    ) -> Result<()> {
        require_read_committed(tx).await?;
        let position = Position::encode(checkpoint)?;
        sqlx::query(&self.sql.set_checkpoint_in_transaction)
            .bind(self.application.as_str().to_owned())
            .bind(shard_id.as_str().to_owned())
            .bind(position.rank)
            .bind(position.seq)
            .bind(position.sub)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| map_fenced_sqlx(e, shard_id, checkpoint))?;
        Ok(())
    }
}

/// [`Error::Config`] unless `tx` runs at READ COMMITTED: a transactional
/// checkpoint at a stricter level would fail whenever the holder renewed
/// the lease after the transaction's snapshot (see
/// [`PostgresStore::checkpoint_in_transaction`]).
async fn require_read_committed(tx: &mut PgConnection) -> Result<()> {
    let level: String = sqlx::query_scalar("SELECT current_setting('transaction_isolation')")
        .fetch_one(&mut *tx)
        .await
        .map_err(crate::error::map_sqlx)?;
    if level != "read committed" {
        return Err(Error::Config(format!(
            "a transactional checkpoint needs a READ COMMITTED transaction, not {}: \
             the holder's renews would make it fail with serialization errors at random",
            level.to_uppercase()
        )));
    }
    Ok(())
}
