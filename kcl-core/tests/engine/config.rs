//! Configuration bounds (issue 11, paths 9, 10 and 14): every setting
//! that would make the engine panic at run time, or force hand-offs before
//! an owner can see them, is refused by `build()` with `Error::Config`.

use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use kcl_core::testkit::FakeStream;
use kcl_core::{Error, Worker};

fn config_error(r: kcl_core::Result<impl Sized>) -> String {
    match r {
        Err(Error::Config(msg)) => msg,
        Err(e) => panic!("not a config error: {e}"),
        Ok(_) => panic!("accepted"),
    }
}

fn full() -> kcl_core::WorkerBuilder<impl kcl_core::ProcessorFactory> {
    Worker::builder()
        .lease_store(store())
        .source(Arc::new(FakeStream::new(1)))
        .process_with(|_| async { Ok(()) })
}

#[test]
fn the_default_forced_hand_off_waits_like_java() {
    let worker = full().build().unwrap();
    let config = worker.config();
    assert!(
        config.handoff_timeout >= config.lease_duration + Duration::from_secs(30),
        "{:?}",
        config.handoff_timeout
    );
}

#[test]
fn a_hand_off_timeout_within_a_renew_interval_is_refused() {
    let msg = config_error(
        full()
            .renew_interval(Duration::from_secs(2))
            .handoff_timeout(Duration::from_secs(2))
            .build(),
    );
    assert!(msg.contains("handoff_timeout"), "{msg}");
}

#[test]
fn a_zero_shutdown_grace_is_refused() {
    let msg = config_error(full().shutdown_grace(Duration::ZERO).build());
    assert!(msg.contains("shutdown_grace"), "{msg}");
}

#[test]
fn durations_that_would_overflow_the_clock_are_refused() {
    for (name, build) in [
        (
            "shutdown_grace",
            full().shutdown_grace(Duration::MAX).build(),
        ),
        ("scan_interval", full().scan_interval(Duration::MAX).build()),
        (
            "lease_duration",
            full().lease_duration(Duration::MAX).build(),
        ),
        (
            "shard_sync_interval",
            full().shard_sync_interval(Duration::MAX).build(),
        ),
    ] {
        let msg = config_error(build);
        assert!(msg.contains(name), "{name}: {msg}");
    }
}

#[test]
fn a_zero_lease_cap_is_refused() {
    let msg = config_error(full().max_leases_per_worker(0).build());
    assert!(msg.contains("max_leases_per_worker"), "{msg}");
    assert_eq!(
        full()
            .max_leases_per_worker(3)
            .build()
            .unwrap()
            .config()
            .max_leases_per_worker,
        3
    );
}

#[test]
fn a_lease_scan_cadence_faster_than_the_scan_interval_is_refused() {
    let msg = config_error(
        full()
            .scan_interval(Duration::from_secs(2))
            .lease_scan_interval(Duration::from_secs(1))
            .build(),
    );
    assert!(msg.contains("lease_scan_interval"), "{msg}");
    let msg = config_error(full().lease_scan_interval(Duration::ZERO).build());
    assert!(msg.contains("lease_scan_interval"), "{msg}");
    let worker = full().build().unwrap();
    assert_eq!(worker.config().lease_scan_interval, Duration::from_secs(60));
}

fn single() -> kcl_core::engine::SingleConsumerBuilder<impl kcl_core::ProcessorFactory> {
    kcl_core::engine::SingleConsumer::builder()
        .checkpoint_store(store())
        .source(Arc::new(FakeStream::new(1)))
        .process_with(|_| async { Ok(()) })
}

/// Path 14: one `ConsumerConfig` for both; the single consumer takes every
/// consumer setting and `build()` bounds each with `Error::Config`.
#[test]
fn the_single_consumer_takes_and_checks_every_consumer_setting() {
    use kcl_core::engine::ConsumerConfig;
    for (name, build) in [
        (
            "parent_poll_interval",
            single()
                .parent_poll_interval(Duration::ZERO)
                .build()
                .map(drop),
        ),
        (
            "prefetch_max_records",
            single().prefetch_max_records(0).build().map(drop),
        ),
        (
            "pin_clock_margin",
            single().pin_clock_margin(Duration::MAX).build().map(drop),
        ),
        (
            "retry_max_delay",
            single().retry_max_delay(Duration::MAX).build().map(drop),
        ),
        (
            "shutdown_grace",
            single().shutdown_grace(Duration::ZERO).build().map(drop),
        ),
    ] {
        let msg = config_error(build);
        assert!(msg.contains(name), "{name}: {msg}");
    }
    let mut config = ConsumerConfig::new();
    config.max_records = 0;
    let msg = config_error(single().consumer_config(config.clone()).build());
    assert!(msg.contains("max_records"), "{msg}");
    let msg = config_error(full().consumer_config(config).build());
    assert!(msg.contains("max_records"), "{msg}");
    // The same struct reaches the worker.
    let mut config = ConsumerConfig::new();
    config.prefetch_max_records = 1234;
    config.ignore_shard_ordering = true;
    let worker = full().consumer_config(config).build().unwrap();
    assert_eq!(worker.config().consumer.prefetch_max_records, 1234);
    assert!(worker.config().consumer.ignore_shard_ordering);
}

#[test]
fn balancing_is_by_count_by_default_and_bad_throughput_settings_are_refused() {
    use kcl_core::{BalanceMode, ThroughputBalance};
    assert_eq!(
        full().build().unwrap().config().balance_mode,
        BalanceMode::Count
    );
    for bad in [
        ThroughputBalance::new().threshold(0.0),
        ThroughputBalance::new().threshold(f64::INFINITY),
        ThroughputBalance::new().rounds(0),
    ] {
        let msg = config_error(full().balance_mode(BalanceMode::Throughput(bad)).build());
        assert!(msg.contains("throughput balance"), "{msg}");
    }
    let chosen = BalanceMode::Throughput(ThroughputBalance::new().threshold(0.25).rounds(5));
    assert_eq!(
        full()
            .balance_mode(chosen)
            .build()
            .unwrap()
            .config()
            .balance_mode,
        chosen
    );
}
