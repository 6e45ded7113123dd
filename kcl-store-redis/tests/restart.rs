//! Redis restarted under a running store: calls fail with a retryable
//! error while it is down (and never hang), the same store recovers on its
//! own when it is back, and no acknowledged checkpoint is lost.
//!
//! Starts a private `redis-server` (`KCL_TEST_REDIS_SERVER_BIN`, which
//! `scripts/test-all.sh` exports) on a free port with an fsync'ed
//! append-only file, kills it with SIGKILL, and starts it again on the same
//! port and directory.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kcl_core::testkit::server_from_env;
use kcl_core::{CheckpointStore, ExtendedSequenceNumber, Lease, LeaseStore, ShardId, WorkerId};

/// No call may take longer than this, server up or down.
const CALL_BOUND: Duration = Duration::from_secs(10);

fn position(i: u64) -> ExtendedSequenceNumber {
    // Wider than u128 and than a double's precision, as real ones are.
    let digits = format!("4959033827149025660855969253836157109592157598913{i:08}");
    ExtendedSequenceNumber::at(digits.parse().unwrap(), 0)
}

/// Wait (asynchronously) until `done`, failing the test after `limit`.
async fn wait_for(what: &str, limit: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn bounded<T>(what: &str, call: impl Future<Output = T>) -> T {
    tokio::time::timeout(CALL_BOUND, call)
        .await
        .unwrap_or_else(|_| panic!("{what} hung for more than {CALL_BOUND:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_survive_a_redis_restart() {
    let Some(bin) = server_from_env("KCL_TEST_REDIS_SERVER_BIN") else {
        return;
    };
    let mut server = common::persistent_server(&bin);
    let store = common::restart_tolerant_store(&server).await;
    let shard = ShardId::new("shardId-000000000000").unwrap();
    let lease = Lease::new(shard.clone(), ExtendedSequenceNumber::TrimHorizon);
    store.create_lease_if_absent(&lease).await.unwrap();
    let held = store
        .take_lease(&lease, &WorkerId::new("worker-1").unwrap())
        .await
        .unwrap();

    // A processor checkpointing increasing positions, under the lease and
    // in the CheckpointStore, retrying a position until both are acked.
    let acked = Arc::new(AtomicU64::new(0));
    let retryable_errors = Arc::new(AtomicU64::new(0));
    let paused = Arc::new(AtomicBool::new(false));
    let idle = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let checkpointer = {
        let (store, held, shard) = (store.clone(), held.clone(), shard.clone());
        let (acked, errors) = (acked.clone(), retryable_errors.clone());
        let (paused, idle, stop) = (paused.clone(), idle.clone(), stop.clone());
        tokio::spawn(async move {
            let mut next = 1u64;
            while !stop.load(Ordering::SeqCst) {
                idle.store(paused.load(Ordering::SeqCst), Ordering::SeqCst);
                if paused.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
                let p = position(next);
                let result =
                    match bounded("update_checkpoint", store.update_checkpoint(&held, &p)).await {
                        Ok(()) => bounded("set_checkpoint", store.set_checkpoint(&shard, &p)).await,
                        Err(e) => Err(e),
                    };
                match result {
                    Ok(()) => {
                        acked.store(next, Ordering::SeqCst);
                        next += 1;
                    }
                    Err(e) => {
                        assert!(e.is_retryable(), "while redis is down: {e:?}");
                        errors.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        })
    };

    wait_for("first checkpoints", Duration::from_secs(10), || {
        acked.load(Ordering::SeqCst) >= 20
    })
    .await;

    server.kill();
    let acked_at_kill = acked.load(Ordering::SeqCst);
    let down_since = Instant::now();
    wait_for(
        "retryable errors while down",
        Duration::from_secs(15),
        || retryable_errors.load(Ordering::SeqCst) >= 3,
    )
    .await;
    for _ in 0..3 {
        let started = Instant::now();
        let err = bounded("get_lease while down", store.get_lease(&shard))
            .await
            .expect_err("redis is down");
        assert!(err.is_retryable(), "{err:?}");
        eprintln!(
            "get_lease while down failed in {:?}: {err}",
            started.elapsed()
        );
    }
    assert!(
        acked.load(Ordering::SeqCst) <= acked_at_kill + 1,
        "nothing is acknowledged while the server is down"
    );

    // Hold the checkpointer so what survived can be read before new writes.
    paused.store(true, Ordering::SeqCst);
    wait_for("the checkpointer to pause", CALL_BOUND * 2, || {
        idle.load(Ordering::SeqCst)
    })
    .await;
    let last_acked = acked.load(Ordering::SeqCst);
    server.spawn();
    eprintln!(
        "redis down for {:?}; {} retryable errors; last acknowledged position {last_acked}",
        down_since.elapsed(),
        retryable_errors.load(Ordering::SeqCst)
    );

    // The same store, not rebuilt, works again (after at most a few
    // retryable failures while it reconnects).
    let deadline = Instant::now() + Duration::from_secs(20);
    let stored = loop {
        match bounded("get_lease after restart", store.get_lease(&shard)).await {
            Ok(lease) => break lease.expect("the lease survived the restart"),
            Err(e) if e.is_retryable() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("store did not recover: {e:?}"),
        }
    };
    // A write in flight at the kill may have landed unacknowledged: the
    // stored checkpoint is the last acknowledged one or the one after.
    assert!(
        stored.checkpoint >= position(last_acked) && stored.checkpoint <= position(last_acked + 1),
        "stored {} after restart, last acknowledged {}",
        stored.checkpoint,
        position(last_acked)
    );
    assert_eq!(stored.owner, held.owner, "the lease kept its owner");
    assert_eq!(stored.generation, held.generation);
    let standalone = store.get_checkpoint(&shard).await.unwrap().unwrap();
    assert!(
        standalone >= position(last_acked),
        "CheckpointStore regressed"
    );

    paused.store(false, Ordering::SeqCst);
    wait_for("checkpoints after restart", Duration::from_secs(20), || {
        acked.load(Ordering::SeqCst) >= last_acked + 20
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    checkpointer.await.expect("checkpointer task");

    let after = store.get_lease(&shard).await.unwrap().unwrap();
    assert_eq!(after.checkpoint, position(acked.load(Ordering::SeqCst)));
    // Fencing still holds after the restart: a stale generation is refused.
    let mut stale = held.clone();
    stale.generation += 1;
    assert!(
        store
            .update_checkpoint(&stale, &position(1_000_000))
            .await
            .unwrap_err()
            .is_conflict()
    );
}
