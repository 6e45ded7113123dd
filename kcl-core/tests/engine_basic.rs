#![cfg(feature = "testkit")]
//! The worker drains a stream, alone or with peers, and checkpoints what it
//! processed (DESIGN.md section 3, invariants 1, 2 and 4).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kcl_core::testkit::FakeStream;
use kcl_core::testkit::engine::Recorder;
use kcl_core::{ExtendedSequenceNumber, LeaseStore, Worker, WorkerId};
use kcl_store_memory::MemoryStore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

fn store() -> Arc<MemoryStore> {
    Arc::new(
        MemoryStore::builder()
            .application("engine-test")
            .build()
            .unwrap(),
    )
}

fn fill(stream: &FakeStream, n: usize) {
    for i in 0..n {
        stream
            .put_record(format!("key-{i}"), format!("{i}"))
            .unwrap();
    }
}

fn spawn_worker(
    id: &str,
    store: &Arc<MemoryStore>,
    stream: &FakeStream,
    recorder: &Recorder,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<kcl_core::Result<()>>,
) {
    let worker = Worker::builder()
        .worker_id(id)
        .lease_store(store.clone())
        .source(Arc::new(stream.clone()))
        .processor(recorder.factory(id))
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    (cancel.clone(), tokio::spawn(worker.run(cancel)))
}

async fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    start.elapsed()
}

/// The last sequence number of every shard, as the checkpoint should hold it.
fn last_positions(stream: &FakeStream) -> HashMap<String, ExtendedSequenceNumber> {
    stream
        .shards()
        .into_iter()
        .filter_map(|s| {
            let records = stream.records(&s.shard_id).unwrap();
            records
                .last()
                .map(|r| (s.shard_id.to_string(), r.extended_sequence_number()))
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn one_worker_drains_every_shard_and_checkpoints() {
    let stream = FakeStream::new(4);
    fill(&stream, 1000);
    let store = store();
    let recorder = Recorder::new();
    let (cancel, run) = spawn_worker("w1", &store, &stream, &recorder);

    let took = wait_until("1000 records", Duration::from_secs(30), || {
        recorder.count() >= 1000
    })
    .await;
    println!("one worker drained 1000 records from 4 shards in {took:?} (paused clock)");
    // Records put while running are processed too.
    fill(&stream, 100);
    wait_until("1100 records", Duration::from_secs(30), || {
        recorder.count() >= 1100
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(recorder.count(), 1100, "every record exactly once");
    assert!(recorder.duplicates().is_empty());

    let expected = last_positions(&stream);
    let leases = store.list_leases().await.unwrap();
    assert_eq!(leases.len(), 4);
    for lease in &leases {
        assert_eq!(
            Some(&lease.checkpoint),
            expected.get(lease.shard_id.as_str()),
            "checkpoint of {}",
            lease.shard_id
        );
        assert_eq!(lease.owner, Some(WorkerId::new("w1").unwrap()));
    }

    cancel.cancel();
    run.await.unwrap().unwrap();
    let leases = store.list_leases().await.unwrap();
    assert!(
        leases.iter().all(|l| l.owner.is_none()),
        "graceful shutdown released every lease: {leases:?}"
    );
    assert!(
        store.list_workers().await.unwrap().is_empty(),
        "heartbeat removed"
    );
}

#[tokio::test(start_paused = true)]
async fn three_workers_split_twelve_shards_evenly() {
    let stream = FakeStream::new(12);
    fill(&stream, 1200);
    let store = store();
    let recorder = Recorder::new();
    let workers: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|id| spawn_worker(id, &store, &stream, &recorder))
        .collect();

    let start = Instant::now();
    let mut counts = HashMap::new();
    loop {
        let leases = store.list_leases().await.unwrap();
        counts.clear();
        for lease in &leases {
            if let Some(owner) = &lease.owner {
                *counts.entry(owner.to_string()).or_insert(0usize) += 1;
            }
        }
        if counts.len() == 3 && counts.values().all(|c| *c == 4) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "not balanced: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "3 workers reached 4/4/4 over 12 shards in {:?} (paused clock)",
        start.elapsed()
    );
    wait_until("1200 records", Duration::from_secs(30), || {
        recorder.distinct() >= 1200
    })
    .await;
    // Records put after balancing are spread over all three workers.
    let before = recorder.per_worker();
    fill(&stream, 1200);
    wait_until("2400 records", Duration::from_secs(30), || {
        recorder.distinct() >= 2400
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(recorder.distinct(), 2400);
    assert!(
        recorder.duplicates().is_empty(),
        "hand-offs while balancing duplicated: {:?}",
        recorder.duplicates()
    );
    let after = recorder.per_worker();
    println!("records per worker: {before:?} before, {after:?} after the second fill");
    for id in ["a", "b", "c"] {
        let new = after.get(id).copied().unwrap_or(0) - before.get(id).copied().unwrap_or(0);
        assert!(new > 0, "worker {id} processed nothing after balancing");
    }

    for (cancel, run) in workers {
        cancel.cancel();
        run.await.unwrap().unwrap();
    }
}
