//! A store built from one URL (the form the binaries take) creates and
//! uses the tables the URL names. Credentials never come from a URL, so
//! this test hands the builder the emulator's client (with dummy
//! credentials) after `from_url`.

mod common;

use kcl_core::testkit::conformance::random_application;
use kcl_core::{ExtendedSequenceNumber, Lease, LeaseStore, ShardId, WorkerId};
use kcl_store_dynamo::DynamoStoreBuilder;

#[tokio::test]
async fn a_store_built_from_one_url_uses_its_tables() {
    let Some(endpoint) = common::endpoint() else {
        return;
    };
    let client = common::client(&endpoint);
    let table = random_application();
    let store = DynamoStoreBuilder::from_url(&format!(
        "dynamodb://{table}?heartbeat_table={table}-hb&create_tables=true&table_active_timeout=30s"
    ))
    .unwrap()
    .client(client.clone())
    .build()
    .await
    .unwrap();
    let lease = Lease::new(
        ShardId::new("shardId-000000000001").unwrap(),
        ExtendedSequenceNumber::TrimHorizon,
    );
    assert!(store.create_lease_if_absent(&lease).await.unwrap());
    store.heartbeat(&WorkerId::new("w").unwrap()).await.unwrap();
    let item = client
        .get_item()
        .table_name(table.as_str())
        .key(
            "leaseKey",
            aws_sdk_dynamodb::types::AttributeValue::S(lease.shard_id.to_string()),
        )
        .send()
        .await
        .unwrap();
    assert!(
        item.item.is_some(),
        "the lease is in the table the URL named"
    );
    let workers = client
        .scan()
        .table_name(format!("{table}-hb"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        workers.count, 1,
        "the heartbeat is in the table the URL named"
    );
}
