//! When a worker reads the heartbeats and when it lists every lease.
//!
//! Heartbeats (one small item per worker) are read every scan interval
//! while the last plan was not settled, and once it is, every renew
//! interval (the rate at which heartbeats move, so a faster read learns
//! little) plus once at the instant a worker whose counter stopped would
//! turn dead ([`Memory::next_death`](super::taker::Memory::next_death)), so
//! a crash is seen no later than at the fast cadence. On DynamoDB each
//! heartbeat read is a `Scan` billed at least half a read unit however few
//! items it returns: at 500 ms that alone was 3.6× Java KCL's read units
//! at 10 workers × 1,000 shards.
//!
//! The whole lease table is listed only when something may need doing:
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
//! leases per worker per minute plus one heartbeat read (ten items) per
//! worker per renew interval, below Java KCL 2.x's one listing per worker
//! per 20 s (see `BENCHMARKS.md`), while a crashed worker's leases are
//! still taken within about a lease duration plus a scan interval.

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
    /// Heartbeat reads while settled.
    beats_every: Duration,
    /// When the last heartbeat read was sent.
    last_beats: Option<Instant>,
}

impl LeaseScans {
    /// A cadence that lists at least every `every` and, while settled,
    /// reads the heartbeats every `beats_every`.
    pub(crate) fn new(every: Duration, beats_every: Duration) -> Self {
        LeaseScans {
            every,
            last: None,
            live: BTreeSet::new(),
            settled: false,
            beats_every,
            last_beats: None,
        }
    }

    /// Whether a scan tick at `now` reads the heartbeats. `next_death` is
    /// when the earliest quiet worker would turn dead, if any.
    pub(crate) fn beats_due(&self, now: Instant, next_death: Option<Instant>) -> bool {
        match self.last_beats {
            None => true,
            Some(last) => {
                !self.settled
                    || now.duration_since(last) >= self.beats_every
                    || next_death.is_some_and(|at| now >= at)
            }
        }
    }

    /// A heartbeat read was sent at `at`.
    pub(crate) fn beats_read(&mut self, at: Instant) {
        self.last_beats = Some(at);
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
        let mut scans = LeaseScans::new(every, Duration::from_secs(3));
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
        let mut scans = LeaseScans::new(Duration::from_secs(60), Duration::from_secs(3));
        let fleet = set(&["a"]);
        scans.listed(t0, fleet.clone(), false);
        assert!(scans.due(t0 + Duration::from_millis(500), &fleet));
        scans.listed(t0 + Duration::from_millis(500), fleet.clone(), true);
        assert!(!scans.due(t0 + Duration::from_secs(1), &fleet));
    }

    #[test]
    fn settled_heartbeats_are_read_every_renew_interval_and_when_a_worker_turns_dead() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut scans = LeaseScans::new(Duration::from_secs(60), ms(3_000));
        assert!(scans.beats_due(t0, None), "the first tick reads");
        scans.beats_read(t0);
        assert!(scans.beats_due(t0 + ms(500), None), "unsettled: every tick");
        scans.listed(t0, set(&["a"]), true);
        assert!(!scans.beats_due(t0 + ms(500), None));
        assert!(!scans.beats_due(t0 + ms(2_999), Some(t0 + ms(4_000))));
        assert!(scans.beats_due(t0 + ms(3_000), None), "the settled cadence");
        assert!(
            scans.beats_due(t0 + ms(1_000), Some(t0 + ms(1_000))),
            "a quiet worker's lease duration is up: read now, not a renew interval later"
        );
        scans.changed();
        assert!(
            scans.beats_due(t0 + ms(500), None),
            "a change reads at once"
        );
    }
}
