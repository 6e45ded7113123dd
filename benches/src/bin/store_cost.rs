//! Store cost at steady state: lease-store operations per shard per hour,
//! counted by a counting wrapper around each store while a fleet of
//! workers (default 10, in one process) holds an idle stream's shards
//! (default 1,000), beside Java KCL 2.x's rate at the same lease duration
//! (derived: one renew per lease per lease/3, one eventually consistent
//! scan of the whole table per worker per 20 s). On DynamoDB the consumed
//! capacity units (`kcl_dynamodb_consumed_capacity_units`) are printed too,
//! beside Java's derived units (its scans priced at what one full scan of
//! the same table consumed, its renews at what ours consumed). Then, in
//! the same run, one worker is killed and the time until every lease it
//! held is owned by a survivor is the failover figure.
//!
//! An item read is one lease or heartbeat item returned by `get_lease`,
//! `list_leases` or `list_workers`; a write is any other call (renew,
//! take, release, checkpoint, heartbeat…). Stores whose `KCL_TEST_*`
//! variable is unset are skipped.
//!
//! `cargo run --release -p kcl-benches --bin store_cost -- [--shards N] [--workers N] [--window S] [--stores memory,redis,...]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use kcl_benches::counting::Counting;
use kcl_core::testkit::FakeStream;
use kcl_core::{LeaseStore, Worker};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

const LEASE: Duration = Duration::from_secs(10);
/// Java KCL 2.x: one lease-table scan per worker every 20 s.
const JAVA_SCAN_INTERVAL: f64 = 20.0;

#[derive(Parser, Debug)]
struct Args {
    /// Shards in the idle stream.
    #[arg(long, default_value_t = 1000)]
    shards: usize,
    /// Workers in the fleet.
    #[arg(long, default_value_t = 10)]
    workers: usize,
    /// Measuring window at steady state, seconds (the slow lease listing
    /// is every 60 s per worker: use at least two minutes).
    #[arg(long, default_value_t = 180.0)]
    window: f64,
    /// Extra settling time after the fleet is balanced, seconds.
    #[arg(long, default_value_t = 10.0)]
    settle: f64,
    /// Only these stores (comma-separated: memory, redis, postgres, dynamodb).
    #[arg(long)]
    stores: Option<String>,
}

/// Consumed capacity units (tenths, as the counter counts them) per
/// operation, from the Prometheus rendering.
fn capacity(handle: &PrometheusHandle) -> (f64, f64) {
    let (mut read, mut write) = (0.0, 0.0);
    for line in handle.render().lines() {
        if !line.starts_with(kcl_store_dynamo::CONSUMED_CAPACITY_METRIC) {
            continue;
        }
        let Some((labels, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let value: f64 = value.parse().unwrap_or(0.0) / 10.0;
        if labels.contains("operation=\"Scan\"") || labels.contains("operation=\"GetItem\"") {
            read += value;
        } else {
            write += value;
        }
    }
    (read, write)
}

/// Unfinished leases per owner (uncounted: read from the inner store).
async fn loads(store: &dyn LeaseStore) -> std::collections::HashMap<Option<String>, usize> {
    let mut out = std::collections::HashMap::new();
    for lease in store.list_leases().await.unwrap_or_default() {
        if !lease.is_finished() {
            *out.entry(lease.owner.map(|o| o.to_string())).or_insert(0) += 1;
        }
    }
    out
}

fn balanced(loads: &std::collections::HashMap<Option<String>, usize>, workers: usize) -> bool {
    if loads.contains_key(&None) || loads.len() != workers {
        return false;
    }
    let max = loads.values().max().copied().unwrap_or(0);
    let min = loads.values().min().copied().unwrap_or(0);
    max - min <= 1
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .init();
    }
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .expect("metrics recorder");
    let window = Duration::from_secs_f64(args.window);
    let settle = Duration::from_secs_f64(args.settle);
    let (shards, workers) = (args.shards, args.workers);
    let lease = LEASE.as_secs_f64();
    // Java 2.x per shard per hour: renews every lease/3; each worker scans
    // every 20 s and reads every lease.
    let java_writes = 3600.0 / (lease / 3.0);
    let java_scans = 3600.0 / JAVA_SCAN_INTERVAL * workers as f64;
    let java_reads = java_scans;
    println!(
        "store_cost: {shards} shards, {workers} workers, lease {lease} s, defaults otherwise, idle \
         stream; window {window:?} after balance + {settle:?}"
    );
    println!(
        "Java 2.x (derived): {java_reads:.0} item reads + {java_writes:.0} writes per shard per hour"
    );
    let wanted: Option<Vec<String>> = args
        .stores
        .map(|s| s.split(',').map(str::to_string).collect());
    let stores = kcl_benches::stores::from_env(|name| {
        wanted.as_ref().is_none_or(|w| w.iter().any(|n| n == name))
    })
    .await;
    for (name, store) in stores {
        let counting = Arc::new(Counting::new(store));
        let stream = FakeStream::new(shards);
        let cancel = CancellationToken::new();
        let mut tasks = Vec::new();
        let started = Instant::now();
        for w in 0..workers {
            let worker = Worker::builder()
                .worker_id(format!("cost-{w}"))
                .lease_store(counting.clone())
                .source(Arc::new(stream.clone()))
                .lease_duration(LEASE)
                .process_with(|_batch| async { Ok(()) })
                .build()
                .expect("worker");
            tasks.push(tokio::spawn(worker.run(cancel.clone())));
        }
        loop {
            if balanced(&loads(counting.inner()).await, workers) {
                break;
            }
            if started.elapsed() > Duration::from_secs(600) {
                println!(
                    "{name:>9}: not balanced after 10 minutes: {:?}",
                    loads(counting.inner()).await
                );
                break;
            }
            if std::env::var_os("KCL_BENCH_TRACE").is_some() {
                println!(
                    "{:?}: {:?}",
                    started.elapsed(),
                    loads(counting.inner()).await
                );
            }
            // Listing 1,000 leases is itself load: not too often.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let to_balance = started.elapsed();
        tokio::time::sleep(settle).await;
        let c0 = counting.snapshot();
        let u0 = capacity(&handle);
        let t0 = Instant::now();
        tokio::time::sleep(window).await;
        let c1 = counting.snapshot();
        let u1 = capacity(&handle);
        let hours = t0.elapsed().as_secs_f64() / 3600.0;
        let per = |a: u64, b: u64| (b - a) as f64 / shards as f64 / hours;
        let reads = per(c0.reads, c1.reads);
        let read_calls = per(c0.read_calls, c1.read_calls);
        let writes = per(c0.writes, c1.writes);
        println!(
            "{name:>9}: {reads:>6.0} item reads ({:.2}x Java) in {read_calls:.1} calls, \
             {writes:>5.0} writes ({:.2}x Java) per shard per hour; balanced {:.1} s after start",
            reads / java_reads,
            writes / java_writes,
            to_balance.as_secs_f64(),
        );
        if name == "dynamodb" {
            // One full scan, priced by the store itself.
            let before = capacity(&handle);
            let _ = counting.inner().list_leases().await;
            let scan_units = capacity(&handle).0 - before.0;
            let (read_units, write_units) = (u1.0 - u0.0, u1.1 - u0.1);
            let write_calls = (c1.writes - c0.writes).max(1) as f64;
            let java_read_units = java_scans * scan_units / shards as f64;
            let java_write_units = java_writes * write_units / write_calls;
            let ru = read_units / shards as f64 / hours;
            let wu = write_units / shards as f64 / hours;
            println!(
                "{name:>9}: consumed {ru:.2} read units ({:.2}x Java's {java_read_units:.2}) + \
                 {wu:.1} write units ({:.2}x Java's {java_write_units:.1}) per shard per hour \
                 (one full scan = {scan_units:.1} units)",
                ru / java_read_units.max(f64::MIN_POSITIVE),
                wu / java_write_units.max(f64::MIN_POSITIVE),
            );
        }
        // Failover, same run: kill one worker, wait until a survivor owns
        // every lease it held.
        let victim = tasks.remove(0);
        victim.abort();
        let _ = victim.await;
        let killed = Instant::now();
        loop {
            let loads = loads(counting.inner()).await;
            if !loads.contains_key(&Some("cost-0".to_string())) && !loads.contains_key(&None) {
                break;
            }
            if killed.elapsed() > LEASE * 6 {
                println!(
                    "{name:>9}: failover not done after {:?}: {loads:?}",
                    LEASE * 6
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let failover = killed.elapsed().as_secs_f64();
        println!(
            "{name:>9}: failover: a killed worker's leases all owned by survivors {failover:.2} s \
             after the kill = {:.2} lease durations (goal <= 1.5)",
            failover / lease
        );
        cancel.cancel();
        for task in tasks {
            let _ = task.await;
        }
    }
}
