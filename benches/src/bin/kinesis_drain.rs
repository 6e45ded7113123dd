//! Drain benchmark: the engine against a raw `GetRecords` loop, on the same
//! stream in the same run.
//!
//! The stream: 4 shards, 200,000 records of 100 bytes (flags change it),
//! served by a standalone emulator — by default the embedded ferrokinesis
//! endpoint started in a *separate process* (this binary with
//! `--role emulator`), so the emulator's CPU is not counted; or any
//! endpoint given with `--endpoint` (kinesalite, kinesis-mock, AWS).
//!
//! Each consumer runs in a fresh process of its own (`--role raw`,
//! `--role engine`) and reports:
//! - records/s from its start to the last record;
//! - its CPU time (user + system, from /proc/self/stat) per record;
//! - its peak RSS (VmHWM);
//! - the engine also reports the cold start: process start (empty lease
//!   store) to the first record delivered to a processor.
//!
//! The raw loop is GetShardIterator(TRIM_HORIZON) + GetRecords(10,000)
//! per shard, concurrently, until each shard is caught up. The engine is
//! one `Worker` on `MemoryStore`, `KinesisSource` with `max_records`
//! 10,000, checkpointing after every batch. Neither paces its calls (the
//! emulators do not throttle reads), so both measure the consumer, not the
//! 5 calls/s limit.
//!
//! ```sh
//! cargo run --release -p kcl-benches --bin kinesis_drain
//! cargo run --release -p kcl-benches --bin kinesis_drain -- --records 50000
//! ```

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// Orchestrate: emulator, seed, raw, engine, figures.
    Bench,
    /// Serve the embedded ferrokinesis endpoint until stdin closes.
    Emulator,
    /// Drain with a raw GetRecords loop.
    Raw,
    /// Drain with the engine.
    Engine,
}

#[derive(Parser, Debug)]
#[command(about = "Engine vs raw GetRecords drain of a Kinesis stream")]
struct Args {
    #[arg(long, value_enum, default_value = "bench")]
    role: Role,
    /// A standalone emulator (or Kinesis) to use instead of the embedded one.
    #[arg(long, env = "KCL_BENCH_KINESIS_ENDPOINT")]
    endpoint: Option<String>,
    #[arg(long, default_value = "")]
    stream: String,
    #[arg(long, default_value_t = 4)]
    shards: i32,
    #[arg(long, default_value_t = 200_000)]
    records: u64,
    #[arg(long, default_value_t = 100)]
    record_bytes: usize,
}

/// (user + system CPU seconds, peak RSS bytes) of this process so far.
fn usage() -> (f64, u64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at ")".
    let after = stat.rsplit_once(')').map(|(_, s)| s).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here.
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let hwm_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    // CLK_TCK is 100 on Linux.
    (ticks as f64 / 100.0, hwm_kb * 1024)
}

#[derive(Debug, Default)]
struct Report {
    records: u64,
    seconds: f64,
    cpu_seconds: f64,
    peak_rss: u64,
    first_record_seconds: f64,
}

impl Report {
    fn line(&self) -> String {
        format!(
            "REPORT records={} seconds={:.6} cpu={:.6} rss={} first={:.6}",
            self.records, self.seconds, self.cpu_seconds, self.peak_rss, self.first_record_seconds
        )
    }

    fn parse(line: &str) -> Option<Report> {
        let rest = line.strip_prefix("REPORT ")?;
        let mut r = Report::default();
        for kv in rest.split_whitespace() {
            let (k, v) = kv.split_once('=')?;
            match k {
                "records" => r.records = v.parse().ok()?,
                "seconds" => r.seconds = v.parse().ok()?,
                "cpu" => r.cpu_seconds = v.parse().ok()?,
                "rss" => r.peak_rss = v.parse().ok()?,
                "first" => r.first_record_seconds = v.parse().ok()?,
                _ => {}
            }
        }
        Some(r)
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let started = Instant::now();
    let args = Args::parse();
    match args.role {
        Role::Emulator => emulator().await,
        Role::Raw => println!("{}", raw(&args, started).await.line()),
        Role::Engine => println!("{}", engine(&args, started).await.line()),
        Role::Bench => bench(args).await,
    }
}

async fn emulator() {
    let server = EmbeddedKinesis::start(fast_options())
        .await
        .expect("start ferrokinesis");
    println!("ENDPOINT {}", server.endpoint);
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

async fn raw(args: &Args, started: Instant) -> Report {
    let endpoint = args.endpoint.as_deref().expect("endpoint");
    let c = client(endpoint);
    let shards = c
        .list_shards()
        .stream_name(&args.stream)
        .send()
        .await
        .expect("list shards");
    let first = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for shard in shards.shards() {
        let c = c.clone();
        let stream = args.stream.clone();
        let shard_id = shard.shard_id().to_owned();
        let first = first.clone();
        tasks.push(tokio::spawn(async move {
            let mut it = c
                .get_shard_iterator()
                .stream_name(&stream)
                .shard_id(&shard_id)
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send()
                .await
                .expect("iterator")
                .shard_iterator
                .expect("iterator");
            let mut n = 0u64;
            let mut bytes = 0usize;
            loop {
                let out = c
                    .get_records()
                    .shard_iterator(&it)
                    .limit(10_000)
                    .send()
                    .await
                    .expect("get records");
                if out.records().is_empty() {
                    break;
                }
                if n == 0 {
                    let _ = first.compare_exchange(
                        0,
                        started.elapsed().as_nanos() as u64,
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                    );
                }
                n += out.records().len() as u64;
                bytes += out
                    .records()
                    .iter()
                    .map(|r| r.data().as_ref().len())
                    .sum::<usize>();
                match out.next_shard_iterator() {
                    Some(next) => it = next.to_owned(),
                    None => break,
                }
            }
            std::hint::black_box(bytes);
            n
        }));
    }
    let mut records = 0;
    for t in tasks {
        records += t.await.expect("shard task");
    }
    let seconds = started.elapsed().as_secs_f64();
    let (cpu_seconds, peak_rss) = usage();
    Report {
        records,
        seconds,
        cpu_seconds,
        peak_rss,
        first_record_seconds: first.load(Ordering::SeqCst) as f64 / 1e9,
    }
}

async fn engine(args: &Args, started: Instant) -> Report {
    let endpoint = args.endpoint.as_deref().expect("endpoint");
    let source = KinesisSource::builder()
        .stream(&args.stream)
        .client(client(endpoint))
        .max_records(10_000)
        .min_call_interval(Duration::ZERO)
        .idle_time(Duration::from_millis(200))
        .build()
        .await
        .expect("source");
    let store: Arc<dyn LeaseStore> = Arc::new(
        MemoryStore::builder()
            .application("kinesis-drain")
            .build()
            .expect("store"),
    );
    let total = args.records;
    let count = Arc::new(AtomicU64::new(0));
    let first = Arc::new(AtomicU64::new(0));
    let done = CancellationToken::new();
    let worker = {
        let count = count.clone();
        let first = first.clone();
        let done = done.clone();
        Worker::builder()
            .lease_store(store)
            .source(Arc::new(source))
            .worker_id("drain-1")
            .process_with(move |input| {
                let count = count.clone();
                let first = first.clone();
                let done = done.clone();
                async move {
                    let n = input.records().len() as u64;
                    let bytes: usize = input.records().iter().map(|r| r.data.len()).sum();
                    std::hint::black_box(bytes);
                    if n > 0 {
                        let _ = first.compare_exchange(
                            0,
                            started.elapsed().as_nanos() as u64,
                            Ordering::SeqCst,
                            Ordering::SeqCst,
                        );
                    }
                    if count.fetch_add(n, Ordering::SeqCst) + n >= total {
                        done.cancel();
                    }
                    Ok(())
                }
            })
            .build()
            .expect("worker")
    };
    let stop = CancellationToken::new();
    let run = tokio::spawn(worker.run(stop.clone()));
    done.cancelled().await;
    let seconds = started.elapsed().as_secs_f64();
    let (cpu_seconds, peak_rss) = usage();
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), run).await;
    Report {
        records: count.load(Ordering::SeqCst),
        seconds,
        cpu_seconds,
        peak_rss,
        first_record_seconds: first.load(Ordering::SeqCst) as f64 / 1e9,
    }
}

async fn seed(c: &Client, stream: &str, shards: i32, records: u64, size: usize) {
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
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let payload = vec![b'x'; size];
    let mut i = 0u64;
    let mut puts = Vec::new();
    while i < records {
        let end = (i + 500).min(records);
        let entries: Vec<_> = (i..end)
            .map(|j| {
                PutRecordsRequestEntry::builder()
                    .partition_key(format!("pk-{j}"))
                    .data(Blob::new(payload.clone()))
                    .build()
                    .unwrap()
            })
            .collect();
        let c = c.clone();
        let stream = stream.to_owned();
        puts.push(tokio::spawn(async move {
            let out = c
                .put_records()
                .stream_name(stream)
                .set_records(Some(entries))
                .send()
                .await
                .expect("put records");
            assert_eq!(out.failed_record_count(), Some(0));
        }));
        if puts.len() >= 8 {
            for p in puts.drain(..) {
                p.await.unwrap();
            }
        }
        i = end;
    }
    for p in puts {
        p.await.unwrap();
    }
}

fn run_child(args: &Args, role: &str, endpoint: &str, stream: &str) -> Report {
    let exe = std::env::current_exe().expect("own path");
    let out = Command::new(exe)
        .args(["--role", role, "--endpoint", endpoint, "--stream", stream])
        .args(["--records", &args.records.to_string()])
        .stderr(Stdio::inherit())
        .output()
        .expect("run child");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(Report::parse)
        .unwrap_or_else(|| panic!("{role} printed no report: {text}"))
}

async fn bench(args: Args) {
    let mut emulator_child = None;
    let (endpoint, emulator_name) = match &args.endpoint {
        Some(e) => (e.clone(), format!("standalone endpoint {e}")),
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
            (
                e.clone(),
                format!("ferrokinesis 0.7 in a separate process at {e}"),
            )
        }
    };
    let stream = format!("drain-{:08x}", rand::random::<u32>());
    let c = client(&endpoint);
    let t = Instant::now();
    seed(&c, &stream, args.shards, args.records, args.record_bytes).await;
    println!(
        "seeded {} records of {} bytes on {} shards in {:.1}s ({emulator_name})",
        args.records,
        args.record_bytes,
        args.shards,
        t.elapsed().as_secs_f64()
    );

    let raw = run_child(&args, "raw", &endpoint, &stream);
    let engine = run_child(&args, "engine", &endpoint, &stream);
    if let Some(mut child) = emulator_child {
        drop(child.stdin.take());
        let _ = child.wait();
    }

    let rate = |r: &Report| r.records as f64 / r.seconds;
    let cpu_us = |r: &Report| r.cpu_seconds * 1e6 / r.records as f64;
    println!();
    println!(
        "{:<8} {:>9} {:>12} {:>14} {:>10} {:>14}",
        "", "records", "records/s", "CPU us/record", "peak RSS", "first record"
    );
    for (name, r) in [("raw", &raw), ("engine", &engine)] {
        println!(
            "{:<8} {:>9} {:>12.0} {:>14.2} {:>7.1} MB {:>12.0} ms",
            name,
            r.records,
            rate(r),
            cpu_us(r),
            r.peak_rss as f64 / (1 << 20) as f64,
            r.first_record_seconds * 1e3
        );
    }
    println!();
    println!(
        "engine/raw records/s: {:.2}  (goal >= 0.90)",
        rate(&engine) / rate(&raw)
    );
    println!(
        "engine CPU per record: {:.2} us, raw {:.2} us, engine overhead {:+.2} us  (goal: engine < 2 us)",
        cpu_us(&engine),
        cpu_us(&raw),
        cpu_us(&engine) - cpu_us(&raw)
    );
    println!(
        "engine cold start to first record: {:.0} ms  (goal < 1000 ms)",
        engine.first_record_seconds * 1e3
    );
    println!(
        "engine peak RSS: {:.1} MB  (goal < 50 MB)",
        engine.peak_rss as f64 / (1 << 20) as f64
    );
    assert_eq!(raw.records, args.records, "raw loop drained everything");
    assert!(engine.records >= args.records, "engine drained everything");
}
