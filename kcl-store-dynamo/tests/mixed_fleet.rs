//! A mixed fleet on one lease table (moto): a Java-shaped worker that holds
//! one lease and renews it as Java KCL does (a conditional `PUT
//! leaseCounter + 1`, every `failoverTimeMillis / 3`; here a 3 s failover
//! time, so every second), beside the real engine on a `DynamoStore` with a
//! lease duration of 500 ms, far shorter than Java's renew interval. The
//! Rust worker must take the free lease and leave the live Java lease
//! alone; once the Java worker stops renewing (a crash), the Rust worker
//! takes its lease after the Java failover time.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeAction, AttributeValue, AttributeValueUpdate, ExpectedAttributeValue,
};
use kcl_core::testkit::FakeStream;
use kcl_core::testkit::conformance::random_application;
use kcl_core::testkit::engine::Recorder;
use kcl_core::{ExtendedSequenceNumber, Lease, LeaseStore, ShardId, Worker, WorkerId};
use kcl_store_dynamo::DynamoStore;
use tokio_util::sync::CancellationToken;

const JAVA: &str = "java-worker-1";
const JAVA_FAILOVER: Duration = Duration::from_secs(3);
const RUST_LEASE: Duration = Duration::from_millis(500);

fn shard(i: u32) -> ShardId {
    ShardId::new(format!("shardId-{i:012}")).unwrap()
}

/// Java's renew of `key` at `counter` by the `JAVA` owner.
async fn java_renew(client: &Client, table: &str, key: &ShardId, counter: u64) -> bool {
    let expected = HashMap::from([
        (
            "leaseCounter".to_string(),
            ExpectedAttributeValue::builder()
                .value(AttributeValue::N(counter.to_string()))
                .build(),
        ),
        (
            "leaseOwner".to_string(),
            ExpectedAttributeValue::builder()
                .value(AttributeValue::S(JAVA.into()))
                .build(),
        ),
    ]);
    let updates = HashMap::from([(
        "leaseCounter".to_string(),
        AttributeValueUpdate::builder()
            .value(AttributeValue::N((counter + 1).to_string()))
            .action(AttributeAction::Put)
            .build(),
    )]);
    client
        .update_item()
        .table_name(table)
        .key("leaseKey", AttributeValue::S(key.as_str().into()))
        .set_expected(Some(expected))
        .set_attribute_updates(Some(updates))
        .send()
        .await
        .is_ok()
}

/// Java's take of a free lease: owner and counter + 1.
async fn java_take(client: &Client, table: &str, key: &ShardId, counter: u64) {
    client
        .update_item()
        .table_name(table)
        .key("leaseKey", AttributeValue::S(key.as_str().into()))
        .update_expression("SET leaseOwner = :o, leaseCounter = :n")
        .condition_expression("leaseCounter = :c")
        .expression_attribute_values(":o", AttributeValue::S(JAVA.into()))
        .expression_attribute_values(":n", AttributeValue::N((counter + 1).to_string()))
        .expression_attribute_values(":c", AttributeValue::N(counter.to_string()))
        .send()
        .await
        .expect("Java-shaped take");
}

async fn owner_of(store: &DynamoStore, key: &ShardId) -> Option<WorkerId> {
    store.get_lease(key).await.unwrap().unwrap().owner
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_rust_lease_leaves_live_java_leases_alone() {
    let Some(endpoint) = common::endpoint() else {
        return;
    };
    let client = common::client(&endpoint);
    let store = DynamoStore::builder()
        .application(random_application().as_str())
        .client(client.clone())
        .java_failover_time(JAVA_FAILOVER)
        .build()
        .await
        .unwrap();
    let table = store.table_name().to_string();
    let (java_shard, free_shard) = (shard(0), shard(1));
    for key in [&java_shard, &free_shard] {
        let lease = Lease::new(key.clone(), ExtendedSequenceNumber::TrimHorizon);
        assert!(store.create_lease_if_absent(&lease).await.unwrap());
    }
    let counter = store.get_lease(&java_shard).await.unwrap().unwrap().counter;
    java_take(&client, &table, &java_shard, counter).await;

    // The Java worker renews every failover / 3.
    let java_stop = CancellationToken::new();
    let java = {
        let (client, table, key, stop) = (
            client.clone(),
            table.clone(),
            java_shard.clone(),
            java_stop.clone(),
        );
        tokio::spawn(async move {
            let mut counter = counter + 1;
            let mut renews = 0;
            while !stop.is_cancelled() {
                tokio::time::sleep(JAVA_FAILOVER / 3).await;
                if !java_renew(&client, &table, &key, counter).await {
                    return Err(format!("Java lost its lease after {renews} renews"));
                }
                counter += 1;
                renews += 1;
            }
            Ok(renews)
        })
    };

    let stream = FakeStream::new(2);
    let recorder = Recorder::new();
    let shared: Arc<dyn LeaseStore> = Arc::new(store.clone());
    let worker = Worker::builder()
        .worker_id("rust-worker-1")
        .lease_store(shared)
        .source(Arc::new(stream.clone()))
        .lease_duration(RUST_LEASE)
        .scan_interval(Duration::from_millis(100))
        .lease_scan_interval(Duration::from_millis(200))
        .processor(recorder.factory("rust-worker-1"))
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    let rust = tokio::spawn(worker.run(cancel.clone()));

    // For 12 Rust lease durations (4 Java renews), the Java lease stays
    // Java's and the free one becomes ours.
    let rust_id = WorkerId::new("rust-worker-1").unwrap();
    let started = Instant::now();
    let mut took_free = false;
    while started.elapsed() < 12 * RUST_LEASE.max(Duration::from_millis(500)) {
        assert_eq!(
            owner_of(&store, &java_shard)
                .await
                .as_ref()
                .map(WorkerId::as_str),
            Some(JAVA),
            "the Rust worker took a live Java lease after {:?}",
            started.elapsed()
        );
        took_free |= owner_of(&store, &free_shard).await.as_ref() == Some(&rust_id);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(took_free, "the Rust worker never took the free lease");
    java_stop.cancel();
    let renews = java.await.unwrap().expect("the Java worker kept its lease");
    assert!(renews >= 3, "{renews} Java renews");

    // The Java worker is gone: its lease goes to the Rust worker after the
    // Java failover time (not before), within a few scans after it.
    let stopped = Instant::now();
    loop {
        if owner_of(&store, &java_shard).await.as_ref() == Some(&rust_id) {
            break;
        }
        assert!(
            stopped.elapsed() < JAVA_FAILOVER + Duration::from_secs(10),
            "a crashed Java worker's lease was never taken"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let waited = stopped.elapsed();
    eprintln!("took the crashed Java worker's lease after {waited:?}");
    assert!(
        waited >= JAVA_FAILOVER - JAVA_FAILOVER / 3,
        "taken after {waited:?}, before Java's failover time"
    );
    cancel.cancel();
    rust.await.unwrap().unwrap();
}
