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
//! - a shard any of whose descendants has a lease is finished (its lease,
//!   and its children's, may have been deleted after they ended): it is
//!   never leased again.

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
    // Leases first: a finished parent deleted after this listing has
    // children that were leased before it, and the shard listing below
    // (taken later) shows them, so the parent is never re-created.
    let leases = retry_store(|| store.list_leases()).await?;
    let leased: HashSet<ShardId> = leases.into_iter().map(|l| l.shard_id).collect();
    sync_listed(store, source, initial, &leased).await
}

/// Run one sync from a lease listing taken just before (the taker's), so
/// a sync costs no listing of its own; `leased` must be listed before the
/// shards are (see [`sync_shards`]).
pub(crate) async fn sync_listed(
    store: &Arc<dyn LeaseStore>,
    source: &Arc<dyn ShardSource>,
    initial: InitialPosition,
    leased: &HashSet<ShardId>,
) -> Result<usize> {
    let shards = source.list_shards().await?;
    let mut created = 0;
    for (initial, shards) in by_initial_position(source.as_ref(), shards, initial) {
        for lease in leases_to_create(&shards, leased, initial) {
            if retry_store(|| store.create_lease_if_absent(&lease)).await? {
                tracing::info!(shard = %lease.shard_id, checkpoint = %lease.checkpoint, "created lease");
                created += 1;
            }
        }
    }
    for key in source.retired_leases(leased) {
        retry_store(|| store.delete_lease(&key)).await?;
        tracing::info!(shard = %key, "deleted the lease of a stream no longer read");
    }
    Ok(created)
}

/// The shards grouped by the initial position of their stream (the
/// source's, else `initial`). A lineage never crosses streams, so planning
/// each group alone is planning each stream alone.
fn by_initial_position(
    source: &dyn ShardSource,
    shards: Vec<ShardDescription>,
    initial: InitialPosition,
) -> HashMap<InitialPosition, Vec<ShardDescription>> {
    let mut groups: HashMap<InitialPosition, Vec<ShardDescription>> = HashMap::new();
    for shard in shards {
        let position = source.initial_position(&shard.shard_id).unwrap_or(initial);
        groups.entry(position).or_default().push(shard);
    }
    groups
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
    let listed: HashSet<&ShardId> = shards.iter().map(|s| &s.shard_id).collect();
    let mut created: HashSet<ShardId> = HashSet::new();
    let mut out = Vec::new();
    for shard in ordered {
        let id = &shard.shard_id;
        if leased.contains(id) {
            continue;
        }
        if has_leased_descendant(id, &children, leased, &mut HashMap::new()) {
            continue;
        }
        let known = |p: &ShardId| leased.contains(p) || created.contains(p);
        let descendant = shard.parents().any(known);
        // A merge whose other parent is listed but has no lease (a lagging
        // split parent): defer the child, as Java does, or its records
        // would come before that parent's.
        if descendant && shard.parents().any(|p| listed.contains(p) && !known(p)) {
            tracing::debug!(shard = %id, "deferring a child until all its parents have leases");
            continue;
        }
        // The other parent of a leased shard's child is read whole, so
        // the child can start after both.
        let co_parent = children.get(id).is_some_and(|cs| {
            cs.iter().any(|c| {
                shards
                    .iter()
                    .find(|s| &s.shard_id == *c)
                    .is_some_and(|child| child.parents().any(|p| p != id && known(p)))
            })
        });
        let checkpoint = if descendant || co_parent {
            descendant_start(initial)
        } else if initial == InitialPosition::Latest && shard.is_closed() {
            continue;
        } else {
            start.clone()
        };
        created.insert(id.clone());
        out.push(
            Lease::new(id.clone(), checkpoint)
                .with_parents(shard.parents().cloned())
                .with_hash_key_range(shard.hash_key_range),
        );
    }
    out
}

/// Where a descendant of a leased shard starts: TRIM_HORIZON (its parent
/// is read to its end first), except under AT_TIMESTAMP, where a child
/// that existed before the timestamp must not deliver older records (its
/// records after the timestamp are the same either way).
pub(crate) fn descendant_start(initial: InitialPosition) -> ExtendedSequenceNumber {
    match initial {
        InitialPosition::AtTimestamp(_) => ExtendedSequenceNumber::AtTimestamp,
        _ => ExtendedSequenceNumber::TrimHorizon,
    }
}

/// Whether any descendant of `id` (child, grandchild, …) has a lease: then
/// `id` was finished before (its own lease may have been cleaned up, and
/// so may its children's once theirs started).
fn has_leased_descendant<'a>(
    id: &'a ShardId,
    children: &HashMap<&'a ShardId, Vec<&'a ShardId>>,
    leased: &HashSet<ShardId>,
    memo: &mut HashMap<&'a ShardId, bool>,
) -> bool {
    if let Some(known) = memo.get(id) {
        return *known;
    }
    memo.insert(id, false);
    let found = children.get(id).is_some_and(|cs| {
        cs.iter()
            .any(|c| leased.contains(*c) || has_leased_descendant(c, children, leased, memo))
    });
    memo.insert(id, found);
    found
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::HashKeyRange;
    use crate::sequence::SequenceNumber;

    fn shard(id: u32, parents: &[u32], closed: bool) -> ShardDescription {
        let sid = |n: u32| ShardId::new(format!("shardId-{n:012}")).unwrap();
        ShardDescription {
            shard_id: sid(id),
            parent_shard_id: parents.first().map(|p| sid(*p)),
            adjacent_parent_shard_id: parents.get(1).map(|p| sid(*p)),
            hash_key_range: HashKeyRange::FULL,
            starting_sequence_number: SequenceNumber::from(u128::from(id) * 100),
            ending_sequence_number: closed.then(|| SequenceNumber::from(u128::from(id) * 100 + 99)),
        }
    }

    /// 0 and 1 merged into 2, 2 split into 3 and 4 (open).
    fn lineage() -> Vec<ShardDescription> {
        vec![
            shard(4, &[2], false),
            shard(2, &[0, 1], true),
            shard(0, &[], true),
            shard(3, &[2], false),
            shard(1, &[], true),
        ]
    }

    fn ids(leases: &[Lease]) -> Vec<(String, ExtendedSequenceNumber)> {
        leases
            .iter()
            .map(|l| {
                (
                    l.shard_id.to_string()[8..]
                        .trim_start_matches('0')
                        .to_string(),
                    l.checkpoint.clone(),
                )
            })
            .collect()
    }

    #[test]
    fn empty_table_trim_horizon_leases_everything_parents_first() {
        let leases = leases_to_create(&lineage(), &HashSet::new(), InitialPosition::TrimHorizon);
        let got = ids(&leases);
        let order: Vec<&str> = got.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(order, ["", "1", "2", "3", "4"]); // "" is shard 0
        assert!(
            got.iter()
                .all(|(_, c)| *c == ExtendedSequenceNumber::TrimHorizon)
        );
        let merged = leases
            .iter()
            .find(|l| l.shard_id.as_str().ends_with("02"))
            .unwrap();
        assert_eq!(merged.parent_shard_ids.len(), 2);
    }

    #[test]
    fn empty_table_latest_leases_only_open_shards() {
        let leases = leases_to_create(&lineage(), &HashSet::new(), InitialPosition::Latest);
        assert_eq!(
            ids(&leases),
            vec![
                ("3".to_string(), ExtendedSequenceNumber::Latest),
                ("4".to_string(), ExtendedSequenceNumber::Latest)
            ]
        );
    }

    #[test]
    fn descendants_of_leased_shards_start_at_trim_horizon() {
        let leased: HashSet<ShardId> = [lineage()[1].shard_id.clone()].into();
        let leases = leases_to_create(&lineage(), &leased, InitialPosition::Latest);
        assert_eq!(
            ids(&leases),
            vec![
                ("3".to_string(), ExtendedSequenceNumber::TrimHorizon),
                ("4".to_string(), ExtendedSequenceNumber::TrimHorizon)
            ]
        );
    }

    #[test]
    fn a_merge_child_waits_for_a_lease_of_its_other_parent() {
        // 0 and 1 merged into 2; only 0 is leased, 1 is listed, open
        // ancestry lagging: 1 gets a lease first (from TRIM_HORIZON), then
        // 2 in the same pass, never 2 alone.
        let shards = vec![
            shard(0, &[], true),
            shard(1, &[], true),
            shard(2, &[0, 1], false),
        ];
        let leased: HashSet<ShardId> = [shards[0].shard_id.clone()].into();
        let got = ids(&leases_to_create(&shards, &leased, InitialPosition::Latest));
        assert_eq!(
            got,
            vec![
                ("1".to_string(), ExtendedSequenceNumber::TrimHorizon),
                ("2".to_string(), ExtendedSequenceNumber::TrimHorizon)
            ]
        );
    }

    #[test]
    fn shards_with_leased_descendants_are_never_leased_again() {
        // 0, 1 and 2 finished and were cleaned up; only 3 and 4 remain.
        let leased: HashSet<ShardId> =
            [lineage()[0].shard_id.clone(), lineage()[3].shard_id.clone()].into();
        let leases = leases_to_create(&lineage(), &leased, InitialPosition::TrimHorizon);
        assert!(leases.is_empty(), "re-created {:?}", ids(&leases));
    }
}
