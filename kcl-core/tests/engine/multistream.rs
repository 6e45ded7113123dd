//! Many streams in one application, on the memory store: the shared
//! scenario (3 streams x 8 shards over 3 workers; a split in one stream,
//! one stream removed and one added while they run), and each stream's own
//! initial position.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use kcl_core::engine::InitialPosition;
use kcl_core::stream::{MultiStreamSource, StreamConfig, StreamTracker};
use kcl_core::testkit::engine::Recorder;
use kcl_core::testkit::multistream::{fake_stream, three_streams_over_three_workers};
use kcl_core::{LeaseStore, Worker};
use kcl_store_memory::MemoryStore;
use tokio_util::sync::CancellationToken;

fn store(app: &str) -> Arc<MemoryStore> {
    Arc::new(MemoryStore::builder().application(app).build().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_streams_over_three_workers_on_memory() {
    let report =
        three_streams_over_three_workers(store("multi-memory"), Duration::from_secs(3)).await;
    println!("multistream memory: {report:?}");
}

#[tokio::test(start_paused = true)]
async fn each_stream_starts_at_its_own_initial_position() {
    let (old_id, old) = fake_stream("from-the-start", 2, 10);
    let (new_id, new) = fake_stream("from-now-on", 2, 10);
    let tracker = StreamTracker::fixed([
        StreamConfig::new(old_id.clone(), Arc::new(old.clone())),
        StreamConfig::new(new_id.clone(), Arc::new(new.clone()))
            .initial_position(InitialPosition::Latest),
    ]);
    let store = store("multi-positions");
    let recorder = Recorder::new();
    let worker = Worker::builder()
        .worker_id("w")
        .lease_store(store.clone())
        .source(Arc::new(MultiStreamSource::new(tracker)))
        // The worker's own position would be the wrong one for both.
        .initial_position(InitialPosition::AtTimestamp(
            std::time::SystemTime::now() + Duration::from_secs(3600),
        ))
        .pin_clock_margin(Duration::ZERO)
        .processor(recorder.factory("w"))
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(worker.run(cancel.clone()));
    tokio::time::sleep(Duration::from_secs(3)).await;
    for i in 0..5 {
        new.put_record(format!("late-{i}"), format!("late-{i}"))
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    cancel.cancel();
    run.await.unwrap().unwrap();

    let data: HashSet<String> = recorder
        .processed()
        .iter()
        .map(|p| String::from_utf8_lossy(&p.data).into_owned())
        .collect();
    for i in 0..10 {
        assert!(
            data.contains(&format!("from-the-start-{i}")),
            "TRIM_HORIZON stream lost record {i}"
        );
        assert!(
            !data.contains(&format!("from-now-on-{i}")),
            "LATEST stream read old record {i}"
        );
    }
    for i in 0..5 {
        assert!(
            data.contains(&format!("late-{i}")),
            "LATEST stream lost new record {i}"
        );
    }
    let leases = store.list_leases().await.unwrap();
    assert_eq!(leases.len(), 4);
    assert!(
        leases
            .iter()
            .all(|l| l.shard_id.as_str().starts_with("123456789012:from-"))
    );
}

#[tokio::test(start_paused = true)]
async fn a_removed_streams_leases_are_kept_by_default() {
    let (kept_id, kept) = fake_stream("kept", 1, 3);
    let (gone_id, gone) = fake_stream("gone", 2, 3);
    let list = Arc::new(std::sync::Mutex::new(vec![
        StreamConfig::new(kept_id.clone(), Arc::new(kept.clone())),
        StreamConfig::new(gone_id.clone(), Arc::new(gone.clone())),
    ]));
    let polled = Arc::clone(&list);
    // No delete_removed_after: the leases of a removed stream are kept,
    // so tracking it again resumes at its checkpoints.
    let tracker = StreamTracker::polled(Duration::from_millis(100), move || {
        let now = polled.lock().unwrap().clone();
        async move { Ok(now) }
    });
    let store = store("multi-keep");
    let recorder = Recorder::new();
    let worker = Worker::builder()
        .worker_id("w")
        .lease_store(store.clone())
        .source(Arc::new(MultiStreamSource::new(tracker)))
        .shard_sync_interval(Duration::from_millis(200))
        .processor(recorder.factory("w"))
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(worker.run(cancel.clone()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    list.lock().unwrap().retain(|s| s.identifier != gone_id);
    tokio::time::sleep(Duration::from_secs(10)).await;
    cancel.cancel();
    run.await.unwrap().unwrap();
    let keys: Vec<String> = store
        .list_leases()
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.shard_id.to_string())
        .filter(|k| k.starts_with(&format!("{gone_id}:")))
        .collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_eq!(recorder.distinct(), 6);
}

#[tokio::test]
async fn the_source_keys_shards_parents_and_children_and_survives_one_stream_failing() {
    use kcl_core::retrieval::{ShardSource, StartingPosition};
    use kcl_core::testkit::Fault;
    let (a_id, a) = fake_stream("a", 1, 1);
    let (b_id, b) = fake_stream("b", 1, 0);
    let parent = a.shards()[0].shard_id.clone();
    let (low, high) = a.split_shard(&parent, u128::MAX / 2).unwrap();
    let source = MultiStreamSource::new(StreamTracker::fixed([
        StreamConfig::new(a_id.clone(), Arc::new(a.clone())),
        StreamConfig::new(b_id.clone(), Arc::new(b.clone())),
    ]));
    let shards = source.list_shards().await.unwrap();
    let key = |id, s| kcl_core::stream::StreamIdentifier::lease_key(id, s).unwrap();
    let child = shards
        .iter()
        .find(|s| s.shard_id == key(&a_id, &low))
        .unwrap();
    assert_eq!(child.parent_shard_id, Some(key(&a_id, &parent)));
    assert_eq!(shards.len(), 4);

    // A reader on a key reads the raw shard; ChildShards come keyed.
    let mut reader = source
        .open_reader(&key(&a_id, &parent), StartingPosition::TrimHorizon)
        .await
        .unwrap();
    let batch = reader.next_batch().await.unwrap();
    assert_eq!(batch.records.len(), 1);
    let children = batch.shard_end.expect("the split parent ends");
    let ids: Vec<_> = children.iter().map(|c| c.shard_id.clone()).collect();
    assert_eq!(ids, vec![key(&a_id, &low), key(&a_id, &high)]);
    assert_eq!(children[0].parent_shard_ids, vec![key(&a_id, &parent)]);

    // One stream failing leaves the other listed; both failing is an error.
    b.fail_next_list_shards(1, Fault::Fatal);
    assert_eq!(source.list_shards().await.unwrap().len(), 3);
    a.fail_next_list_shards(1, Fault::Unavailable);
    b.fail_next_list_shards(1, Fault::Unavailable);
    assert!(source.list_shards().await.unwrap_err().is_retryable());

    // A key of no tracked stream, or no stream at all, is NotFound.
    let (c_id, _) = fake_stream("c", 1, 0);
    for bad in [key(&c_id, &parent), parent.clone()] {
        let err = source
            .open_reader(&bad, StartingPosition::TrimHorizon)
            .await
            .unwrap_err();
        assert!(matches!(err, kcl_core::Error::NotFound { .. }), "{err}");
    }
}
