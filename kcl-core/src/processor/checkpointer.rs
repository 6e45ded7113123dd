//! [`Checkpointer`]: how a processor records progress.

use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::ids::ShardId;
use crate::lease::{Lease, PendingCheckpoint};
use crate::retrieval::Record;
use crate::sequence::{ExtendedSequenceNumber, SequenceNumber};
use crate::store::{CheckpointStore, LeaseStore};

/// Where checkpoints go: under a lease (the fleet [`Worker`](crate::engine::Worker))
/// or into a plain [`CheckpointStore`] (the single-process consumer).
#[derive(Clone)]
pub(crate) enum CheckpointTarget {
    Lease(Arc<dyn LeaseStore>),
    Store(Arc<dyn CheckpointStore>),
}

/// Records how far a processor got in its shard.
///
/// Every checkpoint must lie in `[last checkpoint, largest position
/// delivered]` (`SHARD_END` once the shard has ended): anything else is
/// rejected with [`Error::InvalidCheckpoint`] naming both bounds, and
/// nothing is written. Writes go through the lease (fenced by owner and
/// generation): transient store errors are retried with backoff, and a
/// [`Error::Conflict`] means the lease was lost, after which every
/// checkpoint fails and the processor gets
/// [`lease_lost`](super::ShardProcessor::lease_lost).
pub struct Checkpointer {
    target: CheckpointTarget,
    held: Lease,
    last: ExtendedSequenceNumber,
    delivered: Option<ExtendedSequenceNumber>,
    processed: Option<ExtendedSequenceNumber>,
    shard_ended: bool,
    lost: CancellationToken,
    retry: ExponentialBuilder,
}

impl std::fmt::Debug for Checkpointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpointer")
            .field("shard_id", &self.held.shard_id)
            .field("last", &self.last)
            .field("delivered", &self.delivered)
            .field("shard_ended", &self.shard_ended)
            .finish_non_exhaustive()
    }
}

impl Checkpointer {
    pub(crate) fn new(target: CheckpointTarget, held: Lease, lost: CancellationToken) -> Self {
        Checkpointer {
            last: held.checkpoint.clone(),
            target,
            held,
            delivered: None,
            processed: None,
            shard_ended: false,
            lost,
            retry: ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(50))
                .with_max_delay(Duration::from_secs(2))
                .with_max_times(6)
                .with_jitter(),
        }
    }

    /// The shard.
    pub fn shard_id(&self) -> &ShardId {
        &self.held.shard_id
    }

    /// The lease as this worker holds it (owner and generation), for
    /// stores that can checkpoint inside the application's own transaction
    /// (see [`record_committed_checkpoint`](Self::record_committed_checkpoint)).
    /// The single-process consumer, which has no leases, hands out a lease
    /// without an owner.
    pub fn lease(&self) -> &Lease {
        &self.held
    }

    /// The last checkpoint stored for the shard.
    pub fn last_checkpoint(&self) -> &ExtendedSequenceNumber {
        &self.last
    }

    /// The largest position delivered to the processor so far.
    pub fn largest_delivered(&self) -> Option<&ExtendedSequenceNumber> {
        self.delivered.as_ref()
    }

    /// Whether the lease is known to be lost (checkpoints will fail).
    pub fn is_lease_lost(&self) -> bool {
        self.lost.is_cancelled()
    }

    /// Checkpoint the end of the last batch delivered (`SHARD_END` once the
    /// shard has ended). Does nothing if no batch was delivered yet.
    pub async fn checkpoint(&mut self) -> Result<()> {
        let position = if self.shard_ended {
            Some(ExtendedSequenceNumber::ShardEnd)
        } else {
            self.delivered.clone()
        };
        match position {
            Some(position) => self.commit(position).await,
            None => Ok(()),
        }
    }

    /// Checkpoint the end of the last batch the processor finished
    /// successfully (what the default
    /// [`shutdown_requested`](super::ShardProcessor::shutdown_requested)
    /// does). Does nothing if none was.
    pub async fn checkpoint_processed(&mut self) -> Result<()> {
        match self.processed.clone() {
            Some(position) if position > self.last => self.commit(position).await,
            _ => Ok(()),
        }
    }

    /// Checkpoint at a record (it and everything before it are done).
    pub async fn checkpoint_at(&mut self, record: &Record) -> Result<()> {
        self.commit(record.extended_sequence_number()).await
    }

    /// Checkpoint at a sequence and sub-sequence number.
    pub async fn checkpoint_at_sequence(
        &mut self,
        sequence: SequenceNumber,
        sub_sequence: u64,
    ) -> Result<()> {
        self.commit(ExtendedSequenceNumber::at(sequence, sub_sequence))
            .await
    }

    /// Checkpoint `SHARD_END`; only valid once the shard has ended (in
    /// [`shard_ended`](super::ShardProcessor::shard_ended)).
    pub async fn checkpoint_shard_end(&mut self) -> Result<()> {
        self.commit(ExtendedSequenceNumber::ShardEnd).await
    }

    /// Prepare a checkpoint with optional application bytes (two-phase):
    /// the store keeps it as the lease's pending checkpoint, which the next
    /// owner sees on initialize if this worker dies before committing.
    /// Commit it with [`PreparedCheckpoint::checkpoint`].
    pub async fn prepare_checkpoint(
        &mut self,
        position: ExtendedSequenceNumber,
        state: Option<Vec<u8>>,
    ) -> Result<PreparedCheckpoint<'_>> {
        self.validate(&position)?;
        let pending = PendingCheckpoint {
            sequence: position.clone(),
            state,
        };
        match self.target.clone() {
            CheckpointTarget::Lease(store) => {
                let held = &self.held;
                let result = (|| async { store.prepare_checkpoint(held, &pending).await })
                    .retry(self.retry)
                    .when(Error::is_retryable)
                    .await;
                self.fenced(result)?;
            }
            // A plain checkpoint store has no pending checkpoints: the
            // prepared position is only written on commit.
            CheckpointTarget::Store(_) => {}
        }
        Ok(PreparedCheckpoint {
            checkpointer: self,
            position,
        })
    }

    /// Check that `position` may be checkpointed now, without writing it:
    /// it must lie in `[last checkpoint, largest delivered]`.
    pub fn validate(&self, position: &ExtendedSequenceNumber) -> Result<()> {
        if self.is_lease_lost() {
            return Err(Error::conflict(
                self.held.shard_id.as_str(),
                "the lease was lost; this worker can no longer checkpoint the shard",
            ));
        }
        let upper = if self.shard_ended {
            Some(ExtendedSequenceNumber::ShardEnd)
        } else {
            self.delivered.clone()
        };
        let Some(upper) = upper else {
            return Err(Error::InvalidCheckpoint(format!(
                "{position} in {}: nothing has been delivered yet (last checkpoint {})",
                self.held.shard_id, self.last
            )));
        };
        if *position < self.last || *position > upper {
            return Err(Error::InvalidCheckpoint(format!(
                "{position} in {} is outside [{}, {upper}] (last checkpoint, largest delivered)",
                self.held.shard_id, self.last
            )));
        }
        Ok(())
    }

    /// Tell the engine about a checkpoint the application committed itself,
    /// for example inside its own database transaction with the Postgres
    /// store's `checkpoint_in_transaction`. Validates the range like any
    /// checkpoint (call [`validate`](Self::validate) before committing) and
    /// moves the engine's notion of the last checkpoint.
    pub fn record_committed_checkpoint(&mut self, position: ExtendedSequenceNumber) -> Result<()> {
        self.validate(&position)?;
        self.last = position;
        Ok(())
    }

    async fn commit(&mut self, position: ExtendedSequenceNumber) -> Result<()> {
        self.validate(&position)?;
        let held = &self.held;
        let lost = &self.lost;
        if let CheckpointTarget::Lease(_) = &self.target
            && lost.is_cancelled()
        {
            // Known lost (fenced, or its deadline passed): nothing to retry.
            return Err(Error::lease_fenced(&held.shard_id));
        }
        let started = Instant::now();
        let result = match &self.target {
            CheckpointTarget::Lease(store) => {
                (|| async { store.update_checkpoint(held, &position).await })
                    .retry(self.retry)
                    .when(|e| e.is_retryable() && !lost.is_cancelled())
                    .await
            }
            CheckpointTarget::Store(store) => {
                (|| async { store.set_checkpoint(&held.shard_id, &position).await })
                    .retry(self.retry)
                    .when(Error::is_retryable)
                    .await
            }
        };
        metrics::histogram!(
            crate::engine::metric::CHECKPOINT_SECONDS,
            crate::engine::metric::shard_labels(&held.shard_id)
        )
        .record(started.elapsed().as_secs_f64());
        self.fenced(result)?;
        tracing::debug!(shard = %self.held.shard_id, checkpoint = %position, "checkpointed");
        self.last = position;
        Ok(())
    }

    fn fenced(&self, result: Result<()>) -> Result<()> {
        if let Err(e) = &result
            && (e.is_conflict() || matches!(e, Error::NotFound { .. }))
        {
            tracing::warn!(shard = %self.held.shard_id, error = %e, "checkpoint refused: lease lost");
            self.lost.cancel();
        }
        result
    }

    // The engine's side.

    pub(crate) fn on_delivered(&mut self, end: ExtendedSequenceNumber) {
        self.delivered = Some(end);
    }

    pub(crate) fn on_processed(&mut self) {
        self.processed = self.delivered.clone();
    }

    pub(crate) fn on_shard_ended(&mut self) {
        self.shard_ended = true;
    }
}

/// A prepared checkpoint, from [`Checkpointer::prepare_checkpoint`].
#[derive(Debug)]
pub struct PreparedCheckpoint<'a> {
    checkpointer: &'a mut Checkpointer,
    position: ExtendedSequenceNumber,
}

impl PreparedCheckpoint<'_> {
    /// The prepared position.
    pub fn position(&self) -> &ExtendedSequenceNumber {
        &self.position
    }

    /// Commit the prepared position as the checkpoint (clears the pending
    /// checkpoint).
    pub async fn checkpoint(self) -> Result<()> {
        self.checkpointer.commit(self.position).await
    }
}

/// A [`Checkpointer`] for a processor driven outside the engine, writing
/// into any [`CheckpointStore`]: the MultiLang child adapter
/// (`kcl-multilang`) drives a [`ShardProcessor`](super::ShardProcessor)
/// from a daemon's messages and tells it here what was delivered, so the
/// same processor runs on the engine or as a child.
///
/// The driver owns this; the processor only ever sees the
/// `&mut Checkpointer` from [`checkpointer`](Self::checkpointer), with the
/// same range checks as on the engine.
#[derive(Debug)]
pub struct DetachedCheckpointer {
    inner: Checkpointer,
}

impl DetachedCheckpointer {
    /// A checkpointer for `shard_id` whose last checkpoint is `last`.
    pub fn new(
        store: Arc<dyn CheckpointStore>,
        shard_id: ShardId,
        last: ExtendedSequenceNumber,
    ) -> Self {
        DetachedCheckpointer {
            inner: Checkpointer::new(
                CheckpointTarget::Store(store),
                Lease::new(shard_id, last),
                CancellationToken::new(),
            ),
        }
    }

    /// The checkpointer to hand to the processor.
    pub fn checkpointer(&mut self) -> &mut Checkpointer {
        &mut self.inner
    }

    /// A batch ending at `end` is being delivered.
    pub fn on_delivered(&mut self, end: ExtendedSequenceNumber) {
        self.inner.on_delivered(end);
    }

    /// The processor finished the last delivered batch.
    pub fn on_processed(&mut self) {
        self.inner.on_processed();
    }

    /// The shard ended: `SHARD_END` becomes the upper bound.
    pub fn on_shard_ended(&mut self) {
        self.inner.on_shard_ended();
    }

    /// The lease is lost: every later checkpoint fails.
    pub fn on_lease_lost(&mut self) {
        self.inner.lost.cancel();
    }
}
