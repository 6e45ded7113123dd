//! Check of a lease's recorded throughput
//! ([`Lease::throughput_bytes_per_sec`]), which the owner writes with its
//! renewals and peers read to balance by load.

use super::{expect_conflict, shard, worker};
use crate::lease::Lease;
use crate::sequence::ExtendedSequenceNumber as Esn;
use crate::store::LeaseStore;

async fn stored(store: &dyn LeaseStore, lease: &Lease) -> Option<u64> {
    store
        .get_lease(&lease.shard_id)
        .await
        .expect("get_lease")
        .unwrap_or_else(|| panic!("lease {} vanished", lease.shard_id))
        .throughput_bytes_per_sec
}

/// A throughput figure round-trips through create, renew, get, list, take,
/// release and checkpoint; a renew without one keeps the stored figure;
/// it is written only under the lease (a stale holder's renew is a
/// `Conflict` and changes nothing); and it moves no generation.
pub async fn throughput_round_trips_on_renew_and_is_fenced(store: &dyn LeaseStore) {
    let (a, b) = (worker("w-a"), worker("w-b"));
    let lease = Lease::new(shard(1), Esn::TrimHorizon);
    assert!(store.create_lease_if_absent(&lease).await.expect("create"));
    let mut held = store.take_lease(&lease, &a).await.expect("take");
    assert_eq!(held.throughput_bytes_per_sec, None, "a new lease has none");

    held.throughput_bytes_per_sec = Some(1_234_567);
    let renewed = store.renew_lease(&held).await.expect("renew");
    assert_eq!(renewed.throughput_bytes_per_sec, Some(1_234_567));
    assert_eq!(
        (renewed.counter, renewed.generation),
        (held.counter + 1, held.generation),
        "a renew with a figure is still a renew"
    );
    assert_eq!(stored(store, &held).await, Some(1_234_567), "get_lease");
    let listed = store.list_leases().await.expect("list");
    assert_eq!(
        listed
            .iter()
            .find(|l| l.shard_id == held.shard_id)
            .map(|l| l.throughput_bytes_per_sec),
        Some(Some(1_234_567)),
        "list_leases returns the figure"
    );

    // A renew without a figure keeps the stored one; a new figure (zero
    // too: an idle shard) replaces it.
    held.throughput_bytes_per_sec = None;
    let kept = store.renew_lease(&held).await.expect("renew without");
    assert_eq!(kept.throughput_bytes_per_sec, Some(1_234_567));
    held.throughput_bytes_per_sec = Some(0);
    store.renew_lease(&held).await.expect("renew with zero");
    assert_eq!(stored(store, &held).await, Some(0), "zero is a figure");
    held.throughput_bytes_per_sec = Some(987_654_321_012);
    store.renew_lease(&held).await.expect("renew large");
    store
        .update_checkpoint(&held, &Esn::at("42".parse().expect("digits"), 0))
        .await
        .expect("checkpoint");
    assert_eq!(
        stored(store, &held).await,
        Some(987_654_321_012),
        "a checkpoint keeps it"
    );

    // Another worker takes the lease: the figure stays (the new owner
    // starts from it), and the old holder can no longer write one.
    let observed = store
        .get_lease(&held.shard_id)
        .await
        .expect("get")
        .expect("lease");
    let mut taken = store.take_lease(&observed, &b).await.expect("take by b");
    assert_eq!(
        taken.throughput_bytes_per_sec,
        Some(987_654_321_012),
        "a take keeps it"
    );
    held.throughput_bytes_per_sec = Some(5);
    expect_conflict(
        store.renew_lease(&held).await,
        "a stale holder's renew with a figure",
    );
    assert_eq!(
        stored(store, &held).await,
        Some(987_654_321_012),
        "a refused renew writes no figure"
    );
    taken.throughput_bytes_per_sec = Some(77);
    store.renew_lease(&taken).await.expect("renew by b");
    store.release_lease(&taken, None).await.expect("release");
    assert_eq!(stored(store, &taken).await, Some(77), "a release keeps it");

    // A lease created with a figure keeps it as given.
    let mut created = Lease::new(shard(2), Esn::TrimHorizon);
    created.throughput_bytes_per_sec = Some(4_096);
    assert!(
        store
            .create_lease_if_absent(&created)
            .await
            .expect("create")
    );
    assert_eq!(stored(store, &created).await, Some(4_096));
}
