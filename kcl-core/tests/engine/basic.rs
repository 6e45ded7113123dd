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

#[tokio::test(start_paused = true)]
async fn read_faults_and_expired_iterators_lose_and_repeat_nothing() {
    let stream = FakeStream::new(2);
    fill(&stream, 500);
    let store = store();
    let recorder = Recorder::new();
    let shard = stream.shards()[0].shard_id.clone();
    stream.fail_next_reads(&shard, 3, kcl_core::testkit::Fault::Throttled);
    stream.fail_next_reads(&shard, 1, kcl_core::testkit::Fault::Fatal);
    let (cancel, run) = spawn_worker("w1", &store, &stream, &recorder);
    wait_until("500 records", Duration::from_secs(60), || {
        recorder.count() >= 500
    })
    .await;
    stream.expire_iterators();
    stream.fail_next_reads(&shard, 2, kcl_core::testkit::Fault::Unavailable);
    fill(&stream, 100);
    wait_until("600 records", Duration::from_secs(60), || {
        recorder.count() >= 600
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(recorder.count(), 600);
    assert!(recorder.duplicates().is_empty());
    println!("read faults: {:?}", stream.stats());
    assert!(stream.stats().reseeks >= 1);
    cancel.cancel();
    run.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_slow_processor_back_pressures_the_reader() {
    let config = kcl_core::testkit::FakeStreamConfig {
        max_records: 50,
        ..Default::default()
    };
    let stream = FakeStream::with_config(1, config);
    fill(&stream, 5_000);
    let store = store();
    let recorder = Recorder::new();
    recorder.set_delay(Duration::from_millis(100));
    let worker = Worker::builder()
        .worker_id("slow")
        .lease_store(store.clone())
        .source(Arc::new(stream.clone()))
        .prefetch_max_records(200)
        .processor(recorder.factory("slow"))
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(worker.run(cancel.clone()));
    let mut worst = 0;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let ahead = stream.stats().records_delivered as usize - recorder.count();
        worst = worst.max(ahead);
    }
    println!(
        "prefetch: at most {worst} records read ahead of a slow processor (bound 200 + one batch of 50)"
    );
    assert!(recorder.count() > 0 && recorder.count() < 5_000);
    assert!(worst <= 200 + 50 + 50, "read {worst} ahead");
    cancel.cancel();
    run.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_failing_shard_listing_at_start_is_retried_soon() {
    let stream = FakeStream::new(2);
    fill(&stream, 100);
    stream.fail_next_list_shards(3, kcl_core::testkit::Fault::Unavailable);
    let store = store();
    let recorder = Recorder::new();
    let (cancel, run) = spawn_worker("w1", &store, &stream, &recorder);
    let took = wait_until("100 records", Duration::from_secs(10), || {
        recorder.count() >= 100
    })
    .await;
    println!("drained after 3 failed listings in {took:?}");
    assert_eq!(stream.stats().list_shards_calls, 4);
    cancel.cancel();
    run.await.unwrap().unwrap();
}
