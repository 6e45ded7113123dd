//! Property: under random kills, joins, graceful stops, splits and merges
//! over a stream of numbered records, every record is processed at least
//! once, and a record is processed twice only if the first worker was
//! killed before checkpointing it (it lies after that worker's last
//! checkpoint of the shard). DESIGN.md section 3, invariants 2, 4 and 5.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::common::*;
use kcl_core::testkit::FakeStream;
use kcl_core::testkit::engine::{Event, Recorder};
use kcl_core::{ExtendedSequenceNumber, ShardId};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Join,
    Kill(usize),
    Stop(usize),
    Split(usize),
    Merge(usize),
    Sleep(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::Join),
        2 => any::<usize>().prop_map(Op::Kill),
        1 => any::<usize>().prop_map(Op::Stop),
        2 => any::<usize>().prop_map(Op::Split),
        1 => any::<usize>().prop_map(Op::Merge),
        2 => (100u64..15_000).prop_map(Op::Sleep),
    ]
}

async fn run_case(ops: Vec<Op>) {
    let stream = FakeStream::new(3);
    let store = store();
    let recorder = Recorder::new();
    // A pause between processing a batch and checkpointing it, so kills
    // land mid-batch and leave records to re-deliver.
    recorder.set_delay(Duration::from_millis(30));
    let mut next = 0;
    let mut spawn = |workers: &mut Vec<Running>| {
        next += 1;
        workers.push(spawn_worker(
            &format!("w{next}"),
            store.clone(),
            &stream,
            &recorder,
        ));
    };
    let mut workers = Vec::new();
    spawn(&mut workers);
    spawn(&mut workers);
    let mut killed: HashSet<String> = HashSet::new();
    let (stop_producer, producer) = producer(&stream, Duration::from_millis(5));
    for op in &ops {
        match op {
            Op::Join => spawn(&mut workers),
            Op::Kill(i) if !workers.is_empty() => {
                let w = workers.remove(i % workers.len());
                killed.insert(w.id.clone());
                w.kill().await;
            }
            Op::Stop(i) if workers.len() > 1 => {
                let w = workers.remove(i % workers.len());
                w.stop().await;
            }
            Op::Split(i) => {
                let open: Vec<_> = stream
                    .shards()
                    .into_iter()
                    .filter(|s| !s.is_closed())
                    .collect();
                if open.len() < 8 {
                    let s = &open[i % open.len()];
                    let r = s.hash_key_range;
                    let mid = r.starting_hash_key / 2 + r.ending_hash_key / 2;
                    stream.split_shard(&s.shard_id, mid).unwrap();
                }
            }
            Op::Merge(i) => {
                let mut open: Vec<_> = stream
                    .shards()
                    .into_iter()
                    .filter(|s| !s.is_closed())
                    .collect();
                if open.len() >= 2 {
                    open.sort_by_key(|s| s.hash_key_range.starting_hash_key);
                    let k = i % (open.len() - 1);
                    stream
                        .merge_shards(&open[k].shard_id, &open[k + 1].shard_id)
                        .unwrap();
                }
            }
            Op::Sleep(ms) => tokio::time::sleep(Duration::from_millis(*ms)).await,
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if workers.is_empty() {
        spawn(&mut workers);
    }
    stop_producer.cancel();
    let put = producer.await.unwrap();
    wait_until("every record", Duration::from_secs(300), || {
        recorder.distinct() >= put
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_nothing_lost(&stream, &recorder);

    // Duplicates: first processed by a killed worker, after its last
    // checkpoint of that shard.
    let processed = recorder.processed();
    let mut last_checkpoint: HashMap<(String, ShardId), ExtendedSequenceNumber> = HashMap::new();
    for (worker, shard, event) in recorder.events() {
        if let Event::Checkpointed(p) = event {
            let entry = last_checkpoint.entry((worker, shard)).or_insert(p.clone());
            if p > *entry {
                *entry = p;
            }
        }
    }
    let duplicates = recorder.duplicates();
    for (shard, position, _) in &duplicates {
        let first = processed
            .iter()
            .find(|p| p.shard_id == *shard && p.position == *position)
            .unwrap();
        assert!(
            killed.contains(&first.worker),
            "{position} of {shard} processed twice, first by {} which was not killed (ops {ops:?})",
            first.worker
        );
        if let Some(cp) = last_checkpoint.get(&(first.worker.clone(), shard.clone())) {
            assert!(
                position > cp,
                "{position} of {shard} re-delivered though {} checkpointed {cp}",
                first.worker
            );
        }
    }
    println!(
        "ops {ops:?}: {put} records, {} shards, {} duplicates (all after a killed worker's last checkpoint)",
        stream.shards().len(),
        duplicates.len()
    );
    for w in workers {
        w.stop().await;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_record_at_least_once_and_duplicates_only_after_a_moved_lease_checkpoint(
        ops in proptest::collection::vec(op(), 3..9)
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(run_case(ops));
    }
}
