//! Lineage paths that lost records or delivered a child before its parent
//! (issue 11, paths 2, 3 and 6). Each test fails on the engine before the
//! rebuild.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;
use async_trait::async_trait;
use kcl_core::retrieval::{ShardDescription, ShardReader, ShardSource, StartingPosition};
use kcl_core::testkit::engine::{Event, Recorder};
use kcl_core::testkit::{FakeRecord, FakeStream};
use kcl_core::{
    BoxError, Checkpointer, Error, ExtendedSequenceNumber, Lease, LeaseStore, ProcessRecordsInput,
    ShardId, ShardProcessor, Worker,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Logs `(shard, position)` in processing order; blocks the shard named
/// in `gate` until it is cleared.
#[derive(Clone, Default)]
struct Ordered {
    log: Arc<Mutex<Vec<(ShardId, ExtendedSequenceNumber)>>>,
    gate: Arc<Mutex<Option<ShardId>>>,
}

struct OrderedProcessor {
    ordered: Ordered,
    shard_id: ShardId,
}

impl ShardProcessor for OrderedProcessor {
    async fn process_records(
        &mut self,
        input: ProcessRecordsInput,
        cp: &mut Checkpointer,
    ) -> Result<(), BoxError> {
        while self.ordered.gate.lock().unwrap().as_ref() == Some(&self.shard_id) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        {
            let mut log = self.ordered.log.lock().unwrap();
            for r in input.records() {
                log.push((self.shard_id.clone(), r.extended_sequence_number()));
            }
        }
        cp.checkpoint().await?;
        Ok(())
    }
}

fn put_in(stream: &FakeStream, range: kcl_core::HashKeyRange, n: usize, tag: &str) {
    for i in 0..n {
        let key = range.starting_hash_key + i as u128;
        stream
            .put(FakeRecord::new(format!("{tag}-{i}"), format!("{tag}-{i}")).explicit_hash_key(key))
            .unwrap();
    }
}

/// Path 2: A is merged with B1, the lower child of a split B whose
/// processing lags (so B1 has no lease yet). The merge child waits: no
/// record of it comes before the last record of each parent.
#[tokio::test(start_paused = true)]
async fn a_merge_child_waits_for_a_lagging_split_parent() {
    let stream = FakeStream::new(2);
    let shards = stream.shards();
    let (a, b) = (shards[0].clone(), shards[1].clone());
    put_in(&stream, a.hash_key_range, 5, "a");
    put_in(&stream, b.hash_key_range, 5, "b");
    let ordered = Ordered::default();
    *ordered.gate.lock().unwrap() = Some(b.shard_id.clone());
    let factory = {
        let ordered = ordered.clone();
        move |shard_id: &ShardId| OrderedProcessor {
            ordered: ordered.clone(),
            shard_id: shard_id.clone(),
        }
    };
    let store = store();
    let worker = Worker::builder()
        .worker_id("w")
        .lease_store(store.clone())
        .source(Arc::new(stream.clone()))
        .processor(factory)
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(worker.run(cancel.clone()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mid = b.hash_key_range.starting_hash_key / 2 + b.hash_key_range.ending_hash_key / 2;
    let (b1, _b2) = stream.split_shard(&b.shard_id, mid).unwrap();
    let b1_range = stream
        .shards()
        .into_iter()
        .find(|s| s.shard_id == b1)
        .unwrap()
        .hash_key_range;
    put_in(&stream, b1_range, 5, "b1");
    let merged = stream.merge_shards(&a.shard_id, &b1).unwrap();
    let m_range = stream
        .shards()
        .into_iter()
        .find(|s| s.shard_id == merged)
        .unwrap()
        .hash_key_range;
    put_in(&stream, m_range, 5, "m");
    // A ends and M appears while B (and so B1) is still held back.
    tokio::time::sleep(Duration::from_secs(10)).await;
    *ordered.gate.lock().unwrap() = None;
    let start = tokio::time::Instant::now();
    while ordered.log.lock().unwrap().len() < 20 {
        if start.elapsed() > Duration::from_secs(180) {
            let log = ordered.log.lock().unwrap().clone();
            panic!(
                "not every record: {log:?}\nleases: {:#?}",
                store.list_leases().await.unwrap()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cancel.cancel();
    run.await.unwrap().unwrap();
    let log = ordered.log.lock().unwrap().clone();
    let index = |shard: &ShardId, last: bool| {
        let mut found = log
            .iter()
            .enumerate()
            .filter(|(_, (s, _))| s == shard)
            .map(|(i, _)| i);
        if last {
            found.next_back()
        } else {
            found.next()
        }
    };
    let first_m = index(&merged, false).expect("M processed");
    for parent in [&a.shard_id, &b1] {
        let last = index(parent, true).expect("parent processed");
        assert!(
            last < first_m,
            "{merged} record #{first_m} before {parent}'s last #{last}: {log:?}"
        );
    }
    let distinct: std::collections::HashSet<_> = log.iter().collect();
    assert_eq!(distinct.len(), 20, "lost records");
}

/// A source whose listing hides one shard and whose reads of it fail with
/// NotFound: a shard past retention, whose children are still listed.
#[derive(Debug)]
struct Vanished {
    inner: FakeStream,
    gone: ShardId,
}

#[async_trait]
impl ShardSource for Vanished {
    async fn list_shards(&self) -> kcl_core::Result<Vec<ShardDescription>> {
        let mut shards = self.inner.list_shards().await?;
        shards.retain(|s| s.shard_id != self.gone);
        Ok(shards)
    }
    async fn open_reader(
        &self,
        shard_id: &ShardId,
        from: StartingPosition,
    ) -> kcl_core::Result<Box<dyn ShardReader>> {
        if *shard_id == self.gone {
            return Err(Error::NotFound {
                what: format!("shard {shard_id}"),
            });
        }
        self.inner.open_reader(shard_id, from).await
    }
}

/// Path 3: a leased shard that no longer exists ends (with its children
/// from the listing) instead of being reopened forever.
#[tokio::test(start_paused = true)]
async fn a_shard_that_no_longer_exists_ends_and_its_children_start() {
    let stream = FakeStream::new(1);
    let parent = stream.shards()[0].clone();
    let mid =
        parent.hash_key_range.starting_hash_key / 2 + parent.hash_key_range.ending_hash_key / 2;
    let (low, high) = stream.split_shard(&parent.shard_id, mid).unwrap();
    for child in stream
        .shards()
        .into_iter()
        .filter(|s| s.shard_id == low || s.shard_id == high)
    {
        put_in(&stream, child.hash_key_range, 5, child.shard_id.as_str());
    }
    let store = store();
    // Leased before the outage, never read.
    store
        .create_lease_if_absent(&Lease::new(
            parent.shard_id.clone(),
            ExtendedSequenceNumber::TrimHorizon,
        ))
        .await
        .unwrap();
    let recorder = Recorder::new();
    let worker = Worker::builder()
        .worker_id("w")
        .lease_store(store.clone())
        .source(Arc::new(Vanished {
            inner: stream.clone(),
            gone: parent.shard_id.clone(),
        }))
        .processor(recorder.factory("w"))
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(worker.run(cancel.clone()));
    wait_until("the children's records", Duration::from_secs(60), || {
        recorder.distinct() >= 10
    })
    .await;
    let lease = store.get_lease(&parent.shard_id).await.unwrap();
    assert!(lease.as_ref().is_none_or(|l| l.is_finished()), "{lease:?}");
    cancel.cancel();
    run.await.unwrap().unwrap();
}

/// A source whose next listing, once armed, is taken at once but returned
/// only when released: a shard sync stalled between its two listings.
#[derive(Debug)]
struct Stale {
    inner: FakeStream,
    armed: Arc<AtomicBool>,
    stalled: Arc<AtomicBool>,
    release: Arc<Notify>,
}

#[async_trait]
impl ShardSource for Stale {
    async fn list_shards(&self) -> kcl_core::Result<Vec<ShardDescription>> {
        let shards = self.inner.list_shards().await?;
        if self.armed.swap(false, Ordering::SeqCst) {
            self.stalled.store(true, Ordering::SeqCst);
            self.release.notified().await;
        }
        Ok(shards)
    }
    async fn open_reader(
        &self,
        shard_id: &ShardId,
        from: StartingPosition,
    ) -> kcl_core::Result<Box<dyn ShardReader>> {
        self.inner.open_reader(shard_id, from).await
    }
}

/// Path 6: a finished parent deleted while a shard sync is between its
/// listings is not re-created and re-processed after its children.
#[tokio::test(start_paused = true)]
async fn a_parent_deleted_during_a_shard_sync_is_not_re_created() {
    let stream = FakeStream::new(1);
    let parent = stream.shards()[0].clone();
    put_in(&stream, parent.hash_key_range, 5, "p");
    let store = store();
    let recorder = Recorder::new();
    let source = Stale {
        inner: stream.clone(),
        armed: Arc::default(),
        stalled: Arc::default(),
        release: Arc::default(),
    };
    let (armed, stalled, release) = (
        source.armed.clone(),
        source.stalled.clone(),
        source.release.clone(),
    );
    let worker = Worker::builder()
        .worker_id("w")
        .lease_store(store.clone())
        .source(Arc::new(source))
        .shard_sync_interval(Duration::from_secs(1))
        .processor(recorder.factory("w"))
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(worker.run(cancel.clone()));
    wait_until("the parent's records", Duration::from_secs(10), || {
        recorder.distinct() >= 5
    })
    .await;
    armed.store(true, Ordering::SeqCst);
    wait_until("a stalled sync", Duration::from_secs(10), || {
        stalled.load(Ordering::SeqCst)
    })
    .await;
    let mid =
        parent.hash_key_range.starting_hash_key / 2 + parent.hash_key_range.ending_hash_key / 2;
    let (low, high) = stream.split_shard(&parent.shard_id, mid).unwrap();
    let children: HashMap<ShardId, kcl_core::HashKeyRange> = stream
        .shards()
        .into_iter()
        .filter(|s| s.shard_id == low || s.shard_id == high)
        .map(|s| (s.shard_id, s.hash_key_range))
        .collect();
    for (id, range) in &children {
        put_in(&stream, *range, 5, id.as_str());
    }
    let s2 = store.clone();
    let parent_id = parent.shard_id.clone();
    let start = tokio::time::Instant::now();
    loop {
        if s2.get_lease(&parent_id).await.unwrap().is_none() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the parent lease was never deleted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    release.notify_one();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let initializes = recorder
        .events()
        .iter()
        .filter(|(_, s, e)| *s == parent.shard_id && matches!(e, Event::Initialize(_)))
        .count();
    assert_eq!(
        initializes,
        1,
        "the parent was processed again: {:?}",
        recorder.events()
    );
    assert!(
        recorder.duplicates().is_empty(),
        "{:?}",
        recorder.duplicates()
    );
    assert!(store.get_lease(&parent.shard_id).await.unwrap().is_none());
    cancel.cancel();
    run.await.unwrap().unwrap();
}

/// Path 13: a finished lease whose children were never recorded in it (a
/// lease another KCL wrote, a vanished shard) is deleted once the leases
/// naming it as their parent cover its hash keys and have checkpointed.
#[tokio::test(start_paused = true)]
async fn a_finished_lease_without_recorded_children_is_cleaned_up() {
    let stream = FakeStream::new(1);
    fill(&stream, 0, 10);
    let parent = stream.shards().remove(0);
    stream.split_shard(&parent.shard_id, u128::MAX / 2).unwrap();
    fill(&stream, 10, 20);
    let store = store();
    let finished = Lease::new(parent.shard_id.clone(), ExtendedSequenceNumber::ShardEnd)
        .with_hash_key_range(parent.hash_key_range);
    assert!(store.create_lease_if_absent(&finished).await.unwrap());
    let recorder = Recorder::new();
    let w = spawn_worker("w", store.clone(), &stream, &recorder);
    wait_until("the children's 20 records", Duration::from_secs(30), || {
        recorder.count() >= 20
    })
    .await;
    let start = tokio::time::Instant::now();
    while store.get_lease(&parent.shard_id).await.unwrap().is_some() {
        assert!(
            start.elapsed() < LEASE * 3,
            "the finished parent is still there"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(store.list_leases().await.unwrap().len(), 2);
    w.stop().await;
}
