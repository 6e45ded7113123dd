//! A multi-stream worker's per-shard metrics carry `stream` beside `shard`
//! (the raw shard id), so the same shard id in two streams is two series.
//! One test: the debugging recorder is global.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kcl_core::Worker;
use kcl_core::engine::metric;
use kcl_core::stream::{MultiStreamSource, StreamConfig, StreamTracker};
use kcl_core::testkit::engine::Recorder;
use kcl_core::testkit::multistream::fake_stream;
use kcl_store_memory::MemoryStore;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tokio_util::sync::CancellationToken;

#[tokio::test(start_paused = true)]
async fn records_processed_are_counted_per_stream_and_shard() {
    let debugging = DebuggingRecorder::new();
    let snapshotter = debugging.snapshotter();
    debugging.install().unwrap();

    let (a_id, a) = fake_stream("metrics-a", 1, 5);
    let (b_id, b) = fake_stream("metrics-b", 1, 7);
    let tracker = StreamTracker::fixed([
        StreamConfig::new(a_id.clone(), Arc::new(a)),
        StreamConfig::new(b_id.clone(), Arc::new(b)),
    ]);
    let recorder = Recorder::new();
    let worker = Worker::builder()
        .worker_id("w")
        .lease_store(Arc::new(
            MemoryStore::builder()
                .application("multi-metrics")
                .build()
                .unwrap(),
        ))
        .source(Arc::new(MultiStreamSource::new(tracker)))
        .processor(recorder.factory("w"))
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(worker.run(cancel.clone()));
    tokio::time::sleep(Duration::from_secs(3)).await;
    cancel.cancel();
    run.await.unwrap().unwrap();
    assert_eq!(recorder.distinct(), 12);

    let mut processed = BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        if key.key().name() != metric::RECORDS_PROCESSED {
            continue;
        }
        let labels: BTreeMap<String, String> = key
            .key()
            .labels()
            .map(|l| (l.key().to_string(), l.value().to_string()))
            .collect();
        if let DebugValue::Counter(n) = value {
            processed.insert(labels, n);
        }
    }
    let series = |stream: &kcl_core::stream::StreamIdentifier| {
        BTreeMap::from([
            ("shard".to_string(), "shardId-000000000000".to_string()),
            ("stream".to_string(), stream.to_string()),
        ])
    };
    assert_eq!(processed.get(&series(&a_id)), Some(&5), "{processed:?}");
    assert_eq!(processed.get(&series(&b_id)), Some(&7), "{processed:?}");
    assert_eq!(processed.len(), 2, "{processed:?}");
}
