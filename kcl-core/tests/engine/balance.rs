//! Balancing by throughput (issue 17): the real engine on `MemoryStore` and
//! the fake stream, on tokio's paused clock. 12 shards, two of which carry
//! 80 % of the bytes, and 3 workers in `BalanceMode::Throughput`: the hot
//! shards end on different workers, every worker holding more than one
//! lease is within the threshold of the mean byte rate, the hand-offs
//! process no record twice, and a steady load then moves nothing. Then a
//! load shift: the hot shards become two others, and the fleet evens it
//! out within the balancing rounds, not at the slow lease listing.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;
use kcl_core::testkit::engine::{Event, Recorder};
use kcl_core::testkit::{FakeRecord, FakeStream};
use kcl_core::{BalanceMode, LeaseStore, ShardId, ThroughputBalance, WorkerBuilder};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const THRESHOLD: f64 = 0.2;
const HOT: [usize; 2] = [2, 3];
const TICK: Duration = Duration::from_millis(500);
/// Per tick: a hot shard gets 4 records of 5 KiB, a cold one 1 of 1 KiB,
/// so the two hot shards carry 40 of the 50 KiB.
const HOT_RECORDS: usize = 4;
const HOT_BYTES: usize = 5 * 1024;
const COLD_BYTES: usize = 1024;

/// The two hot shards' indexes, which a test may change while the
/// producer runs.
type Hot = Arc<Mutex<[usize; 2]>>;

fn rate_of(shard: usize, hot: &[usize; 2]) -> u64 {
    let per_tick = if hot.contains(&shard) {
        HOT_RECORDS * HOT_BYTES
    } else {
        COLD_BYTES
    };
    (per_tick as f64 / TICK.as_secs_f64()) as u64
}

/// Put the skewed load on every shard each tick until cancelled.
fn skewed_producer(stream: &FakeStream, hot: &Hot) -> (CancellationToken, JoinHandle<()>) {
    let hot = Arc::clone(hot);
    let stop = CancellationToken::new();
    let token = stop.clone();
    let stream = stream.clone();
    let shards = stream.shards();
    let task = tokio::spawn(async move {
        let mut i = 0u64;
        while !token.is_cancelled() {
            let now_hot = *hot.lock().unwrap();
            for (n, shard) in shards.iter().enumerate() {
                let (count, size) = if now_hot.contains(&n) {
                    (HOT_RECORDS, HOT_BYTES)
                } else {
                    (1, COLD_BYTES)
                };
                for _ in 0..count {
                    i += 1;
                    let record = FakeRecord::new(format!("k{i}"), vec![b'x'; size])
                        .explicit_hash_key(shard.hash_key_range.starting_hash_key);
                    stream.put(record).unwrap();
                }
            }
            tokio::time::sleep(TICK).await;
        }
    });
    (stop, task)
}

fn spawn(
    id: &str,
    store: Arc<dyn LeaseStore>,
    stream: &FakeStream,
    recorder: &Recorder,
) -> Running {
    spawn_worker_with(id, store, stream, recorder, throughput_mode)
}

fn throughput_mode(builder: WorkerBuilder<()>) -> WorkerBuilder<()> {
    builder.balance_mode(BalanceMode::Throughput(
        ThroughputBalance::new().threshold(THRESHOLD).rounds(3),
    ))
}

/// Each shard's owner and generation (a move changes the generation).
async fn holdings(store: &dyn LeaseStore) -> BTreeMap<ShardId, (String, u64)> {
    store
        .list_leases()
        .await
        .unwrap()
        .into_iter()
        .map(|l| {
            let owner = l.owner.map_or("-".into(), |o| o.to_string());
            (l.shard_id, (owner, l.generation))
        })
        .collect()
}

/// Each worker's true byte rate and lease count, from the shards' rates.
fn loads(
    holdings: &BTreeMap<ShardId, (String, u64)>,
    index: &BTreeMap<ShardId, usize>,
    hot: &[usize; 2],
) -> BTreeMap<String, (u64, usize)> {
    let mut out: BTreeMap<String, (u64, usize)> = BTreeMap::new();
    for (shard, (owner, _)) in holdings {
        let load = out.entry(owner.clone()).or_default();
        load.0 += rate_of(index[shard], hot);
        load.1 += 1;
    }
    out
}

/// The promise of throughput mode: the hot shards apart, and every worker
/// that holds more than one lease at most `threshold` above the mean.
fn balanced(loads: &BTreeMap<String, (u64, usize)>, hot_owners: &[&String]) -> bool {
    let total: u64 = loads.values().map(|(r, _)| r).sum();
    let mean = total as f64 / 3.0;
    loads.len() == 3
        && !loads.contains_key("-")
        && hot_owners[0] != hot_owners[1]
        && loads
            .values()
            .all(|(rate, n)| *n == 1 || *rate as f64 <= mean * (1.0 + THRESHOLD))
}

#[tokio::test(start_paused = true)]
async fn two_hot_shards_end_apart_within_the_threshold_and_a_steady_load_moves_nothing() {
    let stream = FakeStream::new(12);
    let index: BTreeMap<ShardId, usize> = stream
        .shards()
        .into_iter()
        .enumerate()
        .map(|(n, s)| (s.shard_id, n))
        .collect();
    let hot: Vec<ShardId> = HOT
        .iter()
        .map(|n| stream.shards()[*n].shard_id.clone())
        .collect();
    let store = store();
    let recorder = Recorder::new();
    let (stop_producer, producer) = skewed_producer(&stream, &Arc::new(Mutex::new(HOT)));
    let workers: Vec<Running> = ["a", "b", "c"]
        .iter()
        .map(|id| spawn(id, store.clone(), &stream, &recorder))
        .collect();

    // Balanced by throughput within a few minutes of virtual time.
    let start = tokio::time::Instant::now();
    let limit = Duration::from_secs(600);
    loop {
        let now = holdings(&*store).await;
        let l = loads(&now, &index, &HOT);
        let none = "-".to_string();
        let hot_owners: Vec<&String> = hot
            .iter()
            .map(|s| now.get(s).map_or(&none, |h| &h.0))
            .collect();
        if index.len() == now.len() && balanced(&l, &hot_owners) {
            println!("balanced by throughput after {:?}: {l:?}", start.elapsed());
            break;
        }
        assert!(
            start.elapsed() < limit,
            "not balanced after {limit:?}: {l:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // Let any hand-off still under way finish, then watch a steady load:
    // 10 balancing rounds (take interval = lease / 2) and two slow
    // lease listings, with no lease changing hands.
    tokio::time::sleep(LEASE).await;
    let before = holdings(&*store).await;
    let hot_owners: Vec<&String> = hot.iter().map(|s| &before[s].0).collect();
    assert!(
        balanced(&loads(&before, &index, &HOT), &hot_owners),
        "{before:?}"
    );
    let window = (LEASE / 2) * 10 + Duration::from_secs(120);
    let mut moves = 0;
    let mut last = before.clone();
    let watch_start = tokio::time::Instant::now();
    while watch_start.elapsed() < window {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = holdings(&*store).await;
        moves += now.iter().filter(|(s, h)| last[*s].1 != h.1).count();
        last = now;
    }
    println!("steady load, {window:?}: {moves} lease moves");
    assert_eq!(
        moves, 0,
        "churn under a steady load: {before:?} -> {last:?}"
    );

    // The figures the owners recorded are those of the load.
    for lease in store.list_leases().await.unwrap() {
        let expected = rate_of(index[&lease.shard_id], &HOT) as f64;
        let recorded = lease.throughput_bytes_per_sec.expect("a figure") as f64;
        assert!(
            (recorded - expected).abs() <= expected * 0.5,
            "{}: recorded {recorded}, put {expected}",
            lease.shard_id
        );
    }

    stop_producer.cancel();
    producer.await.unwrap();
    for w in workers {
        w.stop().await;
    }
    let lost: Vec<_> = recorder
        .events()
        .into_iter()
        .filter(|(_, _, e)| *e == Event::LeaseLost)
        .collect();
    assert!(lost.is_empty(), "hand-offs are graceful: {lost:?}");
    assert!(
        recorder.duplicates().is_empty(),
        "records processed twice: {:?}",
        recorder.duplicates()
    );
    assert_nothing_lost(&stream, &recorder);
}

/// Wait until the fleet is balanced for the load with `hot` shards; returns
/// how long it took.
async fn until_balanced(
    store: &dyn LeaseStore,
    index: &BTreeMap<ShardId, usize>,
    hot: [usize; 2],
    limit: Duration,
) -> Duration {
    let by_index: BTreeMap<usize, &ShardId> = index.iter().map(|(s, n)| (*n, s)).collect();
    let start = tokio::time::Instant::now();
    loop {
        let now = holdings(store).await;
        let l = loads(&now, index, &hot);
        let none = "-".to_string();
        let hot_owners: Vec<&String> = hot
            .iter()
            .map(|n| now.get(by_index[n]).map_or(&none, |h| &h.0))
            .collect();
        if index.len() == now.len() && balanced(&l, &hot_owners) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "not balanced after {limit:?}: {l:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Issue 16's cadence lists every lease only at the slow cadence while a
/// worker is settled, and a load shift changes no heartbeat: unless
/// throughput mode lists at the balancing interval, a shift waits for the
/// slow listing (here 10 minutes) before anything moves.
#[tokio::test(start_paused = true)]
async fn a_load_shift_is_balanced_within_the_balancing_rounds_not_at_the_slow_listing() {
    let stream = FakeStream::new(12);
    let index: BTreeMap<ShardId, usize> = stream
        .shards()
        .into_iter()
        .enumerate()
        .map(|(n, s)| (s.shard_id, n))
        .collect();
    let slow = Duration::from_secs(600);
    let store = store();
    let recorder = Recorder::new();
    let hot: Hot = Arc::new(Mutex::new(HOT));
    let (stop_producer, producer) = skewed_producer(&stream, &hot);
    let workers: Vec<Running> = ["a", "b", "c"]
        .iter()
        .map(|id| {
            spawn_worker_with(id, store.clone(), &stream, &recorder, |builder| {
                throughput_mode(builder)
                    .lease_scan_interval(slow)
                    .shard_sync_interval(slow)
            })
        })
        .collect();
    let first = until_balanced(&*store, &index, HOT, slow).await;
    println!("balanced by throughput after {first:?}");
    // Settled: every worker back on the slow cadence.
    tokio::time::sleep(LEASE * 2).await;

    // The shift: two cold shards of the worker holding the most become the
    // hot ones, so that worker carries 80 % of the bytes.
    let before = holdings(&*store).await;
    let mut cold_by_owner: BTreeMap<&String, Vec<usize>> = BTreeMap::new();
    for (shard, (owner, _)) in &before {
        if !HOT.contains(&index[shard]) {
            cold_by_owner.entry(owner).or_default().push(index[shard]);
        }
    }
    let (donor, cold) = cold_by_owner
        .iter()
        .max_by_key(|(_, c)| c.len())
        .expect("leases");
    assert!(cold.len() >= 2, "{before:?}");
    let shifted = [cold[0], cold[1]];
    *hot.lock().unwrap() = shifted;
    let took = until_balanced(&*store, &index, shifted, slow * 2).await;
    println!("load shifted onto {donor}'s shards {shifted:?}: balanced again after {took:?}");
    // Figures follow within a few renewals, then `rounds` balancing rounds
    // per move (take interval = lease / 2) and the hand-offs: well under
    // the slow listing.
    assert!(
        took < Duration::from_secs(90),
        "a load shift took {took:?} to balance (slow listing every {slow:?})"
    );

    stop_producer.cancel();
    producer.await.unwrap();
    for w in workers {
        w.stop().await;
    }
    assert!(
        recorder.duplicates().is_empty(),
        "records processed twice: {:?}",
        recorder.duplicates()
    );
    assert_nothing_lost(&stream, &recorder);
}
