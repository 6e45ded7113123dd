//! DynamoDB lease and checkpoint store for kcl, on a lease table Java KCL
//! workers can share.
//!
//! [`DynamoStore`] implements [`LeaseStore`](kcl_core::LeaseStore) and
//! [`CheckpointStore`](kcl_core::CheckpointStore) on a table with Java KCL
//! 2.x/3.x's layout (hash key `leaseKey`; see [`item`](crate#attributes) for
//! every attribute) and the same counter-based conditional writes Java
//! uses, so a table written by one can be read, renewed, taken and
//! checkpointed by the other.
//!
//! # Tables
//!
//! - The lease table, named after the application by default (Java's
//!   convention). Created if absent (on-demand billing unless configured
//!   otherwise), waited on until ACTIVE; an existing table whose key schema
//!   is not a single string hash key `leaseKey` is refused with a clear
//!   [`Error::Config`](kcl_core::Error::Config).
//! - `<table>-WorkerHeartbeats` (hash key `workerId`, counter
//!   `heartbeatCounter`): worker heartbeats, kept out of the lease table
//!   because Java workers would take any item there for a lease.
//! - [`CheckpointStore`](kcl_core::CheckpointStore) keeps its checkpoints in
//!   the lease table as unowned leases (see [`checkpoint`](crate#checkpoints)).
//!
//! # Attributes
//!
//! Java's: `leaseKey` (S), `leaseOwner` (S), `leaseCounter` (N),
//! `checkpoint` (S: a sequence number or `TRIM_HORIZON` / `LATEST` /
//! `AT_TIMESTAMP` / `SHARD_END`), `checkpointSubSequenceNumber` (N),
//! `pendingCheckpoint` (S), `pendingCheckpointSubSequenceNumber` (N),
//! `pendingCheckpointState` (B), `ownerSwitchesSinceCheckpoint` (N),
//! `parentShardId` (SS), `childShardIds` (SS), `startingHashKey` /
//! `endingHashKey` (S, decimal); `checkpointOwner` (S, Java 3.x graceful
//! hand-off) is read and removed by our ownership changes, never set.
//!
//! Ours, which Java ignores: `kclrsGeneration` (N), the fencing generation
//! (absent reads as 0, so Java-written items work), and `kclrsHandoffTo`
//! (S), a requested hand-off.
//!
//! # Checkpoints
//!
//! DynamoDB cannot compare 56-digit decimal strings as numbers, so a
//! checkpoint is decided in Rust and written conditional on owner,
//! generation and the checkpoint it was decided against; see the
//! `checkpoint` module's docs. The usual checkpoint is one conditional
//! `UpdateItem`.
//!
//! # Mixed fleets (Java and Rust workers on one table)
//!
//! What is safe:
//! - **Java takes a lease from us**: Java's take is conditional on
//!   `leaseCounter` only and sets `leaseOwner`; our holder's next renew or
//!   checkpoint is conditional on `leaseOwner` = itself and fails with
//!   `Conflict`. The lease is fenced exactly as among Rust workers.
//! - **We take a lease from Java**: our take is conditional on the
//!   `leaseCounter` Java's renewer also checks, sets `leaseOwner` and
//!   `leaseCounter + 1`, and counts `ownerSwitchesSinceCheckpoint` as Java
//!   does; Java's next renew, conditional on its counter, fails and Java
//!   drops the lease.
//! - **Java evicts** (deletes `leaseOwner`): we read the lease as free.
//!   **We release**: we delete `leaseOwner`, which Java reads as free.
//! - Checkpoints written by either side are read by the other (same
//!   strings, same numbers, same sentinels).
//! - **Java KCL 3.5 tables**: 3.5 keeps items that are not leases in the
//!   lease table (worker metrics keyed by worker id, `Leader`, migration
//!   and client-version markers, stream entries), marked by an
//!   `entityType` other than `LEASE`. They are skipped as Java's
//!   `fromDynamoRecord` skips them: never listed, `get_lease` reads them
//!   as absent, and every lease write is conditional on the item being a
//!   lease, so none of them is ever changed.
//!
//! # Cost and bounds
//!
//! Scans (listing leases and workers) are eventually consistent, as Java
//! KCL's are: half the read units of a strongly consistent scan, and safe
//! because every take is conditional on the counter it read. Single-item
//! reads before a write stay strongly consistent. Every request asks for
//! `ReturnConsumedCapacity` and adds it to the
//! [`CONSUMED_CAPACITY_METRIC`] counter (tenths of a unit, labels `table`
//! and `operation`). Every request is bounded by a per-attempt and a
//! per-operation timeout (2 s and 5 s unless configured).
//!
//! A create that the SDK retried after its first attempt had succeeded
//! still reports `true`: a random `kclrsCreateToken` in the item tells the
//! retry that it made the item.
//!
//! **The lease-duration rule for mixed fleets, enforced.** A Rust taker
//! calls a lease expired when its `leaseCounter` has not moved for one
//! lease duration on its own clock; a Java worker renews every
//! `failoverTimeMillis / 3` and calls a lease expired after
//! `failoverTimeMillis`. The rule: the Rust lease duration must not be
//! shorter than the largest `failoverTimeMillis` of any Java worker on the
//! table (10 s, Java's default, matches ours); shorter than Java's renew
//! interval, Rust workers would take live Java leases. With
//! [`DynamoStoreBuilder::java_failover_time`] set (do set it on a table
//! shared with Java workers), the store enforces the rule at the take,
//! whatever the engine's lease duration: an owner that has
//! never written a heartbeat to this application's heartbeat table (every
//! Rust worker does; no Java worker can) is taken for a Java worker, and a
//! take of its lease is refused with `Conflict` until this store has seen
//! the lease's counter stand still for
//! that time (the largest Java `failoverTimeMillis`;
//! [`DEFAULT_JAVA_FAILOVER_TIME`], 10 s, is Java's default). The first
//! refusal per Java owner logs a warning naming the rule. Without the
//! setting the store only warns, once per owner, when it takes a lease
//! whose owner has no heartbeat (the store contract lets a taker take
//! from any unchanged snapshot). So a Rust worker with a 2 s lease
//! duration leaves live Java leases alone, and takes a crashed Java
//! worker's leases after Java's own failover time (`tests/mixed_fleet.rs`,
//! with a Java-shaped renewer beside the real engine).
//!
//! What is not:
//! - Java 3.x's leader-driven assignment (`assignLease`) can hand a lease
//!   *to a Rust worker id* without changing `kclrsGeneration`; if that
//!   worker still has a zombie task holding an older lease of the same
//!   generation, the zombie is not fenced out. Do not let Java 3.x's lease
//!   assignment manager assign to Rust workers (run Rust and Java fleets on
//!   separate tables, or run the Java side with 2.x-style taking).
//! - Java does not know `kclrsHandoffTo`: a hand-off we request from a Java
//!   owner is never answered; our engine takes the lease after its timeout.
//!   A Java 3.x graceful hand-off *from* a Rust owner is seen by that owner
//!   on its next renew (`handoff_to` = Java's target) and honoured by
//!   releasing to it.
//! - Heartbeats of Java workers (Java 3.x's `WorkerMetricStats` table) are
//!   not read: Rust takers count only Rust workers as live, so a mixed
//!   fleet balances per language, not over all workers.
//! - Multi-stream lease keys (`account:stream:epoch:shard`) are read as
//!   opaque shard ids; use single-stream applications.
//!
//! # Example
//!
//! ```no_run
//! use kcl_core::{ExtendedSequenceNumber, Lease, LeaseStore, ShardId, WorkerId};
//! use kcl_store_dynamo::DynamoStore;
//!
//! # async fn demo() -> kcl_core::Result<()> {
//! let store = DynamoStore::builder()
//!     .application("orders-consumer")
//!     .region("us-east-1")
//!     .build()
//!     .await?;
//! let lease = Lease::new(ShardId::new("shardId-000000000000")?, ExtendedSequenceNumber::TrimHorizon);
//! store.create_lease_if_absent(&lease).await?;
//! let held = store.take_lease(&lease, &WorkerId::new("worker-1")?).await?;
//! store.update_checkpoint(&held, &ExtendedSequenceNumber::at("42".parse()?, 0)).await?;
//! # Ok(()) }
//! ```
//!
//! Errors: throttling is [`Error::Throttled`](kcl_core::Error::Throttled),
//! 5xx and network failures [`Error::Unavailable`](kcl_core::Error::Unavailable)
//! (both after the SDK's own retries with backoff), a lost conditional
//! write [`Error::Conflict`](kcl_core::Error::Conflict).

mod checkpoint;
mod config;
mod error;
mod expr;
mod foreign;
mod item;
mod lease;
mod requests;
mod store;
mod table;

pub use config::{
    DEFAULT_ATTEMPT_TIMEOUT, DEFAULT_OPERATION_TIMEOUT, DynamoStoreBuilder, HEARTBEAT_TABLE_SUFFIX,
    TableCapacity,
};
pub use foreign::DEFAULT_JAVA_FAILOVER_TIME;
pub use requests::{CONSUMED_CAPACITY_METRIC, describe_metrics};
pub use store::DynamoStore;

/// The attribute names of the lease table, for tools and tests that read
/// or write items directly.
pub mod attributes {
    pub use crate::item::{
        CHECKPOINT, CHECKPOINT_OWNER, CHECKPOINT_SUB, CHILDREN, ENDING_HASH_KEY, GENERATION,
        HANDOFF_TO, LEASE_COUNTER, LEASE_KEY, LEASE_OWNER, OWNER_SWITCHES, PARENTS, PENDING,
        PENDING_STATE, PENDING_SUB, SHARD_ID, STARTING_HASH_KEY, STREAM_NAME,
    };
    pub use crate::store::{HEARTBEAT_COUNTER, WORKER_ID};
}
