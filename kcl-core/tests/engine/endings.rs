//! Processor endings and failures (issue 11, paths 7, 11 and 13): exactly
//! one ending per processor, panics outside a call caught with a backoff
//! per shard, and AT_TIMESTAMP honoured by children. Each test fails on
//! the engine before the rebuild.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::common::*;
use kcl_core::engine::SingleConsumer;
use kcl_core::testkit::engine::Recorder;
use kcl_core::testkit::{FakeRecord, FakeStream};
use kcl_core::{
    BoxError, Checkpointer, InitialPosition, LeaseStore, ProcessRecordsInput, ShardId,
    ShardProcessor, Worker,
};
use tokio_util::sync::CancellationToken;

/// Logs its life-cycle calls; `shutdown_requested` takes a while.
struct SlowShutdown {
    calls: Arc<Mutex<Vec<&'static str>>>,
}

impl ShardProcessor for SlowShutdown {
    async fn process_records(
        &mut self,
        _input: ProcessRecordsInput,
        cp: &mut Checkpointer,
    ) -> Result<(), BoxError> {
        cp.checkpoint().await?;
        Ok(())
    }
    async fn lease_lost(&mut self) {
        self.calls.lock().unwrap().push("lease_lost");
    }
    async fn shutdown_requested(&mut self, cp: &mut Checkpointer) -> Result<(), BoxError> {
        self.calls.lock().unwrap().push("shutdown_requested");
        tokio::time::sleep(Duration::from_secs(5)).await;
        cp.checkpoint_processed().await?;
        Ok(())
    }
}

/// Path 13: a lease lost while its processor is in `shutdown_requested`
/// does not add `lease_lost` after it.
#[tokio::test(start_paused = true)]
async fn a_lease_lost_during_shutdown_requested_is_not_a_second_ending() {
    let stream = FakeStream::new(1);
    fill(&stream, 0, 10);
    let store = store();
    let calls: Arc<Mutex<Vec<&'static str>>> = Arc::default();
    let factory = {
        let calls = calls.clone();
        move |_: &ShardId| SlowShutdown {
            calls: calls.clone(),
        }
    };
    let worker = Worker::builder()
        .worker_id("w")
        .lease_store(store.clone())
        .source(Arc::new(stream.clone()))
        .lease_duration(LEASE)
        .processor(factory)
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(worker.run(cancel.clone()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    cancel.cancel();
    wait_until("shutdown_requested", Duration::from_secs(5), || {
        !calls.lock().unwrap().is_empty()
    })
    .await;
    // An admin reset fences the owner while it is shutting down.
    let lease = store.list_leases().await.unwrap().remove(0);
    store
        .reset_checkpoint(
            &lease.shard_id,
            &kcl_core::ExtendedSequenceNumber::TrimHorizon,
        )
        .await
        .unwrap();
    run.await.unwrap().unwrap();
    assert_eq!(*calls.lock().unwrap(), ["shutdown_requested"]);
}

/// Path 7: a factory that panics for one shard is caught; the shard backs
/// off with a growing delay instead of being restarted every scan, and
/// the other shards go on.
#[tokio::test(start_paused = true)]
async fn a_panicking_factory_backs_its_shard_off() {
    let stream = FakeStream::new(2);
    fill(&stream, 0, 40);
    let bad = stream.shards()[0].shard_id.clone();
    let attempts = Arc::new(AtomicUsize::new(0));
    let recorder = Recorder::new();
    let factory = {
        let attempts = attempts.clone();
        let bad = bad.clone();
        let inner = recorder.factory("w");
        move |shard_id: &ShardId| {
            if *shard_id == bad {
                attempts.fetch_add(1, Ordering::SeqCst);
                panic!("no processor for {shard_id}");
            }
            inner(shard_id)
        }
    };
    let worker = Worker::builder()
        .worker_id("w")
        .lease_store(store())
        .source(Arc::new(stream.clone()))
        .lease_duration(LEASE)
        .processor(factory)
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(worker.run(cancel.clone()));
    tokio::time::sleep(Duration::from_secs(60)).await;
    let tried = attempts.load(Ordering::SeqCst);
    println!("a panicking factory was tried {tried} times in 60 s");
    assert!(tried >= 2, "tried again after a backoff");
    // Doubling from 100 ms to 10 s: about a dozen tries in a minute, not
    // one per scan (120).
    assert!(tried <= 15, "tried {tried} times");
    assert!(recorder.count() > 0, "the healthy shard was processed");
    assert!(recorder.processed().iter().all(|p| p.shard_id != bad));
    cancel.cancel();
    run.await.unwrap().unwrap();
}

/// Path 11: under AT_TIMESTAMP the children of a consumed shard start at
/// the timestamp too, so none of their records older than it is
/// delivered.
#[tokio::test(start_paused = true)]
async fn children_of_a_consumed_shard_honour_at_timestamp() {
    let stream = FakeStream::new(1);
    let t0 = SystemTime::now();
    let parent = stream.shards()[0].clone();
    let mid =
        parent.hash_key_range.starting_hash_key / 2 + parent.hash_key_range.ending_hash_key / 2;
    for i in 0..5 {
        stream
            .put(FakeRecord::new(format!("p-{i}"), "old").arrival(t0 + Duration::from_secs(i)))
            .unwrap();
    }
    let (low, high) = stream.split_shard(&parent.shard_id, mid).unwrap();
    // Child records before and after the timestamp.
    for (i, secs) in [6u64, 7, 20, 21].into_iter().enumerate() {
        for child in stream
            .shards()
            .into_iter()
            .filter(|s| s.shard_id == low || s.shard_id == high)
        {
            stream
                .put(
                    FakeRecord::new(format!("c-{i}"), format!("{secs}"))
                        .explicit_hash_key(child.hash_key_range.starting_hash_key)
                        .arrival(t0 + Duration::from_secs(secs)),
                )
                .unwrap();
        }
    }
    let at = t0 + Duration::from_secs(10);
    let store = store();
    let recorder = Recorder::new();
    let consumer = SingleConsumer::builder()
        .checkpoint_store(store.clone())
        .source(Arc::new(stream.clone()))
        .initial_position(InitialPosition::AtTimestamp(at))
        .shard_sync_interval(Duration::from_secs(1))
        .processor(recorder.factory("single"))
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(consumer.run(cancel.clone()));
    wait_until(
        "the children's newer records",
        Duration::from_secs(30),
        || recorder.count() >= 4,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    cancel.cancel();
    run.await.unwrap().unwrap();
    let data: Vec<String> = recorder
        .processed()
        .iter()
        .map(|p| String::from_utf8_lossy(&p.data).to_string())
        .collect();
    assert!(
        data.iter().all(|d| d == "20" || d == "21"),
        "records older than the timestamp: {data:?}"
    );
    assert_eq!(data.len(), 4);
}

/// Always panics in `process_records`, counting its attempts.
struct AlwaysPanics {
    attempts: Arc<AtomicUsize>,
}

impl ShardProcessor for AlwaysPanics {
    async fn process_records(
        &mut self,
        _input: ProcessRecordsInput,
        _cp: &mut Checkpointer,
    ) -> Result<(), BoxError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        panic!("always");
    }
}

/// Path 7, single consumer: a shard whose processor always panics is
/// restarted with a growing delay, not at once (each restart re-reads up
/// to the prefetch bound).
#[tokio::test(start_paused = true)]
async fn the_single_consumer_backs_a_failing_shard_off() {
    let stream = FakeStream::new(1);
    fill(&stream, 0, 10);
    let attempts = Arc::new(AtomicUsize::new(0));
    let factory = {
        let attempts = attempts.clone();
        move |_: &ShardId| AlwaysPanics {
            attempts: attempts.clone(),
        }
    };
    let consumer = SingleConsumer::builder()
        .checkpoint_store(store())
        .source(Arc::new(stream.clone()))
        .processor(factory)
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(consumer.run(cancel.clone()));
    tokio::time::sleep(Duration::from_secs(60)).await;
    let tried = attempts.load(Ordering::SeqCst);
    println!("an always-panicking processor was started {tried} times in 60 s");
    assert!(tried >= 2);
    assert!(tried <= 20, "restarted {tried} times");
    cancel.cancel();
    run.await.unwrap().unwrap();
}

/// Path 10: a graceful shutdown removes the worker's heartbeat first, so
/// peers stop counting it while its processors still checkpoint.
#[tokio::test(start_paused = true)]
async fn a_graceful_shutdown_removes_the_heartbeat_first() {
    let stream = FakeStream::new(1);
    fill(&stream, 0, 10);
    let store = store();
    let calls: Arc<Mutex<Vec<&'static str>>> = Arc::default();
    let factory = {
        let calls = calls.clone();
        move |_: &ShardId| SlowShutdown {
            calls: calls.clone(),
        }
    };
    let worker = Worker::builder()
        .worker_id("w")
        .lease_store(store.clone())
        .source(Arc::new(stream.clone()))
        .lease_duration(LEASE)
        .processor(factory)
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(worker.run(cancel.clone()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(store.list_workers().await.unwrap().len(), 1);
    cancel.cancel();
    wait_until("shutdown_requested", Duration::from_secs(5), || {
        !calls.lock().unwrap().is_empty()
    })
    .await;
    // Through the whole (slow) shutdown_requested, renewals included.
    for _ in 0..4 {
        assert!(
            store.list_workers().await.unwrap().is_empty(),
            "the heartbeat is still there while shutting down"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    run.await.unwrap().unwrap();
    assert!(store.list_workers().await.unwrap().is_empty());
}

/// Path 10: a worker that asked for hand-offs and then shuts down
/// withdraws its requests, so the owner keeps its leases instead of
/// handing them to a worker that is gone (where they would sit unread
/// until they expired).
#[tokio::test(start_paused = true)]
async fn a_graceful_shutdown_withdraws_its_own_hand_off_requests() {
    let stream = FakeStream::new(4);
    fill(&stream, 0, 20);
    let store = store();
    let recorder = Recorder::new();
    let owner = spawn_worker("owner", store.clone(), &stream, &recorder);
    wait_until("the owner to hold all 4", Duration::from_secs(10), || {
        recorder.count() >= 20
    })
    .await;
    let asker = spawn_worker("asker", store.clone(), &stream, &recorder);
    let mut asked = Vec::new();
    let start = tokio::time::Instant::now();
    while asked.is_empty() {
        assert!(start.elapsed() < LEASE, "no hand-off was requested");
        asked = store
            .list_leases()
            .await
            .unwrap()
            .into_iter()
            .filter(|l| l.handoff_to.as_ref().is_some_and(|w| w.as_str() == "asker"))
            .collect();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    asker.stop().await;
    for lease in store.list_leases().await.unwrap() {
        assert_eq!(
            lease.handoff_to, None,
            "a request outlived its worker: {lease:?}"
        );
    }
    // Several of the owner's renewals later, it still holds every lease.
    tokio::time::sleep(LEASE / 2).await;
    let held = owners(store.as_ref()).await;
    assert_eq!(held.get("owner"), Some(&4), "{held:?}");
    owner.stop().await;
}
