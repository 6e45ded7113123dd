//! The store's own session settings on pools it makes: a lock timeout, so
//! a hung transactional checkpoint cannot block a peer's take for long,
//! and READ COMMITTED whatever the session default, so lost races stay
//! `Conflict` under a SERIALIZABLE default.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use kcl_core::testkit::conformance::{self, StoreFactory, random_application};
use kcl_core::{CheckpointStore, ExtendedSequenceNumber, Lease, LeaseStore, ShardId, WorkerId};
use kcl_store_postgres::PostgresStore;

/// The lease duration the engine would use here; the bound is two of them.
const LEASE_DURATION: Duration = Duration::from_secs(3);

#[tokio::test]
async fn a_hung_transactional_checkpoint_does_not_block_a_take() {
    let Some(url) = common::url() else { return };
    let schema = common::random_schema();
    let application = random_application();
    let build = || {
        PostgresStore::builder()
            .url(&url)
            .schema(&schema)
            .application(application.as_str())
            .lock_timeout(Duration::from_millis(500))
            .build()
    };
    let holder = build().await.unwrap();
    let peer = build().await.unwrap();
    let lease = Lease::new(
        ShardId::new("shardId-000000000001").unwrap(),
        ExtendedSequenceNumber::TrimHorizon,
    );
    holder.create_lease_if_absent(&lease).await.unwrap();
    let held = holder
        .take_lease(&lease, &WorkerId::new("w-1").unwrap())
        .await
        .unwrap();
    // The holder's transaction checkpoints and then hangs, uncommitted,
    // holding the lease's row lock.
    let mut tx = holder.pool().begin().await.unwrap();
    holder
        .checkpoint_in_transaction(
            &mut tx,
            &held,
            &ExtendedSequenceNumber::at("5".parse().unwrap(), 0),
        )
        .await
        .unwrap();

    let observed = peer.get_lease(&lease.shard_id).await.unwrap().unwrap();
    let started = Instant::now();
    let take = tokio::time::timeout(
        4 * LEASE_DURATION,
        peer.take_lease(&observed, &WorkerId::new("w-2").unwrap()),
    )
    .await
    .expect("a take stuck behind a hung transaction for 4 lease durations");
    let waited = started.elapsed();
    eprintln!("take behind a hung transaction returned after {waited:?}: {take:?}");
    assert!(waited < 2 * LEASE_DURATION, "waited {waited:?}");
    let err = take.expect_err("the row is locked");
    assert!(err.is_retryable(), "{err:?}");

    // Once the transaction ends, the take goes through.
    tx.rollback().await.unwrap();
    let observed = peer.get_lease(&lease.shard_id).await.unwrap().unwrap();
    peer.take_lease(&observed, &WorkerId::new("w-2").unwrap())
        .await
        .expect("take after the transaction ended");
    sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .execute(&common::pool(&url).await)
        .await
        .unwrap();
}

/// Stores whose connections default to SERIALIZABLE (as a database or
/// role default would make them).
#[derive(Debug)]
struct Serializable {
    url: String,
    schema: String,
}

impl Serializable {
    async fn store(&self) -> PostgresStore {
        let sep = if self.url.contains('?') { '&' } else { '?' };
        PostgresStore::builder()
            .url(format!(
                "{}{sep}options=-c%20default_transaction_isolation%3Dserializable",
                self.url
            ))
            .schema(&self.schema)
            .application(random_application().as_str())
            .max_connections(4)
            .build()
            .await
            .unwrap()
    }
}

#[async_trait]
impl StoreFactory for Serializable {
    async fn lease_store(&self) -> Arc<dyn LeaseStore> {
        Arc::new(self.store().await)
    }
    async fn checkpoint_store(&self) -> Arc<dyn CheckpointStore> {
        Arc::new(self.store().await)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_passes_with_serializable_sessions() {
    let Some(url) = common::url() else { return };
    let factory = Serializable {
        url: url.clone(),
        schema: common::random_schema(),
    };
    conformance::run_lease_store_suite(&factory).await;
    conformance::run_checkpoint_store_suite(&factory).await;
    sqlx::query(&format!("DROP SCHEMA \"{}\" CASCADE", factory.schema))
        .execute(&common::pool(&url).await)
        .await
        .unwrap();
}

/// A transactional checkpoint at REPEATABLE READ or SERIALIZABLE is
/// refused up front with a clear `Config` error (it would otherwise fail at
/// random, whenever a renew touched the lease after the snapshot), and the
/// transaction stays usable; at READ COMMITTED it works after a renew.
#[tokio::test]
async fn transactional_checkpoints_need_read_committed() {
    let Some(url) = common::url() else { return };
    let schema = common::random_schema();
    let store = PostgresStore::builder()
        .url(&url)
        .schema(&schema)
        .application(random_application().as_str())
        .build()
        .await
        .unwrap();
    let lease = Lease::new(
        ShardId::new("shardId-000000000001").unwrap(),
        ExtendedSequenceNumber::TrimHorizon,
    );
    store.create_lease_if_absent(&lease).await.unwrap();
    let held = store
        .take_lease(&lease, &WorkerId::new("w-1").unwrap())
        .await
        .unwrap();
    let at = |n: &str| ExtendedSequenceNumber::at(n.parse().unwrap(), 0);
    for level in ["REPEATABLE READ", "SERIALIZABLE"] {
        let mut tx = store.pool().begin().await.unwrap();
        sqlx::query(&format!("SET TRANSACTION ISOLATION LEVEL {level}"))
            .execute(&mut *tx)
            .await
            .unwrap();
        let err = store
            .checkpoint_in_transaction(&mut tx, &held, &at("5"))
            .await
            .unwrap_err();
        match &err {
            kcl_core::Error::Config(msg) => assert!(msg.contains("READ COMMITTED"), "{msg}"),
            other => panic!("{level}: expected Config, got {other:?}"),
        }
        let one: i32 = sqlx::query_scalar("SELECT 1")
            .fetch_one(&mut *tx)
            .await
            .expect("the transaction is still usable");
        assert_eq!(one, 1);
        tx.rollback().await.unwrap();
    }
    let mut tx = store.pool().begin().await.unwrap();
    sqlx::query("SELECT 1").execute(&mut *tx).await.unwrap();
    store.renew_lease(&held).await.unwrap();
    store
        .checkpoint_in_transaction(&mut tx, &held, &at("5"))
        .await
        .expect("READ COMMITTED after a renew");
    tx.commit().await.unwrap();
    assert_eq!(
        store
            .get_lease(&lease.shard_id)
            .await
            .unwrap()
            .unwrap()
            .checkpoint,
        at("5")
    );
    sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .execute(&common::pool(&url).await)
        .await
        .unwrap();
}
