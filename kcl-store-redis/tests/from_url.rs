//! A store built from one URL (the form the binaries take) reaches the
//! server with kcl's options applied and the client's passed on.

use kcl_core::testkit::conformance::random_application;
use kcl_core::testkit::server_from_env;
use kcl_core::{ExtendedSequenceNumber, Lease, LeaseStore, ShardId};
use kcl_store_redis::{RedisStore, RedisStoreBuilder};

#[tokio::test]
async fn a_store_built_from_one_url_uses_its_options() {
    let Some(url) = server_from_env("KCL_TEST_REDIS_URL") else {
        return;
    };
    let application = random_application();
    let prefix = format!("kcl-url-{}", &application.as_str()[9..]);
    let sep = if url.contains('?') { '&' } else { '?' };
    let store = RedisStoreBuilder::from_url(&format!(
        "{url}{sep}application={application}&prefix={prefix}&response_timeout=2s&protocol=resp2"
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
    // The same namespace built the long way sees the lease: the prefix and
    // application came from the URL, and the URL reached the client.
    let same = RedisStore::builder()
        .url(&url)
        .application(application.as_str())
        .key_prefix(&prefix)
        .build()
        .await
        .unwrap();
    assert_eq!(
        same.get_lease(&lease.shard_id).await.unwrap(),
        Some(lease.clone())
    );
    store.delete_lease(&lease.shard_id).await.unwrap();
}
