//! Shard sync: create leases for shards the lease table does not know yet.
//!
//! Rules (after the Java KCL's `HierarchicalShardSyncer`):
//! - leases are created parents before children, each with its parent ids
//!   and hash key range, with `create_lease_if_absent` (idempotent, so any
//!   number of workers may sync at once);
//! - a shard whose parent already has a lease is a descendant: it starts at
//!   `TRIM_HORIZON`, since its parent is (or was) processed to its end;
//! - any other shard starts at the configured initial position; with
//!   `LATEST`, a closed shard with no leased ancestor gets no lease at all
//!   (Java lists only the shards open at the tip: reading a closed shard
//!   from LATEST yields nothing);
//! - a shard any of whose children has a lease is finished (its lease may
//!   have been deleted after it ended): it is never leased again.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::error::Result;
use crate::ids::ShardId;
use crate::lease::Lease;
use crate::retrieval::{ShardDescription, ShardSource};
use crate::sequence::ExtendedSequenceNumber;
use crate::store::LeaseStore;

use super::config::InitialPosition;
use super::retry_store;

/// Run one sync; returns the number of leases this call created.
pub(crate) async fn sync_shards(
    store: &Arc<dyn LeaseStore>,
    source: &Arc<dyn ShardSource>,
    initial: InitialPosition,
) -> Result<usize> {
    let shards = source.list_shards().await?;
    let leases = retry_store(|| store.list_leases()).await?;
    let leased: HashSet<ShardId> = leases.into_iter().map(|l| l.shard_id).collect();
    let mut created = 0;
    for lease in leases_to_create(&shards, &leased, initial) {
        if retry_store(|| store.create_lease_if_absent(&lease)).await? {
            tracing::info!(shard = %lease.shard_id, checkpoint = %lease.checkpoint, "created lease");
            created += 1;
        }
    }
    Ok(created)
}

/// The leases to create, parents before children.
pub(crate) fn leases_to_create(
    shards: &[ShardDescription],
    leased: &HashSet<ShardId>,
    initial: InitialPosition,
) -> Vec<Lease> {
    let mut children: HashMap<&ShardId, Vec<&ShardId>> = HashMap::new();
    for shard in shards {
        for parent in shard.parents() {
            children.entry(parent).or_default().push(&shard.shard_id);
        }
    }
    let ordered = parents_first(shards);
    let start = match initial {
        InitialPosition::TrimHorizon => ExtendedSequenceNumber::TrimHorizon,
        InitialPosition::Latest => ExtendedSequenceNumber::Latest,
        InitialPosition::AtTimestamp(_) => ExtendedSequenceNumber::AtTimestamp,
    };
    let mut out = Vec::new();
    for shard in ordered {
        let id = &shard.shard_id;
        if leased.contains(id) {
            continue;
        }
        let finished = children
            .get(id)
            .is_some_and(|cs| cs.iter().any(|c| leased.contains(*c)));
        if finished {
            continue;
        }
        let descendant = shard.parents().any(|p| leased.contains(p));
        let checkpoint = if descendant {
            ExtendedSequenceNumber::TrimHorizon
        } else if initial == InitialPosition::Latest && shard.is_closed() {
            continue;
        } else {
            start.clone()
        };
        out.push(
            Lease::new(id.clone(), checkpoint)
                .with_parents(shard.parents().cloned())
                .with_hash_key_range(shard.hash_key_range),
        );
    }
    out
}

/// The shards ordered parents before children (by depth in the listed
/// lineage, then starting sequence number).
pub(crate) fn parents_first(shards: &[ShardDescription]) -> Vec<&ShardDescription> {
    let by_id: HashMap<&ShardId, &ShardDescription> =
        shards.iter().map(|s| (&s.shard_id, s)).collect();
    fn depth<'a>(
        id: &'a ShardId,
        by_id: &HashMap<&'a ShardId, &'a ShardDescription>,
        memo: &mut HashMap<&'a ShardId, usize>,
    ) -> usize {
        if let Some(d) = memo.get(id) {
            return *d;
        }
        // Guard against a malformed lineage with a cycle.
        memo.insert(id, 0);
        let d = by_id.get(id).map_or(0, |s| {
            s.parents()
                .map(|p| 1 + depth(p, by_id, memo))
                .max()
                .unwrap_or(0)
        });
        memo.insert(id, d);
        d
    }
    let mut memo = HashMap::new();
    let mut ordered: Vec<&ShardDescription> = shards.iter().collect();
    ordered.sort_by_cached_key(|s| {
        (
            depth(&s.shard_id, &by_id, &mut memo),
            s.starting_sequence_number.clone(),
            s.shard_id.clone(),
        )
    });
    ordered
}
