#![doc = include_str!("../README.md")]

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
