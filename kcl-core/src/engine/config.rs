//! [`WorkerConfig`] and [`WorkerBuilder`]: the worker's settings, validated
//! before anything starts.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::error::{BoxError, Error, Result};
use crate::ids::WorkerId;
use crate::processor::{FnFactory, ProcessRecordsInput, ProcessorFactory};
use crate::retrieval::ShardSource;
use crate::store::LeaseStore;

use super::Worker;
use super::consumer_config::ConsumerConfig;
use super::throughput::BalanceMode;

/// Where a shard with no checkpoint and no ancestor in the lease table
/// starts. Descendants of leased shards always start at `TRIM_HORIZON`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum InitialPosition {
    /// The oldest record still in the stream. The default.
    #[default]
    TrimHorizon,
    /// Only records put after the worker started. As the Java KCL does,
    /// closed shards are not leased at all in this mode unless an ancestor
    /// is already leased.
    Latest,
    /// The first record at or after this time.
    AtTimestamp(SystemTime),
}

/// Every setting of a [`Worker`]; see each field's default. Build one with
/// [`WorkerConfig::new`] and set fields (more may be added).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct WorkerConfig {
    /// This worker's id, written as the owner of its leases. Default: the
    /// host name plus a random suffix.
    pub worker_id: WorkerId,
    /// How long a lease whose counter does not move stays with its owner
    /// before others may take it. Default 10 s. Failover after a crash
    /// takes at most about one lease duration plus one scan interval.
    pub lease_duration: Duration,
    /// How often held leases are renewed and the heartbeat sent. Default
    /// lease duration / 3.
    pub renew_interval: Duration,
    /// How often the taker may ask busy workers to hand leases over
    /// (balancing). Default lease duration / 2.
    pub take_interval: Duration,
    /// How often the taker reads the workers' heartbeats and lists every
    /// lease while something is changing (a worker joined, left or went
    /// quiet, leases are free or expired, a hand-off is under way).
    /// Default 500 ms. Once nothing is changing the heartbeats are read
    /// every `renew_interval` instead (when longer), and at the moment a
    /// quiet worker's lease duration is up, so a crash is still seen
    /// within a scan interval of it; a graceful leave or a join is seen
    /// within a renew interval. Shorter means faster pick-up after a
    /// release but one more `list_workers` per interval per worker.
    pub scan_interval: Duration,
    /// How often the taker lists every lease when nothing is changing
    /// (at least `scan_interval`). Default 60 s. It bounds how long a
    /// lease that a live owner stopped renewing, or one a peer's shard
    /// sync created, waits to be seen; crashes are seen from heartbeats.
    /// In [`BalanceMode::Throughput`] the taker lists at least every
    /// `take_interval` as well: a load shift shows only in the leases'
    /// recorded figures, never in a heartbeat.
    pub lease_scan_interval: Duration,
    /// How long a requested hand-off may take before the requester takes
    /// the lease by force. Default 30 s plus one lease duration (Java's);
    /// must be longer than `renew_interval`.
    pub handoff_timeout: Duration,
    /// Most leases this worker holds at once (Java's
    /// `maxLeasesForWorker`). The taker's share becomes
    /// `min(max_leases_per_worker, ceil(leases / live workers))`, and no
    /// take, balancing request or forced hand-off goes beyond it; leases
    /// the fleet cannot hold stay free. Leases handed to this worker
    /// explicitly are kept. Default `usize::MAX` (no cap); at least 1.
    pub max_leases_per_worker: usize,
    /// How the fleet shares the leases: by count (the default) or by the
    /// throughput each lease records (see [`BalanceMode`]). Every worker
    /// of a fleet should use the same mode.
    pub balance_mode: BalanceMode,
    /// The shard consumers' settings, shared with
    /// [`SingleConsumer`](super::SingleConsumer).
    pub consumer: ConsumerConfig,
}

impl WorkerConfig {
    /// The defaults, with a generated worker id.
    pub fn new() -> Self {
        let lease_duration = Duration::from_secs(10);
        WorkerConfig {
            worker_id: default_worker_id(),
            lease_duration,
            renew_interval: lease_duration / 3,
            take_interval: lease_duration / 2,
            scan_interval: Duration::from_millis(500),
            lease_scan_interval: Duration::from_secs(60),
            handoff_timeout: default_handoff_timeout(lease_duration),
            max_leases_per_worker: usize::MAX,
            balance_mode: BalanceMode::Count,
            consumer: ConsumerConfig::new(),
        }
    }

    /// Check every value (the consumer settings too); the first problem
    /// found is an [`Error::Config`].
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("lease_duration", self.lease_duration),
            ("renew_interval", self.renew_interval),
            ("take_interval", self.take_interval),
            ("scan_interval", self.scan_interval),
            ("lease_scan_interval", self.lease_scan_interval),
            ("handoff_timeout", self.handoff_timeout),
        ];
        for (name, value) in positive {
            if value.is_zero() {
                return Err(Error::Config(format!("{name} must be greater than zero")));
            }
            // Deadlines are computed as `now + duration`: bound every
            // duration so that can never overflow the clock.
            if value > MAX_DURATION {
                return Err(Error::Config(format!(
                    "{name} ({value:?}) must be at most {MAX_DURATION:?}"
                )));
            }
        }
        if self.handoff_timeout <= self.renew_interval {
            return Err(Error::Config(format!(
                "handoff_timeout ({:?}) must be longer than renew_interval ({:?}), \
                 or every hand-off is forced before its owner can see it",
                self.handoff_timeout, self.renew_interval
            )));
        }
        if self.lease_scan_interval < self.scan_interval {
            return Err(Error::Config(format!(
                "lease_scan_interval ({:?}) must be at least scan_interval ({:?})",
                self.lease_scan_interval, self.scan_interval
            )));
        }
        if self.renew_interval >= self.lease_duration {
            return Err(Error::Config(format!(
                "renew_interval ({:?}) must be shorter than lease_duration ({:?}), \
                 or leases expire between renewals",
                self.renew_interval, self.lease_duration
            )));
        }
        if self.max_leases_per_worker == 0 {
            return Err(Error::Config(
                "max_leases_per_worker must be at least 1".into(),
            ));
        }
        if let BalanceMode::Throughput(settings) = &self.balance_mode {
            settings.validate()?;
        }
        self.consumer.validate()
    }
}

/// The longest duration any setting accepts (a year).
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// Java's forced hand-off wait: 30 s plus a lease duration, so a live
/// owner mid-batch has time to finish, checkpoint and release.
fn default_handoff_timeout(lease_duration: Duration) -> Duration {
    lease_duration.saturating_add(Duration::from_secs(30))
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig::new()
    }
}

/// Host name plus a random suffix, so two workers on one host differ.
fn default_worker_id() -> WorkerId {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty() && !h.chars().any(char::is_control))
        .unwrap_or_else(|| "kcl-worker".to_string());
    let suffix: u32 = rand::random();
    WorkerId::new(format!("{host}-{suffix:08x}"))
        .unwrap_or_else(|_| WorkerId::new(format!("kcl-worker-{suffix:08x}")).expect("valid id"))
}

/// Builds a [`Worker`]: `Worker::builder()`, then a lease store, a source
/// and a processor (factory or closure), then [`build`](Self::build).
///
/// Durations left unset follow `lease_duration` (renew = lease / 3, take =
/// lease / 2, hand-off timeout = lease + 30 s).
pub struct WorkerBuilder<F> {
    config: WorkerConfig,
    worker_id: Option<String>,
    lease_store: Option<Arc<dyn LeaseStore>>,
    source: Option<Arc<dyn ShardSource>>,
    factory: F,
    renew_set: bool,
    take_set: bool,
    handoff_set: bool,
}

impl<F> std::fmt::Debug for WorkerBuilder<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerBuilder")
            .field("config", &self.config)
            .field("lease_store", &self.lease_store)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl WorkerBuilder<()> {
    pub(crate) fn new() -> Self {
        WorkerBuilder {
            config: WorkerConfig::new(),
            worker_id: None,
            lease_store: None,
            source: None,
            factory: (),
            renew_set: false,
            take_set: false,
            handoff_set: false,
        }
    }
}

macro_rules! setter {
    ($(#[$doc:meta])* $name:ident: $ty:ty) => {
        $(#[$doc])*
        pub fn $name(mut self, value: $ty) -> Self {
            self.config.$name = value;
            self
        }
    };
}

/// The setters of every [`ConsumerConfig`] field, for a builder whose
/// `config` holds one as `consumer` (both builders).
macro_rules! consumer_setters {
    () => {
        /// Set every consumer setting at once (see [`ConsumerConfig`](crate::engine::ConsumerConfig)).
        pub fn consumer_config(mut self, config: $crate::engine::ConsumerConfig) -> Self {
            self.config.consumer = config;
            self
        }
        /// Shard sync interval (default 60 s).
        pub fn shard_sync_interval(mut self, value: ::std::time::Duration) -> Self {
            self.config.consumer.shard_sync_interval = value;
            self
        }
        /// Parent poll interval (default 500 ms).
        pub fn parent_poll_interval(mut self, value: ::std::time::Duration) -> Self {
            self.config.consumer.parent_poll_interval = value;
            self
        }
        /// Most records per `process_records` call (default 10,000).
        pub fn max_records(mut self, value: usize) -> Self {
            self.config.consumer.max_records = value;
            self
        }
        /// Prefetch bound in records (default 30,000).
        pub fn prefetch_max_records(mut self, value: usize) -> Self {
            self.config.consumer.prefetch_max_records = value;
            self
        }
        /// Prefetch bound in bytes (default 32 MiB).
        pub fn prefetch_max_bytes(mut self, value: usize) -> Self {
            self.config.consumer.prefetch_max_bytes = value;
            self
        }
        /// Graceful shutdown grace period (default 10 s).
        pub fn shutdown_grace(mut self, value: ::std::time::Duration) -> Self {
            self.config.consumer.shutdown_grace = value;
            self
        }
        /// Where shards without checkpoint start (default TRIM_HORIZON).
        pub fn initial_position(mut self, value: $crate::engine::InitialPosition) -> Self {
            self.config.consumer.initial_position = value;
            self
        }
        /// Processor error policy (default retry).
        pub fn error_policy(mut self, value: $crate::processor::ProcessorErrorPolicy) -> Self {
            self.config.consumer.error_policy = value;
            self
        }
        /// First retry delay of a failed batch or reader (default 100 ms).
        pub fn retry_min_delay(mut self, value: ::std::time::Duration) -> Self {
            self.config.consumer.retry_min_delay = value;
            self
        }
        /// Longest retry delay (default 10 s).
        pub fn retry_max_delay(mut self, value: ::std::time::Duration) -> Self {
            self.config.consumer.retry_max_delay = value;
            self
        }
        /// Do not wait for parents (default false).
        pub fn ignore_shard_ordering(mut self, value: bool) -> Self {
            self.config.consumer.ignore_shard_ordering = value;
            self
        }
        /// Clock margin of a pinned LATEST start (default 5 s).
        pub fn pin_clock_margin(mut self, value: ::std::time::Duration) -> Self {
            self.config.consumer.pin_clock_margin = value;
            self
        }
        /// Call `process_records` on empty reads too (default false).
        pub fn deliver_empty_batches(mut self, value: bool) -> Self {
            self.config.consumer.deliver_empty_batches = value;
            self
        }
    };
}
pub(crate) use consumer_setters;

impl<F> WorkerBuilder<F> {
    /// The store the fleet shares leases in. Required.
    pub fn lease_store(mut self, store: Arc<dyn LeaseStore>) -> Self {
        self.lease_store = Some(store);
        self
    }

    /// The stream to read. Required.
    pub fn source(mut self, source: Arc<dyn ShardSource>) -> Self {
        self.source = Some(source);
        self
    }

    /// This worker's id (default: host name plus a random suffix).
    pub fn worker_id(mut self, id: impl Into<String>) -> Self {
        self.worker_id = Some(id.into());
        self
    }

    /// Set the whole configuration at once (the worker id in it is kept
    /// unless [`worker_id`](Self::worker_id) is also called).
    pub fn config(mut self, config: WorkerConfig) -> Self {
        self.config = config;
        self.renew_set = true;
        self.take_set = true;
        self.handoff_set = true;
        self
    }

    /// The processor factory: one processor per shard.
    pub fn processor<P: ProcessorFactory>(self, factory: P) -> WorkerBuilder<P> {
        WorkerBuilder {
            config: self.config,
            worker_id: self.worker_id,
            lease_store: self.lease_store,
            source: self.source,
            factory,
            renew_set: self.renew_set,
            take_set: self.take_set,
            handoff_set: self.handoff_set,
        }
    }

    /// The closure shortcut: call `f` on every batch and checkpoint after
    /// each batch it finished without error.
    pub fn process_with<C, Fut>(self, f: C) -> WorkerBuilder<FnFactory<C>>
    where
        C: Fn(ProcessRecordsInput) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), BoxError>> + Send,
    {
        self.processor(FnFactory::new(f))
    }

    /// Lease duration (default 10 s); also moves the renew, take and
    /// hand-off intervals that were not set explicitly.
    pub fn lease_duration(mut self, value: Duration) -> Self {
        self.config.lease_duration = value;
        if !self.renew_set {
            self.config.renew_interval = value / 3;
        }
        if !self.take_set {
            self.config.take_interval = value / 2;
        }
        if !self.handoff_set {
            self.config.handoff_timeout = default_handoff_timeout(value);
        }
        self
    }

    /// Renew interval (default lease duration / 3).
    pub fn renew_interval(mut self, value: Duration) -> Self {
        self.config.renew_interval = value;
        self.renew_set = true;
        self
    }

    /// Balancing interval (default lease duration / 2).
    pub fn take_interval(mut self, value: Duration) -> Self {
        self.config.take_interval = value;
        self.take_set = true;
        self
    }

    /// Hand-off timeout before a forced take (default lease duration + 30 s).
    pub fn handoff_timeout(mut self, value: Duration) -> Self {
        self.config.handoff_timeout = value;
        self.handoff_set = true;
        self
    }

    consumer_setters!();
    setter!(/// Heartbeat scan interval (default 500 ms).
        scan_interval: Duration);
    setter!(/// Slow cadence of full lease listings (default 60 s).
        lease_scan_interval: Duration);
    setter!(/// Most leases held at once (default no cap).
        max_leases_per_worker: usize);
    setter!(/// How the fleet shares the leases (default [`BalanceMode::Count`]).
        balance_mode: BalanceMode);
}

impl<F: ProcessorFactory> WorkerBuilder<F> {
    /// Validate everything and build the worker. Fails with
    /// [`Error::Config`] naming the first missing or invalid setting.
    pub fn build(mut self) -> Result<Worker<F>> {
        if let Some(id) = self.worker_id.take() {
            self.config.worker_id = WorkerId::new(id)?;
        }
        let store = self
            .lease_store
            .ok_or_else(|| Error::Config("Worker needs a lease store (lease_store)".into()))?;
        let source = self
            .source
            .ok_or_else(|| Error::Config("Worker needs a shard source (source)".into()))?;
        self.config.validate()?;
        Ok(Worker::new(self.config, store, source, self.factory))
    }
}
