//! Helpers to test the engine and processors: a [`Recorder`] whose
//! processors log every record and life-cycle call, a
//! [`PausableLeaseStore`] that freezes a worker's renewals like a long
//! pause (a "zombie" worker) would, and workers spawned on a
//! [`FakeStream`] ([`spawn_worker`]) with the waits and checks engine
//! tests make on them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::{BoxError, Result};
use crate::ids::{ShardId, WorkerId};
use crate::lease::{Lease, PendingCheckpoint, WorkerHeartbeat};
use crate::processor::{Checkpointer, InitializeInput, ProcessRecordsInput, ShardProcessor};
use crate::sequence::ExtendedSequenceNumber;
use crate::store::LeaseStore;
use crate::testkit::FakeStream;
use crate::{Worker, WorkerBuilder};

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
    pub at: Instant,
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
                    at: Instant::now(),
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

/// The lease duration [`spawn_worker`] gives its workers: 10 s.
pub const LEASE: Duration = Duration::from_secs(10);

/// Put records `from..from + n` on `stream`, record `i` with partition key
/// `"key-{i}"` and data `"{i}"`.
///
/// # Panics
///
/// If the stream refuses a record.
pub fn fill(stream: &FakeStream, from: usize, n: usize) {
    for i in from..from + n {
        stream
            .put_record(format!("key-{i}"), format!("{i}"))
            .expect("the fake stream takes the record");
    }
}

/// Put a record on `stream` every `every` until the returned token is
/// cancelled; the task returns how many it put.
pub fn producer(stream: &FakeStream, every: Duration) -> (CancellationToken, JoinHandle<usize>) {
    let stop = CancellationToken::new();
    let stream = stream.clone();
    let token = stop.clone();
    let task = tokio::spawn(async move {
        let mut i = 1_000_000;
        while !token.is_cancelled() {
            stream
                .put_record(format!("p-{i}"), format!("{i}"))
                .expect("the fake stream takes the record");
            i += 1;
            tokio::time::sleep(every).await;
        }
        i - 1_000_000
    });
    (stop, task)
}

/// A worker running on a task, from [`spawn_worker`].
#[derive(Debug)]
pub struct Running {
    /// Its worker id.
    pub id: String,
    /// Cancelling this shuts the worker down gracefully.
    pub cancel: CancellationToken,
    /// The task running [`Worker::run`].
    pub task: JoinHandle<Result<()>>,
}

impl Running {
    /// Graceful shutdown, waiting for it.
    ///
    /// # Panics
    ///
    /// If the worker's run failed or panicked.
    pub async fn stop(self) {
        self.cancel.cancel();
        self.task
            .await
            .expect("the worker task did not panic")
            .expect("the worker shut down cleanly");
    }

    /// A crash: the run future is dropped without releasing anything.
    pub async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Spawn worker `id` on `stream`, leases in `store`, lease duration
/// [`LEASE`], every shard processed by `recorder`'s processors (tagged
/// `id`).
///
/// # Panics
///
/// If the worker does not build.
pub fn spawn_worker(
    id: &str,
    store: Arc<dyn LeaseStore>,
    stream: &FakeStream,
    recorder: &Recorder,
) -> Running {
    spawn_worker_with(id, store, stream, recorder, |builder| builder)
}

/// [`spawn_worker`] with more settings: `configure` gets the builder with
/// the id, store, stream and lease duration already set (the processor
/// is the recorder's, set after).
///
/// # Panics
///
/// If the worker does not build.
pub fn spawn_worker_with(
    id: &str,
    store: Arc<dyn LeaseStore>,
    stream: &FakeStream,
    recorder: &Recorder,
    configure: impl FnOnce(WorkerBuilder<()>) -> WorkerBuilder<()>,
) -> Running {
    let builder = Worker::builder()
        .worker_id(id)
        .lease_store(store)
        .source(Arc::new(stream.clone()))
        .lease_duration(LEASE);
    let worker = configure(builder)
        .processor(recorder.factory(id))
        .build()
        .expect("the worker builds");
    let cancel = CancellationToken::new();
    Running {
        id: id.to_string(),
        cancel: cancel.clone(),
        task: tokio::spawn(worker.run(cancel)),
    }
}

/// Wait, checking every 20 ms, until `done` is true; returns how long it
/// took.
///
/// # Panics
///
/// After `limit`, naming `what` was awaited.
pub async fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

/// Unfinished leases per owner (`"-"` for the unowned).
///
/// # Panics
///
/// If the store cannot list its leases.
pub async fn owners(store: &dyn LeaseStore) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for lease in store.list_leases().await.expect("list leases") {
        if lease.is_finished() {
            continue;
        }
        let owner = lease.owner.map_or("-".to_string(), |o| o.to_string());
        *counts.entry(owner).or_insert(0usize) += 1;
    }
    counts
}

/// Every record the stream holds, as `(shard, position)`.
pub fn all_positions(stream: &FakeStream) -> Vec<(String, ExtendedSequenceNumber)> {
    let mut out = Vec::new();
    for shard in stream.shards() {
        for r in stream.records(&shard.shard_id).unwrap_or_default() {
            out.push((shard.shard_id.to_string(), r.extended_sequence_number()));
        }
    }
    out
}

/// Assert every record of the stream was processed at least once.
///
/// # Panics
///
/// If one was not, naming how many and the first.
pub fn assert_nothing_lost(stream: &FakeStream, recorder: &Recorder) {
    let processed: std::collections::HashSet<_> = recorder
        .processed()
        .into_iter()
        .map(|p| (p.shard_id.to_string(), p.position))
        .collect();
    let missing: Vec<_> = all_positions(stream)
        .into_iter()
        .filter(|p| !processed.contains(p))
        .collect();
    assert!(
        missing.is_empty(),
        "{} records never processed, first: {:?}",
        missing.len(),
        missing.first()
    );
}
