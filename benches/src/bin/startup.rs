//! Start-up benchmark: from process start to a worker ready to read
//! (leases taken, readers open, the first `GetRecords` of every shard
//! handed to its processor, empty on a restart), on the memory store and on DynamoDB (moto), beside the
//! emulator's own first-`GetRecords` latency measured the same way.
//!
//! The stream: 4 shards with a few records each, served by the embedded
//! ferrokinesis endpoint in a *separate process* (this binary with
//! `--role emulator`), or any endpoint given with `--endpoint`. Every
//! measured consumer is a fresh process of its own; the figure is the time
//! from spawning it to the line it prints once ready, read by the parent
//! (so it includes exec, the runtime and the clients' set-up). Rounds
//! alternate the three consumers:
//!
//! - `raw` (the baseline): an SDK client, `ListShards`, then per shard
//!   `GetShardIterator(TRIM_HORIZON)` + `GetRecords`, concurrently, until
//!   every shard answered its first `GetRecords`: what any consumer of
//!   this emulator must wait for;
//! - `engine` on `MemoryStore`: one `Worker` with a fresh lease table;
//! - `engine` on `DynamoStore` (moto, from `KCL_BENCH_DYNAMO_ENDPOINT` or
//!   `KCL_TEST_DYNAMO_ENDPOINT`; skipped when unset): a fresh application
//!   each round, so the lease and heartbeat tables are created, then a
//!   restart on the same tables after a graceful stop (leases exist,
//!   released).
//!
//! Each child also prints where its time went (from the start of `main`).
//!
//! ```sh
//! source scripts/lib/servers.sh; start_all_servers
//! cargo run --release -p kcl-benches --bin startup [-- --rounds 7]
//! ```

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType, StreamStatus};
use clap::{Parser, ValueEnum};
use kcl_core::retrieval::kinesis::KinesisSource;
use kcl_core::testkit::kinesis::client;
use kcl_core::testkit::kinesis::{EmbeddedKinesis, fast_options};
use kcl_core::{LeaseStore, Worker};
use kcl_store_memory::MemoryStore;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Role {
    /// Orchestrate: emulator, seed, rounds, figures.
    Bench,
    /// Serve the embedded ferrokinesis endpoint until stdin closes.
    Emulator,
    /// First records of every shard with the raw SDK client.
    Raw,
    /// First batch of every shard through a worker.
    Engine,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum StoreKind {
    Memory,
    Dynamodb,
}

#[derive(Parser, Debug)]
#[command(about = "Process start to a worker ready to read, vs the emulator's first GetRecords")]
struct Args {
    #[arg(long, value_enum, default_value = "bench")]
    role: Role,
    #[arg(long, value_enum, default_value = "memory")]
    store: StoreKind,
    /// A standalone emulator (or Kinesis) to use instead of the embedded one.
    #[arg(long, env = "KCL_BENCH_KINESIS_ENDPOINT")]
    endpoint: Option<String>,
    /// DynamoDB endpoint (moto) for the DynamoDB rounds.
    #[arg(long, env = "KCL_BENCH_DYNAMO_ENDPOINT")]
    dynamo_endpoint: Option<String>,
    #[arg(long, default_value = "")]
    stream: String,
    /// The engine's application (and DynamoDB table) name.
    #[arg(long, default_value = "")]
    application: String,
    #[arg(long, default_value_t = 4)]
    shards: i32,
    /// Rounds of each consumer (the median is reported).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
}

/// Milliseconds since `t`.
fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// Print one line and flush it at once: the parent times its arrival.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let started = Instant::now();
    let args = Args::parse();
    match args.role {
        Role::Emulator => emulator().await,
        Role::Raw => raw(&args, started).await,
        Role::Engine => engine(&args, started).await,
        Role::Bench => bench(args).await,
    }
}

async fn emulator() {
    let server = EmbeddedKinesis::start(fast_options())
        .await
        .expect("start ferrokinesis");
    say(&format!("ENDPOINT {}", server.endpoint));
    // Serve until the parent closes our stdin.
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

async fn raw(args: &Args, started: Instant) {
    let endpoint = args.endpoint.as_deref().expect("endpoint");
    let c = client(endpoint);
    let shards = c
        .list_shards()
        .stream_name(&args.stream)
        .send()
        .await
        .expect("list shards");
    let listed = ms(started);
    let mut tasks = Vec::new();
    for shard in shards.shards() {
        let c = c.clone();
        let stream = args.stream.clone();
        let shard_id = shard.shard_id().to_owned();
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let it = c
                .get_shard_iterator()
                .stream_name(&stream)
                .shard_id(&shard_id)
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send()
                .await
                .expect("iterator")
                .shard_iterator
                .expect("iterator");
            let iterator_ms = ms(t);
            // The first response is the moment a consumer can read (Kinesis
            // may answer a shard's first reads with no records; so may the
            // engine's first batch on a restart).
            let t = Instant::now();
            let out = c
                .get_records()
                .shard_iterator(&it)
                .limit(10_000)
                .send()
                .await
                .expect("get records");
            let with_records = usize::from(!out.records().is_empty());
            (iterator_ms, ms(t), with_records)
        }));
    }
    let mut iterator_ms: f64 = 0.0;
    let mut get_ms: f64 = 0.0;
    let mut with_records = 0;
    for t in tasks {
        let (i, g, n) = t.await.expect("shard task");
        iterator_ms = iterator_ms.max(i);
        get_ms = get_ms.max(g);
        with_records += n;
    }
    let ready = ms(started);
    say(&format!("READY {ready:.3}"));
    say(&format!(
        "DETAIL listed at {listed:.1} ms; slowest GetShardIterator {iterator_ms:.1} ms, slowest first GetRecords {get_ms:.1} ms ({with_records} of {} shards returned records in it)",
        shards.shards().len()
    ));
}

async fn engine(args: &Args, started: Instant) {
    let endpoint = args.endpoint.as_deref().expect("endpoint");
    let source = KinesisSource::builder()
        .stream(&args.stream)
        .client(client(endpoint))
        .build()
        .await
        .expect("source");
    let source_ms = ms(started);
    let store: Arc<dyn LeaseStore> = match args.store {
        StoreKind::Memory => Arc::new(
            MemoryStore::builder()
                .application(&args.application)
                .build()
                .expect("store"),
        ),
        StoreKind::Dynamodb => Arc::new(
            kcl_store_dynamo::DynamoStore::builder()
                .application(&args.application)
                .endpoint_url(args.dynamo_endpoint.as_deref().expect("dynamo endpoint"))
                .region("us-east-1")
                .build()
                .await
                .expect("store"),
        ),
    };
    let store_ms = ms(started);
    let shards = args.shards as usize;
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let with_records = Arc::new(AtomicUsize::new(0));
    let ready = CancellationToken::new();
    let worker = {
        let seen = seen.clone();
        let ready = ready.clone();
        let with_records = with_records.clone();
        Worker::builder()
            .lease_store(store)
            .source(Arc::new(source))
            .worker_id("startup-1")
            // A restart reads after the checkpoint and finds nothing: its
            // first (empty) GetRecords is the moment it is ready too.
            .deliver_empty_batches(true)
            .process_with(move |input| {
                let seen = seen.clone();
                let ready = ready.clone();
                let with_records = with_records.clone();
                async move {
                    let mut seen = seen.lock().unwrap();
                    if seen.insert(input.shard_id.clone()) && !input.records().is_empty() {
                        with_records.fetch_add(1, Ordering::Relaxed);
                    }
                    if seen.len() == shards {
                        ready.cancel();
                    }
                    Ok(())
                }
            })
            .build()
            .expect("worker")
    };
    let stop = CancellationToken::new();
    let run = tokio::spawn(worker.run(stop.clone()));
    ready.cancelled().await;
    let ready_ms = ms(started);
    say(&format!("READY {ready_ms:.3}"));
    say(&format!(
        "DETAIL source built at {source_ms:.1} ms, store built at {store_ms:.1} ms, every shard's first batch at {ready_ms:.1} ms ({} with records)",
        with_records.load(Ordering::Relaxed)
    ));
    // Graceful: checkpoint and release, so a restart finds free leases.
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(15), run).await;
}

async fn seed(c: &Client, stream: &str, shards: i32) {
    c.create_stream()
        .stream_name(stream)
        .shard_count(shards)
        .send()
        .await
        .expect("create stream");
    loop {
        let s = c.describe_stream_summary().stream_name(stream).send().await;
        if s.ok()
            .and_then(|s| s.stream_description_summary)
            .map(|d| d.stream_status)
            == Some(StreamStatus::Active)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Explicit hash keys put records in every shard.
    let width = u128::MAX / shards as u128;
    let entries: Vec<_> = (0..shards as u128 * 5)
        .map(|j| {
            PutRecordsRequestEntry::builder()
                .partition_key(format!("pk-{j}"))
                .explicit_hash_key((width * (j % shards as u128) + width / 2).to_string())
                .data(Blob::new(vec![b'x'; 100]))
                .build()
                .unwrap()
        })
        .collect();
    let out = c
        .put_records()
        .stream_name(stream)
        .set_records(Some(entries))
        .send()
        .await
        .expect("put records");
    assert_eq!(out.failed_record_count(), Some(0));
}

/// One measured child: (spawn to its READY line, its own READY figure, its
/// detail line).
struct Measured {
    spawn_to_ready_ms: f64,
    main_to_ready_ms: f64,
    detail: String,
}

fn run_child(role: &str, extra: &[&str]) -> Measured {
    let exe = std::env::current_exe().expect("own path");
    let spawned = Instant::now();
    let mut child = Command::new(exe)
        .arg("--role")
        .arg(role)
        .args(extra)
        // The SDK's default chain (as a user's DynamoStore would load it)
        // finds these first, so no profile file or IMDS is probed.
        .env("AWS_ACCESS_KEY_ID", "bench")
        .env("AWS_SECRET_ACCESS_KEY", "bench")
        .env("AWS_REGION", "us-east-1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut spawn_to_ready_ms = f64::NAN;
    let mut main_to_ready_ms = f64::NAN;
    let mut detail = String::new();
    for line in lines.by_ref() {
        let line = line.expect("child output");
        if let Some(v) = line.strip_prefix("READY ") {
            spawn_to_ready_ms = ms(spawned);
            main_to_ready_ms = v.parse().unwrap_or(f64::NAN);
        } else if let Some(d) = line.strip_prefix("DETAIL ") {
            detail = d.to_string();
        }
    }
    let status = child.wait().expect("child exit");
    assert!(
        status.success() && spawn_to_ready_ms.is_finite(),
        "{role} child failed ({status})"
    );
    Measured {
        spawn_to_ready_ms,
        main_to_ready_ms,
        detail,
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn bench(args: Args) {
    let dynamo = args
        .dynamo_endpoint
        .clone()
        .or_else(|| std::env::var("KCL_TEST_DYNAMO_ENDPOINT").ok())
        .filter(|e| !e.is_empty());
    let mut emulator_child = None;
    let endpoint = match &args.endpoint {
        Some(e) => e.clone(),
        None => {
            let exe = std::env::current_exe().expect("own path");
            let mut child = Command::new(exe)
                .args(["--role", "emulator"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("start emulator process");
            let mut line = String::new();
            BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut line)
                .expect("emulator endpoint");
            let e = line
                .trim()
                .strip_prefix("ENDPOINT ")
                .expect("endpoint line")
                .to_owned();
            emulator_child = Some(child);
            e
        }
    };
    let stream = format!("startup-{:08x}", rand::random::<u32>());
    seed(&client(&endpoint), &stream, args.shards).await;
    let shards = args.shards.to_string();
    let base = [
        "--endpoint",
        endpoint.as_str(),
        "--stream",
        stream.as_str(),
        "--shards",
        shards.as_str(),
    ];
    println!(
        "start-up: {} shards of ferrokinesis in its own process at {endpoint}; {} rounds, alternating; \
         each figure is spawn -> every shard's first records (median; min-max)",
        args.shards, args.rounds
    );
    if dynamo.is_none() {
        println!(
            "  (DynamoDB rounds skipped: set KCL_TEST_DYNAMO_ENDPOINT, e.g. via scripts/lib/servers.sh)"
        );
    }
    let names = [
        "raw SDK client (emulator's first GetRecords)",
        "engine, memory store",
        "engine, DynamoDB (moto), new tables",
        "engine, DynamoDB (moto), restart",
    ];
    let mut figures: Vec<Vec<Measured>> = (0..names.len()).map(|_| Vec::new()).collect();
    for round in 0..args.rounds {
        figures[0].push(run_child("raw", &base));
        let app = format!("startup-{round}-{:08x}", rand::random::<u32>());
        let mut memory = base.to_vec();
        memory.extend(["--store", "memory", "--application", &app]);
        figures[1].push(run_child("engine", &memory));
        if let Some(dynamo) = &dynamo {
            let mut d = base.to_vec();
            d.extend([
                "--store",
                "dynamodb",
                "--application",
                &app,
                "--dynamo-endpoint",
                dynamo,
            ]);
            figures[2].push(run_child("engine", &d));
            figures[3].push(run_child("engine", &d));
        }
    }
    if let Some(mut child) = emulator_child {
        drop(child.stdin.take());
        let _ = child.wait();
    }
    let mut medians = Vec::new();
    for (name, runs) in names.iter().zip(&figures) {
        if runs.is_empty() {
            medians.push(f64::NAN);
            continue;
        }
        let mut spawn: Vec<f64> = runs.iter().map(|m| m.spawn_to_ready_ms).collect();
        let mut main: Vec<f64> = runs.iter().map(|m| m.main_to_ready_ms).collect();
        let m = median(&mut spawn);
        medians.push(m);
        println!(
            "  {name:<46} {m:>7.1} ms ({:.1}-{:.1}); from main {:.1} ms",
            spawn[0],
            spawn[spawn.len() - 1],
            median(&mut main)
        );
        println!("      last round: {}", runs[runs.len() - 1].detail);
    }
    let raw = medians[0];
    println!(
        "  memory store: {:.1} ms = {:.2}x the raw first GetRecords (goal <= 100 ms)",
        medians[1],
        medians[1] / raw
    );
    if dynamo.is_some() {
        println!(
            "  DynamoDB (moto): new tables {:.1} ms = {:.2}x raw, restart {:.1} ms = {:.2}x raw (goal <= 300 ms)",
            medians[2],
            medians[2] / raw,
            medians[3],
            medians[3] / raw
        );
    }
}
