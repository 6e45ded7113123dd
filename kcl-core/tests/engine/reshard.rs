//! Splits and merges mid-stream: children after parents (DESIGN.md
//! section 3, invariant 5), nothing lost (invariant 4), finished parent
//! leases cleaned up.

use std::collections::HashMap;
use std::time::Duration;

use crate::common::*;
use kcl_core::testkit::FakeStream;
use kcl_core::testkit::engine::Recorder;
use kcl_core::{LeaseStore, ShardId};

/// Index in processing order of the first and last record of each shard.
fn spans(recorder: &Recorder) -> HashMap<ShardId, (usize, usize)> {
    let mut out: HashMap<ShardId, (usize, usize)> = HashMap::new();
    for (i, p) in recorder.processed().iter().enumerate() {
        out.entry(p.shard_id.clone())
            .and_modify(|s| s.1 = i)
            .or_insert((i, i));
    }
    out
}

#[tokio::test(start_paused = true)]
async fn split_and_merge_mid_stream_keep_children_after_parents() {
    let stream = FakeStream::new(2);
    let store = store();
    let recorder = Recorder::new();
    // Slow processors, so parents still have a backlog when children appear.
    recorder.set_delay(Duration::from_millis(5));
    let a = spawn_worker("a", store.clone(), &stream, &recorder);
    let b = spawn_worker("b", store.clone(), &stream, &recorder);
    let (stop_producer, producer) = producer(&stream, Duration::from_millis(2));
    tokio::time::sleep(Duration::from_secs(2)).await;

    let shards = stream.shards();
    let (s0, s1) = (shards[0].clone(), shards[1].clone());
    let mid = s0.hash_key_range.starting_hash_key / 2 + s0.hash_key_range.ending_hash_key / 2;
    let (low, high) = stream.split_shard(&s0.shard_id, mid).unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let merged = stream.merge_shards(&high, &s1.shard_id).unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop_producer.cancel();
    let put = producer.await.unwrap();
    wait_until("every record", Duration::from_secs(120), || {
        recorder.distinct() >= put
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_nothing_lost(&stream, &recorder);

    let spans = spans(&recorder);
    let lineage = [
        (low.clone(), vec![s0.shard_id.clone()]),
        (high.clone(), vec![s0.shard_id.clone()]),
        (merged.clone(), vec![high.clone(), s1.shard_id.clone()]),
    ];
    for (child, parents) in &lineage {
        let Some((first_child, _)) = spans.get(child) else {
            panic!("child {child} processed nothing");
        };
        for parent in parents {
            let (_, last_parent) = spans[parent];
            assert!(
                last_parent < *first_child,
                "{child}'s first record (#{first_child}) came before parent {parent}'s last (#{last_parent})"
            );
        }
    }
    println!(
        "reshard: {put} records over 2 -> split -> merge; processing spans (first, last index): {spans:?}; duplicates {}",
        recorder.duplicates().len()
    );
    assert!(recorder.duplicates().is_empty());

    // Finished parents are deleted once their children have started; the
    // open shards remain, and no lease was re-created for a parent.
    wait_until("parent leases cleaned up", Duration::from_secs(10), || {
        let leases = futures_lite_list(&*store);
        leases.iter().all(|l| {
            l.as_str() != s0.shard_id.as_str()
                && l.as_str() != high.as_str()
                && l.as_str() != s1.shard_id.as_str()
        })
    })
    .await;
    let leases = store.list_leases().await.unwrap();
    let ids: Vec<_> = leases.iter().map(|l| l.shard_id.clone()).collect();
    assert_eq!(
        ids,
        vec![low.clone(), merged.clone()],
        "only the open shards keep leases"
    );
    let merged_lease = leases.iter().find(|l| l.shard_id == merged).unwrap();
    assert_eq!(merged_lease.parent_shard_ids, vec![high, s1.shard_id]);
    a.stop().await;
    b.stop().await;
}

/// The lease ids, read synchronously (the memory store never waits).
fn futures_lite_list(store: &dyn LeaseStore) -> Vec<ShardId> {
    futures::executor::block_on(store.list_leases())
        .unwrap()
        .into_iter()
        .map(|l| l.shard_id)
        .collect()
}
