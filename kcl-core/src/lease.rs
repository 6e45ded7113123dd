//! A lease: which worker processes a shard, and how far it got.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::ids::{HashKeyRange, ShardId, WorkerId};
use crate::sequence::ExtendedSequenceNumber;

/// One shard's lease, as a [`LeaseStore`](crate::LeaseStore) keeps it.
///
/// Two counters with different jobs:
/// - `counter` is the liveness heartbeat (Java KCL's `leaseCounter`): every
///   renew and take adds one. An observer calls a lease expired when its
///   counter has not moved for a lease duration on the observer's own
///   monotonic clock, so no correctness depends on clocks agreeing.
/// - `generation` is the fencing token: it changes whenever ownership
///   changes (take, release, hand-off, admin reset) and never otherwise.
///   Every write that depends on holding the lease is conditional on
///   `owner` and `generation` being what the writer holds, so a renew
///   never makes a concurrent checkpoint fail, and a write whose outcome is
///   unknown (a timeout) can be retried safely.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The shard, and the lease key.
    pub shard_id: ShardId,
    /// The worker holding the lease; `None` when free.
    pub owner: Option<WorkerId>,
    /// Liveness counter (Java KCL `leaseCounter`).
    pub counter: u64,
    /// Fencing token; changes on every change of ownership.
    pub generation: u64,
    /// How far the shard has been processed.
    pub checkpoint: ExtendedSequenceNumber,
    /// A prepared (two-phase) checkpoint, if one is pending.
    pub pending_checkpoint: Option<PendingCheckpoint>,
    /// Times the lease changed owner since the last checkpoint.
    pub owner_switches_since_checkpoint: u64,
    /// Parents of the shard (two for a merge, one for a split, none for an
    /// original shard).
    pub parent_shard_ids: Vec<ShardId>,
    /// Children of the shard, once known (set when the shard ends).
    pub child_shard_ids: Vec<ShardId>,
    /// The hash keys the shard serves, if known.
    pub hash_key_range: Option<HashKeyRange>,
    /// A worker that asked the owner to hand this lease over (graceful
    /// rebalancing); cleared by any change of ownership.
    pub handoff_to: Option<WorkerId>,
    /// Where a lease whose checkpoint is still `LATEST` or `AT_TIMESTAMP`
    /// starts reading, recorded by the first consumer before its first
    /// read ([`LeaseStore::pin_start`](crate::LeaseStore::pin_start)), so a
    /// later open (after a crash, a hand-off or a reader failure before
    /// the first checkpoint) reads from the same instant instead of
    /// resolving `LATEST` again and skipping the records put in between.
    /// Whole milliseconds (see [`Lease::millis_since_epoch`]); cleared by
    /// `reset_checkpoint`; meaningless once the checkpoint is a record.
    pub pinned_start: Option<SystemTime>,
    /// How many bytes per second the shard carries lately: an exponential
    /// moving average of the bytes its consumer delivered, which the owner
    /// records with each renew (Java KCL 3.x's `throughputKBps`, there in
    /// KiB/s). Peers read it from their listings to balance by throughput.
    /// `None` until some owner recorded it (a new lease, or one written by
    /// Java KCL 2.x). Kept through takes, releases and checkpoints, so a
    /// new owner starts from its predecessor's figure.
    pub throughput_bytes_per_sec: Option<u64>,
}

impl Lease {
    /// The generation `take_lease` gives a lease whose generation is 0 (one
    /// never taken: just created, or re-created after a delete): a random
    /// multiple of 2^32 between 2^32 and 2^62. Every other ownership change
    /// adds one. So a re-created lease's (owner, generation) does not
    /// repeat one that a zombie of its previous life may still hold (the
    /// chance that two lives share an epoch is 2^-30), and the value stays
    /// below `i64::MAX` for stores with signed 64-bit integers.
    pub fn random_generation_epoch() -> u64 {
        let epoch: u64 = rand::random_range(1..(1u64 << 30));
        epoch << 32
    }

    /// A new, unowned lease for `shard_id` starting at `checkpoint`, with
    /// both counters at zero and no lineage.
    pub fn new(shard_id: ShardId, checkpoint: ExtendedSequenceNumber) -> Self {
        Lease {
            shard_id,
            owner: None,
            counter: 0,
            generation: 0,
            checkpoint,
            pending_checkpoint: None,
            owner_switches_since_checkpoint: 0,
            parent_shard_ids: Vec::new(),
            child_shard_ids: Vec::new(),
            hash_key_range: None,
            handoff_to: None,
            pinned_start: None,
            throughput_bytes_per_sec: None,
        }
    }

    /// An instant as whole milliseconds since the Unix epoch, rounded down
    /// (how stores keep [`pinned_start`](Self::pinned_start)); 0 for an
    /// instant before the epoch.
    pub fn millis_since_epoch(at: SystemTime) -> u64 {
        at.duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    /// The instant `millis` milliseconds after the Unix epoch, or `None`
    /// when the platform's clock cannot hold it (corrupt stored data).
    pub fn instant_from_millis(millis: u64) -> Option<SystemTime> {
        SystemTime::UNIX_EPOCH.checked_add(Duration::from_millis(millis))
    }

    /// Builder-style: set the parents.
    pub fn with_parents(mut self, parents: impl IntoIterator<Item = ShardId>) -> Self {
        self.parent_shard_ids = parents.into_iter().collect();
        self
    }

    /// Builder-style: set the children.
    pub fn with_children(mut self, children: impl IntoIterator<Item = ShardId>) -> Self {
        self.child_shard_ids = children.into_iter().collect();
        self
    }

    /// Builder-style: set the hash key range.
    pub fn with_hash_key_range(mut self, range: HashKeyRange) -> Self {
        self.hash_key_range = Some(range);
        self
    }

    /// Whether `worker` holds this lease.
    pub fn is_owned_by(&self, worker: &WorkerId) -> bool {
        self.owner.as_ref() == Some(worker)
    }

    /// Whether the shard has been processed to its end.
    pub fn is_finished(&self) -> bool {
        self.checkpoint == ExtendedSequenceNumber::ShardEnd
    }
}

/// A prepared checkpoint: a position the processor intends to checkpoint,
/// with optional application bytes (Java KCL's `pendingCheckpoint` and
/// `pendingCheckpointState`). The next owner sees it on initialize.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingCheckpoint {
    /// The position prepared.
    pub sequence: ExtendedSequenceNumber,
    /// Application bytes stored with it, opaque to the library.
    pub state: Option<Vec<u8>>,
}

/// A worker's heartbeat as the store keeps it. Like a lease's counter, the
/// `counter` only has meaning as "did it move": a worker is live while its
/// counter moves within a lease duration of the observer's clock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerHeartbeat {
    /// The worker.
    pub worker_id: WorkerId,
    /// Incremented by every heartbeat.
    pub counter: u64,
}
