//! Corrupt stored data is a `Generic` store error, never `Config` and
//! never a panic, against a real PostgreSQL.

mod common;

use kcl_core::testkit::conformance::random_application;
use kcl_core::{Error, ExtendedSequenceNumber, Lease, LeaseStore, ShardId};
use kcl_store_postgres::PostgresStore;

#[tokio::test]
async fn corrupt_rows_are_generic_errors() {
    let Some(url) = common::url() else { return };
    let pool = common::pool(&url).await;
    let schema = common::random_schema();
    let store = PostgresStore::builder()
        .pool(pool.clone())
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
    for corruption in [
        "owner = ''",
        "handoff_to = ''",
        "parent_shard_ids = ARRAY['']",
        "hash_key_start = 5, hash_key_end = 4",
    ] {
        sqlx::query(&format!(
            "UPDATE \"{schema}\".leases SET {corruption} WHERE application = $1"
        ))
        .bind(store.application().as_str())
        .execute(&pool)
        .await
        .unwrap_or_else(|e| panic!("{corruption}: {e}"));
        for result in [
            store.get_lease(&lease.shard_id).await.map(drop),
            store.list_leases().await.map(drop),
        ] {
            assert!(
                matches!(result, Err(Error::Generic { .. })),
                "{corruption}: {result:?}"
            );
        }
        // Put it back for the next corruption.
        sqlx::query(&format!(
            "UPDATE \"{schema}\".leases SET owner = NULL, handoff_to = NULL,
                 parent_shard_ids = ARRAY[]::text[], hash_key_start = NULL, hash_key_end = NULL
             WHERE application = $1"
        ))
        .bind(store.application().as_str())
        .execute(&pool)
        .await
        .unwrap();
        store.get_lease(&lease.shard_id).await.expect("repaired");
    }
    sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .execute(&pool)
        .await
        .unwrap();
}
