//! A lease table shared with Java KCL 3.5 (which keeps items that are not
//! leases in it), counters at their limit, and a create the SDK retried
//! after it had succeeded — against moto_server.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::interceptors::BeforeDeserializationInterceptorContextMut;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::types::AttributeValue;
use kcl_core::{Error, ExtendedSequenceNumber, Lease, LeaseStore, ShardId, WorkerId};

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}
fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

async fn put(client: &Client, table: &str, item: Vec<(&str, AttributeValue)>) {
    let item: HashMap<String, AttributeValue> =
        item.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    client
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .send()
        .await
        .expect("put a raw item");
}

/// Every kind of item Java KCL 3.5 keeps beside its leases (shaped as its
/// coordinator writes them: keyed by `leaseKey`, marked by `entityType`),
/// a 3.5 lease that says `entityType = LEASE`, and a 2.x lease without it.
#[tokio::test]
async fn a_java_3_5_table_lists_only_its_leases() {
    let Some(endpoint) = common::endpoint() else {
        return;
    };
    let client = common::client(&endpoint);
    let store = common::store(&client).await;
    let table = store.table_name().to_string();
    for (key, kind, extra) in [
        (
            "worker-1",
            "WORKER_METRICS_STATS",
            vec![("lastUpdateTime", n(1_700_000_000))],
        ),
        (
            "Leader",
            "LEADER",
            vec![("leaseOwner", s("worker-1")), ("leaseCounter", n(4))],
        ),
        (
            "Migration3.0",
            "MIGRATION",
            vec![("currentMode", s("KCL_3X"))],
        ),
        (
            "ClientVersion",
            "CLIENT_VERSION",
            vec![("cv", s("CLIENT_VERSION_3x"))],
        ),
        (
            "stream:orders:1700000000",
            "STREAM",
            vec![("streamArn", s("arn:aws:kinesis:::stream/orders"))],
        ),
        ("coordinatorState", "COORDINATOR_STATE", vec![]),
    ] {
        let mut item = vec![("leaseKey", s(key)), ("entityType", s(kind))];
        item.extend(extra);
        put(&client, &table, item).await;
    }
    put(
        &client,
        &table,
        vec![
            ("leaseKey", s("shardId-000000000001")),
            ("entityType", s("LEASE")),
            ("leaseOwner", s("java-worker")),
            ("leaseCounter", n(7)),
            ("checkpoint", s("TRIM_HORIZON")),
            ("checkpointSubSequenceNumber", n(0)),
            ("ownerSwitchesSinceCheckpoint", n(0)),
        ],
    )
    .await;
    put(
        &client,
        &table,
        vec![
            ("leaseKey", s("shardId-000000000002")),
            ("leaseCounter", n(1)),
            ("checkpoint", s("LATEST")),
        ],
    )
    .await;

    let mut keys: Vec<String> = store
        .list_leases()
        .await
        .expect("a table with Java 3.5's other items lists")
        .into_iter()
        .map(|l| l.shard_id.to_string())
        .collect();
    keys.sort();
    assert_eq!(keys, ["shardId-000000000001", "shardId-000000000002"]);

    // Not leases to any other method either: a read is None, and a
    // lease-shaped write is refused without touching the item.
    let leader = ShardId::new("Leader").unwrap();
    assert_eq!(store.get_lease(&leader).await.unwrap(), None);
    let mut fake = Lease::new(leader.clone(), ExtendedSequenceNumber::TrimHorizon);
    fake.counter = 4;
    let taken = store
        .take_lease(&fake, &WorkerId::new("rust").unwrap())
        .await;
    assert!(matches!(taken, Err(Error::NotFound { .. })), "{taken:?}");
    assert!(!store.create_lease_if_absent(&fake).await.unwrap());
    let raw = client
        .get_item()
        .table_name(&table)
        .key("leaseKey", s("Leader"))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(raw.get("leaseOwner"), Some(&s("worker-1")));
    assert_eq!(raw.get("entityType"), Some(&s("LEADER")));

    // The 3.5 lease itself is a lease like any other.
    let java = store
        .get_lease(&ShardId::new("shardId-000000000001").unwrap())
        .await
        .unwrap()
        .unwrap();
    let held = store
        .take_lease(&java, &WorkerId::new("rust").unwrap())
        .await
        .expect("take a Java 3.5 lease");
    store.renew_lease(&held).await.expect("renew it");
}

/// Counters at `u64::MAX` are an error, never a panic (debug) or a wrap
/// to 0 (release).
#[tokio::test]
async fn counters_at_their_limit_are_errors_not_panics() {
    let Some(endpoint) = common::endpoint() else {
        return;
    };
    let client = common::client(&endpoint);
    let store = common::store(&client).await;
    let table = store.table_name().to_string();
    put(
        &client,
        &table,
        vec![
            ("leaseKey", s("shardId-000000000001")),
            ("leaseCounter", n(u64::MAX)),
            ("kclrsGeneration", n(u64::MAX)),
            ("leaseOwner", s("w")),
            ("checkpoint", s("TRIM_HORIZON")),
        ],
    )
    .await;
    let stored = store
        .get_lease(&ShardId::new("shardId-000000000001").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.counter, u64::MAX);
    let taken = store
        .take_lease(&stored, &WorkerId::new("x").unwrap())
        .await;
    assert!(matches!(taken, Err(Error::Generic { .. })), "{taken:?}");
    let released = store.release_lease(&stored, None).await;
    assert!(
        matches!(released, Err(Error::Generic { .. })),
        "{released:?}"
    );
    let after = store.get_lease(&stored.shard_id).await.unwrap().unwrap();
    assert_eq!(
        (after.counter, after.generation),
        (u64::MAX, u64::MAX),
        "nothing wrapped"
    );
}

/// Turns the first reply of the first request into a 500, after the
/// server applied it: the SDK retries a request that had succeeded.
#[derive(Debug, Default)]
struct LoseFirstReply(AtomicBool);

impl Intercept for LoseFirstReply {
    fn name(&self) -> &'static str {
        "LoseFirstReply"
    }
    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        if !self.0.swap(true, Ordering::SeqCst) {
            *context.response_mut().status_mut() = 500.try_into().unwrap();
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_create_the_sdk_retried_after_it_succeeded_reports_true() {
    let Some(endpoint) = common::endpoint() else {
        return;
    };
    let client = common::client(&endpoint);
    let store = common::store(&client).await;
    let lose = Arc::new(LoseFirstReply::default());
    let flaky = Client::from_conf(
        client
            .config()
            .to_builder()
            .interceptor(SharedLose(lose.clone()))
            .build(),
    );
    let flaky_store = kcl_store_dynamo::DynamoStore::builder()
        .application(store.application().as_str())
        .table_name(store.table_name())
        .client(flaky)
        .create_tables_if_absent(false)
        .build()
        .await
        .unwrap();
    // Building read the table description; arm the fault for the put.
    lose.0.store(false, Ordering::SeqCst);
    let lease = Lease::new(
        ShardId::new("shardId-000000000001").unwrap(),
        ExtendedSequenceNumber::TrimHorizon,
    );
    assert!(
        flaky_store.create_lease_if_absent(&lease).await.unwrap(),
        "the first attempt created the lease; its retry must say so"
    );
    assert!(lose.0.load(Ordering::SeqCst), "the fault was injected");
    // A create by anyone else afterwards still reports false.
    assert!(!store.create_lease_if_absent(&lease).await.unwrap());
    assert!(!flaky_store.create_lease_if_absent(&lease).await.unwrap());
}

/// Shares one [`LoseFirstReply`] between the test and the client.
#[derive(Debug)]
struct SharedLose(Arc<LoseFirstReply>);

impl Intercept for SharedLose {
    fn name(&self) -> &'static str {
        "SharedLose"
    }
    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        self.0.modify_before_deserialization(context, rc, cfg)
    }
}
