//! Metric names, close to the Java KCL's, recorded through the `metrics`
//! facade (install any exporter in your binary). Per-shard metrics carry a
//! `shard` label; per-worker ones a `worker` label.
//!
//! **Series of shards that leave this worker.** The `metrics` facade
//! cannot remove a series. When a shard's consumer ends here (lease lost,
//! released, handed off, shard ended), its [`MILLIS_BEHIND_LATEST`] gauge
//! is set to 0 once (this worker is no longer behind on it, so a stale lag
//! never alerts), and none of its series is updated again by this worker.
//! Exporters should drop idle series: with `metrics-exporter-prometheus`,
//! `PrometheusBuilder::idle_timeout(MetricKindMask::ALL, Some(d))` with
//! `d` a few scrape intervals.

/// Counter: records a processor finished (`shard`).
pub const RECORDS_PROCESSED: &str = "kcl_records_processed_total";
/// Gauge: milliseconds the reader is behind the tip of the shard (`shard`).
pub const MILLIS_BEHIND_LATEST: &str = "kcl_millis_behind_latest";
/// Gauge: leases this worker holds (`worker`).
pub const CURRENT_LEASES: &str = "kcl_current_leases";
/// Counter: leases this worker took, free, expired or handed off (`worker`).
pub const LEASES_TAKEN: &str = "kcl_leases_taken_total";
/// Counter: leases this worker lost to another worker or to an unreachable
/// store (`worker`).
pub const LEASES_LOST: &str = "kcl_leases_lost_total";
/// Counter: hand-offs this worker asked for while balancing (`worker`).
pub const HANDOFFS_REQUESTED: &str = "kcl_handoffs_requested_total";
/// Histogram: seconds one read from the shard took (`shard`).
pub const GET_RECORDS_SECONDS: &str = "kcl_get_records_seconds";
/// Histogram: seconds one checkpoint write took, retries included (`shard`).
pub const CHECKPOINT_SECONDS: &str = "kcl_checkpoint_seconds";
/// Counter: errors returned by a processor (`shard`).
pub const PROCESSOR_ERRORS: &str = "kcl_processor_errors_total";
/// Counter: panics caught in a processor (`shard`).
pub const PROCESSOR_PANICS: &str = "kcl_processor_panics_total";
/// Counter: times a shard's consumer failed (a panic) and the shard backs
/// off before this worker takes it again (`shard`).
pub const SHARD_BACKOFFS: &str = "kcl_shard_backoffs_total";

/// A shard's consumer ended on this worker: its lag gauge goes to 0 once
/// (see the module docs for what exporters do with the idle series).
pub(crate) fn shard_released(shard_id: &crate::ids::ShardId) {
    metrics::gauge!(MILLIS_BEHIND_LATEST, "shard" => shard_id.to_string()).set(0.0);
}
