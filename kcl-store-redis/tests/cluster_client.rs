//! The cluster client (feature `cluster`) on a real Redis Cluster: three
//! primaries and three replicas, private `redis-server`s on loopback joined
//! by `redis-cli --cluster create`. The whole conformance suite, then a
//! `CLUSTER FAILOVER` of the application's slot while a worker renews and
//! checkpoints. Needs `KCL_TEST_REDIS_SERVER_BIN` (and redis-cli beside it
//! or `KCL_TEST_REDIS_CLI_BIN`).

mod common;

use std::time::{Duration, Instant};

use common::Cluster;
use kcl_core::testkit::conformance::{self, random_application, store_factory};
use kcl_core::testkit::server_from_env;
use kcl_core::{
    ApplicationName, Error, ExtendedSequenceNumber, Lease, LeaseStore, ShardId, WorkerId,
};
use kcl_store_redis::{RedisStore, RedisStoreBuilder};

/// A store on `url` for a random application (so a random slot).
async fn store(url: &str) -> RedisStore {
    RedisStore::builder()
        .url(url)
        .cluster(true)
        .application(random_application().as_str())
        .build()
        .await
        .expect("connect to the cluster")
}

/// Every check, with each store's application (and so its slot) drawn at
/// random: the stores land on all three primaries, and the URL names one
/// node only, so most calls go through the client's slot routing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_a_six_node_cluster() {
    let Some(bin) = server_from_env("KCL_TEST_REDIS_SERVER_BIN") else {
        return;
    };
    let cluster = Cluster::start(&bin, 3).await;
    let url = cluster.url();
    conformance::run_all(&store_factory(|| store(&url))).await;
}

/// A `redis+cluster://` URL builds a cluster store (the path the binaries
/// take).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_url_reaches_every_primary() {
    let Some(bin) = server_from_env("KCL_TEST_REDIS_SERVER_BIN") else {
        return;
    };
    let cluster = Cluster::start(&bin, 3).await;
    let url = format!(
        "redis+cluster://127.0.0.1:{}?application=orders",
        cluster.nodes[0].port
    );
    let store = RedisStoreBuilder::from_url(&url)
        .unwrap()
        .build()
        .await
        .unwrap();
    let lease = Lease::new(
        ShardId::new("shardId-000000000000").unwrap(),
        ExtendedSequenceNumber::TrimHorizon,
    );
    // Many applications, so some slot is not on the node the URL names.
    for i in 0..12 {
        let store = store.with_application(ApplicationName::new(format!("orders-{i}")).unwrap());
        assert!(store.create_lease_if_absent(&lease).await.unwrap());
        let held = store
            .take_lease(&lease, &WorkerId::new("w").unwrap())
            .await
            .unwrap();
        store.renew_lease(&held).await.unwrap();
        assert_eq!(store.list_leases().await.unwrap().len(), 1);
    }
}

fn position(n: u64) -> ExtendedSequenceNumber {
    ExtendedSequenceNumber::at(n.to_string().parse().unwrap(), 0)
}

/// A manual failover of the primary that serves the application's slot
/// while a worker renews and checkpoints four leases: calls may fail for a
/// moment (retryably), but no fenced write is refused, nothing panics, no
/// checkpoint moves back, and the store keeps working on the promoted
/// replica, which enforces the fence as the old primary did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_failover_during_renewals_and_checkpoints() {
    let Some(bin) = server_from_env("KCL_TEST_REDIS_SERVER_BIN") else {
        return;
    };
    let cluster = Cluster::start(&bin, 3).await;
    let store = RedisStore::builder()
        .url(cluster.url())
        .cluster(true)
        .application(random_application().as_str())
        .response_timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    let worker = WorkerId::new("worker-a").unwrap();
    let mut held = Vec::new();
    for i in 0..4 {
        let lease = Lease::new(
            ShardId::new(format!("shardId-{i:012}")).unwrap(),
            ExtendedSequenceNumber::TrimHorizon,
        );
        assert!(store.create_lease_if_absent(&lease).await.unwrap());
        held.push(store.take_lease(&lease, &worker).await.unwrap());
    }
    let (primary, replica) = cluster.primary_and_replica_of(store.hash_tag()).await;

    // The worker: renew and checkpoint every lease in turn, ~every 20 ms.
    let stop = tokio_util::sync::CancellationToken::new();
    let work = {
        let store = store.clone();
        let stop = stop.clone();
        let mut held = held.clone();
        tokio::spawn(async move {
            let mut acknowledged = vec![0u64; held.len()];
            let mut next = 1u64;
            let mut transient = 0usize;
            let mut ok_ops = Vec::new();
            while !stop.is_cancelled() {
                for (i, lease) in held.iter_mut().enumerate() {
                    match store.renew_lease(lease).await {
                        Ok(renewed) => *lease = renewed,
                        Err(e) if e.is_retryable() => transient += 1,
                        Err(e) => panic!("renew refused: {e:?}"),
                    }
                    match store.update_checkpoint(lease, &position(next)).await {
                        Ok(()) => {
                            acknowledged[i] = next;
                            ok_ops.push(Instant::now());
                        }
                        Err(e) if e.is_retryable() => transient += 1,
                        Err(e) => panic!("checkpoint refused: {e:?}"),
                    }
                    next += 1;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (held, acknowledged, transient, ok_ops)
        })
    };

    tokio::time::sleep(Duration::from_millis(500)).await;
    let failover_at = Instant::now();
    let reply = replica.command(&["CLUSTER", "FAILOVER"]).await;
    assert_eq!(reply, "OK");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !replica
        .command(&["INFO", "replication"])
        .await
        .contains("role:master")
    {
        assert!(Instant::now() < deadline, "the replica was never promoted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let promoted_after = failover_at.elapsed();
    // Let the worker run on the promoted replica for a while.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.cancel();
    let (held, acknowledged, transient, ok_ops) = work.await.expect("the worker never panics");
    let after = ok_ops
        .iter()
        .filter(|t| **t > failover_at + promoted_after)
        .count();
    println!(
        "failover: replica promoted after {promoted_after:?}; {transient} retryable failures; \
         {after} checkpoints acknowledged after it"
    );
    assert!(
        after >= 20,
        "the store must keep working after the failover ({after} checkpoints)"
    );
    assert!(
        primary
            .command(&["INFO", "replication"])
            .await
            .contains("role:slave"),
        "the old primary is a replica now"
    );

    // What the promoted replica holds: every lease still ours, under the
    // same generation, at the last acknowledged checkpoint.
    let fresh = RedisStore::builder()
        .url(replica.url())
        .cluster(true)
        .application(store.application().as_str())
        .build()
        .await
        .unwrap();
    for (lease, acknowledged) in held.iter().zip(&acknowledged) {
        let stored = fresh.get_lease(&lease.shard_id).await.unwrap().unwrap();
        assert_eq!(stored.owner, Some(worker.clone()));
        assert_eq!(stored.generation, lease.generation);
        // Not back before the last acknowledged checkpoint (a later one
        // whose reply was lost in the failover may have landed).
        let stored_at: u64 = stored.checkpoint.to_parts().0.parse().unwrap();
        assert!(
            *acknowledged > 0 && stored_at >= *acknowledged,
            "{stored_at} < {acknowledged}"
        );
        // The fence holds on the new primary: a take from a stale view
        // and a write under a forged owner are refused.
        let mut stale = stored.clone();
        stale.counter = stored.counter.saturating_sub(1);
        let thief = WorkerId::new("thief").unwrap();
        assert!(matches!(
            fresh.take_lease(&stale, &thief).await,
            Err(Error::Conflict { .. })
        ));
        let mut forged = stored.clone();
        forged.owner = Some(thief);
        assert!(matches!(
            fresh.renew_lease(&forged).await,
            Err(Error::Conflict { .. })
        ));
        store.renew_lease(lease).await.unwrap();
    }
}
