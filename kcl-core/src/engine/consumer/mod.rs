//! The shard consumer: one task per held lease, a small state machine
//! (waiting on parents → initializing → processing → shutting down) fed by
//! the prefetch task.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::BoxError;
use crate::ids::{ShardId, WorkerId};
use crate::lease::Lease;
use crate::processor::checkpointer::CheckpointTarget;
use crate::processor::{
    Checkpointer, InitializeInput, ProcessRecordsInput, ProcessorErrorPolicy, ProcessorFactory,
    ShardProcessor,
};
use crate::retrieval::{ShardSource, StartingPosition};
use crate::sequence::ExtendedSequenceNumber;
use crate::store::{CheckpointStore, LeaseStore};

use super::config::WorkerConfig;

mod chores;
use super::prefetch::{self, PrefetchSpec, Prefetched};
use super::{metric, retry_store};

/// What the worker asks of a running consumer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Control {
    /// Keep processing.
    Run,
    /// Checkpoint (shutdown-requested) and release the lease to this
    /// worker.
    Handoff(WorkerId),
    /// Checkpoint (shutdown-requested) and release the lease to nobody.
    Shutdown,
}

/// How a consumer ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The shard ended and `SHARD_END` was checkpointed.
    ShardEnded,
    /// The lease was lost; the processor was told.
    LeaseLost,
    /// The lease was released (shutdown or hand-off).
    Released,
    /// The processor panicked; the lease was released.
    Panicked,
    /// The processor failed under [`ProcessorErrorPolicy::Stop`].
    Stopped(BoxError),
}

/// How checkpoints and lease chores are done: under a lease, or with a
/// plain checkpoint store (single-process mode, no leases).
#[derive(Clone, Debug)]
pub(crate) enum Coordination {
    Lease(Arc<dyn LeaseStore>),
    Single(Arc<dyn CheckpointStore>),
}

/// Everything a consumer shares with its worker.
#[derive(Debug)]
pub(crate) struct ConsumerContext<F> {
    pub(crate) config: Arc<WorkerConfig>,
    pub(crate) source: Arc<dyn ShardSource>,
    pub(crate) coordination: Coordination,
    pub(crate) factory: Arc<F>,
}

impl<F> ConsumerContext<F> {
    /// The initial position of `shard`'s stream: the source's (one per
    /// stream of a multi-stream source), else the worker's.
    pub(crate) fn initial_position(&self, shard: &ShardId) -> super::InitialPosition {
        self.source
            .initial_position(shard)
            .unwrap_or(self.config.consumer.initial_position)
    }
}

/// Where a reader starts for a checkpoint, and which records to drop
/// after it (the checkpointed record itself, and the sub-records of an
/// aggregate up to the checkpointed one).
pub(crate) fn start_position(
    checkpoint: &ExtendedSequenceNumber,
    initial: super::InitialPosition,
) -> (StartingPosition, Option<ExtendedSequenceNumber>) {
    match checkpoint {
        ExtendedSequenceNumber::TrimHorizon | ExtendedSequenceNumber::ShardEnd => {
            (StartingPosition::TrimHorizon, None)
        }
        ExtendedSequenceNumber::Latest => (StartingPosition::Latest, None),
        ExtendedSequenceNumber::AtTimestamp => match initial {
            super::InitialPosition::AtTimestamp(at) => (StartingPosition::AtTimestamp(at), None),
            // A lease written AT_TIMESTAMP by another application's
            // configuration: without a timestamp, the safe reading is all.
            _ => (StartingPosition::TrimHorizon, None),
        },
        ExtendedSequenceNumber::Sequence { sequence, .. } => (
            StartingPosition::AtSequenceNumber(sequence.clone()),
            Some(checkpoint.clone()),
        ),
    }
}

/// The position a lease's pinned start stands for, when the lease is
/// still at `LATEST` or `AT_TIMESTAMP` (see [`Lease::pinned_start`]).
fn pinned_position(lease: &Lease) -> Option<StartingPosition> {
    match lease.checkpoint {
        ExtendedSequenceNumber::Latest | ExtendedSequenceNumber::AtTimestamp => {
            lease.pinned_start.map(StartingPosition::AtTimestamp)
        }
        _ => None,
    }
}

/// A processor call the error policy applies to.
enum Call<'a> {
    Initialize(&'a InitializeInput),
    Process(&'a ProcessRecordsInput),
    ShardEnded,
}

impl Call<'_> {
    fn name(&self) -> &'static str {
        match self {
            Call::Initialize(_) => "initialize",
            Call::Process(_) => "process_records",
            Call::ShardEnded => "shard_ended",
        }
    }
}

enum Step {
    Done,
    Lost,
    Control,
    Panic,
    Stop(BoxError),
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".into())
}

/// One consumer run.
pub(crate) struct Consumer<F: ProcessorFactory> {
    ctx: Arc<ConsumerContext<F>>,
    lease: Lease,
    lost: CancellationToken,
    control: watch::Receiver<Control>,
    /// When the lease stops being ours unless renewed (moved by the
    /// worker after each successful renew): past it, a peer may take the
    /// shard, so this consumer stops on its own timer.
    deadline: watch::Receiver<Instant>,
    start_override: Option<StartingPosition>,
    /// Where the bytes of each batch the processor finished are counted
    /// for the lease's throughput figure (the worker's meter), if anywhere.
    delivered: Option<Arc<AtomicU64>>,
}

/// Resolves once `deadline` has passed (following its updates).
async fn expired(deadline: &mut watch::Receiver<Instant>) {
    loop {
        let at = *deadline.borrow_and_update();
        tokio::select! {
            _ = tokio::time::sleep_until(at) => {
                if Instant::now() >= *deadline.borrow() {
                    return;
                }
            }
            changed = deadline.changed() => {
                if changed.is_err() {
                    // The worker is gone; the lost token handles that.
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}

impl<F: ProcessorFactory> Consumer<F> {
    pub(crate) fn new(
        ctx: Arc<ConsumerContext<F>>,
        lease: Lease,
        lost: CancellationToken,
        control: watch::Receiver<Control>,
    ) -> Self {
        // No deadline until the worker gives one (the single-process
        // consumer holds no lease): the far future, as the clock allows.
        let far = Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600);
        let (_, deadline) = watch::channel(far);
        Consumer {
            ctx,
            lease,
            lost,
            control,
            deadline,
            start_override: None,
            delivered: None,
        }
    }

    /// Count the bytes of every batch the processor finished in
    /// `delivered` (see the field).
    pub(crate) fn with_delivered(mut self, delivered: Arc<AtomicU64>) -> Self {
        self.delivered = Some(delivered);
        self
    }

    /// Stop on `deadline` (see the field).
    pub(crate) fn with_deadline(mut self, deadline: watch::Receiver<Instant>) -> Self {
        self.deadline = deadline;
        self
    }

    /// Whether the lease is lost or its deadline passed (then marks it
    /// lost, so checkpoints stop too).
    fn is_lost(&self) -> bool {
        if !self.lost.is_cancelled() && Instant::now() >= *self.deadline.borrow() {
            tracing::warn!("no renew succeeded in time; a peer may take the lease: stopping");
            self.lost.cancel();
        }
        self.lost.is_cancelled()
    }

    /// Start reading at `position` instead of the lease's checkpoint (the
    /// single-process consumer's explicit AT/AFTER_SEQUENCE_NUMBER).
    pub(crate) fn starting_at(mut self, position: StartingPosition) -> Self {
        self.start_override = Some(position);
        self
    }

    fn shard(&self) -> &ShardId {
        &self.lease.shard_id
    }

    fn requested(&self) -> Option<Control> {
        let c = self.control.borrow().clone();
        (c != Control::Run).then_some(c)
    }

    /// Wait for `d`, unless the lease is lost or the worker asks something
    /// first. Returns false if interrupted.
    async fn pause(&mut self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = self.lost.cancelled() => false,
            _ = expired(&mut self.deadline) => {
                self.lost.cancel();
                false
            }
            changed = self.control.changed() => {
                if changed.is_err() {
                    // The worker is gone: behave as on shutdown.
                    self.lost.cancel();
                }
                false
            }
        }
    }

    /// Run the shard to one ending. A panic anywhere in the processor
    /// (its factory, a call, its `Drop`) is caught and ends the shard here.
    pub(crate) async fn run(mut self) -> Outcome {
        // The deadline's own timer: it marks the lease lost even while the
        // processor is inside a call, so its checkpoints are refused at
        // once instead of retried.
        let guard = tokio::spawn({
            let mut deadline = self.deadline.clone();
            let lost = self.lost.clone();
            async move {
                tokio::select! {
                    _ = expired(&mut deadline) => {
                        tracing::warn!("no renew succeeded in time; a peer may take the lease: stopping");
                        lost.cancel();
                    }
                    _ = lost.cancelled() => {}
                }
            }
        });
        let _guard = AbortOnDrop(guard);
        match AssertUnwindSafe(self.run_inner()).catch_unwind().await {
            Ok(outcome) => outcome,
            Err(panic) => {
                tracing::error!(panic = %panic_message(&*panic), "processor panicked outside a call (factory or drop)");
                self.panicked().await
            }
        }
    }

    async fn run_inner(&mut self) -> Outcome {
        // Confirm we still hold the lease, and see its latest checkpoint.
        if let Coordination::Lease(store) = &self.ctx.coordination {
            let store = Arc::clone(store);
            match retry_store(|| store.renew_lease(&self.lease)).await {
                Ok(lease) => self.lease = lease,
                Err(e) => {
                    tracing::info!(error = %e, "lease no longer held at start");
                    return Outcome::LeaseLost;
                }
            }
        }
        if self.lease.is_finished() {
            self.release(None).await;
            return Outcome::ShardEnded;
        }
        if !self.ctx.config.consumer.ignore_shard_ordering {
            loop {
                if self.is_lost() {
                    return Outcome::LeaseLost;
                }
                if let Some(c) = self.requested() {
                    self.release(handoff_target(&c)).await;
                    return Outcome::Released;
                }
                match self.parents_done().await {
                    Ok(true) => break,
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "checking the parents failed"),
                }
                let poll = self.ctx.config.consumer.parent_poll_interval;
                self.pause(poll).await;
            }
        }
        let first_open = match self.pin_start().await {
            Ok(first_open) => first_open,
            Err(outcome) => return outcome,
        };
        let mut processor = match std::panic::catch_unwind(AssertUnwindSafe(|| {
            self.ctx.factory.create_processor(self.shard())
        })) {
            Ok(processor) => processor,
            Err(panic) => {
                tracing::error!(panic = %panic_message(&*panic), "create_processor panicked");
                return self.panicked().await;
            }
        };
        let target = match &self.ctx.coordination {
            Coordination::Lease(s) => CheckpointTarget::Lease(Arc::clone(s)),
            Coordination::Single(s) => CheckpointTarget::Store(Arc::clone(s)),
        };
        let mut cp = Checkpointer::new(target, self.lease.clone(), self.lost.clone());
        tracing::info!(checkpoint = %self.lease.checkpoint, "initializing the processor");
        let input = InitializeInput {
            shard_id: self.shard().clone(),
            checkpoint: self.lease.checkpoint.clone(),
            pending_checkpoint: self.lease.pending_checkpoint.clone(),
        };
        let step = self
            .with_policy(&mut processor, &mut cp, Call::Initialize(&input))
            .await;
        if let Some(outcome) = self.after_step(step, &mut processor, &mut cp).await {
            return outcome;
        }
        let pinned = pinned_position(&self.lease);
        let (start, skip) = match (self.start_override.take(), &pinned) {
            (Some(position), _) => (position, None),
            // A re-open of a lease still at LATEST / AT_TIMESTAMP reads
            // from where the first open pinned it, never from a new LATEST.
            (None, Some(at)) if !first_open => (at.clone(), None),
            (None, _) => start_position(
                &self.lease.checkpoint,
                self.ctx.initial_position(self.shard()),
            ),
        };
        let (mut rx, spares, handle) = prefetch::spawn(PrefetchSpec {
            source: Arc::clone(&self.ctx.source),
            shard_id: self.shard().clone(),
            start,
            reopen_from: pinned,
            skip_through: skip,
            hash_key_range: self.lease.hash_key_range,
            max_records: self.ctx.config.consumer.prefetch_max_records,
            max_bytes: self.ctx.config.consumer.prefetch_max_bytes,
            batch_records: self.ctx.config.consumer.max_records,
            deliver_empty: self.ctx.config.consumer.deliver_empty_batches,
            retry_min_delay: self.ctx.config.consumer.retry_min_delay,
            retry_max_delay: self.ctx.config.consumer.retry_max_delay,
        });
        let _abort = AbortOnDrop(handle);
        loop {
            if self.is_lost() {
                return self.lease_lost(&mut processor).await;
            }
            if let Some(c) = self.requested() {
                return self.shut_down(&mut processor, &mut cp, c).await;
            }
            let batch: Prefetched = tokio::select! {
                biased;
                _ = self.lost.cancelled() => continue,
                _ = expired(&mut self.deadline) => continue,
                changed = self.control.changed() => {
                    if changed.is_err() {
                        self.lost.cancel();
                    }
                    continue;
                }
                batch = rx.recv() => match batch {
                    Some(batch) => batch,
                    None => {
                        tracing::error!("the prefetch task ended before the shard did");
                        self.release(None).await;
                        return Outcome::Released;
                    }
                },
            };
            // A batch read before a pause (a process stopped past its
            // lease) is never handed over once the deadline passed.
            if self.is_lost() {
                return self.lease_lost(&mut processor).await;
            }
            // The prefetch task already cut the batch to `max_records`:
            // moved into the input, never copied.
            // An empty read reaches the processor only when configured
            // (and never at the shard's end, where `shard_ended` follows).
            let empty_call =
                self.ctx.config.consumer.deliver_empty_batches && batch.shard_end.is_none();
            if !batch.records.is_empty() || empty_call {
                let chunk = Arc::new(batch.records);
                if let Some(last) = chunk.last() {
                    cp.on_delivered(last.extended_sequence_number());
                }
                let input = ProcessRecordsInput {
                    shard_id: self.shard().clone(),
                    records: chunk,
                    millis_behind_latest: batch.millis_behind_latest,
                };
                let count = input.records.len() as u64;
                let step = self
                    .with_policy(&mut processor, &mut cp, Call::Process(&input))
                    .await;
                if matches!(step, Step::Done) {
                    metrics::counter!(
                        metric::RECORDS_PROCESSED,
                        metric::shard_labels(self.shard())
                    )
                    .increment(count);
                    if let Some(delivered) = &self.delivered {
                        delivered.fetch_add(batch.data_bytes, Ordering::Relaxed);
                    }
                }
                // The vector goes back to be read into again, unless the
                // processor kept the records.
                if let Ok(records) = Arc::try_unwrap(input.records) {
                    spares.give(records);
                }
                if let Some(outcome) = self.after_step(step, &mut processor, &mut cp).await {
                    return outcome;
                }
            }
            if let Some(children) = batch.shard_end {
                return self.shard_end(&mut processor, &mut cp, children).await;
            }
        }
    }

    /// Before the first read of a lease still at `LATEST` (or
    /// `AT_TIMESTAMP` with the configured instant), record where it starts
    /// in the lease through a fenced write, so any later open (here after a
    /// reader failure, or by a peer after a crash or hand-off) reads from
    /// that instant (`AT_TIMESTAMP`) instead of resolving `LATEST` again.
    /// For `LATEST` the instant is this host's clock minus
    /// `pin_clock_margin`: Kinesis compares it with its own arrival
    /// times, so a clock ahead of the service's by less than the margin
    /// loses nothing (a re-open may deliver records from up to the margin
    /// before the first open: duplicates allowed, never a loss). Without a
    /// lease store (the single-process consumer) the pin is kept in memory
    /// and covers reader failures only.
    ///
    /// Returns whether this is the first open (then the reader starts at
    /// the checkpoint's own position); an `Err` is the consumer's ending.
    async fn pin_start(&mut self) -> Result<bool, Outcome> {
        if self.start_override.is_some() || self.lease.pinned_start.is_some() {
            return Ok(false);
        }
        let at = match (
            &self.lease.checkpoint,
            self.ctx.initial_position(self.shard()),
        ) {
            (ExtendedSequenceNumber::Latest, _) => std::time::SystemTime::now()
                .checked_sub(self.ctx.config.consumer.pin_clock_margin)
                .unwrap_or(std::time::SystemTime::UNIX_EPOCH),
            (ExtendedSequenceNumber::AtTimestamp, super::InitialPosition::AtTimestamp(at)) => at,
            _ => return Ok(false),
        };
        // Whole milliseconds, as stores keep it (rounded down).
        let at = Lease::instant_from_millis(Lease::millis_since_epoch(at)).unwrap_or(at);
        if let Coordination::Lease(store) = &self.ctx.coordination {
            let store = Arc::clone(store);
            if let Err(e) = retry_store(|| store.pin_start(&self.lease, at)).await {
                if matches!(
                    e,
                    crate::Error::Conflict { .. } | crate::Error::NotFound { .. }
                ) {
                    tracing::info!(error = %e, "lease lost before its start was pinned");
                    return Err(Outcome::LeaseLost);
                }
                // Reading without a pin could lose records on a re-open:
                // give the lease back instead; any worker retries.
                tracing::warn!(error = %e, "pinning the start of the lease failed; releasing it");
                self.release(None).await;
                return Err(Outcome::Released);
            }
            tracing::debug!(pinned_start = ?at, "start pinned");
        }
        self.lease.pinned_start = Some(at);
        Ok(true)
    }

    /// Turn a step into an ending, or `None` to go on.
    async fn after_step(
        &mut self,
        step: Step,
        processor: &mut F::Processor,
        cp: &mut Checkpointer,
    ) -> Option<Outcome> {
        match step {
            Step::Done if self.is_lost() => Some(self.lease_lost(processor).await),
            Step::Done => None,
            Step::Lost => Some(self.lease_lost(processor).await),
            Step::Control => {
                let c = self.requested().unwrap_or(Control::Shutdown);
                Some(self.shut_down(processor, cp, c).await)
            }
            Step::Panic => Some(self.panicked().await),
            Step::Stop(e) => {
                self.release(None).await;
                Some(Outcome::Stopped(e))
            }
        }
    }

    /// Call the processor until the call succeeds, applying the error
    /// policy between attempts; a panic is caught and reported as such.
    async fn with_policy(
        &mut self,
        processor: &mut F::Processor,
        cp: &mut Checkpointer,
        call: Call<'_>,
    ) -> Step {
        let mut delay = self.ctx.config.consumer.retry_min_delay;
        loop {
            let result = match &call {
                Call::Initialize(input) => {
                    AssertUnwindSafe(processor.initialize((*input).clone()))
                        .catch_unwind()
                        .await
                }
                Call::Process(input) => {
                    AssertUnwindSafe(processor.process_records((*input).clone(), cp))
                        .catch_unwind()
                        .await
                }
                Call::ShardEnded => {
                    AssertUnwindSafe(async {
                        processor.shard_ended(cp).await?;
                        if *cp.last_checkpoint() != ExtendedSequenceNumber::ShardEnd {
                            return Err::<(), BoxError>(
                                "shard_ended returned without checkpointing SHARD_END".into(),
                            );
                        }
                        Ok(())
                    })
                    .catch_unwind()
                    .await
                }
            };
            let error = match result {
                Ok(Ok(())) => {
                    if matches!(call, Call::Process(_)) {
                        cp.on_processed();
                    }
                    return Step::Done;
                }
                Err(panic) => {
                    tracing::error!(call = call.name(), panic = %panic_message(&*panic), "processor panicked");
                    return Step::Panic;
                }
                Ok(Err(e)) => e,
            };
            if self.lost.is_cancelled() {
                return Step::Lost;
            }
            metrics::counter!(metric::PROCESSOR_ERRORS, metric::shard_labels(self.shard()))
                .increment(1);
            match self.ctx.config.consumer.error_policy {
                ProcessorErrorPolicy::Skip => {
                    tracing::warn!(call = call.name(), error = %error, "processor failed; skipping, as configured");
                    if matches!(call, Call::Process(_)) {
                        cp.on_processed();
                    }
                    return Step::Done;
                }
                ProcessorErrorPolicy::Stop => {
                    tracing::error!(call = call.name(), error = %error, "processor failed; stopping the worker, as configured");
                    return Step::Stop(error);
                }
                _ => {
                    tracing::warn!(call = call.name(), error = %error, retry_in = ?delay, "processor failed; retrying the same call");
                    if !self.pause(delay).await {
                        return if self.lost.is_cancelled() {
                            Step::Lost
                        } else {
                            Step::Control
                        };
                    }
                    delay = (delay * 2).min(self.ctx.config.consumer.retry_max_delay);
                }
            }
        }
    }

    async fn lease_lost(&mut self, processor: &mut F::Processor) -> Outcome {
        tracing::warn!("lease lost; stopping the shard");
        if let Err(panic) = AssertUnwindSafe(processor.lease_lost())
            .catch_unwind()
            .await
        {
            tracing::error!(panic = %panic_message(&*panic), "processor panicked in lease_lost");
        }
        Outcome::LeaseLost
    }

    async fn shut_down(
        &mut self,
        processor: &mut F::Processor,
        cp: &mut Checkpointer,
        control: Control,
    ) -> Outcome {
        tracing::info!(?control, "shutdown requested");
        match AssertUnwindSafe(processor.shutdown_requested(cp))
            .catch_unwind()
            .await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "shutdown_requested failed; records after the last checkpoint will be delivered again")
            }
            Err(panic) => {
                tracing::error!(panic = %panic_message(&*panic), "processor panicked in shutdown_requested")
            }
        }
        // Exactly one ending: the processor had `shutdown_requested`, so no
        // `lease_lost` follows even if the lease went meanwhile (the release
        // is then refused, harmlessly).
        if !self.lost.is_cancelled() {
            self.release(handoff_target(&control)).await;
        }
        Outcome::Released
    }

    async fn panicked(&mut self) -> Outcome {
        metrics::counter!(metric::PROCESSOR_PANICS, metric::shard_labels(self.shard()))
            .increment(1);
        // Hold the lease a moment so a processor that always panics does not
        // spin; then let any worker start a fresh processor from the last
        // checkpoint.
        let pause = self
            .ctx
            .config
            .consumer
            .retry_max_delay
            .min(Duration::from_secs(1));
        self.pause(pause).await;
        if !self.lost.is_cancelled() {
            self.release(None).await;
        }
        Outcome::Panicked
    }
}

fn handoff_target(control: &Control) -> Option<WorkerId> {
    match control {
        Control::Handoff(to) => Some(to.clone()),
        _ => None,
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
