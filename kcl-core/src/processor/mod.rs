//! The processor API: what a user writes to consume a shard.
//!
//! The engine creates one [`ShardProcessor`] per shard through a
//! [`ProcessorFactory`] and drives it through its life:
//!
//! 1. [`initialize`](ShardProcessor::initialize) once the shard's parents
//!    are finished, with the checkpoint it resumes from;
//! 2. [`process_records`](ShardProcessor::process_records) for every batch,
//!    with a [`Checkpointer`] to record progress;
//! 3. exactly one ending: [`shard_ended`](ShardProcessor::shard_ended) (the
//!    shard is closed and fully read: checkpoint `SHARD_END`),
//!    [`shutdown_requested`](ShardProcessor::shutdown_requested) (the worker
//!    stops or hands the shard to a peer: checkpoint what you processed), or
//!    [`lease_lost`](ShardProcessor::lease_lost) (another worker owns the
//!    shard now: you can no longer checkpoint).
//!
//! Every method is async and takes owned data, so a processor may live in
//! another process (the MultiLang daemon drives a child over stdin/stdout
//! through this same trait). The trait is statically dispatched: the
//! engine is generic over the factory, never boxing the processor.
//!
//! A processor error never skips a batch silently: the worker's
//! [`ProcessorErrorPolicy`] decides (retry with backoff by default). A panic
//! inside a processor is caught; it ends that shard's processing on this
//! worker (the lease is released after a pause, and a fresh processor picks
//! the shard up from its last checkpoint) and touches no other shard.
//!
//! For simple consumers, [`WorkerBuilder::process_with`](crate::engine::WorkerBuilder::process_with)
//! takes a closure and checkpoints after each batch it handled.

pub(crate) mod checkpointer;

use std::future::Future;
use std::sync::Arc;

pub use checkpointer::{Checkpointer, DetachedCheckpointer, PreparedCheckpoint};

use crate::error::BoxError;
use crate::ids::ShardId;
use crate::lease::PendingCheckpoint;
use crate::retrieval::Record;
use crate::sequence::ExtendedSequenceNumber;

/// What a processor learns when it starts on a shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitializeInput {
    /// The shard.
    pub shard_id: ShardId,
    /// Where processing resumes: records after this position are delivered.
    pub checkpoint: ExtendedSequenceNumber,
    /// A checkpoint a previous owner prepared but did not commit, with its
    /// application bytes.
    pub pending_checkpoint: Option<PendingCheckpoint>,
}

/// One batch of records for a processor. Cheap to clone: the records are
/// shared, so the engine can deliver the same batch again after an error.
#[derive(Clone, Debug)]
pub struct ProcessRecordsInput {
    /// The shard the records come from.
    pub shard_id: ShardId,
    /// The records, in shard order (KPL aggregates already de-aggregated).
    pub records: Arc<Vec<Record>>,
    /// How far behind the tip of the shard the batch ends, if known.
    pub millis_behind_latest: Option<u64>,
}

impl ProcessRecordsInput {
    /// The records, in shard order.
    pub fn records(&self) -> &[Record] {
        &self.records
    }
}

/// Processes the records of one shard. See the [module docs](self) for
/// the life cycle.
///
/// Only [`process_records`](Self::process_records) is required; the
/// defaults of the others are safe:
/// - `initialize` and `lease_lost` do nothing;
/// - `shard_ended` checkpoints `SHARD_END` (required before the shard's
///   children may start);
/// - `shutdown_requested` checkpoints the end of the last batch that was
///   processed successfully, which is what makes a hand-off between
///   workers free of duplicates.
///
/// Errors returned from `initialize`, `process_records`, `shard_ended` and
/// `shutdown_requested` are handled by the worker's
/// [`ProcessorErrorPolicy`].
pub trait ShardProcessor: Send + 'static {
    /// Called once, before the first batch.
    fn initialize(
        &mut self,
        input: InitializeInput,
    ) -> impl Future<Output = Result<(), BoxError>> + Send {
        let _ = input;
        async { Ok(()) }
    }

    /// Process one batch. Checkpoint through `checkpointer` as often as
    /// you like; anything not checkpointed is delivered again after a
    /// failover.
    fn process_records(
        &mut self,
        input: ProcessRecordsInput,
        checkpointer: &mut Checkpointer,
    ) -> impl Future<Output = Result<(), BoxError>> + Send;

    /// Another worker owns the shard now; checkpoints would fail.
    fn lease_lost(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// The shard is closed and every record was delivered. Must checkpoint
    /// `SHARD_END` (the default does), or the shard's children never start.
    fn shard_ended(
        &mut self,
        checkpointer: &mut Checkpointer,
    ) -> impl Future<Output = Result<(), BoxError>> + Send {
        async move {
            checkpointer.checkpoint_shard_end().await?;
            Ok(())
        }
    }

    /// The worker is shutting down or handing the shard to a peer: the last
    /// chance to checkpoint. The default checkpoints the last batch that
    /// was processed successfully.
    fn shutdown_requested(
        &mut self,
        checkpointer: &mut Checkpointer,
    ) -> impl Future<Output = Result<(), BoxError>> + Send {
        async move {
            checkpointer.checkpoint_processed().await?;
            Ok(())
        }
    }
}

/// Creates one processor per shard.
///
/// Implemented for any `Fn(&ShardId) -> P` closure.
pub trait ProcessorFactory: Send + Sync + 'static {
    /// The processor type.
    type Processor: ShardProcessor;

    /// A new processor for `shard_id`.
    fn create_processor(&self, shard_id: &ShardId) -> Self::Processor;
}

impl<F, P> ProcessorFactory for F
where
    F: Fn(&ShardId) -> P + Send + Sync + 'static,
    P: ShardProcessor,
{
    type Processor = P;

    fn create_processor(&self, shard_id: &ShardId) -> P {
        self(shard_id)
    }
}

/// What the engine does when a processor returns an error.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProcessorErrorPolicy {
    /// Deliver the same batch again after a backoff, until it succeeds or
    /// the lease ends. Nothing is skipped. The default.
    #[default]
    Retry,
    /// Log the error, count it (`kcl_processor_errors_total`) and go on
    /// with the next batch: the failed batch counts as processed.
    Skip,
    /// Stop the worker: every shard shuts down gracefully and
    /// [`Worker::run`](crate::engine::Worker::run) returns the error.
    Stop,
}

/// The processor behind the closure shortcut
/// ([`WorkerBuilder::process_with`](crate::engine::WorkerBuilder::process_with)):
/// calls the closure on each batch and checkpoints after it succeeds.
pub struct FnProcessor<F> {
    f: Arc<F>,
}

impl<F> std::fmt::Debug for FnProcessor<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnProcessor").finish_non_exhaustive()
    }
}

impl<F, Fut> ShardProcessor for FnProcessor<F>
where
    F: Fn(ProcessRecordsInput) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), BoxError>> + Send,
{
    fn process_records(
        &mut self,
        input: ProcessRecordsInput,
        checkpointer: &mut Checkpointer,
    ) -> impl Future<Output = Result<(), BoxError>> + Send {
        let f = Arc::clone(&self.f);
        async move {
            f(input).await?;
            checkpointer.checkpoint().await?;
            Ok(())
        }
    }
}

/// The factory behind the closure shortcut: one [`FnProcessor`] per shard,
/// all sharing the closure.
pub struct FnFactory<F> {
    f: Arc<F>,
}

impl<F> FnFactory<F> {
    /// Wrap a closure `Fn(ProcessRecordsInput) -> impl Future<Output = Result<(), BoxError>>`.
    pub fn new(f: F) -> Self {
        FnFactory { f: Arc::new(f) }
    }
}

impl<F> std::fmt::Debug for FnFactory<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnFactory").finish_non_exhaustive()
    }
}

impl<F, Fut> ProcessorFactory for FnFactory<F>
where
    F: Fn(ProcessRecordsInput) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), BoxError>> + Send,
{
    type Processor = FnProcessor<F>;

    fn create_processor(&self, _shard_id: &ShardId) -> FnProcessor<F> {
        FnProcessor {
            f: Arc::clone(&self.f),
        }
    }
}
