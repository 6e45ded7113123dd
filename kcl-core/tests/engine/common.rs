//! Shared set-up for the engine tests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kcl_core::testkit::FakeStream;
use kcl_core::testkit::engine::Recorder;
use kcl_core::{LeaseStore, Worker, WorkerBuilder};
use kcl_store_memory::MemoryStore;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub(crate) const LEASE: Duration = Duration::from_secs(10);

pub(crate) fn store() -> Arc<MemoryStore> {
    Arc::new(
        MemoryStore::builder()
            .application("engine-test")
            .build()
            .unwrap(),
    )
}

pub(crate) fn fill(stream: &FakeStream, from: usize, n: usize) {
    for i in from..from + n {
        stream
            .put_record(format!("key-{i}"), format!("{i}"))
            .unwrap();
    }
}

/// Put a record every `every` until the token is cancelled; returns how
/// many were put.
pub(crate) fn producer(
    stream: &FakeStream,
    every: Duration,
) -> (CancellationToken, JoinHandle<usize>) {
    let stop = CancellationToken::new();
    let stream = stream.clone();
    let token = stop.clone();
    let task = tokio::spawn(async move {
        let mut i = 1_000_000;
        while !token.is_cancelled() {
            stream.put_record(format!("p-{i}"), format!("{i}")).unwrap();
            i += 1;
            tokio::time::sleep(every).await;
        }
        i - 1_000_000
    });
    (stop, task)
}

pub(crate) struct Running {
    pub id: String,
    pub cancel: CancellationToken,
    pub task: JoinHandle<kcl_core::Result<()>>,
}

impl Running {
    /// Graceful shutdown, waiting for it.
    pub(crate) async fn stop(self) {
        self.cancel.cancel();
        self.task.await.unwrap().unwrap();
    }

    /// A crash: the run future is dropped without releasing anything.
    pub(crate) async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

pub(crate) fn spawn_worker(
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
pub(crate) fn spawn_worker_with(
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
        .unwrap();
    let cancel = CancellationToken::new();
    Running {
        id: id.to_string(),
        cancel: cancel.clone(),
        task: tokio::spawn(worker.run(cancel)),
    }
}

pub(crate) async fn wait_until(
    what: &str,
    limit: Duration,
    mut done: impl FnMut() -> bool,
) -> Duration {
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

/// Unfinished leases per owner.
pub(crate) async fn owners(store: &dyn LeaseStore) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for lease in store.list_leases().await.unwrap() {
        if lease.is_finished() {
            continue;
        }
        let owner = lease.owner.map_or("-".to_string(), |o| o.to_string());
        *counts.entry(owner).or_insert(0usize) += 1;
    }
    counts
}

/// Every record the stream holds, as `(shard, position)`.
pub(crate) fn all_positions(
    stream: &FakeStream,
) -> Vec<(String, kcl_core::ExtendedSequenceNumber)> {
    let mut out = Vec::new();
    for shard in stream.shards() {
        for r in stream.records(&shard.shard_id).unwrap() {
            out.push((shard.shard_id.to_string(), r.extended_sequence_number()));
        }
    }
    out
}

/// Assert every record of the stream was processed at least once.
pub(crate) fn assert_nothing_lost(stream: &FakeStream, recorder: &Recorder) {
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
