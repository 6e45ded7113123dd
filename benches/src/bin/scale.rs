//! Scale (issue 16 goal 2): a fleet of workers in one process over many
//! idle shards of a fake stream (one small record per shard, so every
//! reader is known to be open once it was delivered).
//!
//! 1. `fleet`: 10 workers, 10,000 shards, memory store: the time from the
//!    workers' start until every shard is leased, and until the fleet is
//!    balanced (every worker within one of shards / workers) with every
//!    shard's record processed, in seconds and in taker rounds (the take
//!    interval, lease duration / 2); the taker's planning time per round
//!    (the `kcl_lease_taker_plan_seconds` histogram, read by a small
//!    recorder in this process) as median and max; process RSS and RSS per
//!    worker. The baseline, in the same run: the same fleet over
//!    `--baseline-shards` (default 100) shards, and the RSS before the
//!    workers started.
//! 2. `single`: one worker, 1,000 shards: process RSS once every lease is
//!    held and every reader delivered its record (goal <= 100 MB), against
//!    the RSS before the worker started.
//! 3. `redis`, `postgres`: part 1 with 2,000 shards on each server store
//!    (`KCL_TEST_REDIS_URL`, `KCL_TEST_POSTGRES_URL`; skipped when unset).
//!
//! Each part runs in a child process of its own (`--part all`, the
//! default, runs them in turn), so one part's freed memory does not
//! flatter the next one's RSS.
//!
//! Idle readers wait `--empty-wait-ms` (default 1,000, the Kinesis
//! polling reader's default idle time) at the tip before an empty read.
//!
//! `cargo run --release -p kcl-benches --bin scale -- [--shards N] [--workers N] [--part fleet|single|redis|postgres]`

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use kcl_benches::process::{self, mib};
use kcl_core::engine::metric;
use kcl_core::testkit::{FakeRecord, FakeStream, FakeStreamConfig};
use kcl_core::{LeaseStore, Worker};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, SharedString, Unit};
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
#[command(args_override_self = true)]
struct Args {
    /// Which part to run (`all` runs each in a child process).
    #[arg(long, value_enum, default_value = "all")]
    part: Part,
    /// Shards of the memory-store fleet (part 1).
    #[arg(long, default_value_t = 10_000)]
    shards: usize,
    /// Workers of every fleet (parts 1 and 3).
    #[arg(long, default_value_t = 10)]
    workers: usize,
    /// Shards of the baseline fleet run before each fleet.
    #[arg(long, default_value_t = 100)]
    baseline_shards: usize,
    /// Shards of the one worker (part 2).
    #[arg(long, default_value_t = 1_000)]
    single_shards: usize,
    /// Shards of the fleets on Redis and Postgres (part 3).
    #[arg(long, default_value_t = 2_000)]
    server_shards: usize,
    /// Lease duration in milliseconds (the take interval is half).
    #[arg(long, default_value_t = 10_000)]
    lease_ms: u64,
    /// How long an idle fake reader waits at the tip, in milliseconds.
    #[arg(long, default_value_t = 1_000)]
    empty_wait_ms: u64,
    /// After balance, wait this long and measure RSS again, seconds.
    #[arg(long, default_value_t = 10.0)]
    settle: f64,
    /// Give up on a fleet after this long, seconds.
    #[arg(long, default_value_t = 900.0)]
    timeout: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Part {
    All,
    Fleet,
    Single,
    Redis,
    Postgres,
}

/// Every sample of `kcl_lease_taker_plan_seconds`, in order; the other
/// metrics are dropped (a real exporter's memory is not the engine's).
#[derive(Clone, Debug, Default)]
struct PlanTimes(Arc<Mutex<Vec<f64>>>);

impl PlanTimes {
    fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
    fn since(&self, from: usize) -> Vec<f64> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)[from..].to_vec()
    }
}

impl metrics::HistogramFn for PlanTimes {
    fn record(&self, value: f64) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(value);
    }
}

impl metrics::Recorder for PlanTimes {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
        Counter::noop()
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        if key.name() == metric::LEASE_TAKER_PLAN_SECONDS {
            Histogram::from_arc(Arc::new(self.clone()))
        } else {
            Histogram::noop()
        }
    }
}

/// Median and max of some seconds, as milliseconds.
fn median_max_ms(mut v: Vec<f64>) -> (f64, f64, usize) {
    if v.is_empty() {
        return (0.0, 0.0, 0);
    }
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2] * 1e3, v[v.len() - 1] * 1e3, v.len())
}

/// A stream of `shards` idle shards with one 100-byte record in each.
fn stream(shards: usize, args: &Args) -> FakeStream {
    let config = FakeStreamConfig {
        empty_wait: Duration::from_millis(args.empty_wait_ms),
        ..FakeStreamConfig::default()
    };
    let stream = FakeStream::with_config(shards, config);
    for (i, shard) in stream.shards().into_iter().enumerate() {
        stream
            .put(
                FakeRecord::new(format!("key-{i}"), vec![b'x'; 100])
                    .explicit_hash_key(shard.hash_key_range.starting_hash_key),
            )
            .unwrap();
    }
    stream
}

/// What one fleet run measured.
#[derive(Debug)]
struct Fleet {
    /// Until every shard had a lease with an owner.
    leased: Option<Duration>,
    /// Until balanced with every shard's record processed.
    balanced: Option<Duration>,
    /// Lease counts per worker at the end.
    counts: Vec<usize>,
    /// Planning times of the rounds until balanced.
    plans: Vec<f64>,
    /// Planning times of the rounds in the settle window after.
    steady_plans: Vec<f64>,
    rss_before: process::Rss,
    rss_balanced: process::Rss,
    rss_settled: process::Rss,
    cpu: Duration,
}

/// Run `workers` workers over `shards` idle shards on `store` until the
/// fleet is balanced (or the timeout), then settle and stop them.
async fn fleet(
    store: Arc<dyn LeaseStore>,
    shards: usize,
    workers: usize,
    args: &Args,
    plans: &PlanTimes,
) -> Fleet {
    let stream = stream(shards, args);
    let processed = Arc::new(AtomicUsize::new(0));
    let rss_before = process::rss();
    let cpu = process::cpu();
    let plans_from = plans.len();
    let cancel = CancellationToken::new();
    let started = Instant::now();
    let mut tasks = Vec::new();
    let ids: Vec<String> = (0..workers).map(|w| format!("scale-{w}")).collect();
    for id in &ids {
        let processed = processed.clone();
        let worker = Worker::builder()
            .worker_id(id.clone())
            .lease_store(store.clone())
            .source(Arc::new(stream.clone()))
            .lease_duration(Duration::from_millis(args.lease_ms))
            .process_with(move |batch| {
                processed.fetch_add(batch.records().len(), Ordering::Relaxed);
                async { Ok(()) }
            })
            .build()
            .expect("worker");
        tasks.push(tokio::spawn(worker.run(cancel.clone())));
    }
    let (mut leased, mut balanced) = (None, None);
    let mut counts = vec![0; workers];
    let timeout = Duration::from_secs_f64(args.timeout);
    let mut last_trace = Instant::now();
    while balanced.is_none() && started.elapsed() < timeout {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let leases = match store.list_leases().await {
            Ok(leases) => leases,
            Err(e) => {
                println!("  listing the leases failed: {e}");
                continue;
            }
        };
        counts = ids
            .iter()
            .map(|id| {
                leases
                    .iter()
                    .filter(|l| l.owner.as_ref().is_some_and(|o| o.as_str() == id))
                    .count()
            })
            .collect();
        let owned: usize = counts.iter().sum();
        if leased.is_none() && leases.len() == shards && owned == shards {
            leased = Some(started.elapsed());
        }
        let even = counts.iter().all(|c| c.abs_diff(shards / workers) <= 1);
        if leased.is_some()
            && owned == shards
            && even
            && processed.load(Ordering::Relaxed) >= shards
        {
            balanced = Some(started.elapsed());
        }
        if std::env::var_os("KCL_BENCH_TRACE").is_some()
            && last_trace.elapsed() >= Duration::from_secs(1)
        {
            last_trace = Instant::now();
            println!(
                "  {:>6.1} s: {} leases, {owned} owned, processed {}, {counts:?}",
                started.elapsed().as_secs_f64(),
                leases.len(),
                processed.load(Ordering::Relaxed)
            );
        }
    }
    let rss_balanced = process::rss();
    let cpu = process::cpu().saturating_sub(cpu);
    let plans_at = plans.len();
    tokio::time::sleep(Duration::from_secs_f64(args.settle)).await;
    let rss_settled = process::rss();
    let out = Fleet {
        leased,
        balanced,
        counts,
        plans: plans.since(plans_from)[..plans_at - plans_from].to_vec(),
        steady_plans: plans.since(plans_at),
        rss_before,
        rss_balanced,
        rss_settled,
        cpu,
    };
    cancel.cancel();
    for task in tasks {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => println!("  a worker stopped with an error: {e}"),
            Err(e) => println!("  a worker task failed: {e}"),
        }
    }
    out
}

fn rounds(d: Option<Duration>, args: &Args) -> String {
    let take = Duration::from_millis(args.lease_ms) / 2;
    match d {
        Some(d) => format!(
            "{:.1} s = {:.1} taker rounds",
            d.as_secs_f64(),
            d.as_secs_f64() / take.as_secs_f64()
        ),
        None => format!("not within {:.0} s", args.timeout),
    }
}

/// Parts 1 and 3: a baseline fleet, then the big one, on `store_name`.
async fn fleet_part(store_name: &str, shards: usize, args: &Args, plans: &PlanTimes) {
    let store = || async {
        kcl_benches::stores::from_env(|n| n == store_name)
            .await
            .into_iter()
            .next()
            .map(|(_, s)| s)
    };
    let Some(base_store) = store().await else {
        println!("scale {store_name}: skipped (its KCL_TEST_* variable is unset)");
        return;
    };
    let workers = args.workers;
    println!(
        "scale {store_name}: {workers} workers, lease {} ms (take interval {} ms), idle shards \
         with one 100-byte record each; baseline: {} shards, same fleet, same run",
        args.lease_ms,
        args.lease_ms / 2,
        args.baseline_shards
    );
    let base = fleet(base_store, args.baseline_shards, workers, args, plans).await;
    let big_store = store().await.expect("the store answered a moment ago");
    let big = fleet(big_store, shards, workers, args, plans).await;
    for (label, n, f) in [
        ("baseline", args.baseline_shards, &base),
        ("measured", shards, &big),
    ] {
        let (med, max, count) = median_max_ms(f.plans.clone());
        let (smed, smax, scount) = median_max_ms(f.steady_plans.clone());
        let grown = f.rss_balanced.now.saturating_sub(f.rss_before.now);
        println!(
            "  {label} {n:>6} shards: all leased after {}; balanced (each within 1 of {}) and every \
             record processed after {}; final counts {:?}",
            rounds(f.leased, args),
            n / workers,
            rounds(f.balanced, args),
            f.counts,
        );
        println!(
            "  {label} {n:>6} shards: taker planning per round until balanced: median {med:.3} ms, \
             max {max:.3} ms ({count} rounds over {workers} workers); in the {:.0} s after: median \
             {smed:.3} ms, max {smax:.3} ms ({scount} rounds); process CPU until balanced {:.2} s",
            args.settle,
            f.cpu.as_secs_f64(),
        );
        println!(
            "  {label} {n:>6} shards: RSS before the workers {:.1} MiB, balanced {:.1} MiB \
             (+{:.1} MiB = {:.2} MiB per worker, {:.1} KiB per shard), {:.0} s later {:.1} MiB, \
             peak {:.1} MiB",
            mib(f.rss_before.now),
            mib(f.rss_balanced.now),
            mib(grown),
            mib(grown) / workers as f64,
            grown as f64 / 1024.0 / n as f64,
            args.settle,
            mib(f.rss_settled.now),
            mib(f.rss_balanced.peak.max(f.rss_settled.peak)),
        );
    }
    if let (Some(b), Some(m)) = (base.balanced, big.balanced) {
        let (bmed, bmax, _) = median_max_ms(base.plans.clone());
        let (mmed, mmax, _) = median_max_ms(big.plans.clone());
        println!(
            "  ratio {shards} / {} shards ({:.0}x): time to balanced {:.2}x, planning median {:.1}x, \
             max {:.1}x",
            args.baseline_shards,
            shards as f64 / args.baseline_shards as f64,
            m.as_secs_f64() / b.as_secs_f64(),
            mmed / bmed.max(f64::MIN_POSITIVE),
            mmax / bmax.max(f64::MIN_POSITIVE),
        );
    }
}

/// Part 2: one worker, every shard leased and read.
async fn single(args: &Args, plans: &PlanTimes) {
    let shards = args.single_shards;
    let store = kcl_benches::stores::from_env(|n| n == "memory")
        .await
        .remove(0)
        .1;
    // The baseline is taken with the stream and store already built: what
    // grows after it is the worker's.
    let stream = stream(shards, args);
    let processed = Arc::new(AtomicUsize::new(0));
    let before = process::rss();
    let started = Instant::now();
    let cancel = CancellationToken::new();
    let worker = {
        let processed = processed.clone();
        Worker::builder()
            .worker_id("scale-single")
            .lease_store(store.clone())
            .source(Arc::new(stream.clone()))
            .lease_duration(Duration::from_millis(args.lease_ms))
            .process_with(move |batch| {
                processed.fetch_add(batch.records().len(), Ordering::Relaxed);
                async { Ok(()) }
            })
            .build()
            .expect("worker")
    };
    let prefetch_bound = worker.config().consumer.prefetch_max_bytes;
    let task = tokio::spawn(worker.run(cancel.clone()));
    let timeout = Duration::from_secs_f64(args.timeout);
    let mut ready = None;
    while ready.is_none() && started.elapsed() < timeout {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let held = store
            .list_leases()
            .await
            .map(|l| l.iter().filter(|l| l.owner.is_some()).count())
            .unwrap_or(0);
        if held == shards && processed.load(Ordering::Relaxed) >= shards {
            ready = Some(started.elapsed());
        }
    }
    let at_ready = process::rss();
    tokio::time::sleep(Duration::from_secs_f64(args.settle)).await;
    let settled = process::rss();
    let (med, max, count) = median_max_ms(plans.since(0));
    let grown = settled.now.saturating_sub(before.now);
    let verdict = if mib(settled.now) <= 100.0 && ready.is_some() {
        "met"
    } else {
        "missed"
    };
    println!(
        "scale single: one worker, {shards} idle shards (one 100-byte record each), memory store"
    );
    println!(
        "  every lease held and every reader delivered its record after {}",
        ready.map_or("never".to_string(), |d| format!("{:.2} s", d.as_secs_f64()))
    );
    println!(
        "  process RSS {:.1} MiB then, {:.1} MiB {:.0} s later (goal <= 100 MB: {verdict}); \
         baseline before the worker {:.1} MiB: the worker added {:.1} MiB = {:.1} KiB per shard \
         (Java may buffer up to 8 MiB per shard; our prefetch bound is {:.0} MiB per shard, \
         empty here); peak {:.1} MiB",
        mib(at_ready.now),
        mib(settled.now),
        args.settle,
        mib(before.now),
        mib(grown),
        grown as f64 / 1024.0 / shards as f64,
        mib(prefetch_bound as u64),
        mib(settled.peak),
    );
    println!("  taker planning per round: median {med:.3} ms, max {max:.3} ms ({count} rounds)");
    cancel.cancel();
    if let Ok(Err(e)) = task.await {
        println!("  the worker stopped with an error: {e}");
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if args.part == Part::All {
        let me = std::env::current_exe().expect("own path");
        for part in ["single", "fleet", "redis", "postgres"] {
            let status = std::process::Command::new(&me)
                .args(std::env::args_os().skip(1))
                .args(["--part", part])
                .status()
                .expect("run a part");
            if !status.success() {
                println!("scale {part}: the part failed ({status})");
            }
        }
        return;
    }
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .init();
    }
    let plans = PlanTimes::default();
    metrics::set_global_recorder(plans.clone()).expect("metrics recorder");
    metric::describe();
    match args.part {
        Part::All => unreachable!("handled above"),
        Part::Fleet => fleet_part("memory", args.shards, &args, &plans).await,
        Part::Single => single(&args, &plans).await,
        Part::Redis => fleet_part("redis", args.server_shards, &args, &plans).await,
        Part::Postgres => fleet_part("postgres", args.server_shards, &args, &plans).await,
    }
}
