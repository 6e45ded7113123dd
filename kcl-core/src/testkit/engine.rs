//! Helpers to test the engine and processors: a [`Recorder`] whose
//! processors log every record and life-cycle call, and a
//! [`PausableLeaseStore`] that freezes a worker's renewals like a long
//! pause (a "zombie" worker) would.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::{BoxError, Result};
use crate::ids::{ShardId, WorkerId};
use crate::lease::{Lease, PendingCheckpoint, WorkerHeartbeat};
use crate::processor::{Checkpointer, InitializeInput, ProcessRecordsInput, ShardProcessor};
use crate::sequence::ExtendedSequenceNumber;
use crate::store::LeaseStore;

/// One record as a recording processor saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Processed {
    /// Which worker (the tag given to [`Recorder::factory`]).
    pub worker: String,
    /// The shard.
    pub shard_id: ShardId,
    /// The record's position.
    pub position: ExtendedSequenceNumber,
    /// The payload.
    pub data: Bytes,
    /// When it was processed (tokio's clock, so paused-clock tests see
    /// virtual time).
    pub at: tokio::time::Instant,
}

/// A life-cycle call a recording processor received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// `initialize`, with the checkpoint it started from.
    Initialize(ExtendedSequenceNumber),
    /// `shard_ended`.
    ShardEnded,
    /// `shutdown_requested`.
    ShutdownRequested,
    /// `lease_lost`.
    LeaseLost,
    /// A checkpoint the processor tried failed with this message.
    CheckpointFailed(String),
    /// The processor checkpointed this position (end of a batch).
    Checkpointed(ExtendedSequenceNumber),
}

#[derive(Debug, Default)]
struct Log {
    processed: Vec<Processed>,
    events: Vec<(String, ShardId, Event)>,
}

/// Shared log of what recording processors did. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Recorder {
    log: Arc<Mutex<Log>>,
    /// Delay inside each `process_records` call (a slow processor).
    delay: Arc<Mutex<Duration>>,
    /// While set, processors of these workers block in `process_records`
    /// (after logging the batch) until cleared.
    blocked: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    /// An empty log.
    pub fn new() -> Self {
        Recorder::default()
    }

    fn lock(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A processor factory for a worker tagged `worker`: each processor logs
    /// its records and checkpoints at the end of every batch.
    pub fn factory(
        &self,
        worker: impl Into<String>,
    ) -> impl Fn(&ShardId) -> RecordingProcessor + Send + Sync + 'static {
        let recorder = self.clone();
        let worker = worker.into();
        move |shard_id: &ShardId| RecordingProcessor {
            recorder: recorder.clone(),
            worker: worker.clone(),
            shard_id: shard_id.clone(),
        }
    }

    /// Make every `process_records` call take `delay`.
    pub fn set_delay(&self, delay: Duration) {
        *self.delay.lock().unwrap_or_else(|p| p.into_inner()) = delay;
    }

    /// Block (or unblock) the processors of `worker` inside
    /// `process_records`, after they logged the batch and before they
    /// checkpoint it.
    pub fn set_blocked(&self, worker: &str, blocked: bool) {
        let mut list = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
        list.retain(|w| w != worker);
        if blocked {
            list.push(worker.to_string());
        }
    }

    fn is_blocked(&self, worker: &str) -> bool {
        self.blocked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|w| w == worker)
    }

    /// Every record processed so far, in order of processing.
    pub fn processed(&self) -> Vec<Processed> {
        self.lock().processed.clone()
    }

    /// How many records were processed (duplicates included).
    pub fn count(&self) -> usize {
        self.lock().processed.len()
    }

    /// How many distinct records were processed.
    pub fn distinct(&self) -> usize {
        let log = self.lock();
        let mut seen: Vec<_> = log
            .processed
            .iter()
            .map(|p| (&p.shard_id, &p.position))
            .collect();
        seen.sort();
        seen.dedup();
        seen.len()
    }

    /// Records processed more than once: `(shard, position, times)`.
    pub fn duplicates(&self) -> Vec<(ShardId, ExtendedSequenceNumber, usize)> {
        let log = self.lock();
        let mut counts: HashMap<(&ShardId, &ExtendedSequenceNumber), usize> = HashMap::new();
        for p in &log.processed {
            *counts.entry((&p.shard_id, &p.position)).or_default() += 1;
        }
        let mut out: Vec<_> = counts
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|((s, p), n)| (s.clone(), p.clone(), n))
            .collect();
        out.sort();
        out
    }

    /// Every life-cycle event: `(worker, shard, event)`.
    pub fn events(&self) -> Vec<(String, ShardId, Event)> {
        self.lock().events.clone()
    }

    /// Records processed per worker tag.
    pub fn per_worker(&self) -> HashMap<String, usize> {
        let mut out = HashMap::new();
        for p in &self.lock().processed {
            *out.entry(p.worker.clone()).or_default() += 1;
        }
        out
    }

    fn event(&self, worker: &str, shard_id: &ShardId, event: Event) {
        self.lock()
            .events
            .push((worker.to_string(), shard_id.clone(), event));
    }
}

/// The processor a [`Recorder`] hands out.
#[derive(Debug)]
pub struct RecordingProcessor {
    recorder: Recorder,
    worker: String,
    shard_id: ShardId,
}

impl ShardProcessor for RecordingProcessor {
    async fn initialize(&mut self, input: InitializeInput) -> std::result::Result<(), BoxError> {
        self.recorder.event(
            &self.worker,
            &self.shard_id,
            Event::Initialize(input.checkpoint),
        );
        Ok(())
    }

    async fn process_records(
        &mut self,
        input: ProcessRecordsInput,
        checkpointer: &mut Checkpointer,
    ) -> std::result::Result<(), BoxError> {
        {
            let mut log = self.recorder.lock();
            for record in input.records() {
                log.processed.push(Processed {
                    worker: self.worker.clone(),
                    shard_id: self.shard_id.clone(),
                    position: record.extended_sequence_number(),
                    data: record.data.clone(),
                    at: tokio::time::Instant::now(),
                });
            }
        }
        let delay = *self
            .recorder
            .delay
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        while self.recorder.is_blocked(&self.worker) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if let Err(e) = checkpointer.checkpoint().await {
            self.recorder.event(
                &self.worker,
                &self.shard_id,
                Event::CheckpointFailed(e.to_string()),
            );
            return Err(e.into());
        }
        let position = checkpointer.last_checkpoint().clone();
        self.recorder
            .event(&self.worker, &self.shard_id, Event::Checkpointed(position));
        Ok(())
    }

    async fn lease_lost(&mut self) {
        self.recorder
            .event(&self.worker, &self.shard_id, Event::LeaseLost);
    }

    async fn shard_ended(
        &mut self,
        checkpointer: &mut Checkpointer,
    ) -> std::result::Result<(), BoxError> {
        self.recorder
            .event(&self.worker, &self.shard_id, Event::ShardEnded);
        checkpointer.checkpoint_shard_end().await?;
        Ok(())
    }

    async fn shutdown_requested(
        &mut self,
        checkpointer: &mut Checkpointer,
    ) -> std::result::Result<(), BoxError> {
        self.recorder
            .event(&self.worker, &self.shard_id, Event::ShutdownRequested);
        checkpointer.checkpoint_processed().await?;
        Ok(())
    }
}

/// A [`LeaseStore`] wrapper whose renewals and heartbeats hang while
/// paused, as a worker's would in a long pause: its leases expire for its
/// peers while the worker itself still believes it holds them.
#[derive(Debug, Clone)]
pub struct PausableLeaseStore {
    inner: Arc<dyn LeaseStore>,
    paused: Arc<tokio::sync::watch::Sender<bool>>,
}

impl PausableLeaseStore {
    /// Wrap `inner`.
    pub fn new(inner: Arc<dyn LeaseStore>) -> Self {
        PausableLeaseStore {
            inner,
            paused: Arc::new(tokio::sync::watch::Sender::new(false)),
        }
    }

    /// Pause or resume renewals and heartbeats.
    pub fn set_paused(&self, paused: bool) {
        self.paused.send_replace(paused);
    }

    async fn wait(&self) {
        let mut rx = self.paused.subscribe();
        let _ = rx.wait_for(|p| !*p).await;
    }
}

#[async_trait]
impl LeaseStore for PausableLeaseStore {
    async fn create_lease_if_absent(&self, lease: &Lease) -> Result<bool> {
        self.inner.create_lease_if_absent(lease).await
    }
    async fn get_lease(&self, shard_id: &ShardId) -> Result<Option<Lease>> {
        self.inner.get_lease(shard_id).await
    }
    async fn list_leases(&self) -> Result<Vec<Lease>> {
        self.wait().await;
        self.inner.list_leases().await
    }
    async fn take_lease(&self, observed: &Lease, new_owner: &WorkerId) -> Result<Lease> {
        self.inner.take_lease(observed, new_owner).await
    }
    async fn renew_lease(&self, held: &Lease) -> Result<Lease> {
        self.wait().await;
        self.inner.renew_lease(held).await
    }
    async fn release_lease(&self, held: &Lease, to: Option<&WorkerId>) -> Result<()> {
        self.inner.release_lease(held, to).await
    }
    async fn request_handoff(&self, observed: &Lease, to: &WorkerId) -> Result<()> {
        self.inner.request_handoff(observed, to).await
    }
    async fn update_checkpoint(
        &self,
        held: &Lease,
        checkpoint: &ExtendedSequenceNumber,
    ) -> Result<()> {
        self.inner.update_checkpoint(held, checkpoint).await
    }
    async fn prepare_checkpoint(&self, held: &Lease, pending: &PendingCheckpoint) -> Result<()> {
        self.inner.prepare_checkpoint(held, pending).await
    }
    async fn update_child_shard_ids(&self, held: &Lease, children: &[ShardId]) -> Result<()> {
        self.inner.update_child_shard_ids(held, children).await
    }
    async fn pin_start(&self, held: &Lease, at: std::time::SystemTime) -> Result<()> {
        self.inner.pin_start(held, at).await
    }
    async fn withdraw_handoff(&self, observed: &Lease, requester: &WorkerId) -> Result<()> {
        self.inner.withdraw_handoff(observed, requester).await
    }
    async fn delete_lease(&self, shard_id: &ShardId) -> Result<()> {
        self.inner.delete_lease(shard_id).await
    }
    async fn reset_checkpoint(
        &self,
        shard_id: &ShardId,
        checkpoint: &ExtendedSequenceNumber,
    ) -> Result<()> {
        self.inner.reset_checkpoint(shard_id, checkpoint).await
    }
    async fn heartbeat(&self, worker: &WorkerId) -> Result<()> {
        self.wait().await;
        self.inner.heartbeat(worker).await
    }
    async fn list_workers(&self) -> Result<Vec<WorkerHeartbeat>> {
        self.inner.list_workers().await
    }
    async fn remove_worker(&self, worker: &WorkerId) -> Result<()> {
        self.inner.remove_worker(worker).await
    }
}
