//! Compatibility with Java KCL 2.x/3.x: items put exactly as Java's
//! `DynamoDBLeaseSerializer` writes them (single-stream keys, sentinels,
//! SHARD_END, merged-shard parents, a pending checkpoint with state, a 3.x
//! graceful hand-off) are read, taken and checkpointed by `DynamoStore`;
//! Java's own conditional writes (take, renew, evict — sent here in Java's
//! legacy `Expected` / `AttributeUpdates` shape) interleave correctly with
//! ours; and every item we write has exactly Java's attribute names and
//! types, plus our two documented extras.

mod common;

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeAction, AttributeValue, AttributeValueUpdate, ExpectedAttributeValue,
};
use kcl_core::{
    Error, ExtendedSequenceNumber as Esn, HashKeyRange, Lease, LeaseStore, PendingCheckpoint,
    ShardId, WorkerId,
};
use kcl_store_dynamo::DynamoStore;

const BIG: &str = "49590338271490256608559692538361571095921575989136588898";
const BIGGER: &str = "49590338271490256608559692538361571095921575989136588899";
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
fn shard(i: u32) -> ShardId {
    ShardId::new(format!("shardId-{i:012}")).unwrap()
}
fn worker(w: &str) -> WorkerId {
    WorkerId::new(w).unwrap()
}
fn seq(d: &str, sub: u64) -> Esn {
    Esn::at(d.parse().unwrap(), sub)
}

/// An item as Java's `toDynamoRecord` writes a fresh single-stream lease
/// from shard sync: no owner, counter 0, checkpoint sentinel, hash range.
fn java_new_lease(key: &str, checkpoint: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("leaseKey".into(), s(key)),
        ("leaseCounter".into(), n(0)),
        ("ownerSwitchesSinceCheckpoint".into(), n(0)),
        ("checkpoint".into(), s(checkpoint)),
        ("checkpointSubSequenceNumber".into(), n(0)),
        ("startingHashKey".into(), s("0")),
        ("endingHashKey".into(), s(MAX_HASH)),
    ])
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

fn type_of(v: &AttributeValue) -> &'static str {
    match v {
        AttributeValue::S(_) => "S",
        AttributeValue::N(_) => "N",
        AttributeValue::B(_) => "B",
        AttributeValue::Ss(_) => "SS",
        AttributeValue::Ns(_) => "NS",
        AttributeValue::Bs(_) => "BS",
        AttributeValue::Bool(_) => "BOOL",
        AttributeValue::Null(_) => "NULL",
        AttributeValue::L(_) => "L",
        AttributeValue::M(_) => "M",
        _ => "?",
    }
}

/// The attribute names and types of an item, sorted.
fn shape(item: &HashMap<String, AttributeValue>) -> BTreeMap<String, &'static str> {
    item.iter().map(|(k, v)| (k.clone(), type_of(v))).collect()
}

/// Java's names and types (3.x's `throughputKBps` among them), plus ours
/// (`kclrsGeneration`, `kclrsHandoffTo`, `kclrsCreateToken`).
fn allowed_type(name: &str) -> Option<&'static str> {
    Some(match name {
        "leaseKey" | "leaseOwner" | "checkpoint" | "pendingCheckpoint" | "startingHashKey"
        | "endingHashKey" | "checkpointOwner" | "kclrsHandoffTo" | "kclrsCreateToken" => "S",
        "leaseCounter"
        | "checkpointSubSequenceNumber"
        | "pendingCheckpointSubSequenceNumber"
        | "ownerSwitchesSinceCheckpoint"
        | "kclrsGeneration"
        | "throughputKBps" => "N",
        "pendingCheckpointState" => "B",
        "parentShardId" | "childShardIds" => "SS",
        _ => return None,
    })
}

#[track_caller]
fn assert_java_shaped(item: &HashMap<String, AttributeValue>) {
    for (name, ty) in shape(item) {
        assert_eq!(
            allowed_type(&name),
            Some(ty),
            "attribute {name} of type {ty} is not in Java's layout (or our documented extras): {item:?}"
        );
    }
    for required in [
        "leaseKey",
        "leaseCounter",
        "checkpoint",
        "checkpointSubSequenceNumber",
        "ownerSwitchesSinceCheckpoint",
    ] {
        assert!(item.contains_key(required), "{required} missing: {item:?}");
    }
}

/// Java's take, as `DynamoDBLeaseRefresher.takeLease` sends it: expected
/// `leaseCounter`, PUT counter + 1 and owner, ADD 1 owner switch when the
/// owner changes, DELETE `checkpointOwner`.
async fn java_take(
    client: &Client,
    store: &DynamoStore,
    key: &ShardId,
    counter: u64,
    old_owner: Option<&str>,
    owner: &str,
) -> bool {
    let mut updates = HashMap::from([
        ("leaseCounter".to_string(), put_update(n(counter + 1))),
        ("leaseOwner".to_string(), put_update(s(owner))),
        (
            "checkpointOwner".to_string(),
            AttributeValueUpdate::builder()
                .action(AttributeAction::Delete)
                .build(),
        ),
    ]);
    if old_owner.is_some_and(|o| o != owner) {
        updates.insert(
            "ownerSwitchesSinceCheckpoint".into(),
            AttributeValueUpdate::builder()
                .value(n(1))
                .action(AttributeAction::Add)
                .build(),
        );
    }
    legacy_update(
        client,
        store,
        key,
        HashMap::from([("leaseCounter".to_string(), expect_value(n(counter)))]),
        updates,
    )
    .await
}

/// Java's renew: expected `leaseCounter` (and no `checkpointOwner`), PUT
/// counter + 1.
async fn java_renew(client: &Client, store: &DynamoStore, key: &ShardId, counter: u64) -> bool {
    legacy_update(
        client,
        store,
        key,
        HashMap::from([
            ("leaseCounter".to_string(), expect_value(n(counter))),
            (
                "checkpointOwner".to_string(),
                ExpectedAttributeValue::builder().exists(false).build(),
            ),
        ]),
        HashMap::from([("leaseCounter".to_string(), put_update(n(counter + 1)))]),
    )
    .await
}

/// Java's evict: expected owner, DELETE `leaseOwner` and `checkpointOwner`,
/// ADD 1 to the counter.
async fn java_evict(client: &Client, store: &DynamoStore, key: &ShardId, owner: &str) -> bool {
    legacy_update(
        client,
        store,
        key,
        HashMap::from([
            ("leaseOwner".to_string(), expect_value(s(owner))),
            (
                "checkpointOwner".to_string(),
                ExpectedAttributeValue::builder().exists(false).build(),
            ),
            ("leaseKey".to_string(), expect_value(s(key.as_str()))),
        ]),
        HashMap::from([
            (
                "leaseOwner".to_string(),
                AttributeValueUpdate::builder()
                    .action(AttributeAction::Delete)
                    .build(),
            ),
            (
                "checkpointOwner".to_string(),
                AttributeValueUpdate::builder()
                    .action(AttributeAction::Delete)
                    .build(),
            ),
            (
                "leaseCounter".to_string(),
                AttributeValueUpdate::builder()
                    .value(n(1))
                    .action(AttributeAction::Add)
                    .build(),
            ),
        ]),
    )
    .await
}

fn put_update(v: AttributeValue) -> AttributeValueUpdate {
    AttributeValueUpdate::builder()
        .value(v)
        .action(AttributeAction::Put)
        .build()
}

fn expect_value(v: AttributeValue) -> ExpectedAttributeValue {
    ExpectedAttributeValue::builder().value(v).build()
}

async fn legacy_update(
    client: &Client,
    store: &DynamoStore,
    key: &ShardId,
    expected: HashMap<String, ExpectedAttributeValue>,
    updates: HashMap<String, AttributeValueUpdate>,
) -> bool {
    match client
        .update_item()
        .table_name(store.table_name())
        .key("leaseKey", s(key.as_str()))
        .set_expected(Some(expected))
        .set_attribute_updates(Some(updates))
        .send()
        .await
    {
        Ok(_) => true,
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
        {
            false
        }
        Err(e) => panic!("Java-shaped update failed: {e:?}"),
    }
}

#[tokio::test]
async fn reads_every_item_shape_java_writes() {
    let Some(endpoint) = common::endpoint() else {
        return;
    };
    let client = common::client(&endpoint);
    let store = common::store(&client).await;

    // Fresh leases from Java's shard sync, one per sentinel.
    for (i, sentinel, expected) in [
        (0, "TRIM_HORIZON", Esn::TrimHorizon),
        (1, "LATEST", Esn::Latest),
        (2, "AT_TIMESTAMP", Esn::AtTimestamp),
    ] {
        put(&client, &store, java_new_lease(shard(i).as_str(), sentinel)).await;
        let lease = store.get_lease(&shard(i)).await.unwrap().unwrap();
        assert_eq!(lease.checkpoint, expected);
        assert_eq!(lease.owner, None);
        assert_eq!(
            (lease.counter, lease.generation),
            (0, 0),
            "missing generation reads as 0"
        );
        assert_eq!(lease.hash_key_range, Some(HashKeyRange::FULL));
        assert!(lease.parent_shard_ids.is_empty() && lease.child_shard_ids.is_empty());
        assert_eq!(lease.pending_checkpoint, None);
        assert_eq!(
            lease.throughput_bytes_per_sec, None,
            "a Java 2.x item has no throughput"
        );
    }

    // Java 3.x records a lease's throughput as a decimal number of KiB/s.
    let mut measured = java_new_lease(shard(10).as_str(), "TRIM_HORIZON");
    measured.insert(
        "throughputKBps".into(),
        AttributeValue::N("12.5".to_string()),
    );
    put(&client, &store, measured).await;
    let lease = store.get_lease(&shard(10)).await.unwrap().unwrap();
    assert_eq!(
        lease.throughput_bytes_per_sec,
        Some(12_800),
        "12.5 KiB/s is 12,800 bytes/s"
    );

    // A finished parent of a split: SHARD_END, children, owned by Java.
    let mut ended = java_new_lease(shard(3).as_str(), "SHARD_END");
    ended.insert("leaseOwner".into(), s("java-worker-1"));
    ended.insert("leaseCounter".into(), n(912));
    ended.insert(
        "childShardIds".into(),
        ss(&["shardId-000000000005", "shardId-000000000004"]),
    );
    put(&client, &store, ended).await;
    let lease = store.get_lease(&shard(3)).await.unwrap().unwrap();
    assert!(lease.is_finished());
    assert_eq!(lease.owner, Some(worker("java-worker-1")));
    assert_eq!(lease.counter, 912);
    assert_eq!(
        lease.child_shard_ids,
        vec![shard(4), shard(5)],
        "children read back sorted"
    );

    // A merged shard: two parents, a 56-digit checkpoint with sub-sequence,
    // a pending checkpoint with application state, half the key space.
    let mut merged = java_new_lease(shard(6).as_str(), BIG);
    merged.insert("checkpointSubSequenceNumber".into(), n(3));
    merged.insert(
        "parentShardId".into(),
        ss(&["shardId-000000000008", "shardId-000000000007"]),
    );
    merged.insert("pendingCheckpoint".into(), s(BIGGER));
    merged.insert("pendingCheckpointSubSequenceNumber".into(), n(1));
    merged.insert(
        "pendingCheckpointState".into(),
        AttributeValue::B(Blob::new(b"app-state".to_vec())),
    );
    merged.insert(
        "startingHashKey".into(),
        s("170141183460469231731687303715884105728"),
    );
    put(&client, &store, merged).await;
    let lease = store.get_lease(&shard(6)).await.unwrap().unwrap();
    assert_eq!(lease.checkpoint, seq(BIG, 3));
    assert_eq!(lease.parent_shard_ids, vec![shard(7), shard(8)]);
    assert_eq!(
        lease.pending_checkpoint,
        Some(PendingCheckpoint {
            sequence: seq(BIGGER, 1),
            state: Some(b"app-state".to_vec())
        })
    );
    assert_eq!(
        lease.hash_key_range,
        Some(HashKeyRange::new(170141183460469231731687303715884105728, u128::MAX).unwrap())
    );

    // Java's toDynamoRecord has written the pending state as a number by
    // mistake: not application bytes, so it reads as no state.
    let mut odd = java_new_lease(shard(9).as_str(), "TRIM_HORIZON");
    odd.insert("pendingCheckpoint".into(), s("77"));
    odd.insert("pendingCheckpointSubSequenceNumber".into(), n(0));
    odd.insert("pendingCheckpointState".into(), n(0));
    put(&client, &store, odd).await;
    let lease = store.get_lease(&shard(9)).await.unwrap().unwrap();
    assert_eq!(
        lease.pending_checkpoint,
        Some(PendingCheckpoint {
            sequence: seq("77", 0),
            state: None
        })
    );

    assert_eq!(store.list_leases().await.unwrap().len(), 7);
}

#[tokio::test]
async fn takes_and_checkpoints_a_java_lease_and_java_sees_it() {
    let Some(endpoint) = common::endpoint() else {
        return;
    };
    let client = common::client(&endpoint);
    let store = common::store(&client).await;
    let key = shard(0);
    let mut item = java_new_lease(key.as_str(), BIG);
    item.insert("leaseOwner".into(), s("java-worker-1"));
    item.insert("leaseCounter".into(), n(57));
    item.insert("parentShardId".into(), ss(&["shardId-000000000100"]));
    put(&client, &store, item).await;

    // We judge the Java worker expired and take its lease.
    let observed = store.get_lease(&key).await.unwrap().unwrap();
    let rust = worker("rust-worker-1");
    let held = store
        .take_lease(&observed, &rust)
        .await
        .expect("take from Java");
    assert_eq!(held.owner, Some(rust.clone()));
    assert_eq!(held.counter, 58);
    assert!(
        held.generation > 0,
        "a first take starts a generation epoch (Java wrote none)"
    );
    assert_eq!(
        held.owner_switches_since_checkpoint, 1,
        "a take from another owner is a switch, as Java counts"
    );

    let after_take = raw(&client, &store, &key).await;
    assert_java_shaped(&after_take);
    assert_eq!(after_take["leaseOwner"], s("rust-worker-1"));
    assert_eq!(after_take["leaseCounter"], n(58));
    assert_eq!(after_take["ownerSwitchesSinceCheckpoint"], n(1));
    assert_eq!(after_take["kclrsGeneration"], n(held.generation));

    // The Java worker's next renew (conditional on its counter 57) fails:
    // it loses the lease, as it would to another Java worker.
    assert!(
        !java_renew(&client, &store, &key, 57).await,
        "Java's stale renew must fail"
    );

    // We checkpoint under the lease: never backwards, Java's names/types.
    store
        .update_checkpoint(&held, &seq(BIGGER, 0))
        .await
        .expect("checkpoint");
    let err = store
        .update_checkpoint(&held, &seq(BIG, 5))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidCheckpoint(_)), "{err:?}");
    let after_checkpoint = raw(&client, &store, &key).await;
    assert_java_shaped(&after_checkpoint);
    assert_eq!(after_checkpoint["checkpoint"], s(BIGGER));
    assert_eq!(after_checkpoint["checkpointSubSequenceNumber"], n(0));
    assert_eq!(after_checkpoint["ownerSwitchesSinceCheckpoint"], n(0));
    assert_eq!(
        after_checkpoint["leaseCounter"],
        n(59),
        "a checkpoint moves the counter, as Java's updateLease"
    );

    // A Java worker takes it back with Java's own take: we are fenced out.
    assert!(
        java_take(
            &client,
            &store,
            &key,
            59,
            Some("rust-worker-1"),
            "java-worker-2"
        )
        .await
    );
    for result in [
        store.renew_lease(&held).await.map(drop),
        store.update_checkpoint(&held, &Esn::ShardEnd).await,
        store.release_lease(&held, None).await,
    ] {
        assert!(matches!(result, Err(Error::Conflict { .. })), "{result:?}");
    }
    let by_java = store.get_lease(&key).await.unwrap().unwrap();
    assert_eq!(by_java.owner, Some(worker("java-worker-2")));
    assert_eq!(
        by_java.checkpoint,
        seq(BIGGER, 0),
        "our fenced-out checkpoint was not stored"
    );
    assert_eq!(by_java.owner_switches_since_checkpoint, 1);

    // Java evicts it (no owner): we read it as free and take it again; the
    // generation moves on, so our earlier holder stays fenced out.
    assert!(java_evict(&client, &store, &key, "java-worker-2").await);
    let free = store.get_lease(&key).await.unwrap().unwrap();
    assert_eq!(free.owner, None, "a lease Java evicts has no owner");
    assert!(!raw(&client, &store, &key).await.contains_key("leaseOwner"));
    let again = store
        .take_lease(&free, &rust)
        .await
        .expect("take the evicted lease");
    assert_eq!(again.generation, held.generation + 1);
    assert_eq!(
        again.owner_switches_since_checkpoint, 1,
        "taking a free lease is not a switch"
    );
    assert!(matches!(
        store.renew_lease(&held).await,
        Err(Error::Conflict { .. })
    ));
    store
        .update_checkpoint(&again, &Esn::ShardEnd)
        .await
        .expect("SHARD_END");

    // We release: Java sees a free lease (no leaseOwner) and takes it with
    // its own counter-conditional take.
    store.release_lease(&again, None).await.expect("release");
    let released = raw(&client, &store, &key).await;
    assert_java_shaped(&released);
    assert!(!released.contains_key("leaseOwner"));
    assert_eq!(released["checkpoint"], s("SHARD_END"));
    let counter: u64 = match &released["leaseCounter"] {
        AttributeValue::N(c) => c.parse().unwrap(),
        other => panic!("{other:?}"),
    };
    assert!(java_take(&client, &store, &key, counter, None, "java-worker-3").await);
    assert_eq!(
        store.get_lease(&key).await.unwrap().unwrap().owner,
        Some(worker("java-worker-3"))
    );
}

#[tokio::test]
async fn honours_a_java_graceful_handoff() {
    let Some(endpoint) = common::endpoint() else {
        return;
    };
    let client = common::client(&endpoint);
    let store = common::store(&client).await;
    let key = shard(1);
    let rust = worker("rust-worker-1");
    assert!(
        store
            .create_lease_if_absent(&Lease::new(key.clone(), Esn::TrimHorizon))
            .await
            .unwrap()
    );
    let held = store
        .take_lease(&Lease::new(key.clone(), Esn::TrimHorizon), &rust)
        .await
        .unwrap();

    // Java 3.x's initiateGracefulLeaseHandoff: leaseOwner = the new owner,
    // checkpointOwner = the current one, counter untouched.
    assert!(
        legacy_update(
            &client,
            &store,
            &key,
            HashMap::from([
                ("leaseOwner".to_string(), expect_value(s("rust-worker-1"))),
                (
                    "checkpointOwner".to_string(),
                    ExpectedAttributeValue::builder().exists(false).build()
                ),
            ]),
            HashMap::from([
                ("leaseOwner".to_string(), put_update(s("java-worker-9"))),
                (
                    "checkpointOwner".to_string(),
                    put_update(s("rust-worker-1"))
                ),
            ]),
        )
        .await
    );
    // We still hold it (Java's "actual owner"), and renew shows the request.
    let renewed = store
        .renew_lease(&held)
        .await
        .expect("the checkpoint owner still renews");
    assert_eq!(renewed.owner, Some(rust.clone()));
    assert_eq!(renewed.handoff_to, Some(worker("java-worker-9")));
    store
        .update_checkpoint(&held, &seq("100", 0))
        .await
        .expect("checkpoint before handing off");
    store
        .release_lease(&held, Some(&worker("java-worker-9")))
        .await
        .expect("hand off");
    let handed = raw(&client, &store, &key).await;
    assert_java_shaped(&handed);
    assert_eq!(handed["leaseOwner"], s("java-worker-9"));
    assert!(
        !handed.contains_key("checkpointOwner"),
        "Java's new owner sees the hand-off done"
    );
}

#[tokio::test]
async fn items_we_write_have_exactly_java_names_and_types() {
    let Some(endpoint) = common::endpoint() else {
        return;
    };
    let client = common::client(&endpoint);
    let store = common::store(&client).await;

    let full = Lease::new(shard(2), seq(BIG, 4))
        .with_parents([shard(21), shard(20)])
        .with_children([shard(22)])
        .with_hash_key_range(HashKeyRange::new(5, 10).unwrap());
    assert!(store.create_lease_if_absent(&full).await.unwrap());
    let created = raw(&client, &store, &full.shard_id).await;
    let expected: BTreeMap<String, &str> = [
        ("leaseKey", "S"),
        ("leaseCounter", "N"),
        ("ownerSwitchesSinceCheckpoint", "N"),
        ("checkpoint", "S"),
        ("checkpointSubSequenceNumber", "N"),
        ("parentShardId", "SS"),
        ("childShardIds", "SS"),
        ("startingHashKey", "S"),
        ("endingHashKey", "S"),
        ("kclrsGeneration", "N"),
        ("kclrsCreateToken", "S"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(
        shape(&created),
        expected,
        "a created lease is laid out as Java's toDynamoRecord"
    );
    assert_eq!(created["checkpoint"], s(BIG));
    assert_eq!(created["startingHashKey"], s("5"));
    assert_eq!(created["endingHashKey"], s("10"));

    let held = store.take_lease(&full, &worker("w")).await.unwrap();
    store
        .prepare_checkpoint(
            &held,
            &PendingCheckpoint {
                sequence: seq(BIGGER, 0),
                state: Some(vec![1, 2, 3]),
            },
        )
        .await
        .unwrap();
    let prepared = raw(&client, &store, &full.shard_id).await;
    assert_java_shaped(&prepared);
    assert_eq!(prepared["pendingCheckpoint"], s(BIGGER));
    assert_eq!(prepared["pendingCheckpointSubSequenceNumber"], n(0));
    assert_eq!(
        prepared["pendingCheckpointState"],
        AttributeValue::B(Blob::new(vec![1, 2, 3]))
    );

    store
        .request_handoff(&held, &worker("other"))
        .await
        .unwrap();
    let requested = raw(&client, &store, &full.shard_id).await;
    assert_java_shaped(&requested);
    assert_eq!(requested["kclrsHandoffTo"], s("other"));

    let mut measured = held.clone();
    measured.throughput_bytes_per_sec = Some(1_234_567);
    store.renew_lease(&measured).await.unwrap();
    let renewed = raw(&client, &store, &full.shard_id).await;
    assert_java_shaped(&renewed);
    assert_eq!(
        renewed["throughputKBps"],
        AttributeValue::N("1205.6318359375".to_string()),
        "Java's unit: KiB/s"
    );

    store
        .update_checkpoint(&held, &seq(BIGGER, 0))
        .await
        .unwrap();
    let checkpointed = raw(&client, &store, &full.shard_id).await;
    assert_java_shaped(&checkpointed);
    for gone in [
        "pendingCheckpoint",
        "pendingCheckpointSubSequenceNumber",
        "pendingCheckpointState",
    ] {
        assert!(
            !checkpointed.contains_key(gone),
            "{gone} must be cleared by a checkpoint"
        );
    }
    store
        .reset_checkpoint(&full.shard_id, &Esn::TrimHorizon)
        .await
        .unwrap();
    let reset = raw(&client, &store, &full.shard_id).await;
    assert_java_shaped(&reset);
    assert_eq!(reset["checkpoint"], s("TRIM_HORIZON"));
    assert!(!reset.contains_key("leaseOwner") && !reset.contains_key("kclrsHandoffTo"));

    // And a CheckpointStore write is an ordinary unowned lease.
    use kcl_core::CheckpointStore;
    store.set_checkpoint(&shard(3), &seq(BIG, 0)).await.unwrap();
    let single = raw(&client, &store, &shard(3)).await;
    assert_java_shaped(&single);
    assert!(!single.contains_key("leaseOwner"));
}
