//! Publishing to CloudWatch (the `cloudwatch` feature).
//!
//! A [`metrics::Recorder`] over `metrics-util`'s atomic registry (an update
//! is an atomic add, never a message that can be dropped), and a task that
//! every interval turns the registry into `PutMetricData` calls:
//!
//! - a counter sends its increase since the last *successful* send (none
//!   when it did not move), so a failed call loses no count: the next one
//!   carries it;
//! - a gauge sends its value;
//! - a histogram sends the samples recorded since the last send as a
//!   statistic set (count, sum, min, max); a failed call's set is merged
//!   into the next;
//! - every label is a dimension, after the `--cloudwatch-dimension`s, at
//!   most 30 in all (the API's limit); empty label values are left out;
//! - calls carry at most 1,000 values and, by a generous estimate of the
//!   Query protocol's encoding, under 1 MB;
//! - a series not updated for `--metrics-idle-timeout` is dropped, as on
//!   the Prometheus endpoint.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use aws_config::{BehaviorVersion, Region};
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit, StatisticSet};
use metrics::{Key, KeyName, Metadata, SharedString, Unit};
use metrics_util::MetricKindMask;
use metrics_util::registry::{GenerationalAtomicStorage, Recency, Registry};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::MetricsArgs;

/// The API's limits per `PutMetricData` call.
const MAX_VALUES_PER_CALL: usize = 1_000;
const MAX_BYTES_PER_CALL: usize = 1_000_000;
const MAX_DIMENSIONS: usize = 30;
/// How long one call may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

type Metrics = Registry<Key, GenerationalAtomicStorage>;

/// What the recorder and the publishing task share.
struct Shared {
    registry: Metrics,
    units: Mutex<HashMap<String, Unit>>,
}

/// The recorder that sits in the binaries' fan-out.
#[derive(Clone)]
pub(super) struct CloudWatchRecorder(Arc<Shared>);

impl CloudWatchRecorder {
    fn new() -> Self {
        CloudWatchRecorder(Arc::new(Shared {
            registry: Registry::new(GenerationalAtomicStorage::atomic()),
            units: Mutex::new(HashMap::new()),
        }))
    }

    fn describe(&self, key: KeyName, unit: Option<Unit>) {
        if let Some(unit) = unit {
            let mut units = self.0.units.lock().unwrap_or_else(PoisonError::into_inner);
            units.insert(key.as_str().to_string(), unit);
        }
    }
}

impl metrics::Recorder for CloudWatchRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
        self.describe(key, unit)
    }
    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
        self.describe(key, unit)
    }
    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
        self.describe(key, unit)
    }
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> metrics::Counter {
        self.0
            .registry
            .get_or_create_counter(key, |c| c.clone().into())
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> metrics::Gauge {
        self.0
            .registry
            .get_or_create_gauge(key, |g| g.clone().into())
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> metrics::Histogram {
        self.0
            .registry
            .get_or_create_histogram(key, |h| h.clone().into())
    }
}

/// Where the data goes: CloudWatch, or a test's recorder.
pub(super) trait Sink: Send + Sync + 'static {
    /// One `PutMetricData` call.
    fn put(&self, data: Vec<MetricDatum>) -> impl Future<Output = Result<(), String>> + Send;
}

/// CloudWatch under one namespace.
struct CloudWatchSink {
    client: aws_sdk_cloudwatch::Client,
    namespace: String,
}

impl Sink for CloudWatchSink {
    async fn put(&self, data: Vec<MetricDatum>) -> Result<(), String> {
        let call = self
            .client
            .put_metric_data()
            .namespace(&self.namespace)
            .set_metric_data(Some(data))
            .send();
        match tokio::time::timeout(SEND_TIMEOUT, call).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(aws_sdk_cloudwatch::error::DisplayErrorContext(&e).to_string()),
            Err(_) => Err(format!("no answer within {SEND_TIMEOUT:?}")),
        }
    }
}

/// Samples of one histogram not yet sent.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Stats {
    count: f64,
    sum: f64,
    min: f64,
    max: f64,
}

impl Stats {
    fn of(values: &[f64]) -> Option<Stats> {
        let mut finite = values.iter().copied().filter(|v| v.is_finite());
        let first = finite.next()?;
        let mut stats = Stats {
            count: 1.0,
            sum: first,
            min: first,
            max: first,
        };
        for v in finite {
            stats.count += 1.0;
            stats.sum += v;
            stats.min = stats.min.min(v);
            stats.max = stats.max.max(v);
        }
        Some(stats)
    }

    fn merge(self, other: Stats) -> Stats {
        Stats {
            count: self.count + other.count,
            sum: self.sum + other.sum,
            min: self.min.min(other.min),
            max: self.max.max(other.max),
        }
    }
}

/// What one series sends this round, and what to remember once it is sent.
struct Entry {
    datum: MetricDatum,
    /// The counter's total, to remember as sent.
    counter: Option<(Key, u64)>,
    /// The histogram's samples, to carry over if the call fails.
    stats: Option<(Key, Stats)>,
}

/// The publishing state: one owner, the publishing task.
pub(super) struct Publishing<S> {
    shared: Arc<Shared>,
    sink: S,
    defaults: Vec<(String, String)>,
    recency: Recency<Key>,
    /// Each counter's total as last sent successfully.
    counters_sent: HashMap<Key, u64>,
    /// Histogram samples whose call failed.
    stats_unsent: HashMap<Key, Stats>,
    /// Whether the "too many dimensions" warning was given.
    warned_dimensions: bool,
}

impl<S: Sink> Publishing<S> {
    fn new(
        recorder: &CloudWatchRecorder,
        sink: S,
        defaults: Vec<(String, String)>,
        idle: Duration,
    ) -> Self {
        Publishing {
            shared: recorder.0.clone(),
            sink,
            defaults,
            recency: Recency::new(quanta::Clock::new(), MetricKindMask::ALL, Some(idle)),
            counters_sent: HashMap::new(),
            stats_unsent: HashMap::new(),
            warned_dimensions: false,
        }
    }

    /// Send one round; returns how many values were sent and how many
    /// calls failed (their data waits for the next round).
    pub(super) async fn publish(&mut self) -> (usize, usize) {
        let entries = self.snapshot(SystemTime::now());
        let mut sent = 0;
        let mut failed = 0;
        for batch in batches(entries) {
            let data: Vec<MetricDatum> = batch.iter().map(|e| e.datum.clone()).collect();
            let n = data.len();
            match self.sink.put(data).await {
                Ok(()) => {
                    sent += n;
                    for entry in batch {
                        if let Some((key, total)) = entry.counter {
                            self.counters_sent.insert(key, total);
                        }
                    }
                }
                Err(error) => {
                    failed += 1;
                    tracing::warn!(%error, values = n, "CloudWatch: PutMetricData failed; its values go with the next call");
                    for entry in batch {
                        if let Some((key, stats)) = entry.stats {
                            let merged = match self.stats_unsent.remove(&key) {
                                Some(before) => before.merge(stats),
                                None => stats,
                            };
                            self.stats_unsent.insert(key, merged);
                        }
                    }
                }
            }
        }
        (sent, failed)
    }

    fn snapshot(&mut self, at: SystemTime) -> Vec<Entry> {
        let units = self
            .shared
            .units
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let shared = Arc::clone(&self.shared);
        let registry = &shared.registry;
        let mut entries = Vec::new();
        for (key, counter) in registry.get_counter_handles() {
            if !self
                .recency
                .should_store_counter(&key, counter.get_generation(), registry)
            {
                self.counters_sent.remove(&key);
                continue;
            }
            let total = counter
                .get_inner()
                .load(std::sync::atomic::Ordering::Relaxed);
            let before = self.counters_sent.get(&key).copied().unwrap_or(0);
            if total > before {
                let datum = self
                    .datum(&key, &units, at)
                    .value((total - before) as f64)
                    .build();
                entries.push(Entry {
                    datum,
                    counter: Some((key, total)),
                    stats: None,
                });
            }
        }
        for (key, gauge) in registry.get_gauge_handles() {
            if !self
                .recency
                .should_store_gauge(&key, gauge.get_generation(), registry)
            {
                continue;
            }
            let value =
                f64::from_bits(gauge.get_inner().load(std::sync::atomic::Ordering::Relaxed));
            if value.is_finite() {
                let datum = self.datum(&key, &units, at).value(value).build();
                entries.push(Entry {
                    datum,
                    counter: None,
                    stats: None,
                });
            }
        }
        for (key, histogram) in registry.get_histogram_handles() {
            let keep =
                self.recency
                    .should_store_histogram(&key, histogram.get_generation(), registry);
            let mut fresh = None;
            histogram.get_inner().clear_with(|values| {
                fresh = match (fresh, Stats::of(values)) {
                    (Some(a), Some(b)) => Some(Stats::merge(a, b)),
                    (a, b) => a.or(b),
                };
            });
            let stats = match (self.stats_unsent.remove(&key), fresh) {
                (Some(a), Some(b)) => Some(a.merge(b)),
                (a, b) => a.or(b),
            };
            let Some(stats) = stats else { continue };
            if !keep && fresh.is_none() {
                continue;
            }
            let set = StatisticSet::builder()
                .sample_count(stats.count)
                .sum(stats.sum)
                .minimum(stats.min)
                .maximum(stats.max)
                .build();
            let datum = self.datum(&key, &units, at).statistic_values(set).build();
            entries.push(Entry {
                datum,
                counter: None,
                stats: Some((key, stats)),
            });
        }
        entries
    }

    fn datum(
        &mut self,
        key: &Key,
        units: &HashMap<String, Unit>,
        at: SystemTime,
    ) -> aws_sdk_cloudwatch::types::builders::MetricDatumBuilder {
        let labels = key.labels().map(|l| (l.key(), l.value()));
        let mut dimensions: Vec<Dimension> = self
            .defaults
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(labels)
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| Dimension::builder().name(k).value(v).build())
            .collect();
        if dimensions.len() > MAX_DIMENSIONS {
            if !self.warned_dimensions {
                self.warned_dimensions = true;
                tracing::warn!(
                    metric = key.name(),
                    dimensions = dimensions.len(),
                    "CloudWatch takes at most 30 dimensions; the rest are left out"
                );
            }
            dimensions.truncate(MAX_DIMENSIONS);
        }
        MetricDatum::builder()
            .metric_name(key.name())
            .set_dimensions(Some(dimensions))
            .timestamp(at.into())
            .set_unit(units.get(key.name()).and_then(standard_unit))
    }
}

/// Split into calls of at most 1,000 values and 1 MB.
fn batches(entries: Vec<Entry>) -> Vec<Vec<Entry>> {
    let mut calls = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0;
    for entry in entries {
        let size = encoded_size(&entry.datum);
        if !current.is_empty()
            && (current.len() == MAX_VALUES_PER_CALL || bytes + size > MAX_BYTES_PER_CALL)
        {
            calls.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size;
        current.push(entry);
    }
    if !current.is_empty() {
        calls.push(current);
    }
    calls
}

/// An upper bound of a datum's bytes in a Query-protocol body: each field
/// is `MetricData.member.N.Field=value&`, values percent-encoded (up to 3
/// bytes per byte).
fn encoded_size(datum: &MetricDatum) -> usize {
    const FIELD: usize = 64;
    let name = datum.metric_name().map_or(0, str::len);
    let dimensions: usize = datum
        .dimensions()
        .iter()
        .map(|d| 2 * FIELD + 3 * (d.name().map_or(0, str::len) + d.value().map_or(0, str::len)))
        .sum();
    FIELD * 8 + 3 * name + dimensions
}

fn standard_unit(unit: &Unit) -> Option<StandardUnit> {
    Some(match unit {
        Unit::Count => StandardUnit::Count,
        Unit::Percent => StandardUnit::Percent,
        Unit::Seconds => StandardUnit::Seconds,
        Unit::Milliseconds => StandardUnit::Milliseconds,
        Unit::Microseconds => StandardUnit::Microseconds,
        Unit::Bytes => StandardUnit::Bytes,
        Unit::Kibibytes => StandardUnit::Kilobytes,
        Unit::Mebibytes => StandardUnit::Megabytes,
        Unit::Gibibytes => StandardUnit::Gigabytes,
        Unit::Tebibytes => StandardUnit::Terabytes,
        Unit::BitsPerSecond => StandardUnit::BitsSecond,
        Unit::KilobitsPerSecond => StandardUnit::KilobitsSecond,
        Unit::MegabitsPerSecond => StandardUnit::MegabitsSecond,
        Unit::GigabitsPerSecond => StandardUnit::GigabitsSecond,
        Unit::TerabitsPerSecond => StandardUnit::TerabitsSecond,
        Unit::CountPerSecond => StandardUnit::CountSecond,
        Unit::Nanoseconds => return None,
    })
}

/// The running publisher.
#[derive(Debug)]
pub(super) struct Publisher {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Publisher {
    /// Publish what is left (one last round) and stop.
    pub(super) async fn flush(self) {
        let _ = self.stop.send(());
        if tokio::time::timeout(SEND_TIMEOUT * 3, self.task)
            .await
            .is_err()
        {
            tracing::warn!("CloudWatch: the last metrics were not sent in time");
        }
    }
}

/// Run `publishing` every `interval` until `stop`, then once more.
fn spawn<S: Sink>(mut publishing: Publishing<S>, interval: Duration) -> Publisher {
    let (stop, mut stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    publishing.publish().await;
                }
                _ = &mut stopped => {
                    let (_, failed) = publishing.publish().await;
                    if failed > 0 {
                        // One more try for what the last call could not send.
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        publishing.publish().await;
                    }
                    return;
                }
            }
        }
    });
    Publisher { stop, task }
}

/// Start publishing as `args` ask.
pub(super) async fn start(
    args: &MetricsArgs,
    namespace: &str,
    region: Option<&str>,
) -> Result<(CloudWatchRecorder, Publisher), String> {
    validate_namespace(namespace)?;
    let interval = args.cloudwatch_interval;
    if interval < Duration::from_secs(1) {
        return Err(format!("--cloudwatch-interval {interval:?}: at least 1s"));
    }
    let mut config = aws_config::defaults(BehaviorVersion::latest()).load().await;
    if config.region().is_none() {
        let Some(region) = region else {
            return Err("--cloudwatch-namespace: no AWS region (set AWS_REGION, or \
                        regionName in the properties file)"
                .into());
        };
        config = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .load()
            .await;
    }
    let sink = CloudWatchSink {
        client: aws_sdk_cloudwatch::Client::new(&config),
        namespace: namespace.to_string(),
    };
    let recorder = CloudWatchRecorder::new();
    let publishing = Publishing::new(
        &recorder,
        sink,
        args.cloudwatch_dimensions.clone(),
        args.metrics_idle_timeout,
    );
    tracing::info!(namespace, ?interval, "publishing metrics to CloudWatch");
    Ok((recorder, spawn(publishing, interval)))
}

/// CloudWatch's rule: 1 to 255 printable ASCII characters, not starting
/// with `AWS/`.
fn validate_namespace(namespace: &str) -> Result<(), String> {
    if namespace.is_empty() || namespace.len() > 255 {
        return Err(format!(
            "--cloudwatch-namespace {namespace:?}: 1 to 255 characters"
        ));
    }
    if !namespace.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(format!(
            "--cloudwatch-namespace {namespace:?}: printable ASCII only"
        ));
    }
    if namespace.starts_with("AWS/") {
        return Err(format!(
            "--cloudwatch-namespace {namespace:?}: AWS/ is reserved for AWS"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
