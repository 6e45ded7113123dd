//! Conditional checkpoint latency of `DynamoStore` against the raw SDK's
//! `UpdateItem` on the same DynamoDB endpoint in the same run.
//!
//! One worker holds two leases in one table. The store side calls
//! `DynamoStore::update_checkpoint` (fenced by owner and generation,
//! never backwards, conditional on the checkpoint it last saw); the
//! baseline sends the raw SDK's `UpdateItem` with the same condition shape
//! (`leaseOwner`, `kclrsGeneration`, `checkpoint` and
//! `checkpointSubSequenceNumber` as last written) and the same updates
//! (`checkpoint`, sub-sequence, owner switches, pending cleared, counter +
//! 1). The two alternate call by call, one request in flight, so drift on a
//! shared machine hits both. Figure: p50 and p99 latency of each, and the
//! ratios store / raw (goal: close to 1, the store adding no round trip).
//!
//! ```sh
//! KCL_BENCH_DYNAMO_ENDPOINT=http://127.0.0.1:8000 \
//!     cargo run --release -p kcl-benches --bin dynamo_checkpoint [checkpoints per side, default 500]
//! ```
//! (`KCL_TEST_DYNAMO_ENDPOINT` is used when `KCL_BENCH_DYNAMO_ENDPOINT` is
//! unset; static dummy credentials, region us-east-1.)

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use kcl_core::testkit::conformance::random_application;
use kcl_core::{ExtendedSequenceNumber, Lease, LeaseStore, ShardId, WorkerId};
use kcl_store_dynamo::DynamoStore;

fn sequence(i: u64) -> String {
    format!("4959033827149025660855969253836157109592157598{i:010}")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let Some(endpoint) = ["KCL_BENCH_DYNAMO_ENDPOINT", "KCL_TEST_DYNAMO_ENDPOINT"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
    else {
        eprintln!(
            "dynamo_checkpoint: set KCL_BENCH_DYNAMO_ENDPOINT (or KCL_TEST_DYNAMO_ENDPOINT) to a \
             DynamoDB endpoint, e.g. http://127.0.0.1:8000 (moto_server)"
        );
        std::process::exit(1);
    };
    let count: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("checkpoints per side, a number"))
        .unwrap_or(500);

    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(&endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("bench", "bench", None, None, "kcl-bench"))
        .build();
    let client = Client::from_conf(config);
    let store = DynamoStore::builder()
        .application(random_application().as_str())
        .client(client.clone())
        .build()
        .await
        .expect("build DynamoStore");
    let worker = WorkerId::new("bench-worker").unwrap();
    let mut held = Vec::new();
    for i in 0..2 {
        let lease = Lease::new(
            ShardId::new(format!("shardId-{i:012}")).unwrap(),
            ExtendedSequenceNumber::TrimHorizon,
        );
        store.create_lease_if_absent(&lease).await.unwrap();
        held.push(store.take_lease(&lease, &worker).await.unwrap());
    }
    let (store_lease, raw_lease) = (&held[0], &held[1]);

    // Warm both paths (connections, the store's checkpoint cache).
    let mut raw_last = ("TRIM_HORIZON".to_string(), 0u64);
    let mut next = 1u64;
    for _ in 0..5 {
        store
            .update_checkpoint(store_lease, &position(next))
            .await
            .unwrap();
        raw_checkpoint(&client, store.table_name(), raw_lease, &mut raw_last, next).await;
        next += 1;
    }

    let mut store_times = Vec::with_capacity(count as usize);
    let mut raw_times = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let started = Instant::now();
        raw_checkpoint(&client, store.table_name(), raw_lease, &mut raw_last, next).await;
        raw_times.push(started.elapsed());
        let started = Instant::now();
        store
            .update_checkpoint(store_lease, &position(next))
            .await
            .expect("store checkpoint");
        store_times.push(started.elapsed());
        next += 1;
    }
    store_times.sort();
    raw_times.sort();

    let (raw50, raw99) = (percentile(&raw_times, 0.5), percentile(&raw_times, 0.99));
    let (st50, st99) = (
        percentile(&store_times, 0.5),
        percentile(&store_times, 0.99),
    );
    println!(
        "dynamo_checkpoint: {count} conditional checkpoints per side, alternating, one in flight, on {endpoint}"
    );
    println!("  raw SDK UpdateItem (same condition):   p50 {raw50:>9.2?}  p99 {raw99:>9.2?}");
    println!("  DynamoStore::update_checkpoint:        p50 {st50:>9.2?}  p99 {st99:>9.2?}");
    println!(
        "  ratio store / raw: p50 {:.2}, p99 {:.2} (goal: close to 1)",
        st50.as_secs_f64() / raw50.as_secs_f64(),
        st99.as_secs_f64() / raw99.as_secs_f64()
    );

    for lease in &held {
        store.delete_lease(&lease.shard_id).await.unwrap();
    }
    for table in [store.table_name(), store.heartbeat_table_name()] {
        let _ = client.delete_table().table_name(table).send().await;
    }
}

fn position(i: u64) -> ExtendedSequenceNumber {
    ExtendedSequenceNumber::at(sequence(i).parse().unwrap(), 0)
}

/// The baseline: one `UpdateItem` with the condition a fenced,
/// never-backwards checkpoint needs when the writer knows the stored
/// checkpoint (it wrote it last).
async fn raw_checkpoint(
    client: &Client,
    table: &str,
    held: &Lease,
    last: &mut (String, u64),
    i: u64,
) {
    let value = sequence(i);
    let names = HashMap::from(
        [
            "leaseKey",
            "leaseOwner",
            "checkpointOwner",
            "kclrsGeneration",
            "checkpoint",
            "checkpointSubSequenceNumber",
            "ownerSwitchesSinceCheckpoint",
            "pendingCheckpoint",
            "pendingCheckpointSubSequenceNumber",
            "pendingCheckpointState",
            "leaseCounter",
        ]
        .map(|n| (format!("#{n}"), n.to_string())),
    );
    let values = HashMap::from([
        (
            ":owner".to_string(),
            AttributeValue::S("bench-worker".into()),
        ),
        (
            ":gen".to_string(),
            AttributeValue::N(held.generation.to_string()),
        ),
        (":old".to_string(), AttributeValue::S(last.0.clone())),
        (":oldsub".to_string(), AttributeValue::N(last.1.to_string())),
        (":new".to_string(), AttributeValue::S(value.clone())),
        (":zero".to_string(), AttributeValue::N("0".into())),
        (":one".to_string(), AttributeValue::N("1".into())),
    ]);
    client
        .update_item()
        .table_name(table)
        .key("leaseKey", AttributeValue::S(held.shard_id.as_str().into()))
        .condition_expression(
            "attribute_exists(#leaseKey) AND (#checkpointOwner = :owner OR \
             (attribute_not_exists(#checkpointOwner) AND #leaseOwner = :owner)) AND \
             #kclrsGeneration = :gen AND #checkpoint = :old AND #checkpointSubSequenceNumber = :oldsub",
        )
        .update_expression(
            "SET #checkpoint = :new, #checkpointSubSequenceNumber = :zero, \
             #ownerSwitchesSinceCheckpoint = :zero ADD #leaseCounter :one \
             REMOVE #pendingCheckpoint, #pendingCheckpointSubSequenceNumber, #pendingCheckpointState",
        )
        .set_expression_attribute_names(Some(names))
        .set_expression_attribute_values(Some(values))
        .return_values(ReturnValue::AllNew)
        .send()
        .await
        .expect("raw checkpoint");
    *last = (value, 0);
}
