//! Checkpoint throughput of `RedisStore` against the raw redis client.
//!
//! 64 concurrent shard tasks each checkpoint increasing positions through
//! `RedisStore::update_checkpoint` (one fenced, never-backwards Lua
//! compare-and-set per call); the baseline is 64 tasks of the raw redis
//! client running an equivalent single-key Lua compare-and-set (owner and
//! generation check, numeric sequence comparison, write) with `EVALSHA` on
//! the same server in the same run. The two sides alternate in ten short
//! rounds so drift on a shared machine hits both. Figure: store rate /
//! raw rate over the whole run, and the median of the rounds' ratios
//! (goal >= 0.8).
//!
//! ```sh
//! KCL_BENCH_REDIS_URL=redis://127.0.0.1:6379 \
//!     cargo run --release -p kcl-benches --bin redis_checkpoint [seconds per side, default 4]
//! ```
//! (`KCL_TEST_REDIS_URL` is used when `KCL_BENCH_REDIS_URL` is unset.)

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kcl_core::testkit::conformance::random_application;
use kcl_core::{ExtendedSequenceNumber, Lease, LeaseStore, ShardId, WorkerId};
use kcl_store_redis::RedisStore;
use redis::aio::ConnectionManager;

const SHARDS: usize = 64;
const ROUNDS: u32 = 10;

/// The baseline: what one checkpoint needs at minimum, as one script.
const RAW_CAS: &str = r"
local s = redis.call('HMGET', KEYS[1], 'owner', 'generation', 'checkpoint')
if s[1] ~= ARGV[1] or s[2] ~= ARGV[2] then return {'conflict'} end
local cur, new = s[3], ARGV[3]
if cur and (#new < #cur or (#new == #cur and new < cur)) then return {'backwards'} end
redis.call('HSET', KEYS[1], 'checkpoint', new)
return {'ok'}
";

fn sequence(i: u64) -> String {
    format!("4959033827149025660855969253836157109592157598{i:010}")
}

#[tokio::main]
async fn main() {
    let Some(url) = ["KCL_BENCH_REDIS_URL", "KCL_TEST_REDIS_URL"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
    else {
        eprintln!(
            "redis_checkpoint: set KCL_BENCH_REDIS_URL (or KCL_TEST_REDIS_URL) to a Redis server, \
             e.g. redis://127.0.0.1:6379"
        );
        std::process::exit(1);
    };
    let seconds: f64 = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("seconds per side, a number"))
        .unwrap_or(4.0);
    let round = Duration::from_secs_f64(seconds / f64::from(ROUNDS));

    let store = RedisStore::builder()
        .url(&url)
        .application(random_application().as_str())
        .build()
        .await
        .expect("connect RedisStore");
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

    let client = redis::Client::open(url.as_str()).expect("redis URL");
    let raw = ConnectionManager::new(client).await.expect("connect raw");
    let raw_tag = format!("{{kcl-bench-raw:{}}}", random_application());
    let raw_keys: Vec<String> = (0..SHARDS)
        .map(|i| format!("{raw_tag}:lease:{i}"))
        .collect();
    for key in &raw_keys {
        let () = redis::cmd("HSET")
            .arg(key)
            .arg(&["owner", "bench-worker", "generation", "1"])
            .query_async(&mut raw.clone())
            .await
            .unwrap();
    }
    let script = Arc::new(redis::Script::new(RAW_CAS));

    let next = Arc::new(AtomicU64::new(1));
    let (mut store_ops, mut raw_ops) = (0u64, 0u64);
    let (mut store_time, mut raw_time) = (Duration::ZERO, Duration::ZERO);
    let mut round_ratios = Vec::new();
    // KCL_BENCH_ONLY=raw|store runs one side alone (for profiling).
    let only = std::env::var("KCL_BENCH_ONLY").unwrap_or_default();
    for r in 0..ROUNDS {
        // Which side goes first alternates too.
        let mut sides = [Side::Raw, Side::Store];
        if r % 2 == 1 {
            sides.reverse();
        }
        let (mut raw_rate, mut store_rate) = (f64::NAN, f64::NAN);
        for side in sides {
            let started = Instant::now();
            match side {
                Side::Raw if only != "store" => {
                    let ops = run_raw(&raw, &script, &raw_keys, &next, round).await;
                    raw_ops += ops;
                    raw_time += started.elapsed();
                    raw_rate = ops as f64 / started.elapsed().as_secs_f64();
                }
                Side::Store if only != "raw" => {
                    let ops = run_store(&store, &held, &next, round).await;
                    store_ops += ops;
                    store_time += started.elapsed();
                    store_rate = ops as f64 / started.elapsed().as_secs_f64();
                }
                _ => {}
            }
        }
        round_ratios.push(store_rate / raw_rate);
    }

    for lease in &held {
        store.delete_lease(&lease.shard_id).await.unwrap();
    }
    let () = redis::cmd("DEL")
        .arg(&raw_keys)
        .query_async(&mut raw.clone())
        .await
        .unwrap();

    let raw_rate = raw_ops as f64 / raw_time.as_secs_f64();
    let store_rate = store_ops as f64 / store_time.as_secs_f64();
    println!(
        "redis_checkpoint: {SHARDS} concurrent shards, {seconds} s per side in {ROUNDS} alternating rounds"
    );
    println!(
        "  raw client, EVALSHA single-key CAS:   {raw_rate:>10.0} checkpoints/s ({raw_ops} in {raw_time:.2?})"
    );
    println!(
        "  RedisStore::update_checkpoint:        {store_rate:>10.0} checkpoints/s ({store_ops} in {store_time:.2?})"
    );
    round_ratios.sort_by(f64::total_cmp);
    println!(
        "  ratio store / raw: {:.2} overall; per round: median {:.2}, min {:.2}, max {:.2} (goal >= 0.8)",
        store_rate / raw_rate,
        round_ratios[round_ratios.len() / 2],
        round_ratios[0],
        round_ratios[round_ratios.len() - 1]
    );
}

#[derive(Clone, Copy)]
enum Side {
    Raw,
    Store,
}

/// 64 tasks checkpointing through the store until `round` has passed.
async fn run_store(
    store: &RedisStore,
    held: &[Lease],
    next: &Arc<AtomicU64>,
    round: Duration,
) -> u64 {
    let deadline = Instant::now() + round;
    let tasks: Vec<_> = held
        .iter()
        .map(|lease| {
            let (store, lease, next) = (store.clone(), lease.clone(), next.clone());
            tokio::spawn(async move {
                let mut ops = 0u64;
                while Instant::now() < deadline {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let position = ExtendedSequenceNumber::at(sequence(i).parse().unwrap(), 0);
                    store
                        .update_checkpoint(&lease, &position)
                        .await
                        .expect("store checkpoint");
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

/// 64 tasks running the baseline script until `round` has passed.
async fn run_raw(
    raw: &ConnectionManager,
    script: &Arc<redis::Script>,
    keys: &[String],
    next: &Arc<AtomicU64>,
    round: Duration,
) -> u64 {
    let deadline = Instant::now() + round;
    let tasks: Vec<_> = keys
        .iter()
        .map(|key| {
            let (mut raw, script, key, next) =
                (raw.clone(), script.clone(), key.clone(), next.clone());
            tokio::spawn(async move {
                let mut ops = 0u64;
                while Instant::now() < deadline {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let reply: Vec<String> = script
                        .key(&key)
                        .arg("bench-worker")
                        .arg("1")
                        .arg(sequence(i))
                        .invoke_async(&mut raw)
                        .await
                        .expect("raw checkpoint");
                    assert_eq!(reply, ["ok"], "raw CAS refused");
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
