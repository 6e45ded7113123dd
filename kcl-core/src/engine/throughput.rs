//! How the fleet balances ([`BalanceMode`]), and the meter that gives each
//! held lease the throughput figure its renewals record
//! ([`Lease::throughput_bytes_per_sec`](crate::Lease::throughput_bytes_per_sec)).
//!
//! The consumer adds the bytes of every batch its processor finished to a
//! counter it shares with the worker's loop; on each renew tick the loop
//! (the one owner of the held leases) drains the counter into the lease's
//! [`Meter`], an exponential moving average of bytes per second, and sends
//! the average with the renew. Peers read it from their lease listings.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::time::Instant;

use crate::error::{Error, Result};

/// How workers share the leases.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub enum BalanceMode {
    /// Even the number of leases: no worker holds two more than another.
    /// The default.
    #[default]
    Count,
    /// Even the bytes per second each worker reads, by the throughput its
    /// leases record (see [`ThroughputBalance`]).
    Throughput(ThroughputBalance),
}

/// The settings of [`BalanceMode::Throughput`].
///
/// Each worker's load is the sum of its leases' recorded throughput
/// ([`Lease::throughput_bytes_per_sec`](crate::Lease::throughput_bytes_per_sec));
/// a lease with no figure yet counts as the mean of the leases that have
/// one (Java KCL 3.x's choice), or as nothing when none has. A lease being
/// handed over counts for the worker it goes to.
///
/// Only the least loaded live worker moves anything, and one lease at a
/// time, pulled through the graceful hand-off (no record processed twice):
/// it asks a donor for the lease of rate `r` that evens the two most when
///
/// `receiver + r + threshold × mean ≤ donor`
///
/// (`mean` is the fleet's total over the live workers), and only after
/// such a move has existed for `rounds` balancing rounds in a row (one
/// round per `take_interval`). A donor keeps at least one lease. So a
/// worker whose one lease is heavier than the mean keeps it alone, and
/// otherwise no worker's load is more than `threshold × mean` plus one
/// lease's rate above the lightest worker's.
///
/// Why it cannot churn: under a steady load every such move lowers the
/// sum of the squared worker loads by `2r(donor − receiver − r) ≥ 2r ×
/// threshold × mean`, and that sum cannot fall forever, so moves stop;
/// the reverse of a move would need the receiver to exceed the donor by
/// the margin, which the move itself rules out. A noisy figure must swing
/// by more than `threshold × mean` to move anything.
///
/// Count bound: a worker that holds nothing while a peer holds two or more
/// leases asks that peer for its lightest lease, whatever the figures (so
/// a fresh fleet with no figures, or an idle stream, still spreads).
///
/// Store cost: the figures travel in the leases, not the heartbeats, so in
/// this mode each worker lists every lease at least once per
/// `take_interval` (default 5 s) rather than once per
/// `lease_scan_interval` (default 60 s) at steady state; a longer
/// `take_interval` lowers the cost and slows the response to a load shift.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct ThroughputBalance {
    /// The margin a move must clear, as a fraction of the mean worker
    /// load. Default 0.1 (10 %); in `[0.01, 10]`.
    pub threshold: f64,
    /// Balancing rounds in a row a move must be worth making before it is
    /// made. Default 3; at least 1.
    pub rounds: u32,
}

impl ThroughputBalance {
    /// The defaults: threshold 0.1, 3 rounds.
    pub fn new() -> Self {
        ThroughputBalance {
            threshold: 0.1,
            rounds: 3,
        }
    }

    /// Builder-style: set the threshold.
    pub fn threshold(mut self, threshold: f64) -> Self {
        self.threshold = threshold;
        self
    }

    /// Builder-style: set the rounds.
    pub fn rounds(mut self, rounds: u32) -> Self {
        self.rounds = rounds;
        self
    }

    /// Check the values; a problem is an [`Error::Config`].
    pub fn validate(&self) -> Result<()> {
        if !(0.01..=10.0).contains(&self.threshold) {
            return Err(Error::Config(format!(
                "throughput balance threshold ({}) must be between 0.01 and 10",
                self.threshold
            )));
        }
        if self.rounds == 0 {
            return Err(Error::Config(
                "throughput balance rounds must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

impl Default for ThroughputBalance {
    fn default() -> Self {
        ThroughputBalance::new()
    }
}

impl BalanceMode {
    /// Throughput balancing with the default settings.
    pub fn throughput() -> Self {
        BalanceMode::Throughput(ThroughputBalance::new())
    }
}

/// The weight of the newest sample in the moving average (Java KCL 3.x's
/// `LeaseStatsRecorder` uses the same 0.5).
const ALPHA: f64 = 0.5;

/// One held lease's throughput: the bytes its consumer reports, averaged
/// per renew interval.
#[derive(Debug)]
pub(crate) struct Meter {
    delivered: Arc<AtomicU64>,
    average: Option<f64>,
    since: Instant,
}

impl Meter {
    /// A meter starting from the lease's recorded figure (a new owner
    /// carries on from its predecessor's), if any.
    pub(crate) fn new(recorded: Option<u64>, now: Instant) -> Self {
        Meter {
            delivered: Arc::new(AtomicU64::new(0)),
            #[allow(clippy::cast_precision_loss)]
            average: recorded.map(|r| r as f64),
            since: now,
        }
    }

    /// The counter the consumer adds delivered bytes to.
    pub(crate) fn counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.delivered)
    }

    /// Take what was delivered since the last sample into the average and
    /// return it, in whole bytes per second. A sample over less than a
    /// millisecond is skipped (the figure stays).
    pub(crate) fn sample(&mut self, now: Instant) -> Option<u64> {
        let elapsed = now.saturating_duration_since(self.since).as_secs_f64();
        if elapsed >= 0.001 {
            let bytes = self.delivered.swap(0, Ordering::Relaxed);
            #[allow(clippy::cast_precision_loss)]
            let rate = bytes as f64 / elapsed;
            self.average = Some(match self.average {
                Some(avg) => ALPHA * rate + (1.0 - ALPHA) * avg,
                None => rate,
            });
            self.since = now;
        }
        // Saturating: no shard reads 2^64 bytes per second.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        self.average.map(|avg| avg.round() as u64)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_average_follows_a_steady_rate_and_halves_the_distance_each_sample() {
        let start = Instant::now();
        let mut meter = Meter::new(None, start);
        let counter = meter.counter();
        counter.fetch_add(2_000, Ordering::Relaxed);
        assert_eq!(meter.sample(start + Duration::from_secs(2)), Some(1_000));
        // The rate doubles: the average moves half way each sample.
        counter.fetch_add(4_000, Ordering::Relaxed);
        assert_eq!(meter.sample(start + Duration::from_secs(4)), Some(1_500));
        counter.fetch_add(4_000, Ordering::Relaxed);
        assert_eq!(meter.sample(start + Duration::from_secs(6)), Some(1_750));
        // Nothing delivered: it decays, it does not vanish at once.
        assert_eq!(meter.sample(start + Duration::from_secs(8)), Some(875));
    }

    #[test]
    fn a_new_owner_starts_from_the_recorded_figure() {
        let start = Instant::now();
        let mut meter = Meter::new(Some(10_000), start);
        assert_eq!(meter.sample(start), Some(10_000), "no time passed");
        meter.counter().fetch_add(6_000, Ordering::Relaxed);
        assert_eq!(meter.sample(start + Duration::from_secs(1)), Some(8_000));
        assert_eq!(Meter::new(None, start).sample(start), None);
    }

    #[test]
    fn bad_settings_are_config_errors() {
        for bad in [
            ThroughputBalance::new().threshold(0.0),
            ThroughputBalance::new().threshold(f64::NAN),
            ThroughputBalance::new().threshold(11.0),
            ThroughputBalance::new().rounds(0),
        ] {
            assert!(matches!(bad.validate(), Err(Error::Config(_))), "{bad:?}");
        }
        ThroughputBalance::new().validate().unwrap();
    }
}
