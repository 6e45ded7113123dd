//! Checks of the two writes that carry no position: the pinned start of a
//! lease still at `LATEST` / `AT_TIMESTAMP`, and withdrawing one's own
//! hand-off request.

use std::time::{Duration, SystemTime};

use super::{expect_conflict, shard, worker};
use crate::lease::Lease;
use crate::sequence::ExtendedSequenceNumber as Esn;
use crate::store::LeaseStore;

async fn get(store: &dyn LeaseStore, lease: &Lease) -> Lease {
    store
        .get_lease(&lease.shard_id)
        .await
        .expect("get_lease")
        .unwrap_or_else(|| panic!("lease {} vanished", lease.shard_id))
}

/// A pinned start round-trips (create, get, list, renew, take,
/// checkpoint) to whole milliseconds rounded down, moves no counter, is
/// fenced by owner and generation, and is cleared by `reset_checkpoint`.
pub async fn pinned_start_round_trips_and_is_fenced(store: &dyn LeaseStore) {
    let (a, b) = (worker("w-a"), worker("w-b"));
    let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
    let lease = Lease::new(shard(1), Esn::Latest);
    assert!(store.create_lease_if_absent(&lease).await.expect("create"));
    let held = store.take_lease(&lease, &a).await.expect("take");
    assert_eq!(held.pinned_start, None, "a new lease has no pinned start");

    store
        .pin_start(&held, at)
        .await
        .expect("pin under the lease");
    let pinned = get(store, &held).await;
    assert_eq!(pinned.pinned_start, Some(at), "get_lease returns the pin");
    assert_eq!(
        (pinned.counter, pinned.generation, &pinned.checkpoint),
        (held.counter, held.generation, &Esn::Latest),
        "pinning moves no counter and no checkpoint"
    );
    let listed = store.list_leases().await.expect("list");
    assert_eq!(
        listed
            .iter()
            .find(|l| l.shard_id == held.shard_id)
            .map(|l| l.pinned_start),
        Some(Some(at)),
        "list_leases returns the pin"
    );
    let renewed = store.renew_lease(&held).await.expect("renew");
    assert_eq!(renewed.pinned_start, Some(at), "renew keeps the pin");

    // Sub-millisecond parts are dropped, never rounded up (earlier is
    // safe: at least once).
    let finer = at + Duration::from_micros(5_700);
    store.pin_start(&held, finer).await.expect("pin again");
    let expected = at + Duration::from_millis(5);
    assert_eq!(get(store, &held).await.pinned_start, Some(expected));

    let mut stale = held.clone();
    stale.generation += 1;
    expect_conflict(
        store.pin_start(&stale, at).await,
        "pin with the wrong generation",
    );
    let mut other = held.clone();
    other.owner = Some(b.clone());
    expect_conflict(store.pin_start(&other, at).await, "pin by another owner");
    assert_eq!(
        get(store, &held).await.pinned_start,
        Some(expected),
        "a refused pin changes nothing"
    );

    // A new owner sees the pin; the old one can no longer change it.
    let observed = get(store, &held).await;
    let taken = store.take_lease(&observed, &b).await.expect("b takes");
    assert_eq!(taken.pinned_start, Some(expected), "a take keeps the pin");
    expect_conflict(store.pin_start(&held, at).await, "pin after a takeover");
    store
        .update_checkpoint(&taken, &Esn::at("7".parse().expect("digits"), 0))
        .await
        .expect("checkpoint");
    assert_eq!(get(store, &taken).await.pinned_start, Some(expected));

    store
        .reset_checkpoint(&held.shard_id, &Esn::Latest)
        .await
        .expect("reset");
    assert_eq!(
        get(store, &held).await.pinned_start,
        None,
        "reset_checkpoint clears the pin"
    );

    let mut created = Lease::new(shard(2), Esn::AtTimestamp);
    created.pinned_start = Some(at);
    assert!(
        store
            .create_lease_if_absent(&created)
            .await
            .expect("create")
    );
    assert_eq!(get(store, &created).await, created, "create stores the pin");
}

/// `withdraw_handoff` clears a request only while it names the requester
/// and the lease's owner and generation are unchanged; it moves no counter.
pub async fn withdraw_handoff_clears_only_our_request(store: &dyn LeaseStore) {
    let (a, c, d) = (worker("w-a"), worker("w-c"), worker("w-d"));
    let lease = Lease::new(shard(3), Esn::TrimHorizon);
    assert!(store.create_lease_if_absent(&lease).await.expect("create"));
    let held = store.take_lease(&lease, &a).await.expect("take");
    let observed = get(store, &held).await;
    store.request_handoff(&observed, &c).await.expect("c asks");
    store
        .withdraw_handoff(&observed, &c)
        .await
        .expect("c withdraws");
    let after = get(store, &held).await;
    assert_eq!(after.handoff_to, None, "the request is withdrawn");
    assert_eq!(
        (after.counter, after.generation, after.owner.as_ref()),
        (observed.counter, observed.generation, Some(&a)),
        "withdrawing moves no counter and keeps the owner"
    );

    store.request_handoff(&observed, &d).await.expect("d asks");
    store
        .withdraw_handoff(&observed, &c)
        .await
        .expect("withdrawing a request that names another worker succeeds");
    assert_eq!(
        get(store, &held).await.handoff_to,
        Some(d.clone()),
        "another worker's request stays"
    );
    let mut stale = observed.clone();
    stale.generation += 1;
    expect_conflict(
        store.withdraw_handoff(&stale, &d).await,
        "withdraw with the wrong generation",
    );
    assert_eq!(get(store, &held).await.handoff_to, Some(d.clone()));

    store.release_lease(&held, None).await.expect("release");
    expect_conflict(
        store.withdraw_handoff(&observed, &d).await,
        "withdraw after the owner changed",
    );
}
