//! Multi-stream lease tables shared with Java KCL: an item laid out as
//! Java's `DynamoDBMultiStreamLeaseSerializer` writes it (`leaseKey`
//! `account:name:epoch:shardId`, `streamName`, `shardId`, raw parent ids)
//! is read, taken, checkpointed and given children; items we write have
//! Java's attributes with raw parent and child ids; and the shared
//! scenario (3 streams x 8 shards over 3 workers, a split, a stream
//! removed and one added) runs on moto.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use kcl_core::stream::StreamIdentifier;
use kcl_core::testkit::multistream::three_streams_over_three_workers;
use kcl_core::{Error, ExtendedSequenceNumber as Esn, Lease, LeaseStore, ShardId, WorkerId};
use kcl_store_dynamo::DynamoStore;

const STREAM: &str = "123456789012:orders:1700000000";
const MAX_HASH: &str = "340282366920938463463374607431768211455";

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}
fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}
fn ss(v: &[&str]) -> AttributeValue {
    AttributeValue::Ss(v.iter().map(|x| x.to_string()).collect())
}
fn key(shard: &str) -> ShardId {
    ShardId::new(format!("{STREAM}:{shard}")).unwrap()
}

async fn put(client: &Client, store: &DynamoStore, item: HashMap<String, AttributeValue>) {
    client
        .put_item()
        .table_name(store.table_name())
        .set_item(Some(item))
        .send()
        .await
        .expect("put a Java-shaped item");
}

async fn raw(
    client: &Client,
    store: &DynamoStore,
    key: &ShardId,
) -> HashMap<String, AttributeValue> {
    client
        .get_item()
        .table_name(store.table_name())
        .key("leaseKey", s(key.as_str()))
        .consistent_read(true)
        .send()
        .await
        .expect("get item")
        .item
        .expect("item exists")
}

fn strings(item: &HashMap<String, AttributeValue>, name: &str) -> Vec<String> {
    match item.get(name) {
        Some(AttributeValue::Ss(v)) => {
            let mut v = v.clone();
            v.sort();
            v
        }
        other => panic!("{name} is {other:?}"),
    }
}

/// A merge child as Java's shard sync writes it in multi-stream mode.
fn java_multi_stream_item(shard: &str, parents: &[&str]) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::from([
        ("leaseKey".into(), s(key(shard).as_str())),
        ("streamName".into(), s(STREAM)),
        ("shardId".into(), s(shard)),
        ("leaseCounter".into(), n(0)),
        ("ownerSwitchesSinceCheckpoint".into(), n(0)),
        ("checkpoint".into(), s("TRIM_HORIZON")),
        ("checkpointSubSequenceNumber".into(), n(0)),
        ("startingHashKey".into(), s("0")),
        ("endingHashKey".into(), s(MAX_HASH)),
    ]);
    if !parents.is_empty() {
        item.insert("parentShardId".into(), ss(parents));
    }
    item
}

#[tokio::test]
async fn a_java_multi_stream_item_is_read_taken_checkpointed_and_given_children() {
    let Some(endpoint) = common::endpoint() else {
        return;
    };
    let client = common::client(&endpoint);
    let store = common::store(&client).await;
    let child = "shardId-000000000002";
    put(
        &client,
        &store,
        java_multi_stream_item(child, &["shardId-000000000000", "shardId-000000000001"]),
    )
    .await;

    let lease = store.get_lease(&key(child)).await.unwrap().unwrap();
    assert_eq!(
        lease.parent_shard_ids,
        vec![key("shardId-000000000000"), key("shardId-000000000001")],
        "raw parents read keyed as the engine's lease key is"
    );
    let me = WorkerId::new("rust-worker").unwrap();
    let held = store.take_lease(&lease, &me).await.unwrap();
    let at: kcl_core::SequenceNumber = "49590338271490256608559692538361571095921575989136588898"
        .parse()
        .unwrap();
    store
        .update_checkpoint(&held, &Esn::at(at, 0))
        .await
        .unwrap();
    store
        .update_child_shard_ids(
            &held,
            &[key("shardId-000000000004"), key("shardId-000000000003")],
        )
        .await
        .unwrap();

    let item = raw(&client, &store, &key(child)).await;
    assert_eq!(item["leaseOwner"], s("rust-worker"));
    assert_eq!(item["streamName"], s(STREAM), "Java's attribute kept");
    assert_eq!(item["shardId"], s(child));
    assert_eq!(
        strings(&item, "childShardIds"),
        ["shardId-000000000003", "shardId-000000000004"],
        "children written raw, as Java's ShutdownTask writes them"
    );
    assert_eq!(
        strings(&item, "parentShardId"),
        ["shardId-000000000000", "shardId-000000000001"]
    );
    let listed = store.list_leases().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].child_shard_ids,
        vec![key("shardId-000000000003"), key("shardId-000000000004")]
    );
}

#[tokio::test]
async fn leases_we_create_have_javas_multi_stream_attributes() {
    let Some(endpoint) = common::endpoint() else {
        return;
    };
    let client = common::client(&endpoint);
    let store = common::store(&client).await;
    let stream: StreamIdentifier = STREAM.parse().unwrap();
    let parent = ShardId::new("shardId-000000000000").unwrap();
    let child = ShardId::new("shardId-000000000001").unwrap();
    let lease = Lease::new(stream.lease_key(&child).unwrap(), Esn::TrimHorizon)
        .with_parents([stream.lease_key(&parent).unwrap()])
        .with_hash_key_range(kcl_core::HashKeyRange::FULL);
    assert!(store.create_lease_if_absent(&lease).await.unwrap());
    let item = raw(&client, &store, &lease.shard_id).await;
    assert_eq!(
        item["leaseKey"],
        s(&format!("{STREAM}:shardId-000000000001"))
    );
    assert_eq!(item["streamName"], s(STREAM));
    assert_eq!(item["shardId"], s("shardId-000000000001"));
    assert_eq!(strings(&item, "parentShardId"), ["shardId-000000000000"]);
    assert_eq!(
        store.get_lease(&lease.shard_id).await.unwrap().unwrap(),
        lease
    );

    // A single-stream lease has neither attribute.
    let single = Lease::new(parent.clone(), Esn::TrimHorizon);
    assert!(store.create_lease_if_absent(&single).await.unwrap());
    let item = raw(&client, &store, &parent).await;
    assert!(
        !item.contains_key("streamName") && !item.contains_key("shardId"),
        "{item:?}"
    );
}

#[tokio::test]
async fn a_multi_stream_item_whose_attributes_disagree_with_its_key_is_a_clear_error() {
    let Some(endpoint) = common::endpoint() else {
        return;
    };
    let client = common::client(&endpoint);
    let store = common::store(&client).await;
    let mut item = java_multi_stream_item("shardId-000000000007", &[]);
    item.insert("shardId".into(), s("shardId-000000000008"));
    put(&client, &store, item).await;
    let err = store
        .get_lease(&key("shardId-000000000007"))
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    assert!(err.to_string().contains("do not match the key"), "{err}");
    let mut bad = java_multi_stream_item("shardId-000000000009", &[]);
    bad.insert("leaseKey".into(), s("shardId-000000000009"));
    put(&client, &store, bad).await;
    let err = store
        .get_lease(&ShardId::new("shardId-000000000009").unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Generic { .. } | Error::InvalidCheckpoint(_)) || !err.is_retryable(),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_streams_over_three_workers_on_dynamodb() {
    let Some(endpoint) = common::endpoint() else {
        return;
    };
    let client = common::client(&endpoint);
    let store: Arc<dyn LeaseStore> = Arc::new(common::store(&client).await);
    let report = three_streams_over_three_workers(store, Duration::from_secs(6)).await;
    println!("multistream dynamodb: {report:?}");
}
