//! Checkpoints: the fenced, never-backwards checkpoint and prepare under a
//! lease, and [`CheckpointStore`](kcl_core::CheckpointStore) for a single-process consumer.
//!
//! DynamoDB conditions compare strings as strings, and real sequence
//! numbers are 56-digit decimals, so the order is decided in Rust
//! ([`ExtendedSequenceNumber`]'s order) and the write is conditional on the
//! checkpoint being exactly the one the order was decided against (plus
//! owner and generation under a lease). If only the checkpoint moved, the
//! store judges again against the new value and retries; the lost write
//! returns the item as it was (`ReturnValuesOnConditionCheckFailure =
//! ALL_OLD`, or a follow-up read), which tells a fenced-out writer
//! (`Conflict`) from a backwards checkpoint (`InvalidCheckpoint`) from a
//! missing lease (`NotFound`).
//!
//! The first attempt uses the checkpoint this store last saw for the shard
//! as the expected value, so a worker's usual checkpoint is one round trip;
//! a stale guess only costs one failed conditional write. A guess is never
//! used to refuse a checkpoint: a position below it is judged on a fresh
//! read.
//!
//! [`CheckpointStore`](kcl_core::CheckpointStore) keeps its checkpoints in the same lease table, as
//! ordinary unowned leases (`checkpoint`, `checkpointSubSequenceNumber`),
//! so a single-process consumer can later grow into a fleet, Rust or Java,
//! without moving its checkpoints. Its writes are conditional on the
//! checkpoint read only (no lease is held).

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use kcl_core::{Error, ExtendedSequenceNumber, Lease, PendingCheckpoint, Result, ShardId};

use crate::error::malformed;
use crate::expr::Update;
use crate::item::{
    CHECKPOINT, CHECKPOINT_SUB, Item, LEASE_COUNTER, OWNER_SWITCHES, PENDING, PENDING_STATE,
    PENDING_SUB, RawCheckpoint, n, s,
};
use crate::lease::holder;
use crate::store::{DynamoStore, Outcome, conflict};

/// How often a checkpoint is judged again because the stored checkpoint
/// moved under it before giving up with `Conflict`. Each retry means
/// another writer moved the checkpoint forward.
const MAX_ATTEMPTS: usize = 256;

/// What a fenced checkpoint write stores.
#[derive(Debug, Clone, Copy)]
pub(crate) enum CheckpointWrite<'a> {
    /// The checkpoint itself: clears the pending checkpoint and the owner
    /// switches.
    Checkpoint,
    /// A prepared checkpoint with optional application bytes.
    Prepare(&'a PendingCheckpoint),
}

fn position(raw: &RawCheckpoint) -> Option<ExtendedSequenceNumber> {
    let sub = raw.sub.as_deref().unwrap_or("0").parse().ok()?;
    ExtendedSequenceNumber::from_parts(&raw.value, sub).ok()
}

impl DynamoStore {
    fn raw_checkpoint(&self, item: &Item, shard_id: &ShardId) -> Result<RawCheckpoint> {
        RawCheckpoint::of(item)
            .ok_or_else(|| malformed(self.table(), shard_id.as_str(), "no checkpoint"))
    }

    /// Judge `target` against the stored item for the holder `held`:
    /// fencing first, then the order.
    fn judge(
        &self,
        held: &Lease,
        target: &ExtendedSequenceNumber,
        item: &Item,
    ) -> Result<RawCheckpoint> {
        let stored = self.parse(item)?;
        if stored.owner != held.owner || stored.generation != held.generation {
            return Err(Error::lease_fenced(&held.shard_id));
        }
        if target < &stored.checkpoint {
            return Err(Error::checkpoint_backwards(
                &held.shard_id,
                &stored.checkpoint,
                target,
            ));
        }
        self.raw_checkpoint(item, &held.shard_id)
    }

    pub(crate) async fn fenced_checkpoint(
        &self,
        held: &Lease,
        target: &ExtendedSequenceNumber,
        write: CheckpointWrite<'_>,
    ) -> Result<()> {
        let owner = holder(held)?;
        let shard_id = &held.shard_id;
        let mut guess = self
            .cache()
            .get(shard_id)
            .cloned()
            .filter(|raw| position(raw).is_some_and(|p| target >= &p));
        let mut known: Option<Item> = None;
        for _ in 0..MAX_ATTEMPTS {
            let expected = match (known.take(), guess.take()) {
                (Some(item), _) => self.judge(held, target, &item)?,
                (None, Some(guess)) => guess,
                (None, None) => match self.get_item(shard_id).await? {
                    Some(item) => self.judge(held, target, &item)?,
                    None => return Err(Error::lease_not_found(shard_id)),
                },
            };
            let mut update = Update::existing();
            update
                .owned_by(owner)
                .generation_is(held.generation)
                .checkpoint_is(&expected);
            update.add(LEASE_COUNTER, 1);
            match write {
                CheckpointWrite::Checkpoint => {
                    let (value, sub) = target.to_parts();
                    update
                        .set(CHECKPOINT, s(value))
                        .set(CHECKPOINT_SUB, n(sub))
                        .set(OWNER_SWITCHES, n(0))
                        .remove(PENDING)
                        .remove(PENDING_SUB)
                        .remove(PENDING_STATE);
                }
                CheckpointWrite::Prepare(pending) => {
                    let (value, sub) = pending.sequence.to_parts();
                    update.set(PENDING, s(value)).set(PENDING_SUB, n(sub));
                    match &pending.state {
                        Some(state) => {
                            update.set(PENDING_STATE, AttributeValue::B(Blob::new(state.clone())))
                        }
                        None => update.remove(PENDING_STATE),
                    };
                }
            }
            match self.update(shard_id, update).await? {
                Outcome::Written(item) => {
                    self.remember_checkpoint(shard_id, &item);
                    return Ok(());
                }
                Outcome::ConditionFailed(None) => return Err(Error::lease_not_found(shard_id)),
                Outcome::ConditionFailed(Some(item)) => known = Some(item),
            }
        }
        Err(conflict(
            shard_id,
            "the checkpoint kept moving under concurrent writers",
        ))
    }
}

/// The [`CheckpointStore`](kcl_core::CheckpointStore) side (the trait impl
/// in `store.rs` calls these).
impl DynamoStore {
    pub(crate) async fn stored_checkpoint(
        &self,
        shard_id: &ShardId,
    ) -> Result<Option<ExtendedSequenceNumber>> {
        match self.get_item(shard_id).await? {
            Some(item) => Ok(Some(self.parse(&item)?.checkpoint)),
            None => Ok(None),
        }
    }

    pub(crate) async fn store_checkpoint(
        &self,
        shard_id: &ShardId,
        checkpoint: &ExtendedSequenceNumber,
    ) -> Result<()> {
        let mut known: Option<Item> = None;
        for _ in 0..MAX_ATTEMPTS {
            let item = match known.take() {
                Some(item) => item,
                None => match self.get_item(shard_id).await? {
                    Some(item) => item,
                    None => {
                        let lease = Lease::new(shard_id.clone(), checkpoint.clone());
                        if self.create(&lease).await? {
                            return Ok(());
                        }
                        continue; // someone created it first: judge against theirs
                    }
                },
            };
            let stored = self.parse(&item)?.checkpoint;
            if checkpoint < &stored {
                return Err(Error::checkpoint_backwards(shard_id, &stored, checkpoint));
            }
            if checkpoint == &stored {
                return Ok(());
            }
            let expected = self.raw_checkpoint(&item, shard_id)?;
            let (value, sub) = checkpoint.to_parts();
            let mut update = Update::existing();
            update.checkpoint_is(&expected);
            update.set(CHECKPOINT, s(value)).set(CHECKPOINT_SUB, n(sub));
            match self.update(shard_id, update).await? {
                Outcome::Written(_) => return Ok(()),
                Outcome::ConditionFailed(item) => known = item,
            }
        }
        Err(conflict(
            shard_id,
            "the checkpoint kept moving under concurrent writers",
        ))
    }
}
