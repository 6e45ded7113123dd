//! [`SingleConsumer`]: consume every shard in one process with only a
//! [`CheckpointStore`](crate::CheckpointStore) (no leases).
//!
//! Not implemented yet.

/// Placeholder; see the module docs.
#[derive(Debug)]
pub struct SingleConsumer;

/// Placeholder; see the module docs.
#[derive(Debug)]
pub struct SingleConsumerBuilder;
