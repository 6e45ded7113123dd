//! [`FanOutSettings`]: how fan-out readers subscribe, watch and retry.

use std::time::Duration;

use crate::error::{Error, Result};

/// How an enhanced fan-out reader subscribes, watches its subscription and
/// retries, and how the consumer is registered.
///
/// Kinesis pushes an event on a subscription at least every few seconds,
/// even when the shard is idle, and ends every subscription after 5
/// minutes. Nothing in the SDK times out a quiet event stream, so a
/// half-open HTTP/2 connection would look exactly like an idle shard; the
/// reader therefore treats [`event_timeout`](Self::event_timeout) without
/// an event as a stalled subscription and resubscribes.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FanOutSettings {
    /// Longest wait for `SubscribeToShard` to answer (its `send()` waits
    /// for the first frame and has no timeout of its own). Default 10 s.
    pub subscribe_timeout: Duration,
    /// Longest wait for the next event on an open subscription before it
    /// counts as stalled and is replaced (metric
    /// `kcl_fanout_stalls_total`, a warning in the log). Kinesis sends an
    /// event at least every 5 s; default 15 s.
    pub event_timeout: Duration,
    /// First backoff after a failed subscribe (`ResourceInUseException`,
    /// `LimitExceededException`, throttling, 5xx, a broken stream); later
    /// delays double, with jitter. Default 200 ms. (Kinesis allows one
    /// subscribe per second per shard and consumer; the first retry after
    /// a normal end is immediate, later ones back off.)
    pub retry_min_delay: Duration,
    /// Cap on one backoff delay. Default 5 s.
    pub retry_max_delay: Duration,
    /// Consecutive failed subscribes (with no event in between) before the
    /// reader gives up and returns a retryable error to its caller.
    /// Default 20 (a failover's `ResourceInUseException` can last until
    /// the old owner's subscription times out).
    pub max_retries: usize,
    /// Least time between two `DescribeStreamConsumer` calls while waiting
    /// for a consumer to become ACTIVE (the API allows 20 calls/s per
    /// account, shared by every worker). Default 1 s.
    pub describe_interval: Duration,
    /// Longest wait for a consumer to become ACTIVE. Default 2 min.
    pub activation_timeout: Duration,
    /// How often a reader that is caught up (an empty event, nothing
    /// behind) asks `ListShards` whether its shard has closed, for
    /// services that never send `ChildShards` at a closed shard's end
    /// (kinesis-mock). Default 30 s.
    pub closed_check_interval: Duration,
}

impl Default for FanOutSettings {
    fn default() -> Self {
        FanOutSettings {
            subscribe_timeout: Duration::from_secs(10),
            event_timeout: Duration::from_secs(15),
            retry_min_delay: Duration::from_millis(200),
            retry_max_delay: Duration::from_secs(5),
            max_retries: 20,
            describe_interval: Duration::from_secs(1),
            activation_timeout: Duration::from_secs(120),
            closed_check_interval: Duration::from_secs(30),
        }
    }
}

impl FanOutSettings {
    pub(crate) fn validate(&self) -> Result<()> {
        for (name, value) in [
            ("subscribe_timeout", self.subscribe_timeout),
            ("event_timeout", self.event_timeout),
            ("describe_interval", self.describe_interval),
            ("activation_timeout", self.activation_timeout),
            ("closed_check_interval", self.closed_check_interval),
        ] {
            if value.is_zero() {
                return Err(Error::Config(format!("fan-out {name} must not be zero")));
            }
        }
        if self.retry_min_delay > self.retry_max_delay {
            return Err(Error::Config(format!(
                "fan-out retry_min_delay {:?} is longer than retry_max_delay {:?}",
                self.retry_min_delay, self.retry_max_delay
            )));
        }
        Ok(())
    }

    /// The backoff before the `attempt`-th consecutive retry (1-based):
    /// exponential from `retry_min_delay`, capped, with full jitter.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .retry_min_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.retry_max_delay);
        // Full jitter, but never below a tenth of the step, so a hot loop
        // against a busy shard is impossible.
        let floor = exp / 10;
        floor + exp.mul_f64(rand::random::<f64>() * 0.9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        FanOutSettings::default().validate().unwrap();
    }

    #[test]
    fn zero_timeouts_and_inverted_delays_are_rejected() {
        let mut s = FanOutSettings {
            event_timeout: Duration::ZERO,
            ..FanOutSettings::default()
        };
        assert!(matches!(s.validate(), Err(Error::Config(_))));
        s.event_timeout = Duration::from_secs(1);
        s.retry_min_delay = Duration::from_secs(10);
        assert!(matches!(s.validate(), Err(Error::Config(_))));
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let s = FanOutSettings::default();
        for attempt in 1..40 {
            let d = s.backoff(attempt);
            let step = s
                .retry_min_delay
                .saturating_mul(1u32 << (attempt - 1).min(16))
                .min(s.retry_max_delay);
            assert!(
                d >= step / 10 && d <= step,
                "attempt {attempt}: {d:?} vs {step:?}"
            );
        }
        let draws: std::collections::BTreeSet<_> = (0..50).map(|_| s.backoff(5)).collect();
        assert!(draws.len() > 10, "jitter spreads the delays");
    }
}
