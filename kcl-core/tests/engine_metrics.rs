//! The engine's metrics, read back with metrics-util's DebuggingRecorder
//! (installed globally, so this file holds one test).

use std::sync::Arc;
use std::time::Duration;

use kcl_core::LeaseStore;
use kcl_core::engine::metric;
use kcl_core::testkit::FakeStream;
use kcl_core::testkit::engine::{LEASE, Recorder, fill, spawn_worker, wait_until};
use kcl_store_memory::MemoryStore;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

/// A fresh memory store for this test's one worker.
fn store() -> Arc<MemoryStore> {
    Arc::new(
        MemoryStore::builder()
            .application("engine-test")
            .build()
            .unwrap(),
    )
}

#[tokio::test(start_paused = true)]
async fn records_leases_and_latencies_are_measured() {
    let debugging = DebuggingRecorder::new();
    let snapshotter = debugging.snapshotter();
    debugging.install().unwrap();
    metric::describe();

    let stream = FakeStream::new(3);
    fill(&stream, 0, 300);
    let store = store();
    let recorder = Recorder::new();
    let w = spawn_worker("m", store.clone(), &stream, &recorder);
    wait_until("300 records", Duration::from_secs(10), || {
        recorder.count() >= 300
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let snapshot = snapshotter.snapshot().into_vec();
    let mut processed = 0;
    let mut shards_seen = std::collections::HashSet::new();
    let mut current_leases = None;
    let mut taken = 0;
    let mut get_records = 0;
    let mut checkpoints = 0;
    let mut plans = 0;
    for (key, _, description, value) in &snapshot {
        let name = key.key().name();
        assert!(
            description.is_some(),
            "{name} is recorded but not described"
        );
        let labels: Vec<_> = key
            .key()
            .labels()
            .map(|l| (l.key().to_string(), l.value().to_string()))
            .collect();
        match (name, value) {
            (n, DebugValue::Counter(c)) if n == metric::RECORDS_PROCESSED => {
                processed += c;
                shards_seen.extend(
                    labels
                        .iter()
                        .filter(|l| l.0 == "shard")
                        .map(|l| l.1.clone()),
                );
            }
            (n, DebugValue::Gauge(g)) if n == metric::CURRENT_LEASES => {
                current_leases = Some(g.into_inner())
            }
            (n, DebugValue::Counter(c)) if n == metric::LEASES_TAKEN => taken += c,
            (n, DebugValue::Histogram(h)) if n == metric::GET_RECORDS_SECONDS => {
                get_records += h.len()
            }
            (n, DebugValue::Histogram(h)) if n == metric::CHECKPOINT_SECONDS => {
                checkpoints += h.len()
            }
            (n, DebugValue::Histogram(h)) if n == metric::LEASE_TAKER_PLAN_SECONDS => {
                assert!(
                    labels.iter().any(|l| l.0 == "worker" && l.1 == "m"),
                    "per-worker label: {labels:?}"
                );
                plans += h.len()
            }
            _ => {}
        }
    }
    println!(
        "metrics: processed {processed}, shards {shards_seen:?}, current leases {current_leases:?}, taken {taken}, get_records samples {get_records}, checkpoint samples {checkpoints}, taker plans {plans}"
    );
    assert_eq!(processed, 300);
    assert_eq!(shards_seen.len(), 3, "per-shard label");
    assert_eq!(current_leases, Some(3.0));
    assert_eq!(taken, 3);
    assert!(get_records >= 3);
    assert!(checkpoints >= 3);
    assert!(plans >= 1, "every taker round's planning is timed");

    // A lease lost (an admin reset fences the owner) counts once, however
    // many parts of the worker noticed (issue 11, path 13).
    let lease = store.list_leases().await.unwrap().remove(0);
    store
        .reset_checkpoint(&lease.shard_id, &lease.checkpoint)
        .await
        .unwrap();
    tokio::time::sleep(LEASE).await;
    let lost: u64 = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, _, _, _)| key.key().name() == metric::LEASES_LOST)
        .map(|(_, _, _, value)| match value {
            DebugValue::Counter(c) => c,
            _ => 0,
        })
        .sum();
    assert_eq!(lost, 1, "one lease lost, counted {lost} times");
    w.stop().await;
}
