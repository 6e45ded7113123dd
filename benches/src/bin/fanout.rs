//! Enhanced fan-out against polling, in one run on one emulator.
//!
//! The emulator is the embedded ferrokinesis endpoint in a *separate
//! process* (this binary with `--role emulator`), so its CPU is not
//! counted; each consumer runs in a fresh process of its own.
//!
//! 1. Put-to-process latency and consumer CPU per record: a polling
//!    consumer and a fan-out consumer (each one `Worker` on `MemoryStore`
//!    at default settings: polling 200 ms between calls and 1 s idle,
//!    fan-out's defaults) read the same 4-shard stream at the same time
//!    while this process puts `--rate` records/s for `--seconds`; every
//!    payload carries its put time. Each reports p50/p99 of (processed −
//!    put) and its CPU time per record.
//! 2. Holding `--subscriptions` shards in one process: a process opens a
//!    fan-out reader on each shard of a stream that many shards wide and
//!    keeps reading; after it settles, it reports open sockets, RSS and
//!    CPU over a 10 s idle window. The baseline is the same process shape
//!    with polling readers at default settings.
//!
//! Caveats, printed with the figures: ferrokinesis pushes by polling its
//! own store every 200 ms, so its fan-out latency floor is ~100 ms on
//! average, where AWS quotes ~70 ms; and over plain `http://` the SDK
//! speaks HTTP/1.1, so each subscription is its own TCP connection (on AWS
//! over TLS, HTTP/2 can multiplex them).
//!
//! ```sh
//! cargo run --release -p kcl-benches --bin fanout
//! cargo run --release -p kcl-benches --bin fanout -- --subscriptions 100
//! ```

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::StreamStatus;
use clap::{Parser, ValueEnum};
use kcl_core::retrieval::kinesis::KinesisSource;
use kcl_core::retrieval::{ShardSource, StartingPosition};
use kcl_core::testkit::kinesis::client;
use kcl_core::testkit::kinesis::{EmbeddedKinesis, StoreOptions, fast_options};
use kcl_core::{InitialPosition, LeaseStore, Worker};
use kcl_store_memory::MemoryStore;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Role {
    /// Orchestrate: emulator, streams, consumers, producer, figures.
    Bench,
    /// Serve the embedded ferrokinesis endpoint until stdin closes.
    Emulator,
    /// Consume the latency stream for `--seconds` + margin and report.
    Consumer,
    /// Hold a reader on every shard of `--stream` and report resources.
    Hold,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    Polling,
    FanOut,
}

#[derive(Parser, Debug)]
#[command(about = "Enhanced fan-out vs polling: latency, CPU, 500 subscriptions")]
struct Args {
    #[arg(long, value_enum, default_value = "bench")]
    role: Role,
    #[arg(long, value_enum, default_value = "polling")]
    mode: Mode,
    #[arg(long, default_value = "")]
    endpoint: String,
    #[arg(long, default_value = "")]
    stream: String,
    /// Records put per second during the latency run.
    #[arg(long, default_value_t = 200)]
    rate: u64,
    /// Length of the latency run.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Shards (subscriptions) held by one process.
    #[arg(long, default_value_t = 500)]
    subscriptions: i32,
}

/// User + system CPU seconds of this process so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, s)| s).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    ticks as f64 / 100.0
}

/// Resident set size now, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

/// Open sockets of this process.
fn sockets() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .filter(|e| {
                    std::fs::read_link(e.path())
                        .map(|t| t.to_string_lossy().starts_with("socket:"))
                        .unwrap_or(false)
                })
                .count()
        })
        .unwrap_or(0)
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
}

async fn source(args: &Args, app: &str) -> Arc<dyn ShardSource> {
    let polling = KinesisSource::builder()
        .stream(&args.stream)
        .client(client(&args.endpoint))
        .build()
        .await
        .expect("source");
    match args.mode {
        Mode::Polling => Arc::new(polling),
        Mode::FanOut => Arc::new(
            polling
                .fan_out()
                .application(app)
                .build()
                .await
                .expect("fan-out source"),
        ),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    match args.role {
        Role::Emulator => emulator().await,
        Role::Consumer => consumer(&args).await,
        Role::Hold => hold(&args).await,
        Role::Bench => bench(args).await,
    }
}

async fn emulator() {
    let server = EmbeddedKinesis::start(StoreOptions {
        shard_limit: 2_000,
        ..fast_options()
    })
    .await
    .expect("start ferrokinesis");
    println!("ENDPOINT {}", server.endpoint);
    tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        while std::io::stdin()
            .read_line(&mut sink)
            .map(|n| n > 0)
            .unwrap_or(false)
        {}
    })
    .await
    .ok();
}

/// Run a worker for the latency window, then print latencies and CPU.
async fn consumer(args: &Args) {
    let app = format!("lat-{:?}-{:08x}", args.mode, rand::random::<u32>()).to_lowercase();
    let store: Arc<dyn LeaseStore> = Arc::new(
        MemoryStore::builder()
            .application(&app)
            .build()
            .expect("store"),
    );
    let latencies = Arc::new(Mutex::new(Vec::<f64>::new()));
    let worker = {
        let latencies = latencies.clone();
        Worker::builder()
            .lease_store(store)
            .source(source(args, &app).await)
            .worker_id("bench-1")
            .initial_position(InitialPosition::TrimHorizon)
            .process_with(move |input| {
                let latencies = latencies.clone();
                async move {
                    let now = now_nanos();
                    let mut got = Vec::with_capacity(input.records().len());
                    for r in input.records() {
                        if let Some(put) = std::str::from_utf8(&r.data)
                            .ok()
                            .and_then(|s| s.parse::<u128>().ok())
                        {
                            got.push(now.saturating_sub(put) as f64 / 1e6);
                        }
                    }
                    latencies.lock().unwrap().extend(got);
                    Ok(())
                }
            })
            .build()
            .expect("worker")
    };
    let stop = CancellationToken::new();
    let cpu_start = cpu_seconds();
    let run = tokio::spawn(worker.run(stop.clone()));
    println!("READY");
    // The producer starts after the readers settle and runs `seconds`.
    tokio::time::sleep(Duration::from_secs(args.seconds + 12)).await;
    let cpu = cpu_seconds() - cpu_start;
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), run).await;
    let mut l = latencies.lock().unwrap().clone();
    l.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        l.get(((l.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!(
        "REPORT records={} p50={:.1} p99={:.1} cpu={:.4}",
        l.len(),
        pct(0.5),
        pct(0.99),
        cpu
    );
}

/// Hold a reader on every shard; report sockets, RSS, idle CPU.
async fn hold(args: &Args) {
    let app = format!("hold-{:08x}", rand::random::<u32>());
    let source = source(args, &app).await;
    let shards = source.list_shards().await.expect("list shards");
    let opened = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for shard in shards {
        let source = source.clone();
        tasks.spawn(async move {
            let mut reader = loop {
                match source
                    .open_reader(&shard.shard_id, StartingPosition::Latest)
                    .await
                {
                    Ok(r) => break r,
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            };
            loop {
                if reader.next_batch().await.is_err() {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        });
    }
    // Let every reader open and settle.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let settle = opened.elapsed();
    let cpu0 = cpu_seconds();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle_cpu = (cpu_seconds() - cpu0) / 10.0;
    println!(
        "REPORT sockets={} rss={} idle_cpu={:.4} settle={:.1}",
        sockets(),
        rss(),
        idle_cpu,
        settle.as_secs_f64()
    );
    tasks.abort_all();
}

fn spawn_child(role: &str, mode: &str, endpoint: &str, stream: &str, args: &Args) -> Child {
    let exe = std::env::current_exe().expect("own path");
    Command::new(exe)
        .args(["--role", role, "--mode", mode, "--endpoint", endpoint])
        .args(["--stream", stream, "--seconds", &args.seconds.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child")
}

fn report(child: Child) -> Vec<(String, f64)> {
    let out = child.wait_with_output().expect("child output");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("REPORT "))
        .unwrap_or_else(|| panic!("no report: {text}"));
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.parse().unwrap_or(f64::NAN)))
        .collect()
}

fn get(r: &[(String, f64)], key: &str) -> f64 {
    r.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| *v)
        .unwrap_or(f64::NAN)
}

async fn create(c: &Client, stream: &str, shards: i32) {
    c.create_stream()
        .stream_name(stream)
        .shard_count(shards)
        .send()
        .await
        .expect("create stream");
    loop {
        let s = c.describe_stream_summary().stream_name(stream).send().await;
        if let Ok(s) = s
            && s.stream_description_summary()
                .is_some_and(|d| d.stream_status() == &StreamStatus::Active)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn bench(args: Args) {
    let exe = std::env::current_exe().expect("own path");
    let mut emulator = Command::new(exe)
        .args(["--role", "emulator"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start emulator");
    let mut line = String::new();
    BufReader::new(emulator.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("endpoint line");
    let endpoint = line
        .trim()
        .strip_prefix("ENDPOINT ")
        .expect("endpoint")
        .to_owned();
    let c = client(&endpoint);

    // 1. Latency and CPU per record, both consumers at once.
    let stream = format!("latency-{:08x}", rand::random::<u32>());
    create(&c, &stream, 4).await;
    let polling = spawn_child("consumer", "polling", &endpoint, &stream, &args);
    let fan_out = spawn_child("consumer", "fan-out", &endpoint, &stream, &args);
    tokio::time::sleep(Duration::from_secs(6)).await;
    let total = args.rate * args.seconds;
    let gap = Duration::from_secs_f64(1.0 / args.rate as f64);
    let start = tokio::time::Instant::now();
    for i in 0..total {
        tokio::time::sleep_until(start + gap * i as u32).await;
        c.put_record()
            .stream_name(&stream)
            .partition_key(format!("k{i}"))
            .data(Blob::new(now_nanos().to_string()))
            .send()
            .await
            .expect("put");
    }
    let polling = report(polling);
    let fan_out = report(fan_out);
    println!(
        "put {total} records at {}/s over {}s on 4 shards (ferrokinesis 0.7 in a separate process)",
        args.rate, args.seconds
    );
    println!();
    println!(
        "{:<9} {:>8} {:>10} {:>10} {:>15}",
        "", "records", "p50 ms", "p99 ms", "CPU us/record"
    );
    let cpu_us = |r: &[(String, f64)]| get(r, "cpu") * 1e6 / get(r, "records");
    for (name, r) in [("polling", &polling), ("fan-out", &fan_out)] {
        println!(
            "{:<9} {:>8} {:>10.1} {:>10.1} {:>15.1}",
            name,
            get(r, "records"),
            get(r, "p50"),
            get(r, "p99"),
            cpu_us(r)
        );
    }
    println!();
    println!(
        "fan-out/polling latency: p50 {:.2}, p99 {:.2}; CPU per record {:.2}",
        get(&fan_out, "p50") / get(&polling, "p50"),
        get(&fan_out, "p99") / get(&polling, "p99"),
        cpu_us(&fan_out) / cpu_us(&polling)
    );

    // 2. One process holding `subscriptions` shards.
    let wide = format!("hold-{:08x}", rand::random::<u32>());
    create(&c, &wide, args.subscriptions).await;
    let held_fan_out = report(spawn_child("hold", "fan-out", &endpoint, &wide, &args));
    let held_polling = report(spawn_child("hold", "polling", &endpoint, &wide, &args));
    println!();
    println!(
        "one process, {} shards: {:<9} {:>8} {:>10} {:>16}",
        args.subscriptions, "", "sockets", "RSS MB", "idle CPU (cores)"
    );
    for (name, r) in [("polling", &held_polling), ("fan-out", &held_fan_out)] {
        println!(
            "{:<30} {:<9} {:>8} {:>10.1} {:>16.3}",
            "",
            name,
            get(r, "sockets"),
            get(r, "rss") / (1u64 << 20) as f64,
            get(r, "idle_cpu")
        );
    }
    println!(
        "fan-out/polling with {} shards: RSS {:.2}, idle CPU {:.2}",
        args.subscriptions,
        get(&held_fan_out, "rss") / get(&held_polling, "rss"),
        get(&held_fan_out, "idle_cpu") / get(&held_polling, "idle_cpu")
    );
    println!(
        "(ferrokinesis sends an event on every subscription every 200 ms and polls its store to push; plain http:// is HTTP/1.1, one TCP connection per subscription)"
    );
    drop(emulator.stdin.take());
    let _ = emulator.wait();
    assert!(
        get(&polling, "records") >= total as f64,
        "polling saw every record"
    );
    assert!(
        get(&fan_out, "records") >= total as f64,
        "fan-out saw every record"
    );
}
