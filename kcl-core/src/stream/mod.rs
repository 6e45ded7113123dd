//! Many streams in one application (Java KCL 2.3+'s multi-stream mode).
//!
//! The engine balances and fences leases by opaque keys, so reading many
//! streams is a layer over it, not a second engine:
//!
//! - a [`StreamIdentifier`] names each stream (`account:name:epoch`, or
//!   from a [`StreamArn`] plus its creation time), and its shards' lease
//!   keys are `account:name:epoch:shardId`, exactly the Java KCL's
//!   multi-stream lease keys, so one lease table is shared with Java
//!   multi-stream workers (the DynamoDB store also writes Java's
//!   `streamName` and `shardId` attributes and keeps parent and child ids
//!   raw, as Java does);
//! - a [`StreamTracker`] says which streams to read: a fixed list, or a
//!   callback polled on an interval; each [`StreamConfig`] has its own
//!   initial position and its own [`ShardSource`](crate::retrieval::ShardSource)
//!   (so its own region, credentials and endpoint);
//! - a [`MultiStreamSource`] over the tracker is the worker's source: it
//!   lists every stream's shards under lease keys and routes each reader
//!   to its stream. Give it to [`WorkerBuilder::source`](crate::WorkerBuilder::source).
//!
//! A worker with a plain single-stream source keeps plain shard ids as
//! lease keys: single-stream tables are unchanged. Use one mode per
//! application (lease table): Java does the same.

mod identifier;
mod source;
mod tracker;

pub use identifier::{StreamArn, StreamIdentifier};
pub use source::MultiStreamSource;
pub use tracker::{StreamConfig, StreamTracker};
