//! Engine options the MultiLang daemon passes through from Java's
//! properties: a cap on leases per worker (`maxLeasesForWorker`).

use std::sync::Arc;

use crate::common::*;
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

/// Empty calls a worker made in 5 s on an idle shard, then the records
/// it delivered once 3 were put.
async fn empty_calls(deliver_empty: bool) -> (usize, usize) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let stream = FakeStream::new(1);
    let empty = Arc::new(AtomicUsize::new(0));
    let records = Arc::new(AtomicUsize::new(0));
    let worker = Worker::builder()
        .worker_id("w")
        .lease_store(store())
        .source(Arc::new(stream.clone()))
        .lease_duration(LEASE)
        .deliver_empty_batches(deliver_empty)
        .process_with({
            let (empty, records) = (empty.clone(), records.clone());
            move |batch| {
                let (empty, records) = (empty.clone(), records.clone());
                async move {
                    match batch.records().len() {
                        0 => empty.fetch_add(1, Ordering::SeqCst),
                        n => records.fetch_add(n, Ordering::SeqCst),
                    };
                    Ok(())
                }
            }
        })
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(worker.run(cancel.clone()));
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    let idle = empty.load(Ordering::SeqCst);
    fill(&stream, 0, 3);
    wait_until("3 records", LEASE, || records.load(Ordering::SeqCst) >= 3).await;
    cancel.cancel();
    run.await.unwrap().unwrap();
    (idle, records.load(Ordering::SeqCst))
}

/// `deliver_empty_batches` (Java's `callProcessRecordsEvenForEmptyRecordList`):
/// an idle shard's reads reach the processor as empty batches; by
/// default they do not.
#[tokio::test(start_paused = true)]
async fn empty_reads_reach_the_processor_only_when_asked() {
    let (idle, delivered) = empty_calls(true).await;
    assert!(idle >= 3, "{idle} empty calls in 5 idle seconds");
    assert_eq!(delivered, 3);
    let (idle, delivered) = empty_calls(false).await;
    assert_eq!(idle, 0, "empty calls without the option");
    assert_eq!(delivered, 3);
}

/// The single-process consumer takes the consumer settings too: empty
/// reads reach its processor when asked.
#[tokio::test(start_paused = true)]
async fn the_single_consumer_delivers_empty_batches_when_asked() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let stream = FakeStream::new(1);
    let empty = Arc::new(AtomicUsize::new(0));
    let consumer = kcl_core::engine::SingleConsumer::builder()
        .checkpoint_store(store())
        .source(Arc::new(stream.clone()))
        .deliver_empty_batches(true)
        .process_with({
            let empty = empty.clone();
            move |batch| {
                let empty = empty.clone();
                async move {
                    if batch.records().is_empty() {
                        empty.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(())
                }
            }
        })
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(consumer.run(cancel.clone()));
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    cancel.cancel();
    run.await.unwrap().unwrap();
    assert!(empty.load(Ordering::SeqCst) >= 3, "{empty:?}");
}
