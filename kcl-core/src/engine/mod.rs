//! The engine: a [`Worker`] walks a stream's shards with a fleet of peers.
//!
//! A worker is a handful of concurrent loops inside [`Worker::run`]:
//!
//! - **shard sync** (at start and every `shard_sync_interval`): lists the
//!   shards and creates missing leases, parents before children, with the
//!   rules of the Java KCL's `HierarchicalShardSyncer` (a shard whose
//!   parent is leased starts at TRIM_HORIZON; others at the initial
//!   position; with LATEST, closed shards without a leased ancestor get no
//!   lease; a shard with a leased descendant is never leased again);
//! - **renewer** (every `renew_interval`): renews every held lease and sends
//!   the worker's heartbeat. A renew refused with `Conflict` means the
//!   lease was lost: that shard's consumer stops at once and its processor
//!   gets `lease_lost`. If no renew of a lease succeeded for a whole lease
//!   duration (store unreachable), the consumer stops too, since another
//!   worker may take the lease. A renew that shows a `handoff_to` request
//!   asks the consumer to hand the shard over;
//! - **taker** (every `scan_interval`, about 500 ms): lists leases and
//!   heartbeats, takes free and expired leases up to its share
//!   (`ceil(unfinished leases / live workers)`), starts consumers for
//!   leases handed to it, deletes finished leases whose children have all
//!   started, and at most every `take_interval` asks the most loaded
//!   workers to hand over several leases at once, until no worker holds
//!   two more than another. A hand-off not done within `handoff_timeout` is
//!   forced with a take;
//! - **consumers**: one task per held lease (see the processor life cycle
//!   in [`crate::processor`]), each fed by a prefetch task bounded by
//!   records and bytes.
//!
//! Expiry never compares clocks across hosts: the taker remembers, per
//! lease, the `(counter, generation)` pair it last saw and when (on its own
//! monotonic clock) it first saw it; a lease is expired once that pair has
//! not changed for a lease duration. Workers are live while their heartbeat
//! counter moves the same way.
//!
//! Cancelling the token given to [`Worker::run`] shuts down gracefully:
//! taking stops, every processor gets `shutdown_requested` (and
//! checkpoints), every lease is released to nobody so peers take it within
//! a scan interval, and the heartbeat is removed. Dropping or aborting the
//! `run` future stops everything at once, as a crash would.
//!
//! [`SingleConsumer`] is the simple alternative for one process: it needs
//! only a [`CheckpointStore`](crate::CheckpointStore), no leases.

pub(crate) mod config;
mod consumer;
mod coordinator;
mod executor;
pub mod metric;
mod prefetch;
mod renewer;
pub(crate) mod shard_sync;
mod single;
mod taker;
mod worker;

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

pub use config::{InitialPosition, WorkerBuilder, WorkerConfig};
pub use single::{SingleConsumer, SingleConsumerBuilder};
pub use worker::Worker;

use crate::error::{Error, Result};

/// Retry a store call on transient errors (a few times, briefly); anything
/// else is returned at once.
pub(crate) async fn retry_store<T, Fut>(call: impl FnMut() -> Fut) -> Result<T>
where
    Fut: Future<Output = Result<T>>,
{
    call.retry(
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(50))
            .with_max_delay(Duration::from_secs(1))
            .with_max_times(4)
            .with_jitter(),
    )
    .when(Error::is_retryable)
    .await
}
