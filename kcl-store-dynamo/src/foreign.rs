//! Mixed fleets: the guard that keeps Rust takers off the live leases of
//! Java KCL workers sharing the table.
//!
//! A Rust taker calls a lease expired when its counter has stood still for
//! one Rust lease duration; a Java worker renews only every
//! `failoverTimeMillis / 3`. With a Rust lease duration shorter than that
//! renew interval, Rust workers would take live Java leases. The rule is
//! "Rust lease duration ≥ the largest Java `failoverTimeMillis`", and this
//! guard enforces it where the take happens, whatever the engine's lease
//! duration, when turned on: an owner that has never written a heartbeat to this
//! application's heartbeat table (as every Rust worker does, and no Java
//! worker can) is *foreign*, and a take of a foreign owner's lease is
//! refused with `Conflict` until this store has seen the lease's
//! `(leaseCounter, kclrsGeneration)` unchanged for the Java failover time
//! ([`DynamoStoreBuilder::java_failover_time`](crate::DynamoStoreBuilder::java_failover_time),
//! Java's default 10 s, for Java's default `failoverTimeMillis`) on its
//! own monotonic clock. Off, the guard only warns, once per such owner, at
//! its first take (the store contract lets any taker take from an
//! unchanged snapshot, and the conformance suite's owners never
//! heartbeat). The take itself is
//! conditional on the counter it observed, so a Java renew between the
//! store's last look and the take still makes the take fail.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kcl_core::{Lease, ShardId, WorkerId};

/// Java KCL's default `failoverTimeMillis`: the value to give
/// [`DynamoStoreBuilder::java_failover_time`](crate::DynamoStoreBuilder::java_failover_time)
/// when the Java workers keep their default.
pub const DEFAULT_JAVA_FAILOVER_TIME: Duration = Duration::from_secs(10);

/// What the guard has seen. One per store (clones share it).
#[derive(Debug)]
pub(crate) struct ForeignOwners {
    /// The Java failover time when the guard is on; `None`: only warn.
    failover_time: Option<Duration>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Every worker seen with a heartbeat by this store (never forgotten:
    /// a crashed Rust worker whose heartbeat a peer removed is still not
    /// foreign).
    ours: HashSet<WorkerId>,
    /// Per lease: the `(counter, generation)` last seen, and since when.
    seen: HashMap<ShardId, ((u64, u64), Instant)>,
    /// Foreign owners already named in a warning.
    warned: HashSet<WorkerId>,
}

impl ForeignOwners {
    pub(crate) fn new(failover_time: Option<Duration>) -> Self {
        ForeignOwners {
            failover_time,
            state: Mutex::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remember workers listed with a heartbeat.
    pub(crate) fn saw_workers<'a>(&self, workers: impl IntoIterator<Item = &'a WorkerId>) {
        let mut state = self.state();
        for worker in workers {
            if !state.ours.contains(worker) {
                state.ours.insert(worker.clone());
            }
        }
    }

    /// Remember the leases of a listing or a read, at `now`.
    pub(crate) fn saw_leases<'a>(&self, leases: impl IntoIterator<Item = &'a Lease>, now: Instant) {
        let mut state = self.state();
        for lease in leases {
            note(&mut state, lease, now);
        }
    }

    /// Whether `new_owner` may take `observed` now: `Err` with the reason
    /// when its owner is foreign and the lease has not stood still for the
    /// Java failover time.
    pub(crate) fn may_take(&self, observed: &Lease, now: Instant) -> Result<(), String> {
        let Some(owner) = observed.owner.as_ref() else {
            return Ok(());
        };
        let mut state = self.state();
        if state.ours.contains(owner) {
            return Ok(());
        }
        let since = note(&mut state, observed, now);
        let still = now.saturating_duration_since(since);
        let Some(failover_time) = self.failover_time else {
            if state.warned.insert(owner.clone()) {
                tracing::warn!(
                    owner = %owner,
                    "taking a lease whose owner has no heartbeat in this application's \
                     heartbeat table: if it is a Java KCL worker, the Rust lease duration must \
                     not be shorter than its failoverTimeMillis, or live Java leases are taken; \
                     DynamoStoreBuilder::java_failover_time enforces that rule"
                );
            }
            return Ok(());
        };
        if still >= failover_time {
            return Ok(());
        }
        if state.warned.insert(owner.clone()) {
            tracing::warn!(
                owner = %owner,
                failover_time = ?failover_time,
                "lease owner has no heartbeat in this application's heartbeat table: \
                 treating it as a Java KCL worker, whose leases are expired only after their \
                 leaseCounter has stood still for Java's failoverTimeMillis (not our lease \
                 duration). Rule for mixed fleets: the Rust lease duration must not be shorter \
                 than the largest failoverTimeMillis of the Java workers; set \
                 DynamoStoreBuilder::java_failover_time to that failoverTimeMillis"
            );
        }
        Err(format!(
            "its owner {owner} has no heartbeat (a Java worker?) and its counter has stood \
             still for {still:?} only, less than the Java failover time {failover_time:?}"
        ))
    }
}

/// Record `lease`'s fence at `now` if it changed; when it was first seen.
fn note(state: &mut State, lease: &Lease, now: Instant) -> Instant {
    let fence = (lease.counter, lease.generation);
    match state.seen.get_mut(&lease.shard_id) {
        Some((seen, since)) if *seen == fence => *since,
        Some(entry) => {
            *entry = (fence, now);
            now
        }
        None => {
            state.seen.insert(lease.shard_id.clone(), (fence, now));
            now
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kcl_core::ExtendedSequenceNumber;

    fn lease(owner: &str, counter: u64) -> Lease {
        let mut lease = Lease::new(
            ShardId::new("shardId-000000000001").unwrap(),
            ExtendedSequenceNumber::TrimHorizon,
        );
        lease.owner = Some(WorkerId::new(owner).unwrap());
        lease.counter = counter;
        lease
    }

    #[test]
    fn a_foreign_lease_is_taken_only_after_standing_still_for_the_failover_time() {
        let guard = ForeignOwners::new(Some(Duration::from_secs(10)));
        let t0 = Instant::now();
        guard.saw_leases([&lease("java-1", 5)], t0);
        assert!(
            guard
                .may_take(&lease("java-1", 5), t0 + Duration::from_secs(9))
                .is_err()
        );
        // A renew restarts the clock.
        guard.saw_leases([&lease("java-1", 6)], t0 + Duration::from_secs(9));
        assert!(
            guard
                .may_take(&lease("java-1", 6), t0 + Duration::from_secs(18))
                .is_err()
        );
        assert!(
            guard
                .may_take(&lease("java-1", 6), t0 + Duration::from_secs(19))
                .is_ok()
        );
        // A snapshot never seen before starts the clock too.
        assert!(
            guard
                .may_take(&lease("java-1", 7), t0 + Duration::from_secs(30))
                .is_err()
        );
    }

    #[test]
    fn our_workers_and_free_leases_are_not_guarded() {
        let guard = ForeignOwners::new(Some(Duration::from_secs(10)));
        let now = Instant::now();
        let rust = WorkerId::new("rust-1").unwrap();
        guard.saw_workers([&rust]);
        assert!(guard.may_take(&lease("rust-1", 1), now).is_ok());
        let mut free = lease("x", 1);
        free.owner = None;
        assert!(guard.may_take(&free, now).is_ok());
        assert!(guard.may_take(&lease("java-1", 1), now).is_err());
        // Off: only a warning.
        let off = ForeignOwners::new(None);
        assert!(off.may_take(&lease("java-1", 1), now).is_ok());
    }
}
