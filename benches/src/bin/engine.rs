//! Engine figures, printed (not asserted):
//!
//! 1. throughput: records/s through a `Worker` (no-op processor through the
//!    closure shortcut, so a checkpoint per batch, memory store) against
//!    draining the same fake stream directly with its readers in the same
//!    run; the figure is the ratio (the engine should cost under 10%);
//! 2. failover, graceful hand-over and rebalance times on the real clock,
//!    with a short lease so the run stays short, as multiples of the
//!    lease duration or taker rounds: a crash to the shard's next record
//!    elsewhere; an owner cut off from its store, its own stop and the
//!    peer's first record (the owner must stop first); a graceful release
//!    and a balancing hand-off, resume time and duplicates; a joiner
//!    balanced, for 64 and 1,024 shards.
//!
//! Run: `cargo run --release -p kcl-benches --bin engine [-- --records N]`
//! (`--part throughput|timings` for one of the two; `--side direct|engine`
//! runs one side of the throughput figure alone, for a profiler).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use kcl_benches::process::cpu as process_cpu;
use kcl_core::retrieval::{ShardDescription, ShardSource, StartingPosition};
use kcl_core::testkit::FakeStream;
use kcl_core::testkit::engine::{Event, PausableLeaseStore, Recorder};
use kcl_core::{LeaseStore, Worker};
use kcl_store_memory::MemoryStore;
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
struct Args {
    /// Records in the throughput stream (enough that the engine's start,
    /// about 2 ms and printed on its own, is a small part of the run).
    #[arg(long, default_value_t = 2_000_000)]
    records: usize,
    /// Shards in the throughput stream.
    #[arg(long, default_value_t = 4)]
    shards: usize,
    /// Repetitions of each throughput measurement (best is kept).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Lease duration for the timing scenarios, in milliseconds.
    #[arg(long, default_value_t = 2_000)]
    lease_ms: u64,
    /// Which figures to print.
    #[arg(long, value_enum, default_value = "all")]
    part: Part,
    /// Which side of the throughput figure to run (one side alone is for
    /// profiling it, e.g. under `perf stat` or `valgrind --tool=callgrind`).
    #[arg(long, value_enum, default_value = "both")]
    side: Side,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Part {
    All,
    Throughput,
    Timings,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Side {
    Both,
    Direct,
    Engine,
}

/// Wall and CPU time of one drain.
#[derive(Clone, Copy, Debug)]
struct Timed {
    wall: Duration,
    cpu: Duration,
}

async fn timed<F: Future<Output = ()>>(run: F) -> Timed {
    let (wall, cpu) = (Instant::now(), process_cpu());
    run.await;
    Timed {
        wall: wall.elapsed(),
        cpu: process_cpu().saturating_sub(cpu),
    }
}

fn store() -> Arc<MemoryStore> {
    Arc::new(
        MemoryStore::builder()
            .application("bench-engine")
            .build()
            .unwrap(),
    )
}

/// Each shard of `stream` with the number of records it holds (counted
/// once: `records` clones the whole shard).
fn shard_sizes(stream: &FakeStream) -> Vec<(ShardDescription, usize)> {
    stream
        .shards()
        .into_iter()
        .map(|s| {
            let n = stream.records(&s.shard_id).unwrap().len();
            (s, n)
        })
        .collect()
}

/// Read every shard to its current end with the stream's own readers.
async fn drain_directly(
    stream: &FakeStream,
    shards: Vec<(ShardDescription, usize)>,
    total: usize,
) -> Timed {
    timed(async move {
        let mut tasks = Vec::new();
        for (shard, expected) in shards {
            let stream = stream.clone();
            tasks.push(tokio::spawn(async move {
                let mut reader = stream
                    .open_reader(&shard.shard_id, StartingPosition::TrimHorizon)
                    .await
                    .unwrap();
                let mut n = 0;
                while n < expected {
                    n += reader.next_batch().await.unwrap().records.len();
                }
                n
            }));
        }
        let mut n = 0;
        for t in tasks {
            n += t.await.unwrap();
        }
        assert_eq!(n, total);
    })
    .await
}

/// Run a worker over the stream until every record was processed (from
/// its start to the last record; the graceful stop is not timed).
async fn drain_with_engine(stream: &FakeStream, total: usize) -> (Timed, Duration) {
    let count = Arc::new(AtomicUsize::new(0));
    // The last batch ends the clock at once (no polling slack).
    let done = CancellationToken::new();
    let first = Arc::new(std::sync::OnceLock::new());
    let started = Instant::now();
    let worker = {
        let (count, done, first) = (count.clone(), done.clone(), first.clone());
        Worker::builder()
            .worker_id("bench")
            .lease_store(store())
            .source(Arc::new(stream.clone()))
            .process_with(move |batch| {
                let (count, done, first) = (count.clone(), done.clone(), first.clone());
                async move {
                    first.get_or_init(|| started.elapsed());
                    let n = batch.records().len();
                    if count.fetch_add(n, Ordering::Relaxed) + n >= total {
                        done.cancel();
                    }
                    Ok(())
                }
            })
            .build()
            .unwrap()
    };
    let cancel = CancellationToken::new();
    let (wall, cpu) = (Instant::now(), process_cpu());
    let run = tokio::spawn(worker.run(cancel.clone()));
    done.cancelled().await;
    let took = Timed {
        wall: wall.elapsed(),
        cpu: process_cpu().saturating_sub(cpu),
    };
    cancel.cancel();
    run.await.unwrap().unwrap();
    (took, first.get().copied().unwrap_or_default())
}

struct Running {
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<kcl_core::Result<()>>,
}

fn spawn_worker(
    id: &str,
    store: &Arc<MemoryStore>,
    stream: &FakeStream,
    recorder: &Recorder,
    lease: Duration,
) -> Running {
    spawn_on(id, store.clone(), stream, recorder, lease)
}

fn spawn_on(
    id: &str,
    store: Arc<dyn LeaseStore>,
    stream: &FakeStream,
    recorder: &Recorder,
    lease: Duration,
) -> Running {
    let worker = Worker::builder()
        .worker_id(id)
        .lease_store(store)
        .source(Arc::new(stream.clone()))
        .lease_duration(lease)
        .scan_interval(Duration::from_millis(100))
        .processor(recorder.factory(id))
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    Running {
        cancel: cancel.clone(),
        task: tokio::spawn(worker.run(cancel)),
    }
}

async fn owned_by(store: &MemoryStore, worker: &str) -> HashSet<String> {
    store
        .list_leases()
        .await
        .unwrap()
        .into_iter()
        .filter(|l| l.owner.as_ref().is_some_and(|o| o.as_str() == worker))
        .map(|l| l.shard_id.to_string())
        .collect()
}

async fn counts(store: &MemoryStore, workers: &[&str]) -> Vec<usize> {
    let leases = store.list_leases().await.unwrap();
    workers
        .iter()
        .map(|w| {
            leases
                .iter()
                .filter(|l| l.owner.as_ref().is_some_and(|o| o.as_str() == *w))
                .count()
        })
        .collect()
}

/// Time until `worker` processed a record of every one of `shards` put
/// after `since`.
async fn resumed(
    recorder: &Recorder,
    worker: &str,
    shards: &HashSet<String>,
    since: tokio::time::Instant,
) -> Duration {
    let started = Instant::now();
    loop {
        let seen: HashSet<String> = recorder
            .processed()
            .into_iter()
            .filter(|p| p.worker == worker && p.at >= since)
            .map(|p| p.shard_id.to_string())
            .collect();
        if shards.iter().all(|s| seen.contains(s)) {
            return started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(60), "never resumed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn balanced_pair(
    shards: usize,
    lease: Duration,
) -> (FakeStream, Arc<MemoryStore>, Recorder, Running, Running) {
    let stream = FakeStream::new(shards);
    let store = store();
    let recorder = Recorder::new();
    let a = spawn_worker("a", &store, &stream, &recorder, lease);
    let b = spawn_worker("b", &store, &stream, &recorder, lease);
    loop {
        let c = counts(&store, &["a", "b"]).await;
        if c == [shards / 2, shards / 2] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (stream, store, recorder, a, b)
}

fn producer(stream: &FakeStream) -> CancellationToken {
    let stop = CancellationToken::new();
    let token = stop.clone();
    let stream = stream.clone();
    tokio::spawn(async move {
        let mut i = 0u64;
        while !token.is_cancelled() {
            stream.put_record(format!("p-{i}"), "x").unwrap();
            i += 1;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    stop
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if args.part != Part::Timings {
        throughput(&args).await;
    }
    if args.part != Part::Throughput {
        timings(&args).await;
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Throughput (figure 1): rounds alternate the direct drain and the engine over
/// the same stream; each round's ratio is printed, then the best and the
/// median, in wall time and in CPU time per record.
async fn throughput(args: &Args) {
    let stream = FakeStream::new(args.shards);
    let payload = vec![b'x'; 100];
    for i in 0..args.records {
        stream
            .put_record(format!("key-{i}"), payload.clone())
            .unwrap();
    }
    let n = args.records as f64;
    let rate = |d: Duration| n / d.as_secs_f64();
    let per_record = |d: Duration| d.as_secs_f64() * 1e9 / n;
    println!(
        "engine throughput: {} records over {} shards (100-byte payloads), {} alternating rounds \
         (engine: no-op processor, checkpoint per batch, memory store):",
        args.records, args.shards, args.rounds,
    );
    let sizes = shard_sizes(&stream);
    let (mut direct, mut engine, mut firsts) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=args.rounds {
        let d = match args.side {
            Side::Engine => None,
            _ => Some(drain_directly(&stream, sizes.clone(), args.records).await),
        };
        let e = match args.side {
            Side::Direct => None,
            _ => {
                let (timed, first) = drain_with_engine(&stream, args.records).await;
                firsts.push(first.as_secs_f64() * 1e3);
                Some(timed)
            }
        };
        let show = |t: &Option<Timed>| {
            t.map_or("-".to_string(), |t| {
                format!(
                    "{:>5.2}M/s, {:>5.1} ns CPU/record",
                    rate(t.wall) / 1e6,
                    per_record(t.cpu)
                )
            })
        };
        let ratio = match (d, e) {
            (Some(d), Some(e)) => format!(
                "ratio {:.3}, CPU {:.3}",
                rate(e.wall) / rate(d.wall),
                d.cpu.as_secs_f64() / e.cpu.as_secs_f64()
            ),
            _ => String::new(),
        };
        println!(
            "  round {round}: direct {}  engine {}  {ratio}",
            show(&d),
            show(&e)
        );
        direct.extend(d);
        engine.extend(e);
    }
    if direct.is_empty() || engine.is_empty() {
        return;
    }
    let best = |v: &[Timed]| v.iter().map(|t| t.wall).min().unwrap();
    let (bd, be) = (best(&direct), best(&engine));
    let wall_ratios: Vec<f64> = direct
        .iter()
        .zip(&engine)
        .map(|(d, e)| d.wall.as_secs_f64() / e.wall.as_secs_f64())
        .collect();
    let cpu_ratios: Vec<f64> = direct
        .iter()
        .zip(&engine)
        .map(|(d, e)| d.cpu.as_secs_f64() / e.cpu.as_secs_f64())
        .collect();
    let cpu = |v: &[Timed]| median(v.iter().map(|t| per_record(t.cpu)).collect());
    println!(
        "  best: direct drain {:>12.0} records/s ({bd:?}), engine {:>12.0} records/s ({be:?})\n  \
         ratio engine/direct = {:.3} best-of, {:.3} median of rounds (engine overhead {:+.1}%)\n  \
         CPU per record (median): direct {:.1} ns, engine {:.1} ns; ratio direct/engine {:.3} median of rounds\n  \
         engine start to its first batch (median): {:.2} ms",
        rate(bd),
        rate(be),
        rate(be) / rate(bd),
        median(wall_ratios),
        (be.as_secs_f64() / bd.as_secs_f64() - 1.0) * 100.0,
        cpu(&direct),
        cpu(&engine),
        median(cpu_ratios),
        median(firsts),
    );
}

/// Failover, graceful hand-over, rebalance on the real clock (figures 2).
async fn timings(args: &Args) {
    let lease = Duration::from_millis(args.lease_ms);
    println!(
        "timings with lease duration {lease:?}, scan interval 100 ms, take interval {:?}:",
        lease / 2
    );

    let (stream, store, recorder, a, b) = balanced_pair(8, lease).await;
    let stop = producer(&stream);
    tokio::time::sleep(lease / 2).await;
    let moved = owned_by(&store, "b").await;
    let since = tokio::time::Instant::now();
    b.task.abort();
    let _ = b.task.await;
    let took = resumed(&recorder, "a", &moved, since).await;
    println!(
        "  failover (worker killed, 4 of 8 shards): resumed after {took:?} = {:.2} lease durations (target <= 1.5)",
        took.as_secs_f64() / lease.as_secs_f64()
    );
    stop.cancel();
    a.cancel.cancel();
    a.task.await.unwrap().unwrap();

    let (stream, store, recorder, a, b) = balanced_pair(8, lease).await;
    let stop = producer(&stream);
    tokio::time::sleep(lease / 2).await;
    let moved = owned_by(&store, "b").await;
    let since = tokio::time::Instant::now();
    b.cancel.cancel();
    b.task.await.unwrap().unwrap();
    let took = resumed(&recorder, "a", &moved, since).await;
    println!(
        "  graceful shutdown (4 of 8 shards released): peer resumed all after {took:?} (target <= 1 s), duplicates {}",
        recorder.duplicates().len()
    );
    stop.cancel();
    a.cancel.cancel();
    a.task.await.unwrap().unwrap();

    // An owner cut off from its store: its own stop, then the peer's take.
    let stream = FakeStream::new(1);
    let store = self::store();
    let recorder = Recorder::new();
    let cut = PausableLeaseStore::new(store.clone());
    let z = spawn_on("z", Arc::new(cut.clone()), &stream, &recorder, lease);
    let stop = producer(&stream);
    while recorder.count() < 10 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let p = spawn_worker("p", &store, &stream, &recorder, lease);
    tokio::time::sleep(lease / 2).await;
    cut.set_paused(true);
    let cut_at = Instant::now();
    let (mut stopped, mut taken) = (None, None);
    while stopped.is_none() || taken.is_none() {
        if stopped.is_none()
            && recorder
                .events()
                .iter()
                .any(|(w, _, e)| w == "z" && *e == Event::LeaseLost)
        {
            stopped = Some(cut_at.elapsed());
        }
        if taken.is_none() && recorder.processed().iter().any(|r| r.worker == "p") {
            taken = Some(cut_at.elapsed());
        }
        assert!(cut_at.elapsed() < lease * 10, "never failed over");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let (stopped, taken) = (stopped.unwrap(), taken.unwrap());
    let l = lease.as_secs_f64();
    println!(
        "  owner cut off from the store: its own stop after {:.2} lease durations, the peer's first record after {:.2} (owner first: {})",
        stopped.as_secs_f64() / l,
        taken.as_secs_f64() / l,
        stopped < taken
    );
    stop.cancel();
    cut.set_paused(false);
    z.task.abort();
    let _ = z.task.await;
    p.cancel.cancel();
    p.task.await.unwrap().unwrap();

    // A balancing hand-off: a joiner gets shards handed over by two busy
    // workers while records flow.
    let (stream, store, recorder, a, b) = balanced_pair(8, lease).await;
    let stop = producer(&stream);
    let joined = Instant::now();
    let c = spawn_worker("c", &store, &stream, &recorder, lease);
    let mut moved = HashSet::new();
    while moved.len() < 2 {
        moved = owned_by(&store, "c").await;
        assert!(joined.elapsed() < lease * 10, "never handed over");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let since = tokio::time::Instant::now();
    let took = resumed(&recorder, "c", &moved, since).await;
    stop.cancel();
    tokio::time::sleep(lease / 2).await;
    println!(
        "  hand-off (joiner takes 2 of 8 shards from live owners): resumed {took:?} after the lease moved (target < 1 s), duplicates {}",
        recorder.duplicates().len()
    );
    for w in [a, b, c] {
        w.cancel.cancel();
        w.task.await.unwrap().unwrap();
    }

    for shards in [64, 1024] {
        let (stream, store, recorder, a, b) = balanced_pair(shards, lease).await;
        let started = Instant::now();
        let c = spawn_worker("c", &store, &stream, &recorder, lease);
        loop {
            let n = counts(&store, &["a", "b", "c"]).await;
            if n.iter().sum::<usize>() == shards
                && n.iter().max().unwrap() - n.iter().min().unwrap() <= 1
            {
                break;
            }
            assert!(started.elapsed() < lease * 20, "never balanced: {n:?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let took = started.elapsed();
        println!(
            "  rebalance (third worker joins two holding {shards} shards): balanced after {took:?} = {:.2} taker rounds (target <= 2)",
            took.as_secs_f64() / (lease / 2).as_secs_f64()
        );
        for w in [a, b, c] {
            w.cancel.cancel();
            w.task.await.unwrap().unwrap();
        }
    }
}
