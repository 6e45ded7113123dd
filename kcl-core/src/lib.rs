#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod engine;
mod error;
mod ids;
mod inline_str;
pub mod kpl;
mod lease;
pub mod processor;
pub mod retrieval;
mod sequence;
mod store;
pub mod store_url;
pub mod stream;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use engine::{
    BalanceMode, InitialPosition, ThroughputBalance, Worker, WorkerBuilder, WorkerConfig,
};
pub use error::{BoxError, Error, Result};
pub use ids::{ApplicationName, HashKeyRange, ShardId, WorkerId};
pub use lease::{Lease, PendingCheckpoint, WorkerHeartbeat};
pub use processor::{
    Checkpointer, InitializeInput, ProcessRecordsInput, ProcessorErrorPolicy, ProcessorFactory,
    ShardProcessor,
};
pub use sequence::{ExtendedSequenceNumber, SequenceNumber};
pub use store::{CheckpointStore, LeaseStore};
