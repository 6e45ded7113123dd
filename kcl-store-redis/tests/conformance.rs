//! The store contract, proven against a real Redis server
//! (`KCL_TEST_REDIS_URL`; `scripts/test-all.sh` starts one).

mod common;

use kcl_core::testkit::conformance::{StoreFactory, store_factory};
use kcl_core::{CheckpointStore, ExtendedSequenceNumber, Lease, LeaseStore, ShardId, WorkerId};
use kcl_store_redis::RedisStore;

async fn factory() -> Option<impl StoreFactory> {
    let url = common::url()?;
    Some(store_factory(move || {
        let url = url.clone();
        async move { common::store(&url).await }
    }))
}

kcl_core::store_conformance_tests!(factory);

/// Two stores with the same application but different prefixes are
/// separate namespaces; the same prefix and application share data.
#[tokio::test]
async fn key_prefix_separates_namespaces() {
    let Some(url) = common::url() else { return };
    let one = common::store(&url).await;
    let same = one.with_application(one.application().clone());
    let other_prefix = RedisStore::builder()
        .url(&url)
        .application(one.application().as_str())
        .key_prefix("kcl-other-prefix")
        .build()
        .await
        .unwrap();
    let lease = Lease::new(
        ShardId::new("shardId-000000000001").unwrap(),
        ExtendedSequenceNumber::TrimHorizon,
    );
    assert!(one.create_lease_if_absent(&lease).await.unwrap());
    assert_eq!(
        same.get_lease(&lease.shard_id).await.unwrap(),
        Some(lease.clone())
    );
    assert_eq!(other_prefix.get_lease(&lease.shard_id).await.unwrap(), None);
    assert!(!same.hash_tag().is_empty() && same.hash_tag() == one.hash_tag());
    one.delete_lease(&lease.shard_id).await.unwrap();
}

/// The store's `Debug` never shows the URL's password, and a wrong
/// password is a plain (not retryable) error.
#[tokio::test]
async fn password_is_redacted_and_a_wrong_one_is_not_retryable() {
    let Some(url) = common::url() else { return };
    let store = common::store(&url).await;
    assert!(format!("{store:?}").contains("127.0.0.1"));

    let with_password = url.replacen("redis://", "redis://:hunter2-not-the-password@", 1);
    let err = RedisStore::builder()
        .url(&with_password)
        .application("kcl-test-auth")
        .build()
        .await
        .expect_err("the test server has no password");
    assert!(!err.is_retryable(), "{err:?}");
    assert!(!format!("{err:?} {err}").contains("hunter2"), "{err:?}");
}

/// Stored sequence numbers compare as numbers in the scripts even when
/// they differ only deep inside 56 digits, and sub-sequence numbers beyond
/// 2^53 (where a Lua number would round) keep their order.
#[tokio::test]
async fn sequence_numbers_compare_exactly_in_lua() {
    let Some(url) = common::url() else { return };
    let store = common::store(&url).await;
    let shard = ShardId::new("shardId-000000000009").unwrap();
    let at = |s: &str, sub: u64| ExtendedSequenceNumber::at(s.parse().unwrap(), sub);
    let big = "49590338271490256608559692538361571095921575989136588898";
    store
        .set_checkpoint(&shard, &at(big, u64::MAX - 1))
        .await
        .unwrap();
    store
        .set_checkpoint(&shard, &at(big, u64::MAX))
        .await
        .unwrap();
    assert!(
        store
            .set_checkpoint(&shard, &at(big, u64::MAX - 1))
            .await
            .is_err(),
        "u64::MAX - 1 after u64::MAX must be refused (doubles cannot tell them apart)"
    );
    let lease = Lease::new(shard.clone(), at(big, 0));
    assert!(store.create_lease_if_absent(&lease).await.unwrap());
    let held = store
        .take_lease(&lease, &WorkerId::new("w").unwrap())
        .await
        .unwrap();
    store
        .update_checkpoint(&held, &at(big, u64::MAX))
        .await
        .unwrap();
    assert!(matches!(
        store.update_checkpoint(&held, &at(big, u64::MAX - 1)).await,
        Err(kcl_core::Error::InvalidCheckpoint(_))
    ));
    assert!(matches!(
        store
            .update_checkpoint(&held, &ExtendedSequenceNumber::Latest)
            .await,
        Err(kcl_core::Error::InvalidCheckpoint(_))
    ));
    let lower = "49590338271490256608559692538361570095921575989136588898";
    assert!(matches!(
        store.update_checkpoint(&held, &at(lower, 0)).await,
        Err(kcl_core::Error::InvalidCheckpoint(_))
    ));
}
