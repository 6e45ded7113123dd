//! Path 4 of issue 11: a lease still at LATEST re-opened before its first
//! checkpoint (after a crash, or a reader failure) reads from the instant
//! the first open pinned, not from a new LATEST: nothing put in between is
//! lost.

use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use kcl_core::testkit::engine::Recorder;
use kcl_core::testkit::{FakeStream, Fault};
use kcl_core::{InitialPosition, LeaseStore};

fn latest_worker(
    id: &str,
    store: Arc<dyn LeaseStore>,
    stream: &FakeStream,
    recorder: &Recorder,
) -> Running {
    spawn_worker_with(id, store, stream, recorder, |builder| {
        builder.initial_position(InitialPosition::Latest)
    })
}

/// The shard's reader has made at least one read (it resolved LATEST).
async fn reading(stream: &FakeStream) {
    let before = stream.stats().get_records_calls;
    wait_until("the reader to open", Duration::from_secs(20), || {
        stream.stats().get_records_calls > before
    })
    .await;
}

/// 5 records seen and not checkpointed, a crash, 5 more, a peer takes
/// over: all 10 processed.
#[tokio::test(start_paused = true)]
async fn a_crash_before_the_first_checkpoint_loses_nothing_put_after_latest() {
    let stream = FakeStream::new(1);
    fill(&stream, 0, 3); // before LATEST: never expected
    let store = store();
    let recorder = Recorder::new();
    let first = latest_worker("first", store.clone(), &stream, &recorder);
    reading(&stream).await;
    // The processor logs each batch and never gets to checkpoint it.
    recorder.set_blocked("first", true);
    fill(&stream, 3, 5);
    wait_until("the first 5 records", Duration::from_secs(20), || {
        recorder.count() >= 5
    })
    .await;
    first.kill().await;
    fill(&stream, 8, 5);
    let peer = latest_worker("peer", store.clone(), &stream, &recorder);
    wait_until("the peer to process all 10", LEASE * 4, || {
        let seen: std::collections::HashSet<_> = recorder
            .processed()
            .into_iter()
            .filter(|p| p.worker == "peer")
            .map(|p| p.data)
            .collect();
        (3..13).all(|i| seen.contains(i.to_string().as_bytes()))
    })
    .await;
    let lease = store.list_leases().await.unwrap().remove(0);
    assert!(lease.pinned_start.is_some(), "{lease:?}");
    peer.stop().await;
}

/// A reader that fails before delivering anything is reopened at the
/// pinned instant, not at a new LATEST.
#[tokio::test(start_paused = true)]
async fn a_reader_failure_before_the_first_record_loses_nothing() {
    let stream = FakeStream::new(1);
    let store = store();
    let recorder = Recorder::new();
    let w = latest_worker("w", store.clone(), &stream, &recorder);
    reading(&stream).await;
    let shard = stream.shards()[0].shard_id.clone();
    stream.fail_next_reads(&shard, 1, Fault::Unavailable);
    fill(&stream, 0, 5);
    wait_until(
        "all 5 records after the reopen",
        Duration::from_secs(30),
        || recorder.count() >= 5,
    )
    .await;
    assert_nothing_lost(&stream, &recorder);
    w.stop().await;
}
