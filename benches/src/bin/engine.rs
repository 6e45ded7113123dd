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
//! Run: `cargo run --release -p kcl-benches --bin engine [-- --records N]`.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use kcl_core::retrieval::{ShardSource, StartingPosition};
use kcl_core::testkit::FakeStream;
use kcl_core::testkit::engine::{Event, PausableLeaseStore, Recorder};
use kcl_core::{LeaseStore, Worker};
use kcl_store_memory::MemoryStore;
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
struct Args {
    /// Records in the throughput stream.
    #[arg(long, default_value_t = 400_000)]
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
}

fn store() -> Arc<MemoryStore> {
    Arc::new(
        MemoryStore::builder()
            .application("bench-engine")
            .build()
            .unwrap(),
    )
}

/// Read every shard to its current end with the stream's own readers.
async fn drain_directly(stream: &FakeStream, total: usize) -> Duration {
    // Counted before the clock starts: `records` clones the whole shard.
    let shards: Vec<_> = stream
        .shards()
        .into_iter()
        .map(|s| {
            let n = stream.records(&s.shard_id).unwrap().len();
            (s, n)
        })
        .collect();
    let started = Instant::now();
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
    started.elapsed()
}

/// Run a worker over the stream until every record was processed.
async fn drain_with_engine(stream: &FakeStream, total: usize) -> Duration {
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let worker = Worker::builder()
        .worker_id("bench")
        .lease_store(store())
        .source(Arc::new(stream.clone()))
        .process_with(move |batch| {
            let c = c.clone();
            async move {
                c.fetch_add(batch.records().len(), Ordering::Relaxed);
                Ok(())
            }
        })
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    let started = Instant::now();
    let run = tokio::spawn(worker.run(cancel.clone()));
    while count.load(Ordering::Relaxed) < total {
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let took = started.elapsed();
    cancel.cancel();
    run.await.unwrap().unwrap();
    took
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

    // 1. Throughput.
    let stream = FakeStream::new(args.shards);
    let payload = vec![b'x'; 100];
    for i in 0..args.records {
        stream
            .put_record(format!("key-{i}"), payload.clone())
            .unwrap();
    }
    let mut direct = Duration::MAX;
    let mut engine = Duration::MAX;
    for _ in 0..args.rounds {
        direct = direct.min(drain_directly(&stream, args.records).await);
        engine = engine.min(drain_with_engine(&stream, args.records).await);
    }
    let rate = |d: Duration| args.records as f64 / d.as_secs_f64();
    println!(
        "engine throughput: {} records over {} shards (100-byte payloads), best of {}:\n  \
         direct drain {:>12.0} records/s ({direct:?})\n  \
         engine       {:>12.0} records/s ({engine:?}; no-op processor, checkpoint per batch, memory store)\n  \
         ratio engine/direct = {:.3} (engine overhead {:+.1}%)",
        args.records,
        args.shards,
        args.rounds,
        rate(direct),
        rate(engine),
        rate(engine) / rate(direct),
        (engine.as_secs_f64() / direct.as_secs_f64() - 1.0) * 100.0,
    );

    // 2. Failover, graceful hand-over, rebalance (real clock).
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
