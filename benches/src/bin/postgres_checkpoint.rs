//! Checkpoint throughput of `PostgresStore` against the raw equivalent
//! UPDATE.
//!
//! 64 concurrent shard tasks each checkpoint increasing positions (real
//! 56-digit sequence numbers) through `PostgresStore::update_checkpoint`:
//! one statement that is fenced by owner and generation, refuses to go
//! backwards, and reports why when it does not apply. The baseline is 64
//! tasks running the bare conditional `UPDATE … WHERE owner = … AND
//! generation = … AND position <= new` (the same fencing and ordering,
//! without the diagnosis or the returned lease) through the same pool, on
//! the same server, in the same run. The two sides alternate in short
//! rounds so drift on a shared machine hits both. Figure: store rate / raw
//! rate (goal >= 0.8).
//!
//! ```sh
//! KCL_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!     cargo run --release -p kcl-benches --bin postgres_checkpoint [seconds per side, default 4]
//! ```
//! (`KCL_TEST_POSTGRES_URL` is used when `KCL_BENCH_POSTGRES_URL` is unset.)
//! It works in a fresh random schema and drops it at the end.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kcl_core::testkit::conformance::random_application;
use kcl_core::{ExtendedSequenceNumber, Lease, LeaseStore, ShardId, WorkerId};
use kcl_store_postgres::PostgresStore;

const SHARDS: usize = 64;
const ROUNDS: u32 = 4;
const POOL: u32 = 32;

fn sequence(i: u64) -> String {
    format!("4959033827149025660855969253836157109592157598{i:010}")
}

#[tokio::main]
async fn main() {
    let Some(url) = ["KCL_BENCH_POSTGRES_URL", "KCL_TEST_POSTGRES_URL"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
    else {
        eprintln!(
            "postgres_checkpoint: set KCL_BENCH_POSTGRES_URL (or KCL_TEST_POSTGRES_URL) to a \
             PostgreSQL server, e.g. postgres://postgres@127.0.0.1:5432/postgres"
        );
        std::process::exit(1);
    };
    let seconds: f64 = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("seconds per side, a number"))
        .unwrap_or(4.0);
    let round = Duration::from_secs_f64(seconds / f64::from(ROUNDS));

    let app = random_application();
    let schema = format!("kcl_bench_{}", app.as_str().trim_start_matches("kcl-test-"));
    let store = PostgresStore::builder()
        .url(&url)
        .schema(schema.clone())
        .application(app.as_str())
        .max_connections(POOL)
        // The store runs its statements on its own pool: give it as many
        // connections as the raw side's pool, so both sides compare alike.
        .lease_connections(POOL)
        .build()
        .await
        .expect("connect PostgresStore");
    let worker = WorkerId::new("bench-worker").unwrap();
    let mut held = Vec::new();
    for i in 0..SHARDS {
        let lease = Lease::new(
            ShardId::new(format!("shardId-{i:012}")).unwrap(),
            ExtendedSequenceNumber::TrimHorizon,
        );
        store.create_lease_if_absent(&lease).await.unwrap();
        held.push(store.take_lease(&lease, &worker).await.unwrap());
    }
    let raw_update = Arc::new(format!(
        "UPDATE \"{schema}\".leases SET
             checkpoint_rank = 3, checkpoint_seq = $3::numeric, checkpoint_sub = 0,
             pending_rank = NULL, pending_seq = NULL, pending_sub = NULL, pending_state = NULL,
             owner_switches = 0, updated_at = now()
         WHERE application = $1 AND shard_id = $2 AND owner = $4 AND generation = $5
           AND (checkpoint_rank, checkpoint_seq, checkpoint_sub) <= (3, $3::numeric, 0)"
    ));

    // Each shard's next position, shared by both sides so neither ever
    // writes backwards.
    let next: Arc<Vec<AtomicU64>> = Arc::new((0..SHARDS).map(|_| AtomicU64::new(1)).collect());
    let (mut store_ops, mut raw_ops) = (0u64, 0u64);
    let (mut store_time, mut raw_time) = (Duration::ZERO, Duration::ZERO);
    // Warm up both paths (prepared statements, pool connections).
    run_store(&store, &held, &next, Duration::from_millis(300)).await;
    run_raw(
        &store,
        &held,
        &next,
        &raw_update,
        Duration::from_millis(300),
    )
    .await;
    for _ in 0..ROUNDS {
        let t = Instant::now();
        store_ops += run_store(&store, &held, &next, round).await;
        store_time += t.elapsed();
        let t = Instant::now();
        raw_ops += run_raw(&store, &held, &next, &raw_update, round).await;
        raw_time += t.elapsed();
    }
    let store_rate = store_ops as f64 / store_time.as_secs_f64();
    let raw_rate = raw_ops as f64 / raw_time.as_secs_f64();
    println!(
        "postgres_checkpoint: {SHARDS} concurrent shards, pool of {POOL}, {seconds} s per side"
    );
    println!("  PostgresStore::update_checkpoint  {store_rate:>10.0} checkpoints/s");
    println!("  raw conditional UPDATE            {raw_rate:>10.0} updates/s");
    println!(
        "  ratio store/raw                   {:>10.2}   (goal >= 0.8)",
        store_rate / raw_rate
    );

    // Every shard's stored checkpoint is the last position written.
    for (i, lease) in held.iter().enumerate() {
        let stored = store.get_lease(&lease.shard_id).await.unwrap().unwrap();
        let last = next[i].load(Ordering::SeqCst) - 1;
        assert_eq!(
            stored.checkpoint,
            ExtendedSequenceNumber::at(sequence(last).parse().unwrap(), 0),
            "shard {i}"
        );
    }
    sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .execute(store.pool())
        .await
        .expect("drop the bench schema");
}

async fn run_store(
    store: &PostgresStore,
    held: &[Lease],
    next: &Arc<Vec<AtomicU64>>,
    duration: Duration,
) -> u64 {
    let deadline = Instant::now() + duration;
    let tasks: Vec<_> = held
        .iter()
        .enumerate()
        .map(|(i, lease)| {
            let (store, lease, next) = (store.clone(), lease.clone(), next.clone());
            tokio::spawn(async move {
                let mut ops = 0u64;
                while Instant::now() < deadline {
                    let n = next[i].load(Ordering::SeqCst);
                    let position = ExtendedSequenceNumber::at(sequence(n).parse().unwrap(), 0);
                    store
                        .update_checkpoint(&lease, &position)
                        .await
                        .expect("checkpoint");
                    next[i].store(n + 1, Ordering::SeqCst);
                    ops += 1;
                }
                ops
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    total
}

async fn run_raw(
    store: &PostgresStore,
    held: &[Lease],
    next: &Arc<Vec<AtomicU64>>,
    update: &Arc<String>,
    duration: Duration,
) -> u64 {
    let deadline = Instant::now() + duration;
    let tasks: Vec<_> = held
        .iter()
        .enumerate()
        .map(|(i, lease)| {
            let (pool, lease, next, update) = (
                store.pool().clone(),
                lease.clone(),
                next.clone(),
                update.clone(),
            );
            let application = store.application().as_str().to_owned();
            tokio::spawn(async move {
                let mut ops = 0u64;
                let owner = lease.owner.as_ref().unwrap().as_str().to_owned();
                while Instant::now() < deadline {
                    let n = next[i].load(Ordering::SeqCst);
                    let done = sqlx::query(&update)
                        .bind(&application)
                        .bind(lease.shard_id.as_str())
                        .bind(sequence(n))
                        .bind(&owner)
                        .bind(lease.generation as i64)
                        .execute(&pool)
                        .await
                        .expect("raw update");
                    assert_eq!(done.rows_affected(), 1, "raw update applied");
                    next[i].store(n + 1, Ordering::SeqCst);
                    ops += 1;
                }
                ops
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    total
}
