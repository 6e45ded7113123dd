//! Checks aimed at the ways a store most often half-keeps the contract:
//! numbers compared as floats or as 38-digit decimals, fencing by
//! generation alone, ordering judged before fencing, a hand-off request
//! that survives a change of owner, a re-take counted as a switch, a
//! missing lease answered with `Conflict`, and a read-then-write that can
//! undo a concurrent take. Each one is proven by a store broken in exactly
//! that way (`kcl-store-memory/tests/broken_stores.rs`).

use futures::future::join;

use super::{expect_conflict, expect_invalid_checkpoint, shard, worker};
use crate::error::Error;
use crate::lease::{Lease, PendingCheckpoint};
use crate::sequence::ExtendedSequenceNumber as Esn;
use crate::store::{CheckpointStore, LeaseStore};

fn seq(digits: &str, sub: u64) -> Esn {
    Esn::at(digits.parse().expect("digits"), sub)
}

/// Two 56-digit sequence numbers equal in their first 55 digits (beyond a
/// double's 17 and a DynamoDB number's 38), and their successor in the
/// last digit.
const LOW: &str = "49590338271490256608559692538361571095921575989136588898";
const HIGH: &str = "49590338271490256608559692538361571095921575989136588899";

async fn fresh(store: &dyn LeaseStore, i: usize, owner: &str) -> Lease {
    let lease = Lease::new(shard(i), Esn::TrimHorizon);
    assert!(store.create_lease_if_absent(&lease).await.expect("create"));
    store
        .take_lease(&lease, &worker(owner))
        .await
        .expect("take a fresh lease")
}

async fn stored(store: &dyn LeaseStore, i: usize) -> Lease {
    store
        .get_lease(&shard(i))
        .await
        .expect("get_lease")
        .expect("the lease exists")
}

/// A take of a lease that does not exist is `NotFound`, never `Conflict`
/// (the taker must know there is nothing to retry).
pub async fn take_of_a_missing_lease_is_not_found(store: &dyn LeaseStore) {
    let ghost = Lease::new(shard(500), Esn::TrimHorizon);
    match store.take_lease(&ghost, &worker("w-a")).await {
        Err(Error::NotFound { .. }) => {}
        other => panic!("take of a missing lease: expected NotFound, got {other:?}"),
    }
}

/// A forged holder with the current generation but another owner is
/// fenced out of every fenced write: fencing checks the owner, not only
/// the generation.
pub async fn fencing_checks_the_owner_as_well_as_the_generation(store: &dyn LeaseStore) {
    let held = fresh(store, 501, "w-a").await;
    let mut forged = held.clone();
    forged.owner = Some(worker("w-forger"));
    expect_conflict(store.renew_lease(&forged).await, "renew by another owner");
    expect_conflict(
        store.update_checkpoint(&forged, &seq("5", 0)).await,
        "checkpoint by another owner",
    );
    expect_conflict(
        store
            .prepare_checkpoint(
                &forged,
                &PendingCheckpoint {
                    sequence: seq("6", 0),
                    state: None,
                },
            )
            .await,
        "prepare by another owner",
    );
    expect_conflict(
        store.update_child_shard_ids(&forged, &[shard(502)]).await,
        "child ids by another owner",
    );
    expect_conflict(
        store.release_lease(&forged, None).await,
        "release by another owner",
    );
    let after = stored(store, 501).await;
    assert_eq!(after.owner, held.owner, "the forger changed the owner");
    assert_eq!(
        after.checkpoint,
        Esn::TrimHorizon,
        "the forger checkpointed"
    );
    assert_eq!(after.pending_checkpoint, None, "the forger prepared");
    assert!(after.child_shard_ids.is_empty(), "the forger set children");
}

/// A fenced-out writer gets `Conflict` even when its checkpoint would also
/// move backwards: fencing is judged before ordering, so a zombie learns
/// it lost the lease, not that its position was wrong.
pub async fn fencing_comes_before_ordering(store: &dyn LeaseStore) {
    let a = fresh(store, 503, "w-a").await;
    store
        .update_checkpoint(&a, &seq("100", 0))
        .await
        .expect("checkpoint 100");
    let snapshot = stored(store, 503).await;
    let b = store
        .take_lease(&snapshot, &worker("w-b"))
        .await
        .expect("take over");
    store
        .update_checkpoint(&b, &seq("200", 0))
        .await
        .expect("checkpoint 200");
    expect_conflict(
        store.update_checkpoint(&a, &seq("150", 0)).await,
        "a backwards checkpoint by a fenced-out holder",
    );
    expect_conflict(
        store
            .prepare_checkpoint(
                &a,
                &PendingCheckpoint {
                    sequence: seq("150", 0),
                    state: None,
                },
            )
            .await,
        "a backwards prepare by a fenced-out holder",
    );
    expect_invalid_checkpoint(
        store.update_checkpoint(&b, &seq("150", 0)).await,
        "a backwards checkpoint by the holder",
    );
}

/// Every change of ownership clears a pending hand-off request: take,
/// release (to nobody or to a worker) and reset.
pub async fn ownership_changes_clear_the_handoff_request(store: &dyn LeaseStore) {
    async fn ask(store: &dyn LeaseStore, lease: Lease) -> Lease {
        store
            .request_handoff(&lease, &worker("w-c"))
            .await
            .expect("request hand-off");
        stored(store, 504).await
    }
    let held = fresh(store, 504, "w-a").await;
    let asked = ask(store, held).await;
    assert!(asked.handoff_to.is_some(), "the request was not stored");
    let taken = store
        .take_lease(&asked, &worker("w-b"))
        .await
        .expect("take");
    assert_eq!(taken.handoff_to, None, "take left the request (returned)");
    assert_eq!(
        stored(store, 504).await.handoff_to,
        None,
        "take left the request"
    );

    ask(store, taken.clone()).await;
    store.release_lease(&taken, None).await.expect("release");
    assert_eq!(
        stored(store, 504).await.handoff_to,
        None,
        "release left the request"
    );

    let free = stored(store, 504).await;
    let held = store.take_lease(&free, &worker("w-a")).await.expect("take");
    ask(store, held).await;
    store
        .reset_checkpoint(&shard(504), &Esn::TrimHorizon)
        .await
        .expect("reset");
    assert_eq!(
        stored(store, 504).await.handoff_to,
        None,
        "reset left the request"
    );
}

/// A worker that takes back the lease it already holds (from a current
/// snapshot) does not count an owner switch.
pub async fn retake_by_the_same_owner_is_not_a_switch(store: &dyn LeaseStore) {
    let held = fresh(store, 505, "w-a").await;
    let snapshot = stored(store, 505).await;
    let again = store
        .take_lease(&snapshot, &worker("w-a"))
        .await
        .expect("re-take");
    assert_eq!(
        again.owner_switches_since_checkpoint, held.owner_switches_since_checkpoint,
        "a re-take by the same owner counted a switch"
    );
    assert_eq!(
        stored(store, 505).await.owner_switches_since_checkpoint,
        held.owner_switches_since_checkpoint,
        "a re-take by the same owner counted a switch (stored)"
    );
}

/// Lease checkpoints that differ only in the 56th digit keep their order
/// (a store comparing doubles or 38-digit decimals calls them equal).
pub async fn lease_checkpoints_compare_every_digit(store: &dyn LeaseStore) {
    let held = fresh(store, 506, "w-a").await;
    store
        .update_checkpoint(&held, &seq(HIGH, 0))
        .await
        .expect("checkpoint HIGH");
    expect_invalid_checkpoint(
        store.update_checkpoint(&held, &seq(LOW, 0)).await,
        "a checkpoint one below in the 56th digit",
    );
    assert_eq!(stored(store, 506).await.checkpoint, seq(HIGH, 0));
}

/// `CheckpointStore` positions that differ only in the 56th digit keep
/// their order, and the larger one is stored exactly.
pub async fn checkpoint_store_compares_every_digit(store: &dyn CheckpointStore) {
    let s = shard(507);
    store.set_checkpoint(&s, &seq(LOW, 0)).await.expect("LOW");
    store.set_checkpoint(&s, &seq(HIGH, 0)).await.expect("HIGH");
    assert_eq!(
        store.get_checkpoint(&s).await.expect("get"),
        Some(seq(HIGH, 0)),
        "the larger position must be stored exactly"
    );
    expect_invalid_checkpoint(
        store.set_checkpoint(&s, &seq(LOW, 0)).await,
        "a position one below in the 56th digit",
    );
}

/// Fenced writes of the holder (renew, checkpoint, prepare, child ids,
/// release) raced against a take from a snapshot, round after round:
/// whatever the interleaving, a take that succeeded is never undone (the
/// stored owner is the taker), and a holder's write that succeeded came
/// before it. A store that reads, checks and then writes unconditionally
/// fails this.
pub async fn fenced_writes_never_undo_a_take(store: &dyn LeaseStore) {
    for round in 0..25 {
        let i = 600 + round;
        let held = fresh(store, i, "w-a").await;
        let snapshot = stored(store, i).await;
        let releases = round % 5 == 4;
        let holder_write = async {
            match round % 5 {
                0 => store.renew_lease(&held).await.map(drop),
                1 => store.update_checkpoint(&held, &seq("7", 0)).await,
                2 => {
                    store
                        .prepare_checkpoint(
                            &held,
                            &PendingCheckpoint {
                                sequence: seq("8", 0),
                                state: None,
                            },
                        )
                        .await
                }
                3 => store.update_child_shard_ids(&held, &[shard(9999)]).await,
                _ => store.release_lease(&held, None).await,
            }
        };
        let taker = worker("w-b");
        let take = store.take_lease(&snapshot, &taker);
        let (write, take) = join(holder_write, take).await;
        let after = stored(store, i).await;
        match take {
            Ok(taken) => {
                assert_eq!(
                    after.owner,
                    Some(worker("w-b")),
                    "round {round}: a successful take was undone ({write:?})"
                );
                assert_eq!(after.generation, taken.generation, "round {round}");
            }
            Err(Error::Conflict { .. }) => {
                // The holder's release went first (and changed the
                // snapshot), or the holder still holds it.
                let owner = if releases && write.is_ok() {
                    None
                } else {
                    Some(worker("w-a"))
                };
                assert_eq!(after.owner, owner, "round {round} ({write:?})");
            }
            Err(other) => panic!("round {round}: take failed with {other:?}"),
        }
        if let Err(e) = write
            && !matches!(e, Error::Conflict { .. })
        {
            panic!("round {round}: the holder's write failed with {e:?}");
        }
        // The holder can never write after the take.
        if after.owner == Some(worker("w-b")) {
            expect_conflict(
                store.renew_lease(&held).await,
                "renew after the lease was taken",
            );
        }
    }
}

/// A fenced write of the holder, for [`fenced_writes_race_each_other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HolderWrite {
    Renew,
    Checkpoint,
    Prepare,
    Release,
}

impl HolderWrite {
    /// Run it; a renew returns the renewed lease.
    async fn run(self, store: &dyn LeaseStore, held: &Lease) -> Result<Option<Lease>, Error> {
        match self {
            HolderWrite::Renew => store.renew_lease(held).await.map(Some),
            HolderWrite::Checkpoint => store
                .update_checkpoint(held, &seq("7", 0))
                .await
                .map(|()| None),
            HolderWrite::Prepare => store
                .prepare_checkpoint(
                    held,
                    &PendingCheckpoint {
                        sequence: seq("8", 0),
                        state: None,
                    },
                )
                .await
                .map(|()| None),
            HolderWrite::Release => store.release_lease(held, None).await.map(|()| None),
        }
    }
}

/// Two fenced writes of the same holder (renew, checkpoint, prepare,
/// release, every pair, each in both orders) raced against each other:
/// neither undoes the other. Without a release both succeed and both
/// effects are stored (the counter at least the renewed one, the
/// checkpoint, the pending checkpoint unless the checkpoint cleared it
/// after); a release that succeeded leaves the lease unowned (no write
/// resurrects the owner), and the other write either came before it or is
/// `Conflict`. A store that reads the lease, checks the fence, and writes
/// the whole lease back fails this by losing one of the two writes.
pub async fn fenced_writes_race_each_other(store: &dyn LeaseStore) {
    use HolderWrite::*;
    let pairs = [
        (Renew, Checkpoint),
        (Renew, Prepare),
        (Checkpoint, Prepare),
        (Renew, Release),
        (Checkpoint, Release),
        (Prepare, Release),
    ];
    let mut i = 700;
    for (a, b) in pairs {
        for (first, second) in [(a, b), (b, a)] {
            for _ in 0..2 {
                i += 1;
                let held = fresh(store, i, "w-a").await;
                let (r1, r2) = join(first.run(store, &held), second.run(store, &held)).await;
                let after = stored(store, i).await;
                let what = format!("{first:?} racing {second:?} (lease {i})");
                let releasing = first == Release || second == Release;
                let results = [(first, &r1), (second, &r2)];
                for (write, result) in results {
                    match result {
                        Ok(_) => {}
                        Err(Error::Conflict { .. }) if releasing && write != Release => {}
                        Err(e) => panic!("{what}: {write:?} failed with {e:?}"),
                    }
                }
                let succeeded = |w: HolderWrite| results.iter().any(|(x, r)| *x == w && r.is_ok());
                if succeeded(Release) {
                    assert_eq!(after.owner, None, "{what}: a write undid the release");
                } else {
                    assert_eq!(after.owner, held.owner, "{what}");
                    assert_eq!(after.generation, held.generation, "{what}");
                }
                if succeeded(Checkpoint) {
                    assert_eq!(
                        after.checkpoint,
                        seq("7", 0),
                        "{what}: the checkpoint was lost"
                    );
                }
                if succeeded(Prepare) && !releasing {
                    let pending = after.pending_checkpoint.as_ref().map(|p| &p.sequence);
                    if succeeded(Checkpoint) {
                        // Cleared only by a checkpoint that came after it.
                        assert!(
                            pending.is_none() || pending == Some(&seq("8", 0)),
                            "{what}: pending {pending:?}"
                        );
                    } else {
                        assert_eq!(pending, Some(&seq("8", 0)), "{what}: the prepare was lost");
                    }
                }
                for (write, result) in results {
                    if let (Renew, Ok(Some(renewed))) = (write, result) {
                        assert!(
                            after.counter >= renewed.counter,
                            "{what}: the counter went back from {} to {}",
                            renewed.counter,
                            after.counter
                        );
                    }
                }
            }
        }
    }
}
