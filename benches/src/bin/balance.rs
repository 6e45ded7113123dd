//! Load-aware balancing (issue 17), printed (not asserted), on the real
//! clock with a short lease so the run stays short: a fleet (default 3
//! workers, 12 shards) where a few shards (default 2) carry most of the
//! bytes (default 80 %), producers putting records at steady rates per
//! shard, run once in `BalanceMode::Throughput` and once in count mode
//! (the baseline, same scenario, same run). For each mode:
//!
//! 1. the time until the fleet is first balanced by bytes: every worker
//!    holding more than one lease at most `threshold` above the mean byte
//!    rate (throughput mode's promise; a worker whose one lease is heavier
//!    than the mean keeps it alone);
//! 2. lease moves (a lease's owner changing) over a steady window,
//!    extrapolated to moves per hour (goal: 0);
//! 3. a load shift: two cold shards of the worker holding the most cold
//!    shards become the hot ones (the old hot shards go cold); the time
//!    until the fleet is balanced by bytes again, in seconds and in
//!    balancing rounds (`take_interval`), or the byte imbalance still
//!    left after the limit;
//! 4. moves over a second steady window, and lease listings per worker
//!    per minute over both windows (the store cost of the mode: throughput
//!    mode lists at the balancing interval, count mode at
//!    `lease_scan_interval`, so a 40 s window may hold none).
//!
//! Byte rates are the producers' (known per shard), not the workers'
//! estimates. Records processed twice are counted (hand-offs are graceful:
//! goal 0).
//!
//! Run: `cargo run --release -p kcl-benches --bin balance [-- --lease-ms 2000 --steady-s 20]`

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use kcl_benches::counting::Counting;
use kcl_core::testkit::engine::Recorder;
use kcl_core::testkit::{FakeRecord, FakeStream};
use kcl_core::{BalanceMode, LeaseStore, ShardId, ThroughputBalance, Worker};
use kcl_store_memory::MemoryStore;
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
struct Args {
    /// Shards in the stream.
    #[arg(long, default_value_t = 12)]
    shards: usize,
    /// Workers in the fleet.
    #[arg(long, default_value_t = 3)]
    workers: usize,
    /// Hot shards.
    #[arg(long, default_value_t = 2)]
    hot: usize,
    /// The hot shards' share of the bytes, in (0, 1).
    #[arg(long, default_value_t = 0.8)]
    hot_share: f64,
    /// Bytes per record.
    #[arg(long, default_value_t = 512)]
    record_bytes: usize,
    /// Records per cold shard per producer tick.
    #[arg(long, default_value_t = 1)]
    cold_records: usize,
    /// Producer tick, in milliseconds.
    #[arg(long, default_value_t = 200)]
    tick_ms: u64,
    /// Lease duration, in milliseconds (renew = lease / 3, balancing
    /// interval = lease / 2).
    #[arg(long, default_value_t = 2_000)]
    lease_ms: u64,
    /// Heartbeat scan interval, in milliseconds.
    #[arg(long, default_value_t = 100)]
    scan_ms: u64,
    /// Slow lease-listing cadence (`lease_scan_interval`), in seconds.
    #[arg(long, default_value_t = 60)]
    lease_scan_s: u64,
    /// Throughput mode's threshold (fraction of the mean worker load).
    #[arg(long, default_value_t = 0.2)]
    threshold: f64,
    /// Throughput mode's dampening rounds.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Each steady window, in seconds.
    #[arg(long, default_value_t = 20)]
    steady_s: u64,
    /// Longest wait for a balance, in seconds.
    #[arg(long, default_value_t = 30)]
    limit_s: u64,
    /// Which modes to run.
    #[arg(long, value_enum, default_value = "both")]
    mode: Modes,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Modes {
    Both,
    Throughput,
    Count,
}

/// The load: which shards are hot, and how many records each kind gets
/// per tick.
#[derive(Clone, Debug)]
struct Load {
    hot: Arc<Mutex<Vec<usize>>>,
    hot_records: usize,
    cold_records: usize,
    record_bytes: usize,
    tick: Duration,
}

impl Load {
    fn new(args: &Args) -> Self {
        let cold = (args.shards - args.hot) * args.cold_records;
        // hot × h = share / (1 − share) × cold, in records per tick.
        let share = args.hot_share.clamp(0.01, 0.99);
        let hot_total = share / (1.0 - share) * cold as f64;
        let hot_records = (hot_total / args.hot as f64).round().max(1.0) as usize;
        Load {
            hot: Arc::new(Mutex::new((0..args.hot).collect())),
            hot_records,
            cold_records: args.cold_records,
            record_bytes: args.record_bytes,
            tick: Duration::from_millis(args.tick_ms),
        }
    }

    fn hot(&self) -> Vec<usize> {
        self.hot.lock().unwrap().clone()
    }

    fn records(&self, shard: usize, hot: &[usize]) -> usize {
        if hot.contains(&shard) {
            self.hot_records
        } else {
            self.cold_records
        }
    }

    /// A shard's byte rate with `hot` the hot shards.
    fn rate(&self, shard: usize, hot: &[usize]) -> f64 {
        (self.records(shard, hot) * self.record_bytes) as f64 / self.tick.as_secs_f64()
    }

    /// Put the load every tick until cancelled (ticks that fall behind are
    /// put late, not skipped, so the rates hold on average).
    fn produce(&self, stream: &FakeStream) -> CancellationToken {
        let stop = CancellationToken::new();
        let token = stop.clone();
        let (load, stream) = (self.clone(), stream.clone());
        let shards = stream.shards();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(load.tick);
            let payload = vec![b'x'; load.record_bytes];
            let mut i = 0u64;
            while !token.is_cancelled() {
                tick.tick().await;
                let hot = load.hot();
                for (n, shard) in shards.iter().enumerate() {
                    for _ in 0..load.records(n, &hot) {
                        i += 1;
                        let record = FakeRecord::new(format!("k{i}"), payload.clone())
                            .explicit_hash_key(shard.hash_key_range.starting_hash_key);
                        stream.put(record).unwrap();
                    }
                }
            }
        });
        stop
    }
}

/// Each shard's owner ("-" for none).
async fn owners(store: &MemoryStore) -> BTreeMap<ShardId, String> {
    store
        .list_leases()
        .await
        .unwrap()
        .into_iter()
        .map(|l| (l.shard_id, l.owner.map_or("-".into(), |o| o.to_string())))
        .collect()
}

/// Byte rate and lease count per worker.
fn loads(
    owners: &BTreeMap<ShardId, String>,
    index: &BTreeMap<ShardId, usize>,
    load: &Load,
    hot: &[usize],
) -> BTreeMap<String, (f64, usize)> {
    let mut out: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    for (shard, owner) in owners {
        let entry = out.entry(owner.clone()).or_default();
        entry.0 += load.rate(index[shard], hot);
        entry.1 += 1;
    }
    out
}

/// The byte balance of a holding: the worst worker holding more than one
/// lease, and the most loaded worker, each over the mean; and whether
/// the first is within the threshold (with every worker holding a lease).
#[derive(Clone, Copy, Debug)]
struct Balance {
    worst_multi: f64,
    max: f64,
    within: bool,
}

fn balance_of(loads: &BTreeMap<String, (f64, usize)>, workers: usize, threshold: f64) -> Balance {
    let total: f64 = loads.values().map(|(r, _)| r).sum();
    let mean = total / workers as f64;
    let worst_multi = loads
        .iter()
        .filter(|(w, (_, n))| *n > 1 || w.as_str() == "-")
        .map(|(_, (r, _))| r / mean)
        .fold(0.0, f64::max);
    let max = loads.values().map(|(r, _)| r / mean).fold(0.0, f64::max);
    let within =
        loads.len() == workers && !loads.contains_key("-") && worst_multi <= 1.0 + threshold;
    Balance {
        worst_multi,
        max,
        within,
    }
}

/// Wait (polling every 50 ms) until the fleet is balanced by bytes; the
/// time it took, or `None` after `limit`; and the balance at the end.
async fn until_balanced(
    store: &MemoryStore,
    index: &BTreeMap<ShardId, usize>,
    load: &Load,
    args: &Args,
    limit: Duration,
) -> (Option<Duration>, Balance) {
    let hot = load.hot();
    let start = Instant::now();
    loop {
        let now = owners(store).await;
        let b = balance_of(
            &loads(&now, index, load, &hot),
            args.workers,
            args.threshold,
        );
        if now.len() == index.len() && b.within {
            return (Some(start.elapsed()), b);
        }
        if start.elapsed() >= limit {
            return (None, b);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Lease moves (an owner changing to another worker) over `window`,
/// polling every 50 ms.
async fn moves_over(store: &MemoryStore, window: Duration) -> usize {
    let mut last: BTreeMap<ShardId, String> = owners(store).await;
    let mut moves = 0;
    let start = Instant::now();
    while start.elapsed() < window {
        tokio::time::sleep(Duration::from_millis(50)).await;
        for (shard, owner) in owners(store).await {
            if owner == "-" {
                continue;
            }
            match last.get(&shard) {
                Some(prev) if *prev == owner => {}
                Some(prev) if prev != "-" => {
                    moves += 1;
                    last.insert(shard, owner);
                }
                _ => {
                    last.insert(shard, owner);
                }
            }
        }
    }
    moves
}

/// One mode's figures.
#[derive(Debug)]
struct Figures {
    first: (Option<Duration>, Balance),
    moves_before: usize,
    shift: (Option<Duration>, Balance),
    moves_after: usize,
    listings_per_min: f64,
    duplicates: usize,
}

fn mode_name(mode: &BalanceMode) -> &'static str {
    match mode {
        BalanceMode::Count => "count",
        _ => "throughput",
    }
}

async fn run(args: &Args, mode: BalanceMode) -> Figures {
    let name = mode_name(&mode);
    let lease = Duration::from_millis(args.lease_ms);
    let limit = Duration::from_secs(args.limit_s);
    let steady = Duration::from_secs(args.steady_s);
    let stream = FakeStream::new(args.shards);
    let index: BTreeMap<ShardId, usize> = stream
        .shards()
        .into_iter()
        .enumerate()
        .map(|(n, s)| (s.shard_id, n))
        .collect();
    let store = Arc::new(
        MemoryStore::builder()
            .application("bench-balance")
            .build()
            .unwrap(),
    );
    let load = Load::new(args);
    let stop_producer = load.produce(&stream);
    let recorder = Recorder::new();
    let mut counters = Vec::new();
    let mut running = Vec::new();
    for n in 0..args.workers {
        let id = format!("w{n}");
        let counting = Arc::new(Counting::new(store.clone()));
        counters.push(counting.clone());
        let worker = Worker::builder()
            .worker_id(id.as_str())
            .lease_store(counting)
            .source(Arc::new(stream.clone()))
            .lease_duration(lease)
            .scan_interval(Duration::from_millis(args.scan_ms))
            .lease_scan_interval(Duration::from_secs(args.lease_scan_s))
            .balance_mode(mode)
            .processor(recorder.factory(&id))
            .build()
            .unwrap();
        let cancel = CancellationToken::new();
        running.push((cancel.clone(), tokio::spawn(worker.run(cancel))));
    }

    let first = until_balanced(&store, &index, &load, args, limit).await;
    println!(
        "  [{name}] first balance: {} (worst multi-lease worker {:.2}x mean, max {:.2}x)",
        fmt_time(first.0, limit),
        first.1.worst_multi,
        first.1.max
    );
    // Let a hand-off still under way finish before watching.
    tokio::time::sleep(lease).await;
    let listings = || -> u64 { counters.iter().map(|c| c.snapshot().lease_listings).sum() };
    let listed_before = listings();
    let moves_before = moves_over(&store, steady).await;
    let mut listed = listings() - listed_before;
    println!("  [{name}] steady window {steady:?}: {moves_before} lease moves");

    // The shift: two cold shards of the worker holding the most cold ones.
    let hot_before = load.hot();
    let now = owners(&store).await;
    let mut cold_by_owner: BTreeMap<&String, Vec<usize>> = BTreeMap::new();
    for (shard, owner) in &now {
        if !hot_before.contains(&index[shard]) {
            cold_by_owner.entry(owner).or_default().push(index[shard]);
        }
    }
    let (donor, cold) = cold_by_owner
        .iter()
        .max_by_key(|(w, c)| (c.len(), std::cmp::Reverse(*w)))
        .map(|(w, c)| ((*w).clone(), c.clone()))
        .unwrap_or_default();
    let shifted: Vec<usize> = cold.into_iter().take(args.hot).collect();
    *load.hot.lock().unwrap() = shifted.clone();
    let at_shift = balance_of(
        &loads(&now, &index, &load, &shifted),
        args.workers,
        args.threshold,
    );
    println!(
        "  [{name}] shift: hot shards {hot_before:?} -> {shifted:?} (all {donor}'s): worst multi-lease worker {:.2}x mean",
        at_shift.worst_multi
    );
    let shift = until_balanced(&store, &index, &load, args, limit).await;
    println!(
        "  [{name}] balanced again: {} (worst multi-lease worker {:.2}x mean, max {:.2}x)",
        fmt_time(shift.0, limit),
        shift.1.worst_multi,
        shift.1.max
    );
    tokio::time::sleep(lease).await;
    let listed_before = listings();
    let moves_after = moves_over(&store, steady).await;
    listed += listings() - listed_before;
    // Over both steady windows.
    let listings_per_min =
        listed as f64 / args.workers as f64 / (2.0 * steady.as_secs_f64() / 60.0);
    println!("  [{name}] second steady window {steady:?}: {moves_after} lease moves");

    for (cancel, _) in &running {
        cancel.cancel();
    }
    for (_, task) in running {
        task.await.unwrap().unwrap();
    }
    stop_producer.cancel();
    Figures {
        first,
        moves_before,
        shift,
        moves_after,
        listings_per_min,
        duplicates: recorder.duplicates().len(),
    }
}

fn fmt_time(took: Option<Duration>, limit: Duration) -> String {
    match took {
        Some(t) => format!("{:.1} s", t.as_secs_f64()),
        None => format!("not within {} s", limit.as_secs()),
    }
}

fn print_mode(name: &str, f: &Figures, args: &Args) {
    let take = Duration::from_millis(args.lease_ms) / 2;
    let rounds = |t: Option<Duration>| {
        t.map_or("-".into(), |t| {
            format!("{:.1}", t.as_secs_f64() / take.as_secs_f64())
        })
    };
    let window_h = 2.0 * args.steady_s as f64 / 3600.0;
    let moves = f.moves_before + f.moves_after;
    println!(
        "{name:>10} | first balance {:>16} ({:>4} rounds) | after the shift {:>16} ({:>4} rounds), worst {:.2}x mean | moves {moves} in {} s = {:.0}/h | listings/worker/min {:.1} | duplicates {}",
        fmt_time(f.first.0, Duration::from_secs(args.limit_s)),
        rounds(f.first.0),
        fmt_time(f.shift.0, Duration::from_secs(args.limit_s)),
        rounds(f.shift.0),
        f.shift.1.worst_multi,
        2 * args.steady_s,
        moves as f64 / window_h,
        f.listings_per_min,
        f.duplicates,
    );
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    assert!(
        args.hot >= 1 && args.hot < args.shards && args.workers >= 2,
        "need 1 <= hot < shards and at least 2 workers"
    );
    let load = Load::new(&args);
    let hot_rate = load.rate(0, &[0]);
    let cold_rate = load.rate(0, &[]);
    let total = hot_rate * args.hot as f64 + cold_rate * (args.shards - args.hot) as f64;
    println!(
        "balance: {} shards ({} hot at {:.0} B/s each, {:.0} % of {:.0} B/s), {} workers, lease {} ms (balancing every {} ms), threshold {}, rounds {}, lease_scan_interval {} s",
        args.shards,
        args.hot,
        hot_rate,
        100.0 * hot_rate * args.hot as f64 / total,
        total,
        args.workers,
        args.lease_ms,
        args.lease_ms / 2,
        args.threshold,
        args.rounds,
        args.lease_scan_s,
    );
    let throughput = BalanceMode::Throughput(
        ThroughputBalance::new()
            .threshold(args.threshold)
            .rounds(args.rounds),
    );
    let mut results = Vec::new();
    for mode in [throughput, BalanceMode::Count] {
        let name = mode_name(&mode);
        let wanted = match args.mode {
            Modes::Both => true,
            Modes::Throughput => name == "throughput",
            Modes::Count => name == "count",
        };
        if wanted {
            println!("{name} mode:");
            results.push((name, run(&args, mode).await));
        }
    }
    println!();
    for (name, f) in &results {
        print_mode(name, f, &args);
    }
    if let [(_, t), (_, c)] = results.as_slice() {
        println!(
            "after the shift, worst multi-lease worker over the mean: throughput {:.2}x vs count {:.2}x (goal <= {:.2}x); lease listings per worker per minute at steady state: throughput {:.1} vs count {:.1}",
            t.shift.1.worst_multi,
            c.shift.1.worst_multi,
            1.0 + args.threshold,
            t.listings_per_min,
            c.listings_per_min,
        );
    }
}
