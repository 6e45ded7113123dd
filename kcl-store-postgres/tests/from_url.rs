//! A store built from one URL (the form the binaries take) reaches the
//! server with kcl's options applied and sqlx's passed on.

mod common;

use kcl_core::testkit::conformance::random_application;
use kcl_core::{ExtendedSequenceNumber, Lease, LeaseStore, ShardId};
use kcl_store_postgres::PostgresStoreBuilder;

#[tokio::test]
async fn a_store_built_from_one_url_uses_its_options() {
    let Some(url) = common::url() else { return };
    let schema = common::random_schema();
    let application = random_application();
    let sep = if url.contains('?') { '&' } else { '?' };
    let store = PostgresStoreBuilder::from_url(&format!(
        "{url}{sep}application={application}&schema={schema}&leases_table=url_leases&max_connections=2&acquire_timeout=5s&application_name=kcl-from-url"
    ))
    .unwrap()
    .build()
    .await
    .unwrap();
    let lease = Lease::new(
        ShardId::new("shardId-000000000001").unwrap(),
        ExtendedSequenceNumber::TrimHorizon,
    );
    assert!(store.create_lease_if_absent(&lease).await.unwrap());
    let pool = common::pool(&url).await;
    let (shard, app): (String, String) = sqlx::query_as(&format!(
        "SELECT shard_id, application FROM \"{schema}\".url_leases"
    ))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (shard.as_str(), app.as_str()),
        (lease.shard_id.as_str(), application.as_str())
    );
    sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .execute(&pool)
        .await
        .unwrap();
}
