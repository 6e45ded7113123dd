//! [`LeaseStore`](kcl_core::LeaseStore) for [`DynamoStore`]: one conditional write per method,
//! shaped as Java KCL's own writes, so Java workers sharing the table see
//! the same counters move.
//!
//! | method | update | condition |
//! |---|---|---|
//! | create | `PutItem` of the whole item | no `leaseKey` (Java's create) |
//! | take | `leaseOwner = W`, `leaseCounter = C+1`, generation + 1, `ownerSwitchesSinceCheckpoint + 1` when the owner changes, remove `checkpointOwner` and `kclrsHandoffTo` | `leaseCounter = C` (Java's take) and generation and owner as observed |
//! | renew | `leaseCounter + 1`, `throughputKBps` when the holder has a figure | owner and generation |
//! | release | `leaseCounter + 1`, generation + 1, `leaseOwner` removed (Java's evict) or set to the receiver | owner and generation |
//! | request hand-off | `kclrsHandoffTo = W` | owner and generation |
//! | checkpoint / prepare | see [`crate::checkpoint`]; `leaseCounter + 1` as Java's `updateLease` | owner, generation and the checkpoint read |
//! | child ids | `childShardIds` | owner and generation |
//! | delete | `DeleteItem` | none (Java's delete) |
//! | reset | checkpoint set, owner removed, `leaseCounter + 1`, generation + 1 | the item exists |
//!
//! Differences from Java: Java fences its own renews and checkpoints by
//! `leaseCounter` alone; we fence by owner + `kclrsGeneration`, so a renew
//! never makes a concurrent checkpoint of the same holder fail. Our take
//! also requires the observed owner, which only matters if a Java 3.x
//! graceful hand-off changed `leaseOwner` without moving the counter.

use kcl_core::{Error, ExtendedSequenceNumber, Lease, Result, ShardId, WorkerId};

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{ReturnConsumedCapacity, ReturnValuesOnConditionCheckFailure};

use crate::error::{Kind, STORE, kind, malformed, map_sdk};
use crate::expr::Update;
use crate::item::{
    CHECKPOINT, CHECKPOINT_OWNER, CHECKPOINT_SUB, CHILDREN, CREATE_TOKEN, GENERATION, HANDOFF_TO,
    LEASE_COUNTER, LEASE_KEY, LEASE_OWNER, OWNER_SWITCHES, PENDING, PENDING_STATE, PENDING_SUB,
    PINNED_START, THROUGHPUT_KBPS, lease_to_item, lineage_set, n, s, throughput_kbps,
};
use crate::requests::record_capacity;
use crate::store::{DynamoStore, Outcome, conflict};

/// The owner a fenced write is made for; a `held` without one never holds.
pub(crate) fn holder(held: &Lease) -> Result<&WorkerId> {
    held.owner
        .as_ref()
        .ok_or_else(|| conflict(&held.shard_id, "the held lease has no owner"))
}

/// An update fenced by the holder's owner and generation.
fn fenced_update(held: &Lease) -> Result<Update> {
    let owner = holder(held)?;
    let mut update = Update::existing();
    update.owned_by(owner).generation_is(held.generation);
    Ok(update)
}

/// `value + 1`, or a [`Error::Generic`] (corrupt or exhausted stored data)
/// when `value` is `u64::MAX`: a counter never wraps to 0, and never
/// panics.
fn next(shard_id: &ShardId, what: &str, value: u64) -> Result<u64> {
    value.checked_add(1).ok_or_else(|| {
        malformed(
            "lease table",
            shard_id.as_str(),
            format!("{what} is at u64::MAX"),
        )
    })
}

/// The generation a take sets: `generation + 1`, except that a lease never
/// taken before (generation 0: just created, or re-created after a delete)
/// jumps to a random epoch, so a re-created lease's (owner, generation)
/// never repeats one a zombie of its previous life may still hold.
fn next_generation(shard_id: &ShardId, generation: u64) -> Result<u64> {
    if generation == 0 {
        return Ok(Lease::random_generation_epoch());
    }
    next(shard_id, "kclrsGeneration", generation)
}

impl DynamoStore {
    /// Run a fenced update; `Conflict` or `NotFound` when it lost.
    async fn fenced(&self, held: &Lease, update: Update) -> Result<Lease> {
        match self.update(&held.shard_id, update).await? {
            Outcome::Written(item) => {
                self.remember_checkpoint(&held.shard_id, &item);
                self.parse(&item)
            }
            Outcome::ConditionFailed(None) => Err(Error::lease_not_found(&held.shard_id)),
            Outcome::ConditionFailed(Some(_)) => Err(Error::lease_fenced(&held.shard_id)),
        }
    }
}

/// The lease writes, one per [`LeaseStore`](kcl_core::LeaseStore) method
/// (the trait impl in `store.rs` calls these).
impl DynamoStore {
    pub(crate) async fn create(&self, lease: &Lease) -> Result<bool> {
        // A token of this call rides in the item: when the SDK retries a
        // put whose first attempt was applied (a timeout, a lost reply),
        // the retry fails its condition, and the token in the stored item
        // tells that this call created it after all.
        let token = format!("{:032x}", rand::random::<u128>());
        let mut item = lease_to_item(lease);
        item.insert(CREATE_TOKEN.into(), s(&token));
        let result = self
            .inner
            .client
            .put_item()
            .table_name(self.table())
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#k)")
            .expression_attribute_names("#k", LEASE_KEY)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match result {
            Ok(out) => {
                record_capacity("PutItem", out.consumed_capacity());
                Ok(true)
            }
            Err(e) if kind(&e) == Kind::ConditionFailed => {
                let stored = match e.into_service_error() {
                    PutItemError::ConditionalCheckFailedException(c) => c.item,
                    _ => None,
                };
                let stored = match stored.filter(|i| !i.is_empty()) {
                    Some(item) => Some(item),
                    None => self.read_any_item(&lease.shard_id).await?,
                };
                Ok(stored.is_some_and(|item| item.get(CREATE_TOKEN) == Some(&s(&token))))
            }
            Err(e) => Err(map_sdk(self.table(), e)),
        }
    }

    pub(crate) async fn get(&self, shard_id: &ShardId) -> Result<Option<Lease>> {
        match self.get_item(shard_id).await? {
            Some(item) => {
                self.remember_checkpoint(shard_id, &item);
                Ok(Some(self.parse(&item)?))
            }
            None => Ok(None),
        }
    }

    pub(crate) async fn list(&self) -> Result<Vec<Lease>> {
        self.scan_leases().await
    }

    pub(crate) async fn take(&self, observed: &Lease, new_owner: &WorkerId) -> Result<Lease> {
        let mut update = Update::existing();
        update
            .counter_is(observed.counter)
            .generation_is(observed.generation)
            .owner_is(observed.owner.as_ref());
        let counter = next(&observed.shard_id, "leaseCounter", observed.counter)?;
        let generation = next_generation(&observed.shard_id, observed.generation)?;
        update
            .set(LEASE_OWNER, s(new_owner.as_str()))
            .set(LEASE_COUNTER, n(counter))
            .set(GENERATION, n(generation))
            .remove(CHECKPOINT_OWNER)
            .remove(HANDOFF_TO);
        if observed.owner.as_ref().is_some_and(|o| o != new_owner) {
            update.add(OWNER_SWITCHES, 1);
        }
        match self.update(&observed.shard_id, update).await? {
            Outcome::Written(item) => {
                self.remember_checkpoint(&observed.shard_id, &item);
                self.parse(&item)
            }
            Outcome::ConditionFailed(None) => Err(Error::lease_not_found(&observed.shard_id)),
            Outcome::ConditionFailed(Some(item)) => {
                let stored = self.parse(&item)?;
                // The SDK retried a take whose first attempt was applied
                // (a timeout, say): what is stored is exactly our take.
                if stored.owner.as_ref() == Some(new_owner)
                    && stored.counter == counter
                    && stored.generation == generation
                {
                    return Ok(stored);
                }
                Err(conflict(
                    &observed.shard_id,
                    "lease changed since it was observed",
                ))
            }
        }
    }

    pub(crate) async fn renew(&self, held: &Lease) -> Result<Lease> {
        let mut update = fenced_update(held)?;
        update.add(LEASE_COUNTER, 1);
        if let Some(rate) = held.throughput_bytes_per_sec {
            update.set(THROUGHPUT_KBPS, throughput_kbps(rate));
        }
        self.fenced(held, update).await
    }

    pub(crate) async fn release(&self, held: &Lease, to: Option<&WorkerId>) -> Result<()> {
        let from = holder(held)?;
        let mut update = fenced_update(held)?;
        let generation = next(&held.shard_id, "kclrsGeneration", held.generation)?;
        update
            .add(LEASE_COUNTER, 1)
            .set(GENERATION, n(generation))
            .remove(CHECKPOINT_OWNER)
            .remove(HANDOFF_TO);
        match to {
            None => {
                update.remove(LEASE_OWNER);
            }
            Some(to) => {
                update.set(LEASE_OWNER, s(to.as_str()));
                if to != from {
                    update.add(OWNER_SWITCHES, 1);
                }
            }
        }
        // No "retried release" recovery here: a second release of the same
        // held lease must be a Conflict, and a caller that saw one re-reads.
        self.fenced(held, update).await.map(drop)
    }

    pub(crate) async fn handoff(&self, observed: &Lease, to: &WorkerId) -> Result<()> {
        let mut update = fenced_update(observed)?;
        update.set(HANDOFF_TO, s(to.as_str()));
        self.fenced(observed, update).await.map(drop)
    }

    pub(crate) async fn pin(&self, held: &Lease, at: std::time::SystemTime) -> Result<()> {
        let mut update = fenced_update(held)?;
        update.set(PINNED_START, n(Lease::millis_since_epoch(at)));
        self.fenced(held, update).await.map(drop)
    }

    /// Clears `kclrsHandoffTo` only while it names `requester`; a request
    /// naming another worker (a condition that failed on it alone) is
    /// left alone and succeeds. Java 3.x hand-offs (`checkpointOwner`)
    /// are never ours to withdraw.
    pub(crate) async fn withdraw(&self, observed: &Lease, requester: &WorkerId) -> Result<()> {
        let mut update = fenced_update(observed)?;
        update
            .string_is(HANDOFF_TO, requester.as_str())
            .remove(HANDOFF_TO);
        match self.update(&observed.shard_id, update).await? {
            Outcome::Written(item) => {
                self.remember_checkpoint(&observed.shard_id, &item);
                Ok(())
            }
            Outcome::ConditionFailed(None) => Err(Error::lease_not_found(&observed.shard_id)),
            Outcome::ConditionFailed(Some(item)) => {
                let stored = self.parse(&item)?;
                if stored.owner == observed.owner && stored.generation == observed.generation {
                    Ok(())
                } else {
                    Err(conflict(
                        &observed.shard_id,
                        "owner or generation changed since the lease was observed",
                    ))
                }
            }
        }
    }

    pub(crate) async fn set_children(&self, held: &Lease, children: &[ShardId]) -> Result<()> {
        let mut update = fenced_update(held)?;
        match lineage_set(&held.shard_id, children) {
            Some(set) => update.set(CHILDREN, set),
            None => update.remove(CHILDREN),
        };
        self.fenced(held, update).await.map(drop)
    }

    pub(crate) async fn delete(&self, shard_id: &ShardId) -> Result<()> {
        self.inner
            .client
            .delete_item()
            .table_name(self.table())
            .key(LEASE_KEY, s(shard_id.as_str()))
            .send()
            .await
            .map_err(|e| map_sdk(self.table(), e))?;
        self.cache().remove(shard_id);
        Ok(())
    }

    pub(crate) async fn reset(
        &self,
        shard_id: &ShardId,
        checkpoint: &ExtendedSequenceNumber,
    ) -> Result<()> {
        let (value, sub) = checkpoint.to_parts();
        let mut update = Update::existing();
        update
            .set(CHECKPOINT, s(value))
            .set(CHECKPOINT_SUB, n(sub))
            .add(LEASE_COUNTER, 1)
            .add(GENERATION, 1);
        for attribute in [
            PENDING,
            PENDING_SUB,
            PENDING_STATE,
            LEASE_OWNER,
            CHECKPOINT_OWNER,
            HANDOFF_TO,
            PINNED_START,
        ] {
            update.remove(attribute);
        }
        match self.update(shard_id, update).await? {
            Outcome::Written(item) => {
                self.remember_checkpoint(shard_id, &item);
                tracing::info!(store = STORE, shard = %shard_id, %checkpoint, "checkpoint reset");
                Ok(())
            }
            Outcome::ConditionFailed(_) => Err(Error::lease_not_found(shard_id)),
        }
    }
}
