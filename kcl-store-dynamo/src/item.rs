//! The lease table's item layout: Java KCL's attribute names and types,
//! plus two attributes of our own, and the conversion to and from
//! [`Lease`].
//!
//! | attribute | type | written by | meaning |
//! |---|---|---|---|
//! | `leaseKey` | S | both | hash key: the shard id |
//! | `leaseOwner` | S | both | the owner; absent when free |
//! | `leaseCounter` | N | both | liveness counter, +1 on every take, renew, release, checkpoint |
//! | `checkpoint` | S | both | sequence number, or `TRIM_HORIZON` / `LATEST` / `AT_TIMESTAMP` / `SHARD_END` |
//! | `checkpointSubSequenceNumber` | N | both | sub-sequence number (0 for sentinels) |
//! | `pendingCheckpoint` | S | both | prepared checkpoint; absent when none |
//! | `pendingCheckpointSubSequenceNumber` | N | both | its sub-sequence number |
//! | `pendingCheckpointState` | B | both | application bytes of the prepared checkpoint |
//! | `ownerSwitchesSinceCheckpoint` | N | both | owner changes since the last checkpoint |
//! | `parentShardId` | SS | both | parents; absent when none |
//! | `childShardIds` | SS | both | children; absent when none |
//! | `startingHashKey`, `endingHashKey` | S | both | the shard's hash key range, decimal |
//! | `checkpointOwner` | S | Java 3.x | during a Java graceful hand-off, the worker still processing (read; removed by our take, release and reset) |
//! | `entityType` | S | Java 3.5 | absent or `LEASE` on a lease; any other value (worker metrics, `Leader`, migration markers, stream entries) marks an item that is not a lease, which this store never reads as one nor writes |
//! | `streamName` | S | both, multi-stream | the lease's stream, `account:name:epoch` (Java's `DynamoDBMultiStreamLeaseSerializer`); with it, `leaseKey` is `account:name:epoch:shardId` |
//! | `shardId` | S | both, multi-stream | the raw shard id of a multi-stream lease |
//! | `kclrsGeneration` | N | kcl (Rust) | fencing generation; absent (Java-written item) reads as 0 |
//! | `kclrsHandoffTo` | S | kcl (Rust) | worker a hand-off was requested to |
//! | `kclrsCreateToken` | S | kcl (Rust) | random token of the create that made the item (tells a retried create that it succeeded) |
//! | `kclrsPinnedStart` | N | kcl (Rust) | where a lease still at `LATEST` / `AT_TIMESTAMP` starts reading, milliseconds since the Unix epoch (removed by our reset) |
//! | `throughputKBps` | N | both (Java 3.x) | the lease's recent throughput in KiB/s (Java's unit: bytes / 1024, a decimal), written by our renewals; absent (Java 2.x, or never recorded) reads as none |
//!
//! Java KCL ignores attributes it does not know, so the `kclrs*`
//! attributes survive Java's writes (Java never rewrites a whole item
//! after it is created; every later write is an `UpdateItem` of named
//! attributes).
//!
//! Reading a Java 3.x item in the middle of a graceful hand-off
//! (`checkpointOwner` present): the owner is `checkpointOwner` (the worker
//! still processing, Java's `actualOwner`), and `handoff_to` is
//! `leaseOwner` (the worker it goes to), unless `kclrsHandoffTo` says
//! otherwise.
//!
//! Multi-stream leases (a `leaseKey` of `account:name:epoch:shardId`, see
//! [`kcl_core::stream`]): as Java writes them, `parentShardId` and
//! `childShardIds` hold raw shard ids; the engine's lease has them keyed
//! like its own key, so the codec strips the stream on write and adds it
//! back on read. Single-stream items are unchanged.
//!
//! String and number sets are unordered in DynamoDB: parent and child ids
//! are read back sorted, and duplicates are dropped on write.

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use kcl_core::stream::StreamIdentifier;
use kcl_core::{
    Error, ExtendedSequenceNumber, HashKeyRange, Lease, PendingCheckpoint, Result, ShardId,
    WorkerId,
};

use crate::error::malformed;

/// One item as the SDK returns it.
pub(crate) type Item = HashMap<String, AttributeValue>;

/// Hash key: the shard id (S).
pub const LEASE_KEY: &str = "leaseKey";
/// The owner (S); absent when free.
pub const LEASE_OWNER: &str = "leaseOwner";
/// Liveness counter (N).
pub const LEASE_COUNTER: &str = "leaseCounter";
/// Checkpoint: sequence number or sentinel (S).
pub const CHECKPOINT: &str = "checkpoint";
/// Checkpoint sub-sequence number (N).
pub const CHECKPOINT_SUB: &str = "checkpointSubSequenceNumber";
/// Prepared checkpoint (S).
pub const PENDING: &str = "pendingCheckpoint";
/// Prepared checkpoint sub-sequence number (N).
pub const PENDING_SUB: &str = "pendingCheckpointSubSequenceNumber";
/// Prepared checkpoint application bytes (B).
pub const PENDING_STATE: &str = "pendingCheckpointState";
/// Owner changes since the last checkpoint (N).
pub const OWNER_SWITCHES: &str = "ownerSwitchesSinceCheckpoint";
/// Parent shard ids (SS).
pub const PARENTS: &str = "parentShardId";
/// Child shard ids (SS).
pub const CHILDREN: &str = "childShardIds";
/// Lowest hash key, decimal (S).
pub const STARTING_HASH_KEY: &str = "startingHashKey";
/// Highest hash key, decimal (S).
pub const ENDING_HASH_KEY: &str = "endingHashKey";
/// Java 3.x graceful hand-off: the worker still processing.
pub const CHECKPOINT_OWNER: &str = "checkpointOwner";
/// Java KCL 3.5: what an item of the lease table is (`LEASE`, or one of
/// the coordinator's own kinds: worker metrics, leader, migration state,
/// stream entries). Absent on every lease Java 2.x-3.4 or we write.
pub(crate) const ENTITY_TYPE: &str = "entityType";
/// The [`ENTITY_TYPE`] of a lease.
pub(crate) const ENTITY_LEASE: &str = "LEASE";
/// Multi-stream leases: the stream, `account:name:epoch` (S; Java keeps
/// the name `streamName` for the whole identifier).
pub const STREAM_NAME: &str = "streamName";
/// Multi-stream leases: the raw shard id (S).
pub const SHARD_ID: &str = "shardId";
/// Ours: the fencing generation.
pub const GENERATION: &str = "kclrsGeneration";
/// Ours: a random token of the call that created the item, so a create
/// the SDK retried after it succeeded still reports that it created it.
pub(crate) const CREATE_TOKEN: &str = "kclrsCreateToken";
/// Ours: the worker a hand-off was requested to.
pub const HANDOFF_TO: &str = "kclrsHandoffTo";
/// Ours: the pinned start of a lease still at `LATEST` / `AT_TIMESTAMP`,
/// milliseconds since the Unix epoch (N).
pub(crate) const PINNED_START: &str = "kclrsPinnedStart";
/// Java KCL 3.x: the lease's recent throughput, KiB/s (N, a decimal).
pub(crate) const THROUGHPUT_KBPS: &str = "throughputKBps";

/// A throughput in bytes per second as Java's `throughputKBps` (KiB/s):
/// exact (a division by a power of two, printed in the shortest form
/// that reads back the same) for rates below 2^53 bytes/s.
pub(crate) fn throughput_kbps(bytes_per_sec: u64) -> AttributeValue {
    // Rates above 2^53 bytes/s (8 PiB/s) lose their low bits, harmlessly.
    #[allow(clippy::cast_precision_loss)]
    let kib = bytes_per_sec as f64 / 1024.0;
    n(kib)
}

/// Whether `item` is a lease: no `entityType`, or `entityType = LEASE`,
/// as Java KCL 3.5's `fromDynamoRecord` reads the table (it skips every
/// other kind).
pub(crate) fn is_lease_item(item: &Item) -> bool {
    match item.get(ENTITY_TYPE) {
        None | Some(AttributeValue::Null(_)) => true,
        Some(AttributeValue::S(kind)) => kind == ENTITY_LEASE,
        Some(_) => false,
    }
}

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// A string set of shard ids, sorted and without duplicates; `None` for an
/// empty list (DynamoDB has no empty sets).
pub(crate) fn shard_set(ids: &[ShardId]) -> Option<AttributeValue> {
    let mut v: Vec<String> = ids.iter().map(|id| id.as_str().to_string()).collect();
    v.sort();
    v.dedup();
    (!v.is_empty()).then_some(AttributeValue::Ss(v))
}

/// Parent or child ids of the lease `key` as the item keeps them: raw
/// shard ids for a multi-stream lease (as Java writes them), as they are
/// otherwise; see [`shard_set`].
pub(crate) fn lineage_set(key: &ShardId, ids: &[ShardId]) -> Option<AttributeValue> {
    let Some((stream, _)) = StreamIdentifier::split_lease_key(key) else {
        return shard_set(ids);
    };
    let raw: Vec<ShardId> = ids
        .iter()
        .map(|id| match StreamIdentifier::split_lease_key(id) {
            Some((of, shard)) if of == stream => shard,
            _ => id.clone(),
        })
        .collect();
    shard_set(&raw)
}

/// The whole item for a new lease, exactly as Java KCL's serializer lays
/// one out (its multi-stream serializer's for a multi-stream key), plus
/// `kclrsGeneration` (and `kclrsHandoffTo` when set).
pub(crate) fn lease_to_item(lease: &Lease) -> Item {
    let mut item = Item::new();
    item.insert(LEASE_KEY.into(), s(lease.shard_id.as_str()));
    if let Some((stream, shard)) = StreamIdentifier::split_lease_key(&lease.shard_id) {
        item.insert(STREAM_NAME.into(), s(stream.serialize()));
        item.insert(SHARD_ID.into(), s(shard.as_str()));
    }
    item.insert(LEASE_COUNTER.into(), n(lease.counter));
    if let Some(owner) = &lease.owner {
        item.insert(LEASE_OWNER.into(), s(owner.as_str()));
    }
    item.insert(
        OWNER_SWITCHES.into(),
        n(lease.owner_switches_since_checkpoint),
    );
    let (checkpoint, sub) = lease.checkpoint.to_parts();
    item.insert(CHECKPOINT.into(), s(checkpoint));
    item.insert(CHECKPOINT_SUB.into(), n(sub));
    if let Some(parents) = lineage_set(&lease.shard_id, &lease.parent_shard_ids) {
        item.insert(PARENTS.into(), parents);
    }
    if let Some(children) = lineage_set(&lease.shard_id, &lease.child_shard_ids) {
        item.insert(CHILDREN.into(), children);
    }
    if let Some(pending) = &lease.pending_checkpoint {
        let (value, sub) = pending.sequence.to_parts();
        item.insert(PENDING.into(), s(value));
        item.insert(PENDING_SUB.into(), n(sub));
        if let Some(state) = &pending.state {
            item.insert(
                PENDING_STATE.into(),
                AttributeValue::B(Blob::new(state.clone())),
            );
        }
    }
    if let Some(range) = &lease.hash_key_range {
        item.insert(STARTING_HASH_KEY.into(), n_as_s(range.starting_hash_key));
        item.insert(ENDING_HASH_KEY.into(), n_as_s(range.ending_hash_key));
    }
    item.insert(GENERATION.into(), n(lease.generation));
    if let Some(to) = &lease.handoff_to {
        item.insert(HANDOFF_TO.into(), s(to.as_str()));
    }
    if let Some(at) = lease.pinned_start {
        item.insert(PINNED_START.into(), n(Lease::millis_since_epoch(at)));
    }
    if let Some(rate) = lease.throughput_bytes_per_sec {
        item.insert(THROUGHPUT_KBPS.into(), throughput_kbps(rate));
    }
    item
}

/// Java stores hash keys as decimal strings (BigInteger.toString()).
fn n_as_s(value: u128) -> AttributeValue {
    s(value.to_string())
}

/// Reads attributes of one item, naming the item in every error.
pub(crate) struct Reader<'a> {
    table: &'a str,
    key: String,
    item: &'a Item,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(table: &'a str, item: &'a Item) -> Self {
        let key = match item.get(LEASE_KEY) {
            Some(AttributeValue::S(k)) => k.clone(),
            _ => "<no leaseKey>".to_string(),
        };
        Reader { table, key, item }
    }

    fn bad(&self, why: impl std::fmt::Display) -> Error {
        malformed(self.table, &self.key, why)
    }

    pub(crate) fn string(&self, name: &str) -> Result<Option<&'a str>> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::S(v)) => Ok(Some(v.as_str())),
            Some(other) => Err(self.bad(format!("{name} is {other:?}, not a string"))),
        }
    }

    pub(crate) fn number(&self, name: &str) -> Result<Option<u64>> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::N(v)) => v
                .parse::<u64>()
                .map(Some)
                .map_err(|_| self.bad(format!("{name} = {v} is not a non-negative integer"))),
            Some(other) => Err(self.bad(format!("{name} is {other:?}, not a number"))),
        }
    }

    /// A throughput in KiB/s (Java's `throughputKBps`, any non-negative
    /// decimal) as whole bytes per second, rounded to the nearest.
    fn throughput(&self, name: &str) -> Result<Option<u64>> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::N(v)) => match v.parse::<f64>() {
                Ok(kib) if kib.is_finite() && kib >= 0.0 => {
                    // Saturates at u64::MAX: no rate is that high.
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    let bytes = (kib * 1024.0).round() as u64;
                    Ok(Some(bytes))
                }
                _ => Err(self.bad(format!("{name} = {v} is not a non-negative rate"))),
            },
            Some(other) => Err(self.bad(format!("{name} is {other:?}, not a number"))),
        }
    }

    /// The stream of a multi-stream lease: from its key, which must
    /// agree with `streamName` and `shardId` when they are present.
    fn stream(&self, key: &ShardId) -> Result<Option<StreamIdentifier>> {
        let split = StreamIdentifier::split_lease_key(key);
        let named = self.string(STREAM_NAME)?;
        let shard = self.string(SHARD_ID)?;
        match (&split, named) {
            (None, None) => Ok(None),
            (None, Some(name)) => Err(self.bad(format!(
                "{STREAM_NAME} = {name:?} but the key is not account:name:epoch:shardId"
            ))),
            (Some((stream, raw)), named) => {
                if named.is_some_and(|n| n != stream.serialize())
                    || shard.is_some_and(|s| s != raw.as_str())
                {
                    return Err(
                        self.bad(format!("{STREAM_NAME} / {SHARD_ID} do not match the key"))
                    );
                }
                Ok(Some(stream.clone()))
            }
        }
    }

    fn shard_ids(&self, name: &str, stream: Option<&StreamIdentifier>) -> Result<Vec<ShardId>> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(Vec::new()),
            Some(AttributeValue::Ss(ids)) => {
                let keyed = |id: &String| match stream {
                    Some(stream) if !id.contains(':') => stream.lease_key(&ShardId::new(id)?),
                    _ => ShardId::new(id),
                };
                let mut ids = ids
                    .iter()
                    .map(|id| keyed(id).map_err(|e| self.bad(e)))
                    .collect::<Result<Vec<_>>>()?;
                ids.sort();
                Ok(ids)
            }
            Some(other) => Err(self.bad(format!("{name} is {other:?}, not a string set"))),
        }
    }

    fn worker(&self, name: &str) -> Result<Option<WorkerId>> {
        self.string(name)?
            .map(|w| WorkerId::new(w).map_err(|e| self.bad(e)))
            .transpose()
    }

    fn position(&self, value: &str, sub_name: &str) -> Result<ExtendedSequenceNumber> {
        let sub = self.number(sub_name)?.unwrap_or(0);
        ExtendedSequenceNumber::from_parts(value, sub).map_err(|e| self.bad(e))
    }

    fn hash_key(&self, name: &str) -> Result<Option<u128>> {
        self.string(name)?
            .filter(|v| !v.is_empty())
            .map(|v| {
                v.parse::<u128>()
                    .map_err(|_| self.bad(format!("{name} = {v} is not a 128-bit hash key")))
            })
            .transpose()
    }

    /// The item as a [`Lease`].
    pub(crate) fn lease(&self) -> Result<Lease> {
        let shard_id = ShardId::new(
            self.string(LEASE_KEY)?
                .ok_or_else(|| self.bad("no leaseKey"))?,
        )
        .map_err(|e| self.bad(e))?;
        let stream = self.stream(&shard_id)?;
        let lease_owner = self.worker(LEASE_OWNER)?;
        let checkpoint_owner = self.worker(CHECKPOINT_OWNER)?;
        let (owner, java_handoff) = match checkpoint_owner {
            Some(actual) => (Some(actual), lease_owner),
            None => (lease_owner, None),
        };
        let checkpoint = self
            .string(CHECKPOINT)?
            .ok_or_else(|| self.bad("no checkpoint"))?;
        let checkpoint = self.position(checkpoint, CHECKPOINT_SUB)?;
        let pending_checkpoint = match self.string(PENDING)? {
            Some(value) if !value.is_empty() => Some(PendingCheckpoint {
                sequence: self.position(value, PENDING_SUB)?,
                // Java's toDynamoRecord has written a number here by
                // mistake; only bytes are application state.
                state: match self.item.get(PENDING_STATE) {
                    Some(AttributeValue::B(b)) => Some(b.as_ref().to_vec()),
                    _ => None,
                },
            }),
            _ => None,
        };
        let hash_key_range = match (
            self.hash_key(STARTING_HASH_KEY)?,
            self.hash_key(ENDING_HASH_KEY)?,
        ) {
            (Some(start), Some(end)) => {
                Some(HashKeyRange::new(start, end).map_err(|e| self.bad(e))?)
            }
            _ => None,
        };
        Ok(Lease {
            shard_id,
            owner,
            counter: self.number(LEASE_COUNTER)?.unwrap_or(0),
            generation: self.number(GENERATION)?.unwrap_or(0),
            checkpoint,
            pending_checkpoint,
            owner_switches_since_checkpoint: self.number(OWNER_SWITCHES)?.unwrap_or(0),
            parent_shard_ids: self.shard_ids(PARENTS, stream.as_ref())?,
            child_shard_ids: self.shard_ids(CHILDREN, stream.as_ref())?,
            hash_key_range,
            handoff_to: self.worker(HANDOFF_TO)?.or(java_handoff),
            pinned_start: self
                .number(PINNED_START)?
                .map(|ms| {
                    Lease::instant_from_millis(ms)
                        .ok_or_else(|| self.bad(format!("{PINNED_START} = {ms} is out of range")))
                })
                .transpose()?,
            throughput_bytes_per_sec: self.throughput(THROUGHPUT_KBPS)?,
        })
    }
}

/// The stored checkpoint exactly as written, for a condition that it has
/// not moved (`checkpointSubSequenceNumber` may be absent in hand-written
/// items).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RawCheckpoint {
    pub(crate) value: String,
    pub(crate) sub: Option<String>,
}

impl RawCheckpoint {
    pub(crate) fn of(item: &Item) -> Option<RawCheckpoint> {
        let value = match item.get(CHECKPOINT) {
            Some(AttributeValue::S(v)) => v.clone(),
            _ => return None,
        };
        let sub = match item.get(CHECKPOINT_SUB) {
            Some(AttributeValue::N(v)) => Some(v.clone()),
            _ => None,
        };
        Some(RawCheckpoint { value, sub })
    }
}
