//! The multi-stream scenario every store runs: three streams of eight
//! shards over three workers sharing one store; while they run, a shard of
//! one stream splits, another stream is removed and a new one added.
//! Every record of every stream still tracked is processed, the removed
//! stream's leases are deleted after their delay, and no lease key lacks
//! its stream.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::engine::Worker;
use crate::ids::ShardId;
use crate::store::LeaseStore;
use crate::stream::{MultiStreamSource, StreamConfig, StreamIdentifier, StreamTracker};

use super::FakeStream;
use super::engine::Recorder;

/// What [`three_streams_over_three_workers`] saw, for the test to print.
#[derive(Debug)]
pub struct MultiStreamReport {
    /// Records put into the streams tracked at the end.
    pub records: usize,
    /// Distinct records processed (all streams, the removed one too).
    pub processed: usize,
    /// Records processed more than once.
    pub duplicates: usize,
    /// How long after its removal the removed stream's last lease went.
    pub removed_leases_gone_after: Duration,
    /// Time from start to every record processed.
    pub elapsed: Duration,
}

/// A fake stream of `shards` shards known as `name` in account
/// 123456789012, with `records` records.
pub fn fake_stream(name: &str, shards: usize, records: usize) -> (StreamIdentifier, FakeStream) {
    let stream = FakeStream::new(shards);
    for i in 0..records {
        stream
            .put_record(format!("{name}-{i}"), format!("{name}-{i}"))
            .expect("put into a fake stream");
    }
    let id = StreamIdentifier::new("123456789012", name, 1_700_000_000).expect("valid stream id");
    (id, stream)
}

async fn wait_until(what: &str, limit: Duration, mut done: impl AsyncFnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done().await {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    start.elapsed()
}

/// Run the scenario on `store` (a fresh namespace) in real time; panics
/// with what went wrong. `lease_duration` is the workers'; the removed
/// stream's leases are deleted one second after its removal is seen.
pub async fn three_streams_over_three_workers(
    store: Arc<dyn LeaseStore>,
    lease_duration: Duration,
) -> MultiStreamReport {
    let started = Instant::now();
    let (split_id, split) = fake_stream("split-me", 8, 80);
    let (removed_id, removed) = fake_stream("remove-me", 8, 80);
    let (kept_id, kept) = fake_stream("keep-me", 8, 80);
    let (added_id, added) = fake_stream("add-me", 8, 80);
    let config =
        |id: &StreamIdentifier, s: &FakeStream| StreamConfig::new(id.clone(), Arc::new(s.clone()));
    let streams = Arc::new(Mutex::new(vec![
        config(&split_id, &split),
        config(&removed_id, &removed),
        config(&kept_id, &kept),
    ]));
    let recorder = Recorder::new();
    let mut running = Vec::new();
    for name in ["w1", "w2", "w3"] {
        let list = Arc::clone(&streams);
        let tracker = StreamTracker::polled(Duration::from_millis(100), move || {
            let now = list.lock().unwrap_or_else(|p| p.into_inner()).clone();
            async move { Ok(now) }
        })
        .delete_removed_after(Duration::from_secs(1));
        let worker = Worker::builder()
            .worker_id(name)
            .lease_store(Arc::clone(&store))
            .source(Arc::new(MultiStreamSource::new(tracker)))
            .lease_duration(lease_duration)
            .shard_sync_interval(Duration::from_millis(300))
            .processor(recorder.factory(name))
            .build()
            .expect("valid worker");
        let cancel = CancellationToken::new();
        running.push((cancel.clone(), tokio::spawn(worker.run(cancel))));
    }

    let seen = |id: &StreamIdentifier, stream: &FakeStream| {
        let done: HashSet<_> = recorder
            .processed()
            .into_iter()
            .map(|p| (p.shard_id, p.position))
            .collect();
        stream.shards().into_iter().all(|shard| {
            let key = id.lease_key(&shard.shard_id).expect("short key");
            stream
                .records(&shard.shard_id)
                .expect("listed shard")
                .iter()
                .all(|r| done.contains(&(key.clone(), r.extended_sequence_number())))
        })
    };
    wait_until(
        "the first records of every stream",
        Duration::from_secs(60),
        async || seen(&split_id, &split) && seen(&kept_id, &kept),
    )
    .await;
    // The first records can all be read before the last worker starts (a
    // loaded machine): let the fleet spread out before the records put
    // below, so each worker has some of them to process.
    let store_ref = Arc::clone(&store);
    wait_until(
        "every worker holding a lease",
        Duration::from_secs(60),
        async || match store_ref.list_leases().await {
            Ok(leases) => ["w1", "w2", "w3"].iter().all(|w| {
                leases
                    .iter()
                    .any(|l| l.owner.as_ref().is_some_and(|o| o.as_str() == *w))
            }),
            Err(_) => false,
        },
    )
    .await;

    // Change the world while the fleet runs.
    let first = split.shards()[0].clone();
    let mid = first.hash_key_range.starting_hash_key / 2 + first.hash_key_range.ending_hash_key / 2;
    let (low, high) = split.split_shard(&first.shard_id, mid).expect("split");
    for i in 0..40 {
        split
            .put(
                super::FakeRecord::new(format!("after-{i}"), format!("after-{i}"))
                    .explicit_hash_key(mid),
            )
            .expect("put");
        split
            .put_record(format!("after-split-{i}"), "x")
            .expect("put");
        kept.put_record(format!("more-{i}"), "y").expect("put");
    }
    {
        let mut list = streams.lock().unwrap_or_else(|p| p.into_inner());
        list.retain(|s| s.identifier != removed_id);
        list.push(config(&added_id, &added));
    }
    let removed_at = Instant::now();

    wait_until(
        "every record of every tracked stream",
        Duration::from_secs(120),
        async || seen(&split_id, &split) && seen(&kept_id, &kept) && seen(&added_id, &added),
    )
    .await;
    let prefix = format!("{removed_id}:");
    let store_ref = Arc::clone(&store);
    wait_until(
        "the removed stream's leases deleted",
        Duration::from_secs(60),
        async || match store_ref.list_leases().await {
            Ok(leases) => !leases
                .iter()
                .any(|l| l.shard_id.as_str().starts_with(&prefix)),
            Err(_) => false,
        },
    )
    .await;
    let removed_leases_gone_after = removed_at.elapsed();
    let elapsed = started.elapsed();

    for (cancel, _) in &running {
        cancel.cancel();
    }
    for (_, task) in running {
        task.await.expect("worker task").expect("worker run");
    }

    let leases = store.list_leases().await.expect("list leases");
    for lease in &leases {
        let (stream, _) = StreamIdentifier::split_lease_key(&lease.shard_id)
            .unwrap_or_else(|| panic!("lease {} has no stream in its key", lease.shard_id));
        assert!(
            [&split_id, &kept_id, &added_id].contains(&&stream),
            "lease {} of stream {stream} left over",
            lease.shard_id
        );
        for parent in &lease.parent_shard_ids {
            assert!(
                parent.as_str().starts_with(&format!("{stream}:")),
                "lease {}'s parent {parent} is not of its stream",
                lease.shard_id
            );
        }
    }
    // The split's children are leased with the parent as theirs.
    for child in [&low, &high] {
        let key: ShardId = split_id.lease_key(child).expect("short key");
        let lease = leases
            .iter()
            .find(|l| l.shard_id == key)
            .unwrap_or_else(|| panic!("no lease for split child {key}"));
        assert_eq!(
            lease.parent_shard_ids,
            vec![split_id.lease_key(&first.shard_id).expect("key")]
        );
    }
    let per_worker = recorder.per_worker();
    assert!(
        ["w1", "w2", "w3"]
            .iter()
            .all(|w| per_worker.get(*w).copied().unwrap_or(0) > 0),
        "a worker processed nothing: {per_worker:?}"
    );
    MultiStreamReport {
        records: [&split, &kept, &added]
            .iter()
            .map(|s| s.total_records())
            .sum(),
        processed: recorder.distinct(),
        duplicates: recorder.duplicates().len(),
        removed_leases_gone_after,
        elapsed,
    }
}
