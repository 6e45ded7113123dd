//! Every request's consumed capacity reaches the `metrics` facade (one
//! test in this binary: it installs the process-wide recorder).

mod common;

use kcl_core::{ExtendedSequenceNumber, Lease, LeaseStore, ShardId, WorkerId};
use kcl_store_dynamo::CONSUMED_CAPACITY_METRIC;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

#[tokio::test]
async fn consumed_capacity_is_reported_per_operation() {
    let Some(endpoint) = common::endpoint() else {
        return;
    };
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder in this binary");

    let client = common::client(&endpoint);
    let store = common::store(&client).await;
    let lease = Lease::new(
        ShardId::new("shardId-000000000001").unwrap(),
        ExtendedSequenceNumber::TrimHorizon,
    );
    store.create_lease_if_absent(&lease).await.unwrap();
    let held = store
        .take_lease(&lease, &WorkerId::new("w").unwrap())
        .await
        .unwrap();
    store.renew_lease(&held).await.unwrap();
    store.list_leases().await.unwrap();

    let mut by_operation = std::collections::BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        if key.name() != CONSUMED_CAPACITY_METRIC {
            continue;
        }
        let operation = key
            .labels()
            .find(|l| l.key() == "operation")
            .map(|l| l.value().to_string())
            .unwrap();
        if let DebugValue::Counter(tenths) = value {
            *by_operation.entry(operation).or_insert(0) += tenths;
        }
    }
    eprintln!("consumed capacity (tenths of units): {by_operation:?}");
    for operation in ["PutItem", "UpdateItem", "Scan"] {
        assert!(
            by_operation.get(operation).is_some_and(|&t| t > 0),
            "{operation} reported no capacity: {by_operation:?}"
        );
    }
}
