//! Path 13 of issue 11: a shard that leaves this worker does not keep its
//! last lag forever (the `metrics` facade cannot remove a series, so the
//! gauge goes to 0 once; exporters drop idle series). One test: the
//! debugging recorder is global.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use kcl_core::Worker;
use kcl_core::engine::metric;
use kcl_core::testkit::engine::{LEASE, Recorder, wait_until};
use kcl_core::testkit::{FakeRecord, FakeStream, FakeStreamConfig};
use kcl_store_memory::MemoryStore;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tokio_util::sync::CancellationToken;

/// A fresh memory store for this test's one worker.
fn store() -> Arc<MemoryStore> {
    Arc::new(
        MemoryStore::builder()
            .application("engine-test")
            .build()
            .unwrap(),
    )
}

fn lag(snapshotter: &Snapshotter) -> Vec<f64> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == metric::MILLIS_BEHIND_LATEST)
        .filter_map(|(.., value)| match value {
            DebugValue::Gauge(g) => Some(g.into_inner()),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_shard_that_leaves_the_worker_reports_no_lag_anymore() {
    let debugging = DebuggingRecorder::new();
    let snapshotter = debugging.snapshotter();
    debugging.install().unwrap();

    let config = FakeStreamConfig {
        max_records: 10,
        ..FakeStreamConfig::default()
    };
    let stream = FakeStream::with_config(1, config);
    // Arrivals a second apart, an hour ago: every read before the tip is
    // behind by the newest record's arrival minus its last one's.
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    for i in 0..100 {
        let arrival = hour_ago + Duration::from_secs(i);
        stream
            .put(FakeRecord::new(format!("k{i}"), format!("{i}")).arrival(arrival))
            .unwrap();
    }
    let recorder = Recorder::new();
    // The processor holds its first batch: the reader stays behind.
    recorder.set_blocked("w", true);
    let worker = Worker::builder()
        .worker_id("w")
        .lease_store(store())
        .source(Arc::new(stream.clone()))
        .lease_duration(LEASE)
        .prefetch_max_records(10)
        .shutdown_grace(Duration::from_secs(1))
        .processor(recorder.factory("w"))
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(worker.run(cancel.clone()));
    wait_until("the first batch", Duration::from_secs(10), || {
        recorder.count() >= 10
    })
    .await;
    // (No snapshot here: the debugging recorder's snapshot may reset a
    // gauge, and the point is what the worker leaves behind. Without the
    // terminal value the gauge stays at the last read's lag, 80 s.)
    // The stuck processor is abandoned after the grace period.
    cancel.cancel();
    run.await.unwrap().unwrap();
    let after = lag(&snapshotter);
    assert_eq!(
        after,
        vec![0.0],
        "the shard left; its lag series stays at {after:?}"
    );
}
