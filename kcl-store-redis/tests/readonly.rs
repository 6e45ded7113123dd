//! A primary demoted under the store (Sentinel-style failover, or
//! `REPLICAOF` by hand): the store reaches the server through an address
//! that moves to the new primary, as a DNS name or a virtual IP does. The
//! demoted server keeps the store's connection open and answers every
//! write with `READONLY`; the store must reconnect, not retry on the old
//! connection forever. Needs `KCL_TEST_REDIS_SERVER_BIN`.

mod common;

use std::time::{Duration, Instant};

use common::{Forwarder, RedisProcess};
use kcl_core::testkit::conformance::random_application;
use kcl_core::testkit::server_from_env;
use kcl_core::{ExtendedSequenceNumber, Lease, LeaseStore, ShardId, WorkerId};
use kcl_store_redis::RedisStore;

const PLAIN: [&str; 4] = ["--save", "", "--appendonly", "no"];

/// Until `server`'s replication link to its primary is up.
async fn wait_for_sync(server: &RedisProcess) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !server
        .command(&["INFO", "replication"])
        .await
        .contains("master_link_status:up")
    {
        assert!(Instant::now() < deadline, "replica never synced");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demoted_primary_makes_the_store_reconnect() {
    let Some(bin) = server_from_env("KCL_TEST_REDIS_SERVER_BIN") else {
        return;
    };
    let old = RedisProcess::start(&bin, &PLAIN);
    let new = RedisProcess::start(&bin, &PLAIN);
    let address = Forwarder::start(old.port).await;
    let store = RedisStore::builder()
        .url(address.url())
        .application(random_application().as_str())
        .response_timeout(Duration::from_secs(1))
        .build()
        .await
        .unwrap();
    let lease = Lease::new(
        ShardId::new("shardId-000000000000").unwrap(),
        ExtendedSequenceNumber::TrimHorizon,
    );
    assert!(store.create_lease_if_absent(&lease).await.unwrap());
    let mut held = store
        .take_lease(&lease, &WorkerId::new("w").unwrap())
        .await
        .unwrap();

    // Fail over: `new` copies `old`, takes over, `old` follows it, and the
    // address moves to `new`.
    let old_port = old.port.to_string();
    new.command(&["REPLICAOF", "127.0.0.1", &old_port]).await;
    wait_for_sync(&new).await;
    new.command(&["REPLICAOF", "NO", "ONE"]).await;
    let new_port = new.port.to_string();
    old.command(&["REPLICAOF", "127.0.0.1", &new_port]).await;
    address.point_at(new.port);
    wait_for_sync(&old).await;

    // The first renew may meet READONLY on the old connection (retryable);
    // within a few tries the store is on the new primary again.
    let mut readonly = 0;
    let mut renewed = None;
    for _ in 0..10 {
        match store.renew_lease(&held).await {
            Ok(lease) => {
                renewed = Some(lease);
                break;
            }
            Err(e) => {
                assert!(e.is_retryable(), "{e:?}");
                assert!(format!("{e:?}").contains("read only replica"), "{e:?}");
                readonly += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    println!("{readonly} READONLY replies before the store reconnected");
    held = renewed.expect("the store reconnects to the new primary after READONLY");
    assert!(
        readonly >= 1,
        "the old connection did meet the demoted primary"
    );
    store
        .update_checkpoint(&held, &ExtendedSequenceNumber::at("7".parse().unwrap(), 0))
        .await
        .unwrap();
    let on_new = new
        .command(&[
            "HGET",
            &format!("{}:lease:{}", store.hash_tag(), lease.shard_id),
            "checkpoint",
        ])
        .await;
    assert_eq!(on_new, "7");
}
