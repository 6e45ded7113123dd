//! PostgreSQL restarted in the middle of a run: calls fail with retryable
//! errors within bounded time while it is down, the same store recovers by
//! itself once it is back, and no acknowledged checkpoint is lost or
//! regressed.
//!
//! Runs on a private cluster this test creates (initdb + pg_ctl from
//! `KCL_TEST_POSTGRES_BIN_DIR`), so stopping it cannot disturb other tests.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kcl_core::testkit::server_from_env;
use kcl_core::{ExtendedSequenceNumber as Esn, Lease, LeaseStore, ShardId, WorkerId};
use kcl_store_postgres::PostgresStore;

mod common;
use common::cluster::Cluster;

fn seq(n: u64) -> Esn {
    Esn::at(u128::from(n).into(), 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_mid_run_gives_retryable_errors_then_recovers_without_losing_checkpoints() {
    let Some(bin) = server_from_env("KCL_TEST_POSTGRES_BIN_DIR") else {
        return;
    };
    let cluster = Cluster::create(PathBuf::from(bin), &[]);
    let store = PostgresStore::builder()
        .url(cluster.url())
        .application("restart-test")
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(2))
        .build()
        .await
        .expect("build on the private cluster");
    let shard = ShardId::new("shardId-000000000000").unwrap();
    let lease = Lease::new(shard.clone(), Esn::TrimHorizon);
    store.create_lease_if_absent(&lease).await.unwrap();
    let held = store
        .take_lease(&lease, &WorkerId::new("w-a").unwrap())
        .await
        .unwrap();

    // A worker checkpoints in a loop the whole time, retrying the same
    // position after a retryable error (safe: equal positions succeed).
    let acknowledged = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let running = Arc::new(AtomicBool::new(true));
    let worker = {
        let (store, held) = (store.clone(), held.clone());
        let (acknowledged, errors, running) =
            (acknowledged.clone(), errors.clone(), running.clone());
        tokio::spawn(async move {
            let mut next = 1u64;
            while running.load(Ordering::SeqCst) {
                let started = Instant::now();
                match store.update_checkpoint(&held, &seq(next)).await {
                    Ok(()) => {
                        acknowledged.store(next, Ordering::SeqCst);
                        next += 1;
                    }
                    Err(e) => {
                        assert!(e.is_retryable(), "expected a retryable error, got {e:?}");
                        errors.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "one call took {:?}: calls must fail within the acquire timeout",
                    started.elapsed()
                );
            }
        })
    };
    let wait_for_progress = |beyond: u64| {
        let acknowledged = acknowledged.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            while acknowledged.load(Ordering::SeqCst) < beyond + 20 {
                assert!(Instant::now() < deadline, "no checkpoint progress");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait_for_progress(0).await;

    cluster.stop();
    let acknowledged_before_stop = acknowledged.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let errors_while_down = errors.load(Ordering::SeqCst);
    assert!(
        errors_while_down > 0,
        "calls must fail while the server is down"
    );
    assert!(
        acknowledged.load(Ordering::SeqCst) <= acknowledged_before_stop + 1,
        "no checkpoint can be acknowledged while the server is down"
    );
    match store.get_lease(&shard).await {
        Err(e) => assert!(e.is_retryable(), "read while down: {e:?}"),
        Ok(l) => panic!("read succeeded while the server was down: {l:?}"),
    }

    cluster.start();
    let back = Instant::now();
    // Nothing acknowledged before the crash was lost.
    let recovered = loop {
        match store.get_lease(&shard).await {
            Ok(lease) => break lease.expect("lease survives the restart"),
            Err(e) if e.is_retryable() && back.elapsed() < Duration::from_secs(30) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("store did not recover after the restart: {e:?}"),
        }
    };
    assert!(
        recovered.checkpoint >= seq(acknowledged_before_stop),
        "checkpoint {} is below the last acknowledged {acknowledged_before_stop}",
        recovered.checkpoint
    );
    // The same store (and its worker) carries on by itself.
    wait_for_progress(acknowledged.load(Ordering::SeqCst)).await;
    eprintln!(
        "recovered {:?} after the restart; {errors_while_down} retryable errors while down",
        back.elapsed()
    );
    running.store(false, Ordering::SeqCst);
    worker.await.expect("worker saw only retryable errors");
    let last = acknowledged.load(Ordering::SeqCst);
    let stored = store.get_lease(&shard).await.unwrap().unwrap();
    assert!(
        stored.checkpoint >= seq(last),
        "checkpoint {} regressed below the last acknowledged {last}",
        stored.checkpoint
    );
    assert_eq!(stored.owner, held.owner);
    assert!(matches!(
        store.update_checkpoint(&held, &seq(last - 1)).await,
        Err(kcl_core::Error::InvalidCheckpoint(_))
    ));
}
