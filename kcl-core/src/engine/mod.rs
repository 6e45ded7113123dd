//! The engine: a [`Worker`] walks a stream's shards with a fleet of peers.
//!
//! Inside [`Worker::run`] one loop (the coordinator) owns the leases this
//! worker holds, as plain local state, and `select!`s over cancellation,
//! consumers ending, and three ticks; each store round trip is a future of
//! its own, so a slow scan or sync never delays a renewal:
//!
//! - **shard sync** (at start and every `shard_sync_interval`): lists the
//!   leases, then the shards, and creates missing leases, parents before
//!   children, with the rules of the Java KCL's `HierarchicalShardSyncer`
//!   (a shard whose parent is leased starts at TRIM_HORIZON; others at the
//!   initial position; with LATEST, closed shards without a leased
//!   ancestor get no lease; a shard with a leased descendant is never
//!   leased again; a merge child waits until each parent has a lease);
//! - **renew** (every `renew_interval`): renews every held lease and sends
//!   the heartbeat; the results come back to the loop. A renew refused
//!   with `Conflict` means the lease was lost: that shard's consumer stops
//!   and its processor gets `lease_lost`. Each held lease has a deadline,
//!   the earlier of its last successful renew and the last successful
//!   heartbeat, each as *sent*, plus nine tenths of a lease duration: a
//!   peer cannot take the lease before a full lease duration from then, so
//!   the consumer stops on its own timer before any peer can take, and
//!   hands no batch to its processor after it. A renew that
//!   shows a `handoff_to` request asks the consumer to hand the shard over;
//! - **scan** (every `scan_interval`, about 500 ms): reads the heartbeats
//!   (one small item per worker); lists every lease only when something may
//!   need doing — a worker joined, left or went quiet for a lease duration,
//!   the last plan was not settled, something changed here — and otherwise
//!   every `lease_scan_interval` (60 s), when the periodic shard sync also
//!   reuses that listing (`cadence`). From a listing it asks the pure
//!   planner (`taker::plan`) what to do: take
//!   free and expired leases up to its share (`ceil(unfinished leases /
//!   live workers)`, capped by `max_leases_per_worker`), re-take leases listed as this worker's that have no
//!   consumer here (so the generation moves), ask the most loaded workers
//!   to hand over several leases at once (at most every `take_interval`)
//!   until no worker holds two more than another, force a hand-off not
//!   done within `handoff_timeout`, and delete finished leases whose
//!   children all checkpointed. With [`BalanceMode::Throughput`] the
//!   hand-offs asked for even the bytes per second instead (one lease at a
//!   time, by the least loaded worker, after the imbalance lasted a few
//!   rounds); each renew records the lease's throughput, a moving average
//!   of the bytes its consumer delivered. A shard with a consumer here (running or
//!   still ending) is never taken again until that consumer ended;
//! - **consumers**: one task per held lease (see the processor life cycle
//!   in [`crate::processor`]), each fed by a prefetch task bounded by
//!   records and bytes. Its `Outcome` is the one end signal; a consumer
//!   that panicked backs its shard off here with a doubling delay. Before
//!   the first read of a lease still at `LATEST` (or `AT_TIMESTAMP`), the
//!   consumer pins its start in the lease (`LeaseStore::pin_start`: this
//!   host's clock minus `pin_clock_margin` for LATEST, the configured
//!   instant for AT_TIMESTAMP), and every later open before the first
//!   checkpoint (a peer after a crash or hand-off, or a reopened reader)
//!   reads `AT_TIMESTAMP` of that pin instead of a new LATEST, so nothing
//!   put in between is lost (a few records from before the first open may
//!   come again: at least once).
//!
//! Expiry never compares clocks across hosts: the taker remembers, per
//! lease, the `(counter, generation)` pair it last saw and when (on its own
//! monotonic clock) it first saw it; a lease is expired once that pair has
//! not changed for a lease duration, or once its owner's heartbeat counter
//! has not changed for a lease duration the same way. Workers are live
//! while their heartbeat counter moves. The owner fences itself on both: a
//! consumer's deadline is the earlier of its lease's last successful renew
//! and the worker's last successful heartbeat (as sent) plus nine tenths of
//! a lease duration (the argument is in `taker`'s docs).
//!
//! Cancelling the token given to [`Worker::run`] shuts down gracefully:
//! taking stops, the heartbeat is removed, every processor gets
//! `shutdown_requested` (and checkpoints) while renewals go on, and every
//! lease is released to nobody so peers take it within a scan interval;
//! after `shutdown_grace` what is left is abandoned, and every store call
//! is bounded. Dropping or aborting the
//! `run` future stops everything at once, as a crash would.
//!
//! [`SingleConsumer`] is the simple alternative for one process: it needs
//! only a [`CheckpointStore`](crate::CheckpointStore), no leases.

mod cadence;
pub(crate) mod config;
mod consumer;
mod consumer_config;
mod coordinator;
mod executor;
pub mod metric;
mod prefetch;
mod renewer;
pub(crate) mod shard_sync;
mod single;
mod taker;
mod throughput;
mod worker;

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

pub use config::{InitialPosition, WorkerBuilder, WorkerConfig};
pub use consumer_config::ConsumerConfig;
pub use single::{SingleConsumer, SingleConsumerBuilder};
pub use throughput::{BalanceMode, ThroughputBalance};
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
