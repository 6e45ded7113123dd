#![cfg(feature = "testkit")]
//! Engine options the MultiLang daemon passes through from Java's
//! properties: a cap on leases per worker (`maxLeasesForWorker`).

mod engine_common;

use std::sync::Arc;

use engine_common::*;
use kcl_core::Worker;
use kcl_core::testkit::FakeStream;
use kcl_core::testkit::engine::Recorder;
use tokio_util::sync::CancellationToken;

/// A worker capped at two leases holds two of five shards, however long it
/// runs alone; an uncapped peer takes the other three, and nothing is lost.
#[tokio::test(start_paused = true)]
async fn a_capped_worker_never_holds_more_than_its_cap() {
    let stream = FakeStream::new(5);
    fill(&stream, 0, 50);
    let store = store();
    let recorder = Recorder::new();
    let worker = Worker::builder()
        .worker_id("capped")
        .lease_store(store.clone())
        .source(Arc::new(stream.clone()))
        .lease_duration(LEASE)
        .max_leases_per_worker(2)
        .processor(recorder.factory("capped"))
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    let capped = tokio::spawn(worker.run(cancel.clone()));
    // Many scan and balancing rounds, past the "starving" rule's two scans.
    tokio::time::sleep(LEASE * 3).await;
    let held = owners(store.as_ref()).await;
    assert_eq!(held.get("capped"), Some(&2), "{held:?}");
    assert_eq!(held.get("-"), Some(&3), "{held:?}");
    let peer = spawn_worker("peer", store.clone(), &stream, &recorder);
    wait_until("the peer to take the rest", LEASE * 3, || {
        recorder
            .processed()
            .iter()
            .filter(|p| p.worker == "peer")
            .count()
            > 0
    })
    .await;
    tokio::time::sleep(LEASE * 3).await;
    let held = owners(store.as_ref()).await;
    assert!(held.get("capped").is_some_and(|n| *n <= 2), "{held:?}");
    assert_eq!(held.values().sum::<usize>(), 5, "{held:?}");
    assert!(!held.contains_key("-"), "{held:?}");
    assert_nothing_lost(&stream, &recorder);
    peer.stop().await;
    cancel.cancel();
    capped.await.unwrap().unwrap();
}
