//! kcl demo: three workers share a Kinesis stream and you watch them.
//!
//! ```sh
//! cargo run -p kcl-examples --bin demo
//! ```
//!
//! With no flags it needs nothing but cargo: it starts an embedded Kinesis
//! endpoint (the ferrokinesis emulator, in this process, on a loopback
//! port), creates a 4-shard stream, produces records in the background, and
//! runs three workers on one in-memory lease store. Every second it shows
//! which worker owns which shard, records/s and checkpoints per worker;
//! halfway through it stops one worker and you see its shards move to the
//! others; after 20 s it drains, stops and prints a one-screen summary.
//!
//! Pointed at a real stream it is a usable consumer (it does not produce
//! unless `--produce` is given, and runs until Ctrl-C unless `--seconds`):
//!
//! ```sh
//! # AWS, credentials and region from the standard chain:
//! cargo run -p kcl-examples --bin demo -- --stream my-stream --print
//! # an emulator:
//! cargo run -p kcl-examples --bin demo -- --endpoint http://127.0.0.1:4567 --stream s
//! ```

use std::collections::{BTreeMap, HashSet};
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, StreamStatus};
use clap::Parser;
use kcl_core::retrieval::kinesis::KinesisSource;
use kcl_core::testkit::kinesis::{EmbeddedKinesis, fast_options};
use kcl_core::{
    Checkpointer, ExtendedSequenceNumber, InitialPosition, LeaseStore, ProcessRecordsInput,
    ShardId, ShardProcessor, Worker,
};
use kcl_store_memory::MemoryStore;
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
#[command(about = "Watch three kcl workers share a Kinesis stream")]
struct Args {
    /// Kinesis endpoint (an emulator). Default: AWS when --stream is given,
    /// else an embedded emulator.
    #[arg(long, env = "KCL_DEMO_ENDPOINT")]
    endpoint: Option<String>,
    /// An existing stream to consume. Default: create a fresh one.
    #[arg(long, env = "KCL_DEMO_STREAM")]
    stream: Option<String>,
    /// Region (default: the standard chain; us-east-1 for emulators).
    #[arg(long)]
    region: Option<String>,
    /// Shards of the stream the demo creates.
    #[arg(long, default_value_t = 4)]
    shards: i32,
    /// Workers to run.
    #[arg(long, default_value_t = 3)]
    workers: usize,
    /// Run time in seconds. Default: 20 for the demo stream, until Ctrl-C
    /// for an existing stream.
    #[arg(long)]
    seconds: Option<u64>,
    /// Records per second to produce (into the demo stream, or into an
    /// existing one with --produce).
    #[arg(long, default_value_t = 500)]
    rate: u64,
    /// Produce into an existing stream too.
    #[arg(long)]
    produce: bool,
    /// Stop the last worker after this many seconds (default: halfway
    /// through the demo; never for an existing stream).
    #[arg(long)]
    stop_worker_after: Option<u64>,
    /// Print every record (partition key and payload) instead of the
    /// progress display.
    #[arg(long)]
    print: bool,
    /// Where new shards start: trim-horizon or latest.
    #[arg(long, default_value = "trim-horizon")]
    initial_position: String,
    /// Read by enhanced fan-out (SubscribeToShard through a consumer named
    /// "kcl-demo", registered if absent) instead of polling.
    #[arg(long)]
    fan_out: bool,
    /// Where the workers' metrics go: `--metrics-addr` (Prometheus) and,
    /// built with the `cloudwatch` feature, `--cloudwatch-namespace`.
    #[command(flatten)]
    metrics: kcl_cli::metrics_export::MetricsArgs,
}

/// What the workers did, shared with the display.
#[derive(Default)]
struct Stats {
    workers: Mutex<BTreeMap<String, WorkerStats>>,
    consumed: Mutex<HashSet<(String, String)>>,
    duplicates: AtomicU64,
    first_record: Mutex<Option<Duration>>,
}

#[derive(Default, Clone)]
struct WorkerStats {
    records: u64,
    checkpoints: u64,
    millis_behind: u64,
    stopped: bool,
}

struct DemoProcessor {
    worker: String,
    stats: Arc<Stats>,
    started: Instant,
    print: bool,
}

impl ShardProcessor for DemoProcessor {
    async fn process_records(
        &mut self,
        input: ProcessRecordsInput,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), kcl_core::BoxError> {
        if input.records().is_empty() {
            return Ok(());
        }
        {
            let mut first = self.stats.first_record.lock().unwrap();
            first.get_or_insert_with(|| self.started.elapsed());
        }
        {
            let mut consumed = self.stats.consumed.lock().unwrap();
            for r in input.records() {
                let key = (input.shard_id.to_string(), r.sequence_number.to_string());
                if !consumed.insert(key) {
                    self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
                }
                if self.print {
                    println!(
                        "{} {} {} {}",
                        self.worker,
                        input.shard_id,
                        r.partition_key,
                        String::from_utf8_lossy(&r.data)
                    );
                }
            }
        }
        checkpointer.checkpoint().await?;
        let mut workers = self.stats.workers.lock().unwrap();
        let w = workers.entry(self.worker.clone()).or_default();
        w.records += input.records().len() as u64;
        w.checkpoints += 1;
        w.millis_behind = input.millis_behind_latest.unwrap_or(0);
        Ok(())
    }
}

fn emulator_client(endpoint: &str, region: Option<&str>) -> Client {
    let conf = aws_sdk_kinesis::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.unwrap_or("us-east-1").to_owned()))
        .credentials_provider(Credentials::new("demo", "demo", None, None, "demo"))
        .endpoint_url(endpoint)
        .retry_config(aws_sdk_kinesis::config::retry::RetryConfig::disabled())
        .build();
    Client::from_conf(conf)
}

async fn create_stream(client: &Client, stream: &str, shards: i32) -> Result<(), String> {
    client
        .create_stream()
        .stream_name(stream)
        .shard_count(shards)
        .send()
        .await
        .map_err(|e| {
            format!(
                "CreateStream: {}",
                aws_sdk_kinesis::error::DisplayErrorContext(e)
            )
        })?;
    for _ in 0..600 {
        let s = client
            .describe_stream_summary()
            .stream_name(stream)
            .send()
            .await;
        if s.ok()
            .and_then(|s| s.stream_description_summary)
            .map(|d| d.stream_status)
            == Some(StreamStatus::Active)
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("stream {stream} did not become ACTIVE"))
}

/// Put `rate` records a second, in 10 batches a second, until cancelled.
async fn produce(
    client: Client,
    stream: String,
    rate: u64,
    produced: Arc<AtomicU64>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut next = 0u64;
    let mut carry = 0.0f64;
    while !stop.is_cancelled() {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => break,
        }
        carry += rate as f64 / 10.0;
        let n = carry as u64;
        carry -= n as f64;
        let mut entries = Vec::new();
        for _ in 0..n.min(500) {
            entries.push(
                PutRecordsRequestEntry::builder()
                    .partition_key(format!("user-{}", next % 97))
                    .data(Blob::new(format!("{{\"event\":{next},\"what\":\"demo\"}}")))
                    .build()
                    .expect("entry"),
            );
            next += 1;
        }
        if entries.is_empty() {
            continue;
        }
        match client
            .put_records()
            .stream_name(&stream)
            .set_records(Some(entries.clone()))
            .send()
            .await
        {
            Ok(out) => {
                let ok =
                    entries.len() as u64 - out.failed_record_count().unwrap_or(0).max(0) as u64;
                produced.fetch_add(ok, Ordering::Relaxed);
            }
            Err(e) => eprintln!(
                "producer: {}",
                aws_sdk_kinesis::error::DisplayErrorContext(e)
            ),
        }
    }
}

fn short(shard: &str) -> String {
    shard
        .strip_prefix("shardId-")
        .map(|s| s.trim_start_matches('0'))
        .map(|s| {
            if s.is_empty() {
                "0".to_owned()
            } else {
                s.to_owned()
            }
        })
        .unwrap_or_else(|| shard.to_owned())
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let exporters = match args.metrics.install(None).await {
        Ok(exporters) => exporters,
        Err(e) => {
            eprintln!("demo: {e}");
            std::process::exit(2);
        }
    };
    let result = run(args).await;
    exporters.flush().await;
    if let Err(e) = result {
        eprintln!("demo: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), String> {
    let started = Instant::now();
    if args.workers == 0 {
        return Err("--workers must be at least 1".into());
    }
    let initial = match args.initial_position.as_str() {
        "trim-horizon" => InitialPosition::TrimHorizon,
        "latest" => InitialPosition::Latest,
        other => {
            return Err(format!(
                "--initial-position {other:?}: use trim-horizon or latest"
            ));
        }
    };

    // Where the stream is.
    let mut _embedded = None;
    let demo_stream = args.stream.is_none();
    let (client, where_) = match (&args.endpoint, &args.stream) {
        (Some(endpoint), _) => (
            emulator_client(endpoint, args.region.as_deref()),
            format!("endpoint {endpoint}"),
        ),
        (None, Some(_)) => {
            let mut loader = aws_config::defaults(BehaviorVersion::latest());
            if let Some(r) = &args.region {
                loader = loader.region(Region::new(r.clone()));
            }
            let conf = loader.load().await;
            (
                Client::from_conf(
                    aws_sdk_kinesis::config::Builder::from(&conf)
                        .retry_config(aws_sdk_kinesis::config::retry::RetryConfig::disabled())
                        .build(),
                ),
                format!(
                    "AWS {}",
                    conf.region()
                        .map(|r| r.to_string())
                        .unwrap_or_else(|| "(no region)".into())
                ),
            )
        }
        (None, None) => {
            let server = EmbeddedKinesis::start(fast_options())
                .await
                .map_err(|e| format!("starting the embedded emulator: {e}"))?;
            let client = emulator_client(&server.endpoint, None);
            let where_ = format!("embedded ferrokinesis at {}", server.endpoint);
            _embedded = Some(server);
            (client, where_)
        }
    };
    let stream = match &args.stream {
        Some(s) => s.clone(),
        None => {
            let s = format!("kcl-demo-{:06x}", rand::random::<u32>() & 0xff_ffff);
            create_stream(&client, &s, args.shards).await?;
            s
        }
    };
    let seconds = args.seconds.or(demo_stream.then_some(20));
    let stop_after = args
        .stop_worker_after
        .or(if demo_stream && args.workers > 1 {
            seconds.map(|s| s / 2)
        } else {
            None
        });

    // Pacing: Kinesis' limits for a real stream; brisk for the emulator.
    let mut builder = KinesisSource::builder()
        .stream(&stream)
        .client(client.clone());
    if args.endpoint.is_some() || demo_stream {
        builder = builder
            .min_call_interval(Duration::from_millis(100))
            .idle_time(Duration::from_millis(250));
    }
    let polling = builder.build().await.map_err(|e| e.to_string())?;
    let source: Arc<dyn kcl_core::retrieval::ShardSource> = if args.fan_out {
        Arc::new(
            polling
                .fan_out()
                .application("kcl-demo")
                .build()
                .await
                .map_err(|e| e.to_string())?,
        )
    } else {
        Arc::new(polling)
    };
    let store = Arc::new(
        MemoryStore::builder()
            .application("kcl-demo")
            .build()
            .map_err(|e| e.to_string())?,
    );

    // Producer.
    let produced = Arc::new(AtomicU64::new(0));
    let stop_producer = CancellationToken::new();
    let producer = (demo_stream || args.produce).then(|| {
        tokio::spawn(produce(
            client.clone(),
            stream.clone(),
            args.rate,
            produced.clone(),
            stop_producer.clone(),
        ))
    });

    // Workers.
    let stats = Arc::new(Stats::default());
    let mut workers = BTreeMap::new();
    for i in 1..=args.workers {
        let id = format!("worker-{i}");
        stats
            .workers
            .lock()
            .unwrap()
            .insert(id.clone(), WorkerStats::default());
        let (tag, st, print) = (id.clone(), stats.clone(), args.print);
        let worker = Worker::builder()
            .worker_id(&id)
            .lease_store(store.clone())
            .source(source.clone())
            .lease_duration(Duration::from_secs(3))
            .initial_position(initial)
            .processor(move |_: &ShardId| DemoProcessor {
                worker: tag.clone(),
                stats: st.clone(),
                started,
                print,
            })
            .build()
            .map_err(|e| e.to_string())?;
        let cancel = CancellationToken::new();
        workers.insert(id, (cancel.clone(), tokio::spawn(worker.run(cancel))));
    }

    // Display until the time is up or Ctrl-C.
    let ctrl_c = Arc::new(AtomicBool::new(false));
    {
        let ctrl_c = ctrl_c.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                ctrl_c.store(true, Ordering::SeqCst);
            }
        });
    }
    let tty = std::io::stdout().is_terminal() && !args.print;
    let mut events: Vec<String> = Vec::new();
    let mut owners: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut last_counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut moves = 0usize;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut stopped_one = false;
    let header = format!("kcl demo: stream {stream} on {where_}");
    if !tty && !args.print {
        println!("{header}");
    }
    loop {
        tick.tick().await;
        let t = started.elapsed();
        if let Some(after) = stop_after
            && !stopped_one
            && t >= Duration::from_secs(after)
            && let Some(last) = workers.keys().next_back().cloned()
        {
            stopped_one = true;
            let (cancel, run) = workers.remove(&last).unwrap();
            events.push(format!(
                "{:>5.1}s  {last} stopping (graceful: checkpoint, release leases)",
                t.as_secs_f64()
            ));
            cancel.cancel();
            let _ = run.await;
            stats
                .workers
                .lock()
                .unwrap()
                .entry(last.clone())
                .or_default()
                .stopped = true;
            events.push(format!(
                "{:>5.1}s  {last} stopped",
                started.elapsed().as_secs_f64()
            ));
        }

        // Lease ownership, and moves since the last tick.
        let leases = store.list_leases().await.map_err(|e| e.to_string())?;
        let mut by_worker: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for lease in &leases {
            let shard = lease.shard_id.to_string();
            let owner = lease.owner.as_ref().map(|o| o.to_string());
            let finished = lease.checkpoint == ExtendedSequenceNumber::ShardEnd;
            if let Some(o) = &owner {
                by_worker.entry(o.clone()).or_default().push(short(&shard));
            }
            let prev = owners.insert(shard.clone(), owner.clone());
            if let Some(prev) = prev
                && prev != owner
                && !finished
            {
                moves += 1;
                events.push(format!(
                    "{:>5.1}s  shard {} {} -> {}",
                    t.as_secs_f64(),
                    short(&shard),
                    prev.as_deref().unwrap_or("(free)"),
                    owner.as_deref().unwrap_or("(free)")
                ));
            }
        }

        if !args.print {
            let snapshot = stats.workers.lock().unwrap().clone();
            let consumed = stats.consumed.lock().unwrap().len() as u64;
            let made = produced.load(Ordering::Relaxed);
            let mut out = String::new();
            if tty {
                out.push_str("\x1b[H\x1b[2J");
                out.push_str(&header);
                out.push('\n');
            }
            let total = seconds.map(|s| format!("/{s}s")).unwrap_or_default();
            out.push_str(&format!(
                "t={:.0}s{total}  produced {made}  consumed {consumed}  behind {}\n",
                t.as_secs_f64(),
                made.saturating_sub(consumed)
            ));
            if tty {
                out.push_str(&format!(
                    "{:<10} {:<8} {:<18} {:>8} {:>7} {:>11} {:>9}\n",
                    "worker", "state", "shards", "records", "rec/s", "checkpoints", "behind ms"
                ));
            }
            for (id, w) in &snapshot {
                let shards = by_worker
                    .get(id)
                    .map(|s| s.join(","))
                    .unwrap_or_else(|| "-".into());
                let rate = w.records - last_counts.get(id).copied().unwrap_or(0);
                last_counts.insert(id.clone(), w.records);
                let state = if w.stopped { "stopped" } else { "running" };
                if tty {
                    out.push_str(&format!(
                        "{id:<10} {state:<8} {shards:<18} {:>8} {rate:>7} {:>11} {:>9}\n",
                        w.records, w.checkpoints, w.millis_behind
                    ));
                } else {
                    out.push_str(&format!(
                        "  {id} {state} shards=[{shards}] records={} rec/s={rate} checkpoints={}\n",
                        w.records, w.checkpoints
                    ));
                }
            }
            if tty {
                out.push_str("\nevents:\n");
                for e in events.iter().rev().take(8).rev() {
                    out.push_str(&format!("  {e}\n"));
                }
            } else {
                for e in events.drain(..) {
                    out.push_str(&format!("  event {e}\n"));
                }
            }
            print!("{out}");
            let _ = std::io::stdout().flush();
        }

        let time_up = seconds.is_some_and(|s| t >= Duration::from_secs(s));
        if time_up || ctrl_c.load(Ordering::SeqCst) {
            break;
        }
    }

    // Stop producing, let the fleet catch up (a few seconds at most), stop.
    stop_producer.cancel();
    if let Some(p) = producer {
        let _ = p.await;
    }
    let made = produced.load(Ordering::Relaxed);
    let drain_start = Instant::now();
    while (demo_stream || args.produce)
        && (stats.consumed.lock().unwrap().len() as u64) < made
        && drain_start.elapsed() < Duration::from_secs(8)
        && !ctrl_c.load(Ordering::SeqCst)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (_, (cancel, run)) in std::mem::take(&mut workers) {
        cancel.cancel();
        let _ = run.await;
    }

    // Summary.
    let elapsed = started.elapsed().as_secs_f64();
    let consumed = stats.consumed.lock().unwrap().len() as u64;
    let snapshot = stats.workers.lock().unwrap().clone();
    let leases = store.list_leases().await.map_err(|e| e.to_string())?;
    println!();
    println!("== summary: {header}");
    println!(
        "ran {elapsed:.1}s; first record after {} ms (empty lease store, cold start)",
        stats
            .first_record
            .lock()
            .unwrap()
            .map(|d| d.as_millis().to_string())
            .unwrap_or_else(|| "-".into())
    );
    if demo_stream || args.produce {
        println!(
            "produced {made}, consumed {consumed} distinct, {} duplicates: {}",
            stats.duplicates.load(Ordering::Relaxed),
            if consumed >= made {
                "every record consumed"
            } else {
                "NOT every record consumed"
            }
        );
    } else {
        println!(
            "consumed {consumed} distinct records, {} duplicates",
            stats.duplicates.load(Ordering::Relaxed)
        );
    }
    println!("lease moves between workers: {moves}");
    println!(
        "{:<10} {:>8} {:>11} {:>9}",
        "worker", "records", "checkpoints", "rec/s"
    );
    for (id, w) in &snapshot {
        println!(
            "{id:<10} {:>8} {:>11} {:>9.0}{}",
            w.records,
            w.checkpoints,
            w.records as f64 / elapsed,
            if w.stopped { "  (stopped midway)" } else { "" }
        );
    }
    println!("checkpoints in the lease store:");
    for lease in &leases {
        println!("  {:<22} {}", lease.shard_id, lease.checkpoint);
    }
    for e in &events {
        println!("  event {e}");
    }
    Ok(())
}
