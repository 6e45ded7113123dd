//! When a worker lists every lease. Heartbeats (one small item per
//! worker) are read every scan interval; the whole lease table only when
//! something may need doing:
//!
//! - on the first tick, and while the last plan was not *settled*
//!   ([`Plan::settled`](super::taker::Plan::settled): free, expired,
//!   orphaned or stale leases, hand-offs under way, shards backing off
//!   here, an unbalanced fleet);
//! - when the set of live workers changed since the last listing (a worker
//!   joined, left, or its heartbeat stopped moving for a lease duration,
//!   which is when its leases become takeable, see [`taker`](super::taker));
//! - when something changed here ([`LeaseScans::changed`]: a consumer
//!   ended, shard sync created leases, a take or a hand-off request went
//!   through, a listing failed);
//! - otherwise every `lease_scan_interval` (default 60 s), which bounds how
//!   long a lease a live owner stopped renewing, or one created by a
//!   peer's shard sync, waits to be seen. In
//!   [`BalanceMode::Throughput`](crate::BalanceMode::Throughput) the slow
//!   cadence is at most the balancing interval (`take_interval`): a load
//!   shift changes only the throughput figures the leases record, which
//!   no heartbeat shows, so a settled worker would otherwise see it (and
//!   pull) only a `lease_scan_interval` later.
//!
//! At steady state (10 workers, 1,000 shards) that is one listing of the
//! leases per worker per minute plus ten heartbeats per worker per scan
//! interval, below Java KCL 2.x's one listing per worker per 20 s (see
//! `BENCHMARKS.md`), while a crashed worker's leases are still taken
//! within about a lease duration plus a scan interval.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::time::Instant;

use crate::ids::WorkerId;

/// The lease-listing cadence; owned by the worker's loop.
#[derive(Debug)]
pub(crate) struct LeaseScans {
    every: Duration,
    last: Option<Instant>,
    live: BTreeSet<WorkerId>,
    settled: bool,
}

impl LeaseScans {
    /// A cadence that lists at least every `every`.
    pub(crate) fn new(every: Duration) -> Self {
        LeaseScans {
            every,
            last: None,
            live: BTreeSet::new(),
            settled: false,
        }
    }

    /// Whether a tick at `now` that saw `live` workers lists the leases.
    pub(crate) fn due(&self, now: Instant, live: &BTreeSet<WorkerId>) -> bool {
        match self.last {
            None => true,
            Some(last) => {
                !self.settled || *live != self.live || now.duration_since(last) >= self.every
            }
        }
    }

    /// A listing started at `at` was planned with `live` workers; `settled`
    /// is the plan's verdict.
    pub(crate) fn listed(&mut self, at: Instant, live: BTreeSet<WorkerId>, settled: bool) {
        self.last = Some(at);
        self.live = live;
        self.settled = settled;
    }

    /// Something changed here: list again on the next tick.
    pub(crate) fn changed(&mut self) {
        self.settled = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<WorkerId> {
        names.iter().map(|n| WorkerId::new(*n).unwrap()).collect()
    }

    #[test]
    fn lists_first_then_only_on_change_or_at_the_slow_cadence() {
        let t0 = Instant::now();
        let every = Duration::from_secs(60);
        let mut scans = LeaseScans::new(every);
        let fleet = set(&["a", "b"]);
        assert!(scans.due(t0, &fleet), "the first tick lists");
        scans.listed(t0, fleet.clone(), true);
        assert!(!scans.due(t0 + Duration::from_secs(59), &fleet));
        assert!(scans.due(t0 + every, &fleet), "the slow cadence");
        // A joiner, a leaver, a worker gone quiet: the live set moved.
        assert!(scans.due(t0 + Duration::from_secs(1), &set(&["a", "b", "c"])));
        assert!(scans.due(t0 + Duration::from_secs(1), &set(&["a"])));
        scans.changed();
        assert!(scans.due(t0 + Duration::from_secs(1), &fleet));
    }

    #[test]
    fn an_unsettled_plan_lists_on_every_tick() {
        let t0 = Instant::now();
        let mut scans = LeaseScans::new(Duration::from_secs(60));
        let fleet = set(&["a"]);
        scans.listed(t0, fleet.clone(), false);
        assert!(scans.due(t0 + Duration::from_millis(500), &fleet));
        scans.listed(t0 + Duration::from_millis(500), fleet.clone(), true);
        assert!(!scans.due(t0 + Duration::from_secs(1), &fleet));
    }
}
