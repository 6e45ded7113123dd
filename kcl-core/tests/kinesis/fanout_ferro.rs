//! Enhanced fan-out against the `ferrokinesis` emulator, in-process:
//! consumer registration, every starting position, shard end after a
//! split and a merge, subscriptions that end every 700 ms (0 lost, 0
//! repeated), a frozen connection caught by the watchdog, and
//! back-pressure from a caller that stops reading.

use std::time::Duration;

use kcl_core::ShardId;
use kcl_core::testkit::kinesis::{EmbeddedKinesis, StoreOptions, fast_options};
use support::Mode;

use crate::fanout_support;
use crate::support;

async fn server() -> EmbeddedKinesis {
    EmbeddedKinesis::start(fast_options())
        .await
        .expect("start ferrokinesis")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_reuse_and_deregistration() {
    let s = server().await;
    fanout_support::registration(&s.endpoint).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_starting_position() {
    let s = server().await;
    support::iterator_types(Mode::FanOut, &s.endpoint).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_parent_ends_with_children() {
    let s = server().await;
    support::split_shard_end(Mode::FanOut, &s.endpoint).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_parents_end_with_child() {
    let s = server().await;
    support::merge_shard_end(Mode::FanOut, &s.endpoint).await;
}

/// ferrokinesis ends each subscription after `subscribe_to_shard_session_ms`
/// (5 minutes on AWS): at 700 ms, a 3 s read lives through several.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_ending_mid_stream_lose_and_repeat_nothing() {
    let s = EmbeddedKinesis::start(StoreOptions {
        subscribe_to_shard_session_ms: 700,
        subscribe_to_shard_event_record_limit: 7,
        ..fast_options()
    })
    .await
    .unwrap();
    let stream = support::unique_stream("renew");
    let c = support::client(&s.endpoint);
    support::create_stream(&c, &stream, 1).await;
    let shard = ShardId::new("shardId-000000000000").unwrap();
    let source = support::fan_out(support::source(&s.endpoint, &stream).await).await;
    let started = std::time::Instant::now();
    fanout_support::renewal_no_gap_no_repeat(
        &s.endpoint,
        source,
        &stream,
        shard,
        Duration::from_secs(3600),
        || {},
    )
    .await;
    let elapsed = started.elapsed();
    println!("read across {elapsed:?} of 700 ms subscriptions");
    assert!(
        elapsed > Duration::from_millis(1400),
        "the read must outlive at least two subscriptions"
    );
}

/// The same with the connection cut under the reader every 400 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_connections_resubscribe_from_the_continuation() {
    let s = server().await;
    cut_connections(&s.endpoint).await;
}

async fn cut_connections(endpoint: &str) {
    let stream = support::unique_stream("cut");
    let c = support::client(endpoint);
    support::create_stream(&c, &stream, 1).await;
    let shard = ShardId::new("shardId-000000000000").unwrap();
    let proxy = std::sync::Arc::new(fanout_support::Proxy::start(endpoint).await);
    let source = support::fan_out(support::source(&proxy.endpoint, &stream).await).await;
    let p = proxy.clone();
    let cuts = fanout_support::renewal_no_gap_no_repeat(
        endpoint,
        source,
        &stream,
        shard,
        Duration::from_millis(400),
        move || p.cut_existing(),
    )
    .await;
    println!("{cuts} cuts survived");
    assert!(cuts >= 2, "only {cuts} cuts happened during the read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_connection_is_detected_and_replaced() {
    let s = server().await;
    let bound = Duration::from_secs(1);
    let took = fanout_support::stall_recovered(&s.endpoint, bound).await;
    println!("stall recovered {took:?} after the freeze (watchdog {bound:?})");
    assert!(took < Duration::from_secs(15), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_stops_reading_stops_the_subscription() {
    let s = EmbeddedKinesis::start(StoreOptions {
        subscribe_to_shard_event_record_limit: 50,
        ..fast_options()
    })
    .await
    .unwrap();
    let (pulled, total) = fanout_support::back_pressure(&s.endpoint).await;
    println!("read ahead {pulled} of {total} bytes while idle");
}
