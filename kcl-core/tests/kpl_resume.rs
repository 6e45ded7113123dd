//! Checkpointing inside a KPL aggregate, through the engine on the fake
//! stream: a worker checkpoints at a sub-record in the middle of an
//! aggregate and stops (or dies); a new worker resumes right after that
//! sub-record. No user record is lost, none is delivered twice.
//!
//! The expected records are built from what was put (outer sequence number
//! from the stream, sub-sequence numbers from the put order), not from the
//! de-aggregator under test. One aggregate per shard also holds a user
//! record whose hash key lies outside its shard: the engine must skip that
//! aggregate whole, as the Java KCL does (see `kcl_core::kpl`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kcl_core::kpl::{Aggregator, effective_hash_key};
use kcl_core::processor::{Checkpointer, InitializeInput, ProcessRecordsInput, ShardProcessor};
use kcl_core::testkit::{FakeRecord, FakeStream};
use kcl_core::{BoxError, ExtendedSequenceNumber, HashKeyRange, LeaseStore, ShardId, Worker};
use kcl_store_memory::MemoryStore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A user record as a processor should see it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    position: ExtendedSequenceNumber,
    aggregated: bool,
    partition_key: String,
    data: Bytes,
}

/// Partition keys whose MD5 hash key lies in `range` (or outside it).
fn keys(range: &HashKeyRange, inside: bool, prefix: &str) -> impl Iterator<Item = String> {
    (0..)
        .map(move |n| format!("{prefix}-{n}"))
        .filter(move |k| range.contains(effective_hash_key(k, None)) == inside)
}

/// Fill each shard with plain records and aggregates (some sharing
/// partition keys, some with explicit hash keys); returns what a processor
/// must see per shard, in order.
fn fill(stream: &FakeStream) -> HashMap<ShardId, Vec<Seen>> {
    let mut expected: HashMap<ShardId, Vec<Seen>> = HashMap::new();
    for shard in stream.shards() {
        let range = shard.hash_key_range;
        let mut inside = keys(&range, true, shard.shard_id.as_str());
        for batch in 0..8 {
            // A plain record between aggregates.
            let key = inside.next().unwrap();
            let data = Bytes::from(format!("plain {batch}"));
            let (at, seq) = stream
                .put(FakeRecord::new(key.clone(), data.clone()))
                .unwrap();
            assert_eq!(at, shard.shard_id);
            expected.entry(at).or_default().push(Seen {
                position: ExtendedSequenceNumber::at(seq, 0),
                aggregated: false,
                partition_key: key,
                data,
            });

            let mut aggregator = Aggregator::new();
            let mut users = Vec::new();
            for i in 0..10u128 {
                let key = if i.is_multiple_of(3) {
                    format!("{}-shared", shard.shard_id)
                } else {
                    inside.next().unwrap()
                };
                let key = if range.contains(effective_hash_key(&key, None)) {
                    key
                } else {
                    inside.next().unwrap()
                };
                // Every fourth record routes by an explicit hash key in range.
                let ehk = (i % 4 == 3).then_some(range.starting_hash_key + i);
                let data = Bytes::from(format!("{} aggregate {batch} record {i}", shard.shard_id));
                assert!(
                    aggregator
                        .add(key.clone(), ehk, data.clone())
                        .unwrap()
                        .is_none()
                );
                users.push((key, data));
            }
            let aggregate = aggregator.flush().unwrap();
            let mut put = FakeRecord::new(aggregate.partition_key, aggregate.data);
            if let Some(ehk) = aggregate.explicit_hash_key {
                put = put.explicit_hash_key(ehk.parse().unwrap());
            }
            let (at, seq) = stream.put(put).unwrap();
            assert_eq!(at, shard.shard_id);
            for (i, (partition_key, data)) in users.into_iter().enumerate() {
                expected.entry(at.clone()).or_default().push(Seen {
                    position: ExtendedSequenceNumber::at(seq.clone(), i as u64),
                    aggregated: true,
                    partition_key,
                    data,
                });
            }
        }
        // A misrouted aggregate (a stale KPL shard map): its second user
        // record belongs to another shard. Skipped whole.
        let mut aggregator = Aggregator::new();
        aggregator
            .add(inside.next().unwrap(), None, "misrouted 0")
            .unwrap();
        aggregator
            .add(
                keys(&range, false, "elsewhere").next().unwrap(),
                None,
                "misrouted 1",
            )
            .unwrap();
        let aggregate = aggregator.flush().unwrap();
        let (at, _) = stream
            .put(FakeRecord::new(aggregate.partition_key, aggregate.data))
            .unwrap();
        assert_eq!(at, shard.shard_id);
    }
    expected
}

#[derive(Default)]
struct Shared {
    /// Records processed, per shard, by whichever worker.
    processed: HashMap<ShardId, Vec<Seen>>,
    /// Where each worker's processor started, per shard.
    initialized: Vec<(String, ShardId, ExtendedSequenceNumber)>,
    /// Shards whose first worker has checkpointed at its target.
    stopped: Vec<ShardId>,
}

/// Records what it processes. With a `stop_at` (index into the shard's
/// expected records), it processes up to and including that record,
/// checkpoints at it, and ignores everything after, never checkpointing
/// again, like a consumer that died right after checkpointing.
struct Processor {
    worker: String,
    shard_id: ShardId,
    shared: Arc<Mutex<Shared>>,
    stop_at: Option<ExtendedSequenceNumber>,
    done: bool,
}

impl ShardProcessor for Processor {
    async fn initialize(&mut self, input: InitializeInput) -> Result<(), BoxError> {
        let mut shared = self.shared.lock().unwrap();
        shared
            .initialized
            .push((self.worker.clone(), input.shard_id, input.checkpoint));
        Ok(())
    }

    async fn process_records(
        &mut self,
        input: ProcessRecordsInput,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), BoxError> {
        for record in input.records() {
            if self.done {
                return Ok(());
            }
            let position = record.extended_sequence_number();
            self.shared
                .lock()
                .unwrap()
                .processed
                .entry(self.shard_id.clone())
                .or_default()
                .push(Seen {
                    position: position.clone(),
                    aggregated: record.aggregated,
                    partition_key: record.partition_key.to_string(),
                    data: record.data.clone(),
                });
            if self.stop_at.as_ref() == Some(&position) {
                checkpointer.checkpoint_at(record).await?;
                self.done = true;
                self.shared
                    .lock()
                    .unwrap()
                    .stopped
                    .push(self.shard_id.clone());
            }
        }
        if self.stop_at.is_none() {
            checkpointer.checkpoint().await?;
        }
        Ok(())
    }

    async fn shutdown_requested(
        &mut self,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), BoxError> {
        if self.stop_at.is_none() {
            checkpointer.checkpoint_processed().await?;
        }
        Ok(())
    }
}

fn spawn(
    id: &str,
    store: Arc<dyn LeaseStore>,
    stream: &FakeStream,
    shared: &Arc<Mutex<Shared>>,
    stop_at: Option<HashMap<ShardId, ExtendedSequenceNumber>>,
) -> (CancellationToken, JoinHandle<kcl_core::Result<()>>) {
    let worker = id.to_string();
    let shared = Arc::clone(shared);
    let worker = Worker::builder()
        .worker_id(id)
        .lease_store(store)
        .source(Arc::new(stream.clone()))
        .lease_duration(Duration::from_secs(10))
        .processor(move |shard_id: &ShardId| Processor {
            worker: worker.clone(),
            shard_id: shard_id.clone(),
            shared: Arc::clone(&shared),
            stop_at: stop_at.as_ref().map(|s| s[shard_id].clone()),
            done: false,
        })
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    (cancel.clone(), tokio::spawn(worker.run(cancel)))
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..3000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn resume_mid_aggregate(kill_first: bool) {
    let stream = FakeStream::new(2);
    let expected = fill(&stream);
    let store: Arc<dyn LeaseStore> = Arc::new(
        MemoryStore::builder()
            .application("kpl-resume")
            .build()
            .unwrap(),
    );
    // Stop in the middle of the fourth aggregate of each shard.
    let targets: HashMap<ShardId, ExtendedSequenceNumber> = expected
        .iter()
        .map(|(shard, seen)| {
            let aggregated: Vec<_> = seen.iter().filter(|s| s.aggregated).collect();
            let target = aggregated[3 * 10 + 6].position.clone();
            (shard.clone(), target)
        })
        .collect();
    for target in targets.values() {
        assert!(matches!(
            target,
            ExtendedSequenceNumber::Sequence {
                sub_sequence: 6,
                ..
            }
        ));
    }

    let shared = Arc::new(Mutex::new(Shared::default()));
    let (cancel, task) = spawn(
        "first",
        Arc::clone(&store),
        &stream,
        &shared,
        Some(targets.clone()),
    );
    wait_until("the first worker to checkpoint mid-aggregate", || {
        shared.lock().unwrap().stopped.len() == 2
    })
    .await;
    if kill_first {
        task.abort();
        let _ = task.await;
    } else {
        cancel.cancel();
        task.await.unwrap().unwrap();
    }
    for lease in store.list_leases().await.unwrap() {
        assert_eq!(
            lease.checkpoint, targets[&lease.shard_id],
            "checkpoint of {}",
            lease.shard_id
        );
    }

    let (cancel, task) = spawn("second", Arc::clone(&store), &stream, &shared, None);
    let total: usize = expected.values().map(Vec::len).sum();
    wait_until("the second worker to process the rest", || {
        shared
            .lock()
            .unwrap()
            .processed
            .values()
            .map(Vec::len)
            .sum::<usize>()
            >= total
    })
    .await;
    // Give a duplicate or a stray record the chance to show up.
    tokio::time::sleep(Duration::from_secs(5)).await;
    cancel.cancel();
    task.await.unwrap().unwrap();

    let shared = shared.lock().unwrap();
    for (shard, want) in &expected {
        let got = &shared.processed[shard];
        assert_eq!(
            got.len(),
            want.len(),
            "shard {shard}: nothing lost, nothing repeated, nothing misrouted"
        );
        assert_eq!(got, want, "shard {shard}");
        let resumed = shared
            .initialized
            .iter()
            .find(|(w, s, _)| w == "second" && s == shard)
            .expect("second worker started the shard");
        assert_eq!(
            resumed.2, targets[shard],
            "the second worker resumed from the mid-aggregate checkpoint"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn stopped_mid_aggregate_resumes_after_the_checkpointed_sub_record() {
    resume_mid_aggregate(false).await;
}

#[tokio::test(start_paused = true)]
async fn killed_mid_aggregate_resumes_after_the_checkpointed_sub_record() {
    resume_mid_aggregate(true).await;
}
