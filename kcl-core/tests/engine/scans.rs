//! The lease-listing cadence (issue 16, goal 1): at steady state a worker
//! reads the heartbeats every renew interval and lists the leases only at
//! the slow cadence, while a crash still moves its shards within 1.5 lease
//! durations, and an owner whose heartbeats fail stops before a peer takes
//! its leases by the heartbeat rule.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::common::*;
use async_trait::async_trait;
use kcl_core::testkit::FakeStream;
use kcl_core::testkit::engine::{Event, Recorder};
use kcl_core::{
    Error, ExtendedSequenceNumber as Esn, Lease, LeaseStore, PendingCheckpoint, Result, ShardId,
    WorkerHeartbeat, WorkerId,
};
use tokio::time::Instant;

/// Counts listings and fails heartbeats on demand.
#[derive(Debug)]
struct Watched {
    inner: Arc<dyn LeaseStore>,
    lease_listings: AtomicU64,
    heartbeat_reads: AtomicU64,
    heartbeats: AtomicU64,
    fail_heartbeats: AtomicBool,
}

impl Watched {
    fn new(inner: Arc<dyn LeaseStore>) -> Arc<Self> {
        Arc::new(Watched {
            inner,
            lease_listings: AtomicU64::new(0),
            heartbeat_reads: AtomicU64::new(0),
            heartbeats: AtomicU64::new(0),
            fail_heartbeats: AtomicBool::new(false),
        })
    }

    fn listings(&self) -> (u64, u64) {
        (
            self.lease_listings.load(Ordering::Relaxed),
            self.heartbeat_reads.load(Ordering::Relaxed),
        )
    }
}

#[async_trait]
impl LeaseStore for Watched {
    async fn create_lease_if_absent(&self, lease: &Lease) -> Result<bool> {
        self.inner.create_lease_if_absent(lease).await
    }
    async fn get_lease(&self, shard_id: &ShardId) -> Result<Option<Lease>> {
        self.inner.get_lease(shard_id).await
    }
    async fn list_leases(&self) -> Result<Vec<Lease>> {
        self.lease_listings.fetch_add(1, Ordering::Relaxed);
        self.inner.list_leases().await
    }
    async fn take_lease(&self, observed: &Lease, new_owner: &WorkerId) -> Result<Lease> {
        self.inner.take_lease(observed, new_owner).await
    }
    async fn renew_lease(&self, held: &Lease) -> Result<Lease> {
        self.inner.renew_lease(held).await
    }
    async fn release_lease(&self, held: &Lease, to: Option<&WorkerId>) -> Result<()> {
        self.inner.release_lease(held, to).await
    }
    async fn request_handoff(&self, observed: &Lease, to: &WorkerId) -> Result<()> {
        self.inner.request_handoff(observed, to).await
    }
    async fn update_checkpoint(&self, held: &Lease, checkpoint: &Esn) -> Result<()> {
        self.inner.update_checkpoint(held, checkpoint).await
    }
    async fn prepare_checkpoint(&self, held: &Lease, pending: &PendingCheckpoint) -> Result<()> {
        self.inner.prepare_checkpoint(held, pending).await
    }
    async fn update_child_shard_ids(&self, held: &Lease, children: &[ShardId]) -> Result<()> {
        self.inner.update_child_shard_ids(held, children).await
    }
    async fn pin_start(&self, held: &Lease, at: std::time::SystemTime) -> Result<()> {
        self.inner.pin_start(held, at).await
    }
    async fn withdraw_handoff(&self, observed: &Lease, requester: &WorkerId) -> Result<()> {
        self.inner.withdraw_handoff(observed, requester).await
    }
    async fn delete_lease(&self, shard_id: &ShardId) -> Result<()> {
        self.inner.delete_lease(shard_id).await
    }
    async fn reset_checkpoint(&self, shard_id: &ShardId, checkpoint: &Esn) -> Result<()> {
        self.inner.reset_checkpoint(shard_id, checkpoint).await
    }
    async fn heartbeat(&self, worker: &WorkerId) -> Result<()> {
        self.heartbeats.fetch_add(1, Ordering::Relaxed);
        if self.fail_heartbeats.load(Ordering::Relaxed) {
            return Err(Error::Unavailable {
                service: "test store",
                source: Some("heartbeats refused".into()),
            });
        }
        self.inner.heartbeat(worker).await
    }
    async fn list_workers(&self) -> Result<Vec<WorkerHeartbeat>> {
        self.heartbeat_reads.fetch_add(1, Ordering::Relaxed);
        self.inner.list_workers().await
    }
    async fn remove_worker(&self, worker: &WorkerId) -> Result<()> {
        self.inner.remove_worker(worker).await
    }
}

async fn shards_of(store: &dyn LeaseStore, worker: &str) -> HashSet<String> {
    store
        .list_leases()
        .await
        .unwrap()
        .into_iter()
        .filter(|l| l.owner.as_ref().is_some_and(|o| o.as_str() == worker))
        .map(|l| l.shard_id.to_string())
        .collect()
}

/// Three workers on 12 shards at the defaults (scan 500 ms, full listing
/// every 60 s): once balanced, over two minutes each lists the leases
/// about twice, not every 500 ms (240 times) as before, and reads the
/// heartbeats every renew interval (36 times, not 240); then one is
/// killed and its shards resume elsewhere within 1.5 lease durations,
/// seen from its heartbeat alone.
#[tokio::test(start_paused = true)]
async fn at_steady_state_leases_are_listed_at_the_slow_cadence_and_a_crash_still_moves_fast() {
    let stream = FakeStream::new(12);
    let store = store();
    let watched = Watched::new(store.clone());
    let recorder = Recorder::new();
    let a = spawn_worker("a", watched.clone(), &stream, &recorder);
    let b = spawn_worker("b", watched.clone(), &stream, &recorder);
    let c = spawn_worker("c", watched.clone(), &stream, &recorder);
    tokio::time::sleep(Duration::from_secs(20)).await;
    let counts = owners(&*store).await;
    assert_eq!(
        (counts.get("a"), counts.get("b"), counts.get("c")),
        (Some(&4), Some(&4), Some(&4)),
        "{counts:?}"
    );

    let window = Duration::from_secs(120);
    let (leases0, beats0) = watched.listings();
    tokio::time::sleep(window).await;
    let (leases1, beats1) = watched.listings();
    let (listings, reads) = (leases1 - leases0, beats1 - beats0);
    println!(
        "steady state, 3 workers, {window:?}: {listings} lease listings, {reads} heartbeat reads"
    );
    // Each worker: one listing per 60 s, plus one for a tick that lands
    // on the window's edges.
    assert!(listings <= 3 * 3, "{listings} lease listings in {window:?}");
    // Settled, each worker reads the heartbeats once per renew interval
    // (a third of the lease duration: 36 in the window), not every scan
    // interval (240): on DynamoDB each read is a billed `Scan`.
    let per_worker = (window.as_millis() / (LEASE / 3).as_millis()) as u64;
    assert!(
        (3 * (per_worker - 2)..=3 * (per_worker + 2)).contains(&reads),
        "heartbeats are read every renew interval once settled: {reads} in {window:?}"
    );

    let (stop_producer, producer) = producer(&stream, Duration::from_millis(20));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let c_shards = shards_of(&*store, "c").await;
    assert_eq!(c_shards.len(), 4);
    let killed_at = Instant::now();
    c.kill().await;
    let limit = LEASE * 3 / 2;
    let took = wait_until("c's shards to resume elsewhere", limit, || {
        let resumed: HashSet<String> = recorder
            .processed()
            .iter()
            .filter(|p| p.worker != "c" && p.at > killed_at)
            .map(|p| p.shard_id.to_string())
            .filter(|s| c_shards.contains(s))
            .collect();
        resumed.len() == c_shards.len()
    })
    .await;
    println!("failover from a settled fleet: {took:?} (limit {limit:?})");
    stop_producer.cancel();
    producer.await.unwrap();
    a.stop().await;
    b.stop().await;
}

/// An owner whose heartbeats fail while its renewals still succeed: peers
/// take its leases once its heartbeat stopped moving for a lease duration,
/// so it must have stopped by then on its own (the heartbeat half of its
/// deadline), and never process again.
#[tokio::test(start_paused = true)]
async fn an_owner_whose_heartbeats_fail_stops_before_a_peer_takes() {
    let stream = FakeStream::new(1);
    let store = store();
    let recorder = Recorder::new();
    let failing = Watched::new(store.clone());
    let z = spawn_worker("z", failing.clone(), &stream, &recorder);
    let (stop_producer, producer) = producer(&stream, Duration::from_millis(20));
    wait_until("z to process", Duration::from_secs(10), || {
        recorder.count() > 10
    })
    .await;
    let p = spawn_worker("p", store.clone(), &stream, &recorder);
    tokio::time::sleep(Duration::from_secs(2)).await;
    failing.fail_heartbeats.store(true, Ordering::Relaxed);
    let cut_at = Instant::now();
    let took = wait_until("p to take the shard", LEASE * 2, || {
        recorder.processed().iter().any(|r| r.worker == "p")
    })
    .await;
    let events = recorder.events();
    assert!(
        events
            .iter()
            .any(|(w, _, e)| w == "z" && *e == Event::LeaseLost),
        "z had not stopped when p started: {events:?}"
    );
    let processed = recorder.processed();
    let p_first = processed.iter().find(|r| r.worker == "p").unwrap().at;
    let z_last = processed
        .iter()
        .filter(|r| r.worker == "z")
        .last()
        .unwrap()
        .at;
    println!(
        "heartbeats refused: z's last record {:?} after, p's first {:?} after ({took:?})",
        z_last - cut_at,
        p_first - cut_at
    );
    assert!(z_last < p_first, "z processed after p started");
    tokio::time::sleep(LEASE).await;
    let late = recorder
        .processed()
        .iter()
        .filter(|r| r.worker == "z" && r.at > z_last)
        .count();
    assert_eq!(late, 0, "z processed again with its heartbeats failing");
    stop_producer.cancel();
    producer.await.unwrap();
    z.kill().await;
    p.stop().await;
}

/// Two heartbeats in a row fail (5 s of store trouble): the worker retries
/// its heartbeat on the next scan ticks instead of waiting a whole renew
/// interval, so its leases' deadlines never pass and nothing is lost.
#[tokio::test(start_paused = true)]
async fn a_failed_heartbeat_is_retried_before_the_deadlines_pass() {
    let stream = FakeStream::new(2);
    let store = store();
    let recorder = Recorder::new();
    let flaky = Watched::new(store.clone());
    let w = spawn_worker("w", flaky.clone(), &stream, &recorder);
    let (stop_producer, producer) = producer(&stream, Duration::from_millis(50));
    wait_until("w to process", Duration::from_secs(10), || {
        recorder.count() > 10
    })
    .await;
    // Just after a renew round's heartbeat, so the trouble covers the
    // next two (3.3 s apart at the default renew interval).
    let seen = flaky.heartbeats.load(Ordering::Relaxed);
    wait_until("a heartbeat", Duration::from_secs(5), || {
        flaky.heartbeats.load(Ordering::Relaxed) > seen
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    flaky.fail_heartbeats.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(5)).await;
    flaky.fail_heartbeats.store(false, Ordering::Relaxed);
    tokio::time::sleep(LEASE).await;
    let lost = recorder
        .events()
        .iter()
        .filter(|(_, _, e)| *e == Event::LeaseLost)
        .count();
    assert_eq!(lost, 0, "leases lost while the heartbeat recovered");
    stop_producer.cancel();
    producer.await.unwrap();
    w.stop().await;
}
