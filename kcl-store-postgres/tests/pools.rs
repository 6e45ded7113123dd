//! The store's own pool: user transactions that fill the application's
//! pool cannot starve the store's renews, and the store's session settings
//! (lock timeout, statement timeout, READ COMMITTED) hold even on a pool
//! the user passes in with its own, different defaults.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use kcl_core::testkit::conformance::{self, StoreFactory, random_application};
use kcl_core::{CheckpointStore, ExtendedSequenceNumber, Lease, LeaseStore, ShardId, WorkerId};
use kcl_store_postgres::PostgresStore;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// The lease duration the engine would use here: a renew gives up after a
/// third of it.
const LEASE_DURATION: Duration = Duration::from_secs(3);

fn shard() -> ShardId {
    ShardId::new("shardId-000000000001").unwrap()
}

async fn drop_schema(url: &str, schema: &str) {
    sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .execute(&common::pool(url).await)
        .await
        .unwrap();
}

/// Every lease operation of a worker, each within a third of the lease.
async fn lease_operations_complete_quickly(store: &PostgresStore) {
    let bound = LEASE_DURATION / 3;
    let lease = Lease::new(shard(), ExtendedSequenceNumber::TrimHorizon);
    let timed = Instant::now();
    store.create_lease_if_absent(&lease).await.unwrap();
    let held = store
        .take_lease(&lease, &WorkerId::new("w-1").unwrap())
        .await
        .unwrap();
    let started = Instant::now();
    let held = tokio::time::timeout(bound, store.renew_lease(&held))
        .await
        .expect("a renew waited for a connection past a third of the lease")
        .expect("renew");
    eprintln!(
        "renew beside a full application pool: {:?}",
        started.elapsed()
    );
    store
        .update_checkpoint(&held, &ExtendedSequenceNumber::at("9".parse().unwrap(), 0))
        .await
        .unwrap();
    store.heartbeat(&held.owner.clone().unwrap()).await.unwrap();
    assert_eq!(store.list_leases().await.unwrap().len(), 1);
    assert!(timed.elapsed() < 3 * bound, "{:?}", timed.elapsed());
}

/// Fill `pool` with open transactions (as long user transactions do).
async fn fill(pool: &PgPool, connections: u32) -> Vec<sqlx::Transaction<'static, sqlx::Postgres>> {
    let mut open = Vec::new();
    for _ in 0..connections {
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("SELECT 1").execute(&mut *tx).await.unwrap();
        open.push(tx);
    }
    // The pool really is exhausted.
    let acquire = tokio::time::timeout(Duration::from_millis(300), pool.acquire()).await;
    assert!(
        acquire.is_err(),
        "the application pool still had a connection"
    );
    open
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renews_do_not_starve_behind_a_full_application_pool() {
    let Some(url) = common::url() else { return };
    let schema = common::random_schema();
    let store = PostgresStore::builder()
        .url(&url)
        .schema(&schema)
        .application(random_application().as_str())
        .max_connections(3)
        .acquire_timeout(LEASE_DURATION)
        .build()
        .await
        .unwrap();
    let open = fill(store.pool(), 3).await;
    lease_operations_complete_quickly(&store).await;
    drop(open);
    drop_schema(&url, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renews_do_not_starve_behind_a_full_pool_the_user_passed() {
    let Some(url) = common::url() else { return };
    let schema = common::random_schema();
    let user_pool = PgPoolOptions::new()
        .max_connections(3)
        .acquire_timeout(LEASE_DURATION)
        .connect(&url)
        .await
        .unwrap();
    let store = PostgresStore::builder()
        .pool(user_pool.clone())
        .schema(&schema)
        .application(random_application().as_str())
        .acquire_timeout(LEASE_DURATION)
        .build()
        .await
        .unwrap();
    let open = fill(&user_pool, 3).await;
    lease_operations_complete_quickly(&store).await;
    drop(open);
    drop_schema(&url, &schema).await;
}

/// A user's pool whose sessions default to SERIALIZABLE and have no lock
/// or statement timeout (as a role or database default would make them).
async fn serializable_pool(url: &str) -> PgPool {
    let options: PgConnectOptions = url.parse().unwrap();
    PgPoolOptions::new()
        .max_connections(8)
        .connect_with(options.options([
            ("default_transaction_isolation", "serializable"),
            ("lock_timeout", "0"),
            ("statement_timeout", "0"),
        ]))
        .await
        .unwrap()
}

/// The hung-transaction case of `tests/session.rs`, on pools the user
/// passes: the peer's take is bounded by the store's lock timeout although
/// the user's pool sets none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_settings_hold_on_a_pool_the_user_passed() {
    let Some(url) = common::url() else { return };
    let schema = common::random_schema();
    let application = random_application();
    let user_pool = serializable_pool(&url).await;
    let isolation: String = sqlx::query_scalar("SHOW default_transaction_isolation")
        .fetch_one(&user_pool)
        .await
        .unwrap();
    assert_eq!(isolation, "serializable");
    let build = || {
        PostgresStore::builder()
            .pool(user_pool.clone())
            .schema(&schema)
            .application(application.as_str())
            .lock_timeout(Duration::from_millis(500))
            .build()
    };
    let holder = build().await.unwrap();
    let peer = build().await.unwrap();
    let lease = Lease::new(shard(), ExtendedSequenceNumber::TrimHorizon);
    holder.create_lease_if_absent(&lease).await.unwrap();
    let held = holder
        .take_lease(&lease, &WorkerId::new("w-1").unwrap())
        .await
        .unwrap();
    // The holder's own transaction, at READ COMMITTED as the transactional
    // checkpoint needs, checkpoints and then hangs holding the row lock.
    let mut tx = holder.pool().begin().await.unwrap();
    sqlx::query("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        .execute(&mut *tx)
        .await
        .unwrap();
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
    assert!(take.expect_err("the row is locked").is_retryable());
    tx.rollback().await.unwrap();
    drop_schema(&url, &schema).await;
}

/// Stores on a user's SERIALIZABLE pool.
struct SerializableUserPool {
    pool: PgPool,
    schema: String,
}

impl SerializableUserPool {
    async fn store(&self) -> PostgresStore {
        PostgresStore::builder()
            .pool(self.pool.clone())
            .schema(&self.schema)
            .application(random_application().as_str())
            .build()
            .await
            .unwrap()
    }
}

#[async_trait]
impl StoreFactory for SerializableUserPool {
    async fn lease_store(&self) -> Arc<dyn LeaseStore> {
        Arc::new(self.store().await)
    }
    async fn checkpoint_store(&self) -> Arc<dyn CheckpointStore> {
        Arc::new(self.store().await)
    }
}

/// Lost races stay `Conflict` (not serialization failures) on a pool the
/// user passes whose sessions default to SERIALIZABLE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_passes_on_a_serializable_pool_the_user_passed() {
    let Some(url) = common::url() else { return };
    let factory = SerializableUserPool {
        pool: serializable_pool(&url).await,
        schema: common::random_schema(),
    };
    conformance::run_lease_store_suite(&factory).await;
    conformance::run_checkpoint_store_suite(&factory).await;
    drop_schema(&url, &factory.schema).await;
}
