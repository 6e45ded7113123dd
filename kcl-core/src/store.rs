//! The storage traits: [`CheckpointStore`] for a single-process consumer,
//! [`LeaseStore`] for a fleet of workers sharing shards.
//!
//! A store instance is bound to one application namespace when it is built
//! (see each backend's builder); every method acts only inside it. The
//! engine holds stores as `Arc<dyn …>`, so both traits are object safe.
//!
//! A store may implement both traits; whether they share storage is the
//! backend's choice, and one application should use one or the other.

use std::time::SystemTime;

use async_trait::async_trait;

use crate::error::Result;
use crate::ids::{ShardId, WorkerId};
use crate::lease::{Lease, PendingCheckpoint, WorkerHeartbeat};
use crate::sequence::ExtendedSequenceNumber;

/// Where a single-process consumer keeps how far it got in each shard.
///
/// # Contract
///
/// - `get_checkpoint` of a shard never written returns `Ok(None)`.
/// - `set_checkpoint` is atomic per shard: a concurrent reader sees the old
///   or the new value, never a mix of sequence and sub-sequence numbers.
/// - Checkpoints never move backwards: setting a position below the stored
///   one (in [`ExtendedSequenceNumber`]'s order, which compares sequence
///   numbers as numbers, never as strings) fails with
///   [`Error::InvalidCheckpoint`](crate::Error::InvalidCheckpoint) and
///   leaves the stored value unchanged. Setting the same position again
///   succeeds (so a retried write whose outcome was unknown is harmless).
/// - The compare and the write are one atomic step in the store: two
///   concurrent writers can never leave the lower value stored.
/// - Transient failures are [`Error::Unavailable`](crate::Error::Unavailable)
///   or [`Error::Throttled`](crate::Error::Throttled), and nothing was lost
///   by them: the caller retries.
#[async_trait]
pub trait CheckpointStore: Send + Sync + std::fmt::Debug {
    /// The stored checkpoint of `shard_id`, if any.
    async fn get_checkpoint(&self, shard_id: &ShardId) -> Result<Option<ExtendedSequenceNumber>>;

    /// Store `checkpoint` for `shard_id`, refusing to move it backwards.
    async fn set_checkpoint(
        &self,
        shard_id: &ShardId,
        checkpoint: &ExtendedSequenceNumber,
    ) -> Result<()>;
}

/// Leases that let a fleet of workers share a stream's shards, each shard
/// processed by at most one worker at a time, plus the workers' heartbeats.
///
/// # Contract
///
/// **Atomicity.** Every method is one atomic compare-and-set on one lease
/// (or one heartbeat): its condition and its write happen as one step in
/// the store, so two concurrent writers can never both succeed where the
/// conditions exclude each other. Nothing here spans two leases.
///
/// **Counters.** Every lease has a liveness `counter` and a fencing
/// `generation` (see [`Lease`]). `counter` increases on every
/// `take_lease`, `renew_lease`, `release_lease` and `reset_checkpoint`
/// (other fenced writes may increase it too, as Java KCL's checkpoint
/// does); `request_handoff`, `withdraw_handoff` and `pin_start` leave it
/// alone. `generation` increases on
/// `take_lease`, `release_lease` and `reset_checkpoint`, and on nothing
/// else. Neither ever decreases. A take of a lease whose generation is 0
/// (never taken: new, or re-created after `delete_lease`) sets it to
/// [`Lease::random_generation_epoch`] instead of 1, so a re-created
/// lease's fence does not repeat. A counter at `u64::MAX` is an error,
/// never a wrap to 0 and never a panic.
///
/// **Fencing.** The methods that take a `held: &Lease` (`renew_lease`,
/// `release_lease`, `update_checkpoint`, `prepare_checkpoint`,
/// `update_child_shard_ids`, `pin_start`) succeed only if the stored lease's `owner` and
/// `generation` still equal `held`'s. Otherwise they change nothing and
/// return [`Error::Conflict`](crate::Error::Conflict): a worker whose lease
/// was taken can never renew it, checkpoint it, or give it away. A lost
/// race is always `Conflict`, never a silent overwrite and never a generic
/// error. `held.owner` must be `Some`; a `held` without an owner is a
/// `Conflict` too.
///
/// **Taking.** `take_lease(observed, worker)` succeeds only if the stored
/// lease's `counter` and `generation` both still equal `observed`'s (the
/// snapshot from which the caller decided the lease was free or expired);
/// so of N workers racing to take one lease from the same snapshot exactly
/// one wins and N − 1 get `Conflict`. The store never judges expiry
/// itself: that is the engine's call (no clocks are compared).
///
/// **Checkpoints** never move backwards except by `reset_checkpoint` (an
/// administrator's explicit act): a position below the stored checkpoint
/// fails with [`Error::InvalidCheckpoint`](crate::Error::InvalidCheckpoint)
/// (after the fencing check). Equal positions succeed.
///
/// **Missing leases.** Methods on a lease that does not exist fail with
/// [`Error::NotFound`](crate::Error::NotFound) (a backend that cannot tell a
/// missing lease from a lost race in one round trip may return `Conflict`
/// for the fenced writes), except `delete_lease`, which is idempotent, and
/// `get_lease`, which returns `Ok(None)`.
///
/// **Transient failures** are [`Error::Unavailable`](crate::Error::Unavailable)
/// or [`Error::Throttled`](crate::Error::Throttled). A write that failed so
/// may or may not have happened; the fencing rule makes retrying it safe.
///
/// **Namespaces.** A store instance sees only its own application's leases
/// and heartbeats; two stores for different applications on one server
/// never see or change each other's data.
///
/// Every backend proves this contract by passing
/// `kcl_core::testkit::conformance` (feature `testkit`) against a real
/// server.
#[async_trait]
pub trait LeaseStore: Send + Sync + std::fmt::Debug {
    /// Create `lease` exactly as given unless a lease for its shard exists.
    /// Returns `true` if this call created it, `false` if one was there
    /// (which is left untouched). Idempotent; safe for many workers to run
    /// at once.
    async fn create_lease_if_absent(&self, lease: &Lease) -> Result<bool>;

    /// The lease of `shard_id`, or `None`.
    async fn get_lease(&self, shard_id: &ShardId) -> Result<Option<Lease>>;

    /// Every lease of the application, in no particular order. Must work
    /// for tens of thousands of leases (backends page internally).
    async fn list_leases(&self) -> Result<Vec<Lease>>;

    /// Take the lease for `new_owner`, if its `counter` and `generation`
    /// still equal `observed`'s. On success: `owner = new_owner`,
    /// `counter + 1`, `generation + 1` (or a random epoch from 0, see
    /// *Counters*), `handoff_to` cleared, and
    /// `owner_switches_since_checkpoint + 1` when the lease had another
    /// owner (as Java KCL counts: taking a free lease is not a switch).
    /// Returns the lease as stored after the write.
    async fn take_lease(&self, observed: &Lease, new_owner: &WorkerId) -> Result<Lease>;

    /// Renew a held lease: `counter + 1`, fenced by owner and generation,
    /// and, when `held.throughput_bytes_per_sec` is `Some`, that figure
    /// stored with it (`None` leaves the stored figure as it is; nothing
    /// else but a create ever writes it). Returns the lease as stored after
    /// the write, so the holder sees a `handoff_to` request and the latest
    /// checkpoint.
    async fn renew_lease(&self, held: &Lease) -> Result<Lease>;

    /// Give up a held lease: to nobody (`to = None`, so any worker may take
    /// it at once) or directly to another worker (a hand-off). Fenced by
    /// owner and generation. On success: `owner = to`, `counter + 1`,
    /// `generation + 1`, `handoff_to` cleared, and
    /// `owner_switches_since_checkpoint + 1` when `to` is another worker.
    async fn release_lease(&self, held: &Lease, to: Option<&WorkerId>) -> Result<()>;

    /// Ask the current owner to hand the lease to `to`: sets `handoff_to`
    /// if the stored `owner` and `generation` still equal `observed`'s and
    /// the lease has an owner; changes nothing else (not the counters).
    /// The owner learns of it from its next renew.
    async fn request_handoff(&self, observed: &Lease, to: &WorkerId) -> Result<()>;

    /// Checkpoint under the lease: fenced by owner and generation, and never
    /// backwards. On success: `checkpoint` set, `pending_checkpoint`
    /// cleared, `owner_switches_since_checkpoint = 0`.
    async fn update_checkpoint(
        &self,
        held: &Lease,
        checkpoint: &ExtendedSequenceNumber,
    ) -> Result<()>;

    /// Record a prepared checkpoint with optional application bytes:
    /// fenced by owner and generation; `pending.sequence` below the stored
    /// checkpoint is [`Error::InvalidCheckpoint`](crate::Error::InvalidCheckpoint).
    /// Replaces any earlier pending checkpoint.
    async fn prepare_checkpoint(&self, held: &Lease, pending: &PendingCheckpoint) -> Result<()>;

    /// Record the children of a shard that has ended; fenced by owner and
    /// generation.
    async fn update_child_shard_ids(&self, held: &Lease, children: &[ShardId]) -> Result<()>;

    /// Record where a lease still at `LATEST` or `AT_TIMESTAMP` starts
    /// reading ([`Lease::pinned_start`], kept to whole milliseconds, rounded
    /// down): fenced by owner and generation; changes nothing else (not
    /// the counters). Every later read of the lease returns it (through
    /// takes, renewals, releases and checkpoints) until `reset_checkpoint`
    /// clears it.
    async fn pin_start(&self, held: &Lease, at: SystemTime) -> Result<()>;

    /// Withdraw a hand-off request that `requester` made: clears
    /// `handoff_to` if the stored `owner` and `generation` still equal
    /// `observed`'s and `handoff_to` still names `requester`; a request
    /// naming another worker (or none) is left alone and the call succeeds.
    /// Changes nothing else (not the counters). A changed owner or
    /// generation is [`Error::Conflict`](crate::Error::Conflict) (the
    /// change of ownership already cleared the request).
    async fn withdraw_handoff(&self, observed: &Lease, requester: &WorkerId) -> Result<()>;

    /// Delete the lease of `shard_id` (a finished shard whose children are
    /// under way, or an administrator's act). Unconditional and idempotent.
    async fn delete_lease(&self, shard_id: &ShardId) -> Result<()>;

    /// Administrator's reset: set the checkpoint to any position, even
    /// backwards, clear the pending checkpoint and the pinned start, and
    /// free the lease
    /// (`owner = None`, `counter + 1`, `generation + 1`) so the current
    /// owner is fenced out and the next owner starts from the new position.
    async fn reset_checkpoint(
        &self,
        shard_id: &ShardId,
        checkpoint: &ExtendedSequenceNumber,
    ) -> Result<()>;

    /// Record that `worker` is alive: creates its heartbeat or adds one to
    /// its counter.
    async fn heartbeat(&self, worker: &WorkerId) -> Result<()>;

    /// Every worker heartbeat of the application.
    async fn list_workers(&self) -> Result<Vec<WorkerHeartbeat>>;

    /// Remove a worker's heartbeat (on graceful shutdown, or when an
    /// observer judged it dead). Idempotent.
    async fn remove_worker(&self, worker: &WorkerId) -> Result<()>;
}
