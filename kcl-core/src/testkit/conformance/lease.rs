//! Checks of the [`LeaseStore`] contract.

use std::collections::HashSet;

use futures::future::join_all;

use super::{expect_conflict, expect_invalid_checkpoint, expect_missing, shard, worker};
use crate::ids::{HashKeyRange, WorkerId};
use crate::lease::{Lease, PendingCheckpoint};
use crate::sequence::ExtendedSequenceNumber as Esn;
use crate::store::LeaseStore;

fn seq(digits: &str, sub: u64) -> Esn {
    Esn::at(digits.parse().expect("digits"), sub)
}

async fn get(store: &dyn LeaseStore, lease: &Lease) -> Lease {
    store
        .get_lease(&lease.shard_id)
        .await
        .expect("get_lease")
        .unwrap_or_else(|| panic!("lease {} vanished", lease.shard_id))
}

/// Create a fresh unowned lease and take it for `owner`.
async fn created_and_taken(store: &dyn LeaseStore, i: usize, owner: &WorkerId) -> Lease {
    let lease = Lease::new(shard(i), Esn::TrimHorizon);
    assert!(store.create_lease_if_absent(&lease).await.expect("create"));
    store
        .take_lease(&lease, owner)
        .await
        .expect("take a fresh lease")
}

/// Creating stores the lease exactly as given; creating again changes
/// nothing and says so.
pub async fn create_if_absent_is_idempotent(store: &dyn LeaseStore) {
    let lease = Lease::new(shard(1), Esn::TrimHorizon);
    assert!(
        store.create_lease_if_absent(&lease).await.expect("create"),
        "first create must report true"
    );
    assert_eq!(
        get(store, &lease).await,
        lease,
        "stored lease differs from the one created"
    );

    let other = Lease::new(shard(1), Esn::Latest);
    assert!(
        !store
            .create_lease_if_absent(&other)
            .await
            .expect("create again"),
        "second create must report false"
    );
    assert_eq!(
        get(store, &lease).await,
        lease,
        "second create must not change the lease"
    );
}

/// Many workers creating one lease at once: exactly one reports `true`.
pub async fn concurrent_creates_make_one_lease(store: &dyn LeaseStore) {
    let lease = Lease::new(shard(2), Esn::TrimHorizon);
    let results = join_all((0..8).map(|_| store.create_lease_if_absent(&lease))).await;
    let created = results
        .into_iter()
        .map(|r| r.expect("create"))
        .filter(|c| *c)
        .count();
    assert_eq!(created, 1, "exactly one concurrent create must win");
    assert_eq!(store.list_leases().await.expect("list").len(), 1);
}

/// A missing lease reads as `None`, and writes to it fail.
pub async fn missing_leases(store: &dyn LeaseStore) {
    assert_eq!(store.get_lease(&shard(404)).await.expect("get"), None);
    assert!(
        store.list_leases().await.expect("list").is_empty(),
        "a fresh namespace must be empty"
    );
    let mut ghost = Lease::new(shard(404), Esn::TrimHorizon);
    let w = worker("w-ghost");
    expect_missing(
        store.take_lease(&ghost, &w).await,
        "take of a missing lease",
    );
    ghost.owner = Some(w.clone());
    expect_missing(store.renew_lease(&ghost).await, "renew of a missing lease");
    expect_missing(
        store.update_checkpoint(&ghost, &seq("1", 0)).await,
        "checkpoint of a missing lease",
    );
    expect_missing(
        store.release_lease(&ghost, None).await,
        "release of a missing lease",
    );
    match store.reset_checkpoint(&shard(404), &Esn::TrimHorizon).await {
        Err(crate::Error::NotFound { .. }) => {}
        other => panic!("reset of a missing lease: expected NotFound, got {other:?}"),
    }
    assert_eq!(
        store.get_lease(&shard(404)).await.expect("get"),
        None,
        "failed writes must not create a lease"
    );
}

/// N workers take one lease from the same snapshot: one wins, N − 1 get
/// `Conflict`, and the stored lease is the winner's.
pub async fn concurrent_takers_have_one_winner(store: &dyn LeaseStore) {
    let observed = Lease::new(shard(3), Esn::TrimHorizon);
    assert!(
        store
            .create_lease_if_absent(&observed)
            .await
            .expect("create")
    );
    let workers: Vec<WorkerId> = (0..16).map(|i| worker(&format!("taker-{i}"))).collect();
    let results = join_all(workers.iter().map(|w| store.take_lease(&observed, w))).await;

    let mut winners = Vec::new();
    for (w, result) in workers.iter().zip(results) {
        match result {
            Ok(lease) => winners.push((w.clone(), lease)),
            Err(crate::Error::Conflict { .. }) => {}
            Err(other) => panic!("a losing take must be Conflict, got {other:?}"),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one of 16 concurrent takers must win"
    );
    let (winner, taken) = &winners[0];
    assert_eq!(taken.owner.as_ref(), Some(winner));
    assert_eq!(
        taken.counter,
        observed.counter + 1,
        "take adds one to the counter"
    );
    assert!(
        taken.generation > observed.generation,
        "take must change the generation"
    );
    assert_eq!(
        taken.owner_switches_since_checkpoint, 0,
        "taking a free lease is not an owner switch"
    );
    assert_eq!(
        &get(store, &observed).await,
        taken,
        "take must return the lease as stored"
    );
}

/// A take from a snapshot the owner has since renewed loses.
pub async fn take_needs_an_unchanged_snapshot(store: &dyn LeaseStore) {
    let a = worker("w-a");
    let held = created_and_taken(store, 4, &a).await;
    let snapshot = get(store, &held).await;
    store.renew_lease(&held).await.expect("renew");
    expect_conflict(
        store.take_lease(&snapshot, &worker("w-b")).await,
        "take from a stale snapshot",
    );
    assert_eq!(
        get(store, &held).await.owner,
        Some(a),
        "a lost take must not change the owner"
    );

    let fresh = get(store, &held).await;
    let stolen = store
        .take_lease(&fresh, &worker("w-b"))
        .await
        .expect("take from a fresh snapshot");
    assert_eq!(stolen.owner, Some(worker("w-b")));
}

/// Renew adds one to the counter, keeps the generation, and can be
/// repeated from the same held lease (a retried renew is harmless).
pub async fn renew_moves_the_counter_only(store: &dyn LeaseStore) {
    let a = worker("w-a");
    let held = created_and_taken(store, 5, &a).await;
    let r1 = store.renew_lease(&held).await.expect("renew");
    assert_eq!(r1.counter, held.counter + 1);
    assert_eq!(
        r1.generation, held.generation,
        "renew must not change the generation"
    );
    assert_eq!(r1.owner, Some(a.clone()));
    // Renew again from the original snapshot: fencing is by owner and
    // generation, so this succeeds too.
    let r2 = store
        .renew_lease(&held)
        .await
        .expect("renew from the same held lease");
    assert_eq!(r2.counter, held.counter + 2);
    // A checkpoint in between does not break the holder's next renew.
    store
        .update_checkpoint(&held, &seq("7", 0))
        .await
        .expect("checkpoint");
    let r3 = store
        .renew_lease(&held)
        .await
        .expect("renew after checkpoint");
    assert_eq!(
        r3.checkpoint,
        seq("7", 0),
        "renew returns the stored checkpoint"
    );
    assert!(r3.counter > r2.counter);
}

/// Once another worker has taken the lease, nothing the old holder does
/// under it succeeds or changes anything.
pub async fn fencing_after_takeover(store: &dyn LeaseStore) {
    let a = worker("w-a");
    let b = worker("w-b");
    let held_by_a = created_and_taken(store, 6, &a).await;
    store
        .update_checkpoint(&held_by_a, &seq("100", 0))
        .await
        .expect("checkpoint by holder");

    // B judges A expired and takes the lease.
    let snapshot = get(store, &held_by_a).await;
    let held_by_b = store.take_lease(&snapshot, &b).await.expect("take over");

    expect_conflict(
        store.renew_lease(&held_by_a).await,
        "renew by a worker whose lease was taken",
    );
    expect_conflict(
        store.update_checkpoint(&held_by_a, &seq("200", 0)).await,
        "checkpoint by a worker whose lease was taken",
    );
    expect_conflict(
        store
            .prepare_checkpoint(
                &held_by_a,
                &PendingCheckpoint {
                    sequence: seq("300", 0),
                    state: None,
                },
            )
            .await,
        "prepare by a worker whose lease was taken",
    );
    expect_conflict(
        store.update_child_shard_ids(&held_by_a, &[shard(60)]).await,
        "child ids by a worker whose lease was taken",
    );
    expect_conflict(
        store.release_lease(&held_by_a, None).await,
        "release by a worker whose lease was taken",
    );
    expect_conflict(
        store.release_lease(&held_by_a, Some(&a)).await,
        "hand-off by a worker whose lease was taken",
    );

    let stored = get(store, &held_by_a).await;
    assert_eq!(stored.owner, Some(b), "the new owner must keep the lease");
    assert_eq!(
        stored.checkpoint,
        seq("100", 0),
        "a fenced-out checkpoint must not be stored"
    );
    assert_eq!(
        stored.pending_checkpoint, None,
        "a fenced-out prepare must not be stored"
    );
    assert!(
        stored.child_shard_ids.is_empty(),
        "fenced-out child ids must not be stored"
    );
    assert_eq!(stored.generation, held_by_b.generation);

    // A holder without an owner is never accepted.
    let mut ownerless = held_by_b.clone();
    ownerless.owner = None;
    expect_conflict(store.renew_lease(&ownerless).await, "renew with no owner");
}

/// The ABA case: A loses the lease and later takes it back. A's old held
/// lease (same owner, old generation) must still be fenced out, so a zombie
/// task of A cannot write behind the new one's back.
pub async fn fencing_survives_retake_by_same_worker(store: &dyn LeaseStore) {
    let a = worker("w-a");
    let old = created_and_taken(store, 7, &a).await;
    let snapshot = get(store, &old).await;
    let by_b = store
        .take_lease(&snapshot, &worker("w-b"))
        .await
        .expect("b takes");
    store.release_lease(&by_b, None).await.expect("b releases");
    let snapshot = get(store, &old).await;
    let new = store
        .take_lease(&snapshot, &a)
        .await
        .expect("a takes again");
    store
        .update_checkpoint(&new, &seq("50", 0))
        .await
        .expect("checkpoint under the new lease");

    expect_conflict(
        store.renew_lease(&old).await,
        "renew under an old generation of the same owner",
    );
    expect_conflict(
        store.update_checkpoint(&old, &seq("60", 0)).await,
        "checkpoint under an old generation of the same owner",
    );
    assert_eq!(get(store, &old).await.checkpoint, seq("50", 0));
}

/// A lease deleted and created again starts a new life whose fence never
/// repeats the old one's: a zombie of the same worker holding the old
/// (owner, generation) is fenced out even after that worker takes the new
/// lease (generations from 0 start at a random epoch).
pub async fn recreated_lease_fence_never_repeats(store: &dyn LeaseStore) {
    let a = worker("w-a");
    let old = created_and_taken(store, 9, &a).await;
    store.delete_lease(&old.shard_id).await.expect("delete");
    let new = created_and_taken(store, 9, &a).await;
    assert_ne!(
        (new.owner.as_ref(), new.generation),
        (old.owner.as_ref(), old.generation),
        "a re-created lease's first take repeated the old fence"
    );
    expect_conflict(
        store.renew_lease(&old).await,
        "renew by a zombie of the lease's previous life",
    );
    expect_conflict(
        store.update_checkpoint(&old, &seq("5", 0)).await,
        "checkpoint by a zombie of the lease's previous life",
    );
    assert_eq!(get(store, &new).await.checkpoint, Esn::TrimHorizon);
}

/// Checkpoints only move forward, in numeric (not string) order, by
/// sub-sequence within a record, and never past SHARD_END.
pub async fn checkpoints_never_go_backwards(store: &dyn LeaseStore) {
    let held = created_and_taken(store, 8, &worker("w-a")).await;
    let steps_ok = [seq("9", 0), seq("10", 0), seq("10", 0), seq("10", 5)];
    for cp in &steps_ok {
        store
            .update_checkpoint(&held, cp)
            .await
            .unwrap_or_else(|e| panic!("checkpoint {cp}: {e}"));
        assert_eq!(&get(store, &held).await.checkpoint, cp);
    }
    expect_invalid_checkpoint(
        store.update_checkpoint(&held, &seq("9", 0)).await,
        "10 -> 9 (\"9\" > \"10\" as strings)",
    );
    expect_invalid_checkpoint(
        store.update_checkpoint(&held, &seq("10", 4)).await,
        "10/5 -> 10/4",
    );
    expect_invalid_checkpoint(
        store.update_checkpoint(&held, &Esn::TrimHorizon).await,
        "10/5 -> TRIM_HORIZON",
    );
    assert_eq!(
        get(store, &held).await.checkpoint,
        seq("10", 5),
        "a refused checkpoint must change nothing"
    );

    // Real sequence numbers are 56 digits: wider than any machine integer.
    let big = "49590338271490256608559692538361571095921575989136588898";
    let bigger = "49590338271490256608559692538361571095921575989136588899";
    store
        .update_checkpoint(&held, &seq(big, 0))
        .await
        .expect("56-digit checkpoint");
    store
        .update_checkpoint(&held, &seq(bigger, 0))
        .await
        .expect("larger 56-digit checkpoint");
    expect_invalid_checkpoint(
        store.update_checkpoint(&held, &seq(big, 9)).await,
        "56-digit regress",
    );
    expect_invalid_checkpoint(
        store.update_checkpoint(&held, &seq(&big[..55], 0)).await,
        "55-digit after 56-digit",
    );

    store
        .update_checkpoint(&held, &Esn::ShardEnd)
        .await
        .expect("SHARD_END");
    store
        .update_checkpoint(&held, &Esn::ShardEnd)
        .await
        .expect("SHARD_END again");
    expect_invalid_checkpoint(
        store.update_checkpoint(&held, &seq(bigger, 1)).await,
        "past SHARD_END",
    );
    assert_eq!(get(store, &held).await.checkpoint, Esn::ShardEnd);
}

/// A checkpoint clears the pending checkpoint and the owner-switch count.
pub async fn checkpoint_clears_pending_and_switches(store: &dyn LeaseStore) {
    let a = created_and_taken(store, 9, &worker("w-a")).await;
    let snapshot = get(store, &a).await;
    let b = store
        .take_lease(&snapshot, &worker("w-b"))
        .await
        .expect("b takes");
    assert_eq!(
        b.owner_switches_since_checkpoint, 1,
        "taking from another owner is a switch"
    );
    let pending = PendingCheckpoint {
        sequence: seq("20", 0),
        state: Some(b"s".to_vec()),
    };
    store
        .prepare_checkpoint(&b, &pending)
        .await
        .expect("prepare");
    store
        .update_checkpoint(&b, &seq("20", 0))
        .await
        .expect("checkpoint");
    let stored = get(store, &b).await;
    assert_eq!(
        stored.pending_checkpoint, None,
        "checkpoint must clear the pending checkpoint"
    );
    assert_eq!(
        stored.owner_switches_since_checkpoint, 0,
        "checkpoint must reset owner switches"
    );
}

/// Release to nobody: the lease is free, the old holder is fenced out, and
/// another worker takes it from a fresh snapshot.
pub async fn release_frees_the_lease(store: &dyn LeaseStore) {
    let a = worker("w-a");
    let held = created_and_taken(store, 10, &a).await;
    store
        .update_checkpoint(&held, &seq("5", 0))
        .await
        .expect("checkpoint");
    store.release_lease(&held, None).await.expect("release");
    let freed = get(store, &held).await;
    assert_eq!(freed.owner, None, "release must clear the owner");
    assert!(
        freed.generation > held.generation,
        "release must change the generation"
    );
    assert!(
        freed.counter > held.counter,
        "release must move the counter"
    );
    assert_eq!(
        freed.checkpoint,
        seq("5", 0),
        "release keeps the checkpoint"
    );
    expect_conflict(store.renew_lease(&held).await, "renew after release");
    expect_conflict(store.release_lease(&held, None).await, "release twice");

    let taken = store
        .take_lease(&freed, &worker("w-b"))
        .await
        .expect("take a released lease");
    assert_eq!(taken.owner, Some(worker("w-b")));
}

/// Release straight to a named worker: it owns the lease at once and can
/// renew and checkpoint it from a fresh read.
pub async fn handoff_to_a_named_worker(store: &dyn LeaseStore) {
    let a = worker("w-a");
    let b = worker("w-b");
    let held = created_and_taken(store, 11, &a).await;
    store
        .release_lease(&held, Some(&b))
        .await
        .expect("hand off");
    let handed = get(store, &held).await;
    assert_eq!(handed.owner, Some(b.clone()));
    assert!(handed.generation > held.generation);
    assert_eq!(
        handed.owner_switches_since_checkpoint, 1,
        "a hand-off counts a switch"
    );
    store.renew_lease(&handed).await.expect("new owner renews");
    store
        .update_checkpoint(&handed, &seq("1", 0))
        .await
        .expect("new owner checkpoints");
    expect_conflict(
        store.update_checkpoint(&held, &seq("2", 0)).await,
        "old owner after hand-off",
    );
}

/// A hand-off request reaches the owner through renew, does not move the
/// counter, needs a current snapshot and an owner, and is cleared by the
/// change of ownership.
pub async fn request_handoff_reaches_the_owner(store: &dyn LeaseStore) {
    let a = worker("w-a");
    let c = worker("w-c");
    let held = created_and_taken(store, 12, &a).await;
    let observed = get(store, &held).await;
    store
        .request_handoff(&observed, &c)
        .await
        .expect("request hand-off");
    let after = get(store, &held).await;
    assert_eq!(after.handoff_to, Some(c.clone()));
    assert_eq!(
        after.counter, observed.counter,
        "a request must not move the counter"
    );
    assert_eq!(
        after.generation, observed.generation,
        "a request must not change the generation"
    );
    assert_eq!(
        after.owner,
        Some(a.clone()),
        "a request must not change the owner"
    );
    let renewed = store.renew_lease(&held).await.expect("owner renews");
    assert_eq!(
        renewed.handoff_to,
        Some(c.clone()),
        "the owner must see the request on renew"
    );

    let mut stale = observed.clone();
    stale.generation += 1;
    expect_conflict(
        store.request_handoff(&stale, &c).await,
        "request with the wrong generation",
    );

    store
        .release_lease(&held, Some(&c))
        .await
        .expect("owner hands off");
    let handed = get(store, &held).await;
    assert_eq!(handed.owner, Some(c.clone()));
    assert_eq!(
        handed.handoff_to, None,
        "a change of owner clears the request"
    );

    store.release_lease(&handed, None).await.expect("release");
    let free = get(store, &held).await;
    expect_conflict(
        store.request_handoff(&free, &a).await,
        "request on a lease with no owner",
    );
}

/// A prepared checkpoint with application bytes round-trips, survives a
/// change of owner, and may not lie below the checkpoint.
pub async fn pending_checkpoint_round_trips(store: &dyn LeaseStore) {
    let held = created_and_taken(store, 13, &worker("w-a")).await;
    store
        .update_checkpoint(&held, &seq("100", 0))
        .await
        .expect("checkpoint");
    let state: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 256) as u8).collect();
    let pending = PendingCheckpoint {
        sequence: seq("150", 2),
        state: Some(state),
    };
    store
        .prepare_checkpoint(&held, &pending)
        .await
        .expect("prepare");
    assert_eq!(
        get(store, &held).await.pending_checkpoint,
        Some(pending.clone())
    );

    let without = PendingCheckpoint {
        sequence: seq("160", 0),
        state: None,
    };
    store
        .prepare_checkpoint(&held, &without)
        .await
        .expect("prepare without state");
    assert_eq!(
        get(store, &held).await.pending_checkpoint,
        Some(without.clone())
    );

    expect_invalid_checkpoint(
        store
            .prepare_checkpoint(
                &held,
                &PendingCheckpoint {
                    sequence: seq("99", 0),
                    state: None,
                },
            )
            .await,
        "prepare below the checkpoint",
    );

    let snapshot = get(store, &held).await;
    let next = store
        .take_lease(&snapshot, &worker("w-b"))
        .await
        .expect("take");
    assert_eq!(
        next.pending_checkpoint,
        Some(without),
        "the next owner must see the prepared checkpoint"
    );
}

/// Parents, children and the hash key range round-trip, including the
/// extremes of the 128-bit key space; the owner can add children.
pub async fn lineage_round_trips(store: &dyn LeaseStore) {
    let merged = Lease::new(shard(14), Esn::TrimHorizon)
        .with_parents([shard(140), shard(141)])
        .with_hash_key_range(
            HashKeyRange::new(170141183460469231731687303715884105728, u128::MAX).unwrap(),
        );
    assert!(store.create_lease_if_absent(&merged).await.expect("create"));
    assert_eq!(get(store, &merged).await, merged);

    let split_parent = Lease::new(shard(15), Esn::Latest)
        .with_hash_key_range(HashKeyRange::FULL)
        .with_children([shard(150), shard(151)]);
    assert!(
        store
            .create_lease_if_absent(&split_parent)
            .await
            .expect("create")
    );
    assert_eq!(get(store, &split_parent).await, split_parent);

    let held = store
        .take_lease(&merged, &worker("w-a"))
        .await
        .expect("take");
    store
        .update_child_shard_ids(&held, &[shard(142)])
        .await
        .expect("owner sets children");
    let stored = get(store, &merged).await;
    assert_eq!(stored.child_shard_ids, vec![shard(142)]);
    assert_eq!(stored.parent_shard_ids, vec![shard(140), shard(141)]);
}

/// An administrator's reset moves the checkpoint anywhere, frees the
/// lease and fences out its owner.
pub async fn reset_checkpoint_moves_back_and_fences(store: &dyn LeaseStore) {
    let held = created_and_taken(store, 16, &worker("w-a")).await;
    store
        .update_checkpoint(&held, &seq("500", 0))
        .await
        .expect("checkpoint");
    store
        .prepare_checkpoint(
            &held,
            &PendingCheckpoint {
                sequence: seq("600", 0),
                state: None,
            },
        )
        .await
        .expect("prepare");
    store
        .reset_checkpoint(&held.shard_id, &seq("42", 0))
        .await
        .expect("reset");
    let reset = get(store, &held).await;
    assert_eq!(
        reset.checkpoint,
        seq("42", 0),
        "reset may move the checkpoint back"
    );
    assert_eq!(
        reset.pending_checkpoint, None,
        "reset clears the pending checkpoint"
    );
    assert_eq!(reset.owner, None, "reset frees the lease");
    assert!(
        reset.generation > held.generation,
        "reset changes the generation"
    );
    expect_conflict(
        store.update_checkpoint(&held, &seq("700", 0)).await,
        "checkpoint by the owner before reset",
    );
    expect_conflict(
        store.renew_lease(&held).await,
        "renew by the owner before reset",
    );
}

/// Delete removes the lease; deleting again or deleting a missing lease
/// is fine.
pub async fn delete_is_idempotent(store: &dyn LeaseStore) {
    let lease = Lease::new(shard(17), Esn::ShardEnd);
    assert!(store.create_lease_if_absent(&lease).await.expect("create"));
    store.delete_lease(&lease.shard_id).await.expect("delete");
    assert_eq!(store.get_lease(&lease.shard_id).await.expect("get"), None);
    store
        .delete_lease(&lease.shard_id)
        .await
        .expect("delete again");
    store
        .delete_lease(&shard(999))
        .await
        .expect("delete missing");
    assert!(
        store
            .create_lease_if_absent(&lease)
            .await
            .expect("create after delete"),
        "a deleted lease can be created again"
    );
}

/// Heartbeats: created on first beat, counter moves, listed, removed.
pub async fn heartbeats(store: &dyn LeaseStore) {
    let a = worker("w-a");
    let b = worker("w-b");
    assert!(store.list_workers().await.expect("list").is_empty());
    store.heartbeat(&a).await.expect("beat");
    let first = store.list_workers().await.expect("list");
    store.heartbeat(&a).await.expect("beat");
    store.heartbeat(&b).await.expect("beat");
    let second = store.list_workers().await.expect("list");
    let counter = |list: &[crate::WorkerHeartbeat], w: &WorkerId| {
        list.iter().find(|h| &h.worker_id == w).map(|h| h.counter)
    };
    assert!(counter(&first, &a).is_some(), "a heartbeat must be listed");
    assert!(
        counter(&second, &a) > counter(&first, &a),
        "a heartbeat must move the counter"
    );
    assert!(counter(&second, &b).is_some());
    assert_eq!(second.len(), 2);
    store.remove_worker(&a).await.expect("remove");
    store.remove_worker(&a).await.expect("remove again");
    let third = store.list_workers().await.expect("list");
    assert_eq!(
        third
            .iter()
            .map(|h| h.worker_id.clone())
            .collect::<Vec<_>>(),
        vec![b]
    );
}

/// Two applications on one server never see each other's leases or
/// heartbeats, even for the same shard ids.
pub async fn namespaces_are_isolated(one: &dyn LeaseStore, two: &dyn LeaseStore) {
    let in_one = Lease::new(shard(18), Esn::TrimHorizon);
    let in_two = Lease::new(shard(18), Esn::Latest);
    assert!(one.create_lease_if_absent(&in_one).await.expect("create"));
    assert!(
        two.create_lease_if_absent(&in_two)
            .await
            .expect("create in the other namespace")
    );
    let held = one.take_lease(&in_one, &worker("w-a")).await.expect("take");
    one.update_checkpoint(&held, &seq("5", 0))
        .await
        .expect("checkpoint");
    one.heartbeat(&worker("w-a")).await.expect("beat");

    assert_eq!(
        two.get_lease(&in_two.shard_id).await.expect("get"),
        Some(in_two.clone())
    );
    assert_eq!(two.list_leases().await.expect("list"), vec![in_two.clone()]);
    assert!(two.list_workers().await.expect("list workers").is_empty());
    one.delete_lease(&in_one.shard_id).await.expect("delete");
    assert_eq!(
        two.get_lease(&in_two.shard_id).await.expect("get"),
        Some(in_two)
    );
}

/// Listing returns every lease exactly once, even for `count` (10,000 in
/// [`run_all`](super::run_all)) leases, which backends must page through.
pub async fn list_many_leases(store: &dyn LeaseStore, count: usize) {
    let leases: Vec<Lease> = (0..count)
        .map(|i| Lease::new(shard(100_000 + i), Esn::TrimHorizon))
        .collect();
    for chunk in leases.chunks(64) {
        for r in join_all(chunk.iter().map(|l| store.create_lease_if_absent(l))).await {
            assert!(r.expect("create"));
        }
    }
    let listed = store.list_leases().await.expect("list");
    assert_eq!(listed.len(), count, "list must return every lease");
    let ids: HashSet<_> = listed.iter().map(|l| l.shard_id.clone()).collect();
    assert_eq!(ids.len(), count, "list must return each lease once");
    assert!(leases.iter().all(|l| ids.contains(&l.shard_id)));
}
