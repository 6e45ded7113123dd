//! Every metric kcl-core records, in one place: names close to the Java
//! KCL's, recorded through the `metrics` facade (install any exporter in
//! your binary, and call [`describe`] once after installing it so each
//! metric has its help text and unit). One label key per concept: per-shard
//! metrics carry `shard`, per-worker ones `worker`. In a multi-stream
//! application (see [`crate::stream`]) the engine's per-shard metrics carry
//! `stream` (`account:name:epoch`) beside `shard` (the raw shard id), so
//! `shardId-000000000000` of two streams are two series; a single-stream
//! worker's series have no `stream` label, as before. The Kinesis readers'
//! own per-shard metrics (`kcl_kinesis_get_records_seconds`,
//! `kcl_fanout_*`) always carry `stream` beside the raw `shard` id: the
//! stream's identifier (`account:name:epoch`, the engine's value) once its
//! source was asked `KinesisSource::stream_identifier` (as a multi-stream
//! application does to configure the stream), else the stream's name.
//!
//! | metric | kind | labels | Java KCL |
//! |---|---|---|---|
//! | `kcl_records_processed_total` | counter | `shard` | RecordsProcessed |
//! | `kcl_millis_behind_latest` | gauge (ms) | `shard` | MillisBehindLatest |
//! | `kcl_current_leases` | gauge | `worker` | CurrentLeases |
//! | `kcl_leases_taken_total` | counter | `worker` | TakenLeases |
//! | `kcl_leases_lost_total` | counter | `worker` | LostLeases |
//! | `kcl_handoffs_requested_total` | counter | `worker` | — |
//! | `kcl_lease_taker_plan_seconds` | histogram (s) | `worker` | — (TakeLeases time, planning only) |
//! | `kcl_get_records_seconds` | histogram (s) | `shard` | GetRecords.Time |
//! | `kcl_checkpoint_seconds` | histogram (s) | `shard` | Checkpoint time |
//! | `kcl_processor_errors_total` | counter | `shard` | — (processor errors) |
//! | `kcl_processor_panics_total` | counter | `shard` | — |
//! | `kcl_shard_backoffs_total` | counter | `shard` | — |
//! | `kcl_kinesis_get_records_seconds` | histogram (s) | `shard`, `stream` | GetRecords.Time (one API call) |
//! | `kcl_kinesis_retries_total` | counter | `operation` | — |
//! | `kcl_kinesis_expired_iterators_total` | counter | — | — |
//! | `kcl_fanout_subscriptions_total` | counter | `shard`, `stream` | — |
//! | `kcl_fanout_resubscriptions_total` | counter | `shard`, `stream`, `reason` | resubscriptions |
//! | `kcl_fanout_stalls_total` | counter | `shard`, `stream`, `phase` | — |
//! | `kcl_kpl_invalid_aggregates_total` | counter | — | — |
//! | `kcl_kpl_out_of_range_aggregates_total` | counter | — | — |
//!
//! The stores add their own (kcl-store-dynamo:
//! `kcl_dynamodb_consumed_capacity_units`, described by its
//! `describe_metrics`).
//!
//! **Series of shards that leave this worker.** The `metrics` facade
//! cannot remove a series. When a shard's consumer ends here (lease lost,
//! released, handed off, shard ended), its [`MILLIS_BEHIND_LATEST`] gauge
//! is set to 0 once (this worker is no longer behind on it, so a stale lag
//! never alerts), and none of its series is updated again by this worker.
//! Exporters should drop idle series: with `metrics-exporter-prometheus`,
//! `PrometheusBuilder::idle_timeout(MetricKindMask::ALL, Some(d))` with
//! `d` a few scrape intervals (the `kcl` binaries' `--metrics-idle-timeout`).

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

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
/// Histogram: seconds (on the CPU, no store call in it) one taker round
/// spent planning from a lease listing: what to take, ask for, force and
/// delete, and which consumers lost their lease (`worker`).
pub const LEASE_TAKER_PLAN_SECONDS: &str = "kcl_lease_taker_plan_seconds";
/// Histogram: seconds one read from the shard took, waits between polls
/// included (`shard`).
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
/// Histogram: seconds one Kinesis `GetRecords` call took, its retries
/// included (`shard`, `stream`).
pub const KINESIS_GET_RECORDS_SECONDS: &str = "kcl_kinesis_get_records_seconds";
/// Counter: Kinesis calls retried after a transient failure (`operation`).
pub const KINESIS_RETRIES: &str = "kcl_kinesis_retries_total";
/// Counter: shard iterators that expired and were re-sought (`shard`,
/// `stream`).
pub const KINESIS_EXPIRED_ITERATORS: &str = "kcl_kinesis_expired_iterators_total";
/// Counter: enhanced fan-out subscriptions opened (`shard`, `stream`).
pub const FANOUT_SUBSCRIPTIONS: &str = "kcl_fanout_subscriptions_total";
/// Counter: fan-out subscriptions replaced (`shard`, `stream`, `reason`).
pub const FANOUT_RESUBSCRIPTIONS: &str = "kcl_fanout_resubscriptions_total";
/// Counter: fan-out subscribes or streams that went quiet past their bound
/// (`shard`, `stream`, `phase`).
pub const FANOUT_STALLS: &str = "kcl_fanout_stalls_total";
/// Counter: records that looked like KPL aggregates but failed a check
/// (delivered as plain records).
pub const KPL_INVALID_AGGREGATES: &str = "kcl_kpl_invalid_aggregates_total";
/// Counter: KPL sub-records outside the shard's hash key range (dropped).
pub const KPL_OUT_OF_RANGE_AGGREGATES: &str = "kcl_kpl_out_of_range_aggregates_total";

/// Give every metric above its help text and unit in the installed
/// recorder. Call once after installing an exporter; harmless without one.
///
/// ```
/// kcl_core::engine::metric::describe();
/// ```
pub fn describe() {
    describe_counter!(
        RECORDS_PROCESSED,
        Unit::Count,
        "Records a processor finished, per shard."
    );
    describe_gauge!(
        MILLIS_BEHIND_LATEST,
        Unit::Milliseconds,
        "How far the reader is behind the tip of the shard (MillisBehindLatest)."
    );
    describe_gauge!(CURRENT_LEASES, Unit::Count, "Leases this worker holds.");
    describe_counter!(
        LEASES_TAKEN,
        Unit::Count,
        "Leases this worker took (free, expired or handed over)."
    );
    describe_counter!(
        LEASES_LOST,
        Unit::Count,
        "Leases this worker lost to another worker or an unreachable store."
    );
    describe_counter!(
        HANDOFFS_REQUESTED,
        Unit::Count,
        "Hand-offs this worker asked for while balancing."
    );
    describe_histogram!(
        LEASE_TAKER_PLAN_SECONDS,
        Unit::Seconds,
        "Time one lease taker round spent planning from a lease listing (no store calls)."
    );
    describe_histogram!(
        GET_RECORDS_SECONDS,
        Unit::Seconds,
        "Time one read from the shard took, waits between polls included."
    );
    describe_histogram!(
        CHECKPOINT_SECONDS,
        Unit::Seconds,
        "Time one checkpoint write took, retries included."
    );
    describe_counter!(
        PROCESSOR_ERRORS,
        Unit::Count,
        "Errors returned by the record processor."
    );
    describe_counter!(
        PROCESSOR_PANICS,
        Unit::Count,
        "Panics caught in the record processor."
    );
    describe_counter!(
        SHARD_BACKOFFS,
        Unit::Count,
        "Times a shard's consumer failed and the shard backs off."
    );
    describe_histogram!(
        KINESIS_GET_RECORDS_SECONDS,
        Unit::Seconds,
        "Time one Kinesis GetRecords call took, retries included."
    );
    describe_counter!(
        KINESIS_RETRIES,
        Unit::Count,
        "Kinesis calls retried after a transient failure."
    );
    describe_counter!(
        KINESIS_EXPIRED_ITERATORS,
        Unit::Count,
        "Shard iterators that expired and were re-sought."
    );
    describe_counter!(
        FANOUT_SUBSCRIPTIONS,
        Unit::Count,
        "Enhanced fan-out subscriptions opened."
    );
    describe_counter!(
        FANOUT_RESUBSCRIPTIONS,
        Unit::Count,
        "Enhanced fan-out subscriptions replaced, by reason."
    );
    describe_counter!(
        FANOUT_STALLS,
        Unit::Count,
        "Fan-out subscribes or streams that went quiet past their bound."
    );
    describe_counter!(
        KPL_INVALID_AGGREGATES,
        Unit::Count,
        "Records that looked like KPL aggregates but failed a check (delivered as plain records)."
    );
    describe_counter!(
        KPL_OUT_OF_RANGE_AGGREGATES,
        Unit::Count,
        "KPL sub-records outside the shard's hash key range (dropped)."
    );
}

/// A shard's consumer ended on this worker: its lag gauge goes to 0 once
/// (see the module docs for what exporters do with the idle series).
pub(crate) fn shard_released(shard_id: &crate::ids::ShardId) {
    metrics::gauge!(MILLIS_BEHIND_LATEST, shard_labels(shard_id)).set(0.0);
}

/// The labels of a per-shard metric of the lease `key`: `shard`, and
/// `stream` for a multi-stream lease key (then `shard` is the raw id).
pub(crate) fn shard_labels(key: &crate::ids::ShardId) -> Vec<metrics::Label> {
    match crate::stream::StreamIdentifier::split_lease_key(key) {
        Some((stream, shard)) => vec![
            metrics::Label::new("shard", shard.to_string()),
            metrics::Label::new("stream", stream.to_string()),
        ],
        None => vec![metrics::Label::new("shard", key.to_string())],
    }
}
