//! [`ConsumerConfig`]: the shard consumers' settings, one struct shared by
//! [`Worker`](super::Worker) (inside [`WorkerConfig`](super::WorkerConfig))
//! and [`SingleConsumer`](super::SingleConsumer), validated before
//! anything starts.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::processor::ProcessorErrorPolicy;

use super::config::{InitialPosition, MAX_DURATION};

/// How shards are read and processed, whoever coordinates them: see each
/// field's default. Build one with [`ConsumerConfig::new`] and set fields
/// (more may be added), then give it to
/// [`WorkerBuilder::consumer_config`](super::WorkerBuilder::consumer_config)
/// or [`SingleConsumerBuilder::consumer_config`](super::SingleConsumerBuilder::consumer_config);
/// both builders also have a setter per field.
///
/// ```
/// use std::time::Duration;
/// use kcl_core::engine::ConsumerConfig;
///
/// let mut config = ConsumerConfig::new();
/// config.prefetch_max_records = 5_000;
/// config.retry_max_delay = Duration::from_secs(2);
/// config.validate().unwrap();
/// config.max_records = 0;
/// assert!(config.validate().is_err());
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ConsumerConfig {
    /// How often shards are listed to create leases for new ones. Default
    /// 60 s. Consumers also create their children's leases as soon as a
    /// shard ends, so this only matters for shards found another way.
    pub shard_sync_interval: Duration,
    /// How often a consumer checks whether its shard's parents finished.
    /// Default 500 ms.
    pub parent_poll_interval: Duration,
    /// Most records in one `process_records` call. Default 10,000.
    pub max_records: usize,
    /// Records read ahead of the processor, at most. Default 30,000.
    pub prefetch_max_records: usize,
    /// Bytes (payload plus partition key) read ahead of the processor, at
    /// most. Default 32 MiB.
    pub prefetch_max_bytes: usize,
    /// How long a graceful shutdown waits for processors to checkpoint and
    /// leases to be released. Default 10 s; must be greater than zero.
    pub shutdown_grace: Duration,
    /// Where shards without checkpoint and without leased ancestor start.
    pub initial_position: InitialPosition,
    /// What to do when a processor returns an error. Default
    /// [`ProcessorErrorPolicy::Retry`].
    pub error_policy: ProcessorErrorPolicy,
    /// First delay between retries of a failed batch (doubling each time).
    /// Default 100 ms.
    pub retry_min_delay: Duration,
    /// Longest delay between retries of a failed batch, and between
    /// attempts to reopen a failed reader. Default 10 s.
    pub retry_max_delay: Duration,
    /// Process children without waiting for their parents to finish
    /// (gokini's `IgnoreShardOrdering`). Default false.
    pub ignore_shard_ordering: bool,
    /// How far before this host's clock a shard opened at `LATEST` pins
    /// its start (see [`Lease::pinned_start`](crate::Lease::pinned_start)):
    /// a re-open before the first checkpoint reads `AT_TIMESTAMP` of the
    /// pin, so a host clock ahead of Kinesis's by less than this loses no
    /// record (a re-open may repeat up to this much from before the first
    /// open). Default 5 s.
    pub pin_clock_margin: Duration,
    /// Call `process_records` with an empty batch when a read returns no
    /// records (Java's `callProcessRecordsEvenForEmptyRecordList`), about
    /// once per idle read; a processor can then act on time passing
    /// (flush, checkpoint). Default false: empty reads are dropped.
    pub deliver_empty_batches: bool,
}

impl ConsumerConfig {
    /// The defaults.
    pub fn new() -> Self {
        ConsumerConfig {
            shard_sync_interval: Duration::from_secs(60),
            parent_poll_interval: Duration::from_millis(500),
            max_records: 10_000,
            prefetch_max_records: 30_000,
            prefetch_max_bytes: 32 << 20,
            shutdown_grace: Duration::from_secs(10),
            initial_position: InitialPosition::TrimHorizon,
            error_policy: ProcessorErrorPolicy::Retry,
            retry_min_delay: Duration::from_millis(100),
            retry_max_delay: Duration::from_secs(10),
            ignore_shard_ordering: false,
            pin_clock_margin: Duration::from_secs(5),
            deliver_empty_batches: false,
        }
    }

    /// Check every value; the first problem found is an [`Error::Config`].
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("shard_sync_interval", self.shard_sync_interval),
            ("parent_poll_interval", self.parent_poll_interval),
            ("retry_min_delay", self.retry_min_delay),
            ("shutdown_grace", self.shutdown_grace),
        ];
        for (name, value) in positive {
            if value.is_zero() {
                return Err(Error::Config(format!("{name} must be greater than zero")));
            }
        }
        // Deadlines are computed as `now + duration`: bound every duration
        // so that can never overflow the clock.
        for (name, value) in positive.into_iter().chain([
            ("retry_max_delay", self.retry_max_delay),
            ("pin_clock_margin", self.pin_clock_margin),
        ]) {
            if value > MAX_DURATION {
                return Err(Error::Config(format!(
                    "{name} ({value:?}) must be at most {MAX_DURATION:?}"
                )));
            }
        }
        if self.retry_max_delay < self.retry_min_delay {
            return Err(Error::Config(format!(
                "retry_max_delay ({:?}) must not be shorter than retry_min_delay ({:?})",
                self.retry_max_delay, self.retry_min_delay
            )));
        }
        for (name, value) in [
            ("max_records", self.max_records),
            ("prefetch_max_records", self.prefetch_max_records),
            ("prefetch_max_bytes", self.prefetch_max_bytes),
        ] {
            if value == 0 {
                return Err(Error::Config(format!("{name} must be at least 1")));
            }
            if value > u32::MAX as usize {
                return Err(Error::Config(format!(
                    "{name} must be at most {}",
                    u32::MAX
                )));
            }
        }
        Ok(())
    }
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig::new()
    }
}
