//! Coordination paths that ran one shard on two consumers (issue 11,
//! paths 1, 5 and 8). Each test fails on the engine before the rebuild.

use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use kcl_core::testkit::FakeStream;
use kcl_core::testkit::engine::{Event, PausableLeaseStore, Recorder};
use kcl_core::{LeaseStore, Worker};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

fn initializes(recorder: &Recorder) -> usize {
    recorder
        .events()
        .iter()
        .filter(|(_, _, e)| matches!(e, Event::Initialize(_)))
        .count()
}

/// Path 1: a lease freed (admin reset) while its consumer is still inside
/// a long batch is not taken again until that consumer ended, and the old
/// consumer's end does not drop the new one: exactly one more initialize.
#[tokio::test(start_paused = true)]
async fn a_reset_during_a_long_batch_starts_exactly_one_new_consumer() {
    let stream = FakeStream::new(1);
    fill(&stream, 0, 50);
    let store = store();
    let recorder = Recorder::new();
    let w = spawn_worker("w", store.clone(), &stream, &recorder);
    wait_until("50 records", Duration::from_secs(10), || {
        recorder.count() >= 50
    })
    .await;
    recorder.set_blocked("w", true);
    fill(&stream, 50, 10);
    wait_until("a batch in progress", Duration::from_secs(10), || {
        recorder.count() >= 51
    })
    .await;
    let lease = store.list_leases().await.unwrap().remove(0);
    let records = stream.records(&lease.shard_id).unwrap();
    store
        .reset_checkpoint(&lease.shard_id, &records[9].extended_sequence_number())
        .await
        .unwrap();
    // Several renew and scan rounds while the old consumer is stuck.
    tokio::time::sleep(LEASE).await;
    assert_eq!(initializes(&recorder), 1, "{:?}", recorder.events());
    recorder.set_blocked("w", false);
    wait_until(
        "re-processing from the reset",
        Duration::from_secs(20),
        || recorder.count() >= 60 + 50,
    )
    .await;
    tokio::time::sleep(LEASE * 2).await;
    let events = recorder.events();
    assert_eq!(initializes(&recorder), 2, "{events:?}");
    let lost = events
        .iter()
        .position(|(_, _, e)| *e == Event::LeaseLost)
        .expect("the old consumer was told");
    let second = events
        .iter()
        .rposition(|(_, _, e)| matches!(e, Event::Initialize(_)))
        .unwrap();
    assert!(
        lost < second,
        "the new consumer started before the old one ended: {events:?}"
    );
    w.stop().await;
}

/// Path 8: a second process with the same worker id does not adopt the
/// lease under the same generation (both would pass fencing): it re-takes
/// it, and the first is fenced out.
#[tokio::test(start_paused = true)]
async fn a_second_process_with_the_same_id_fences_the_first() {
    let stream = FakeStream::new(1);
    fill(&stream, 0, 20);
    let store = store();
    let recorder = Recorder::new();
    let first = spawn_worker("dup", store.clone(), &stream, &recorder);
    wait_until("20 records", Duration::from_secs(10), || {
        recorder.count() >= 20
    })
    .await;
    let before = store.list_leases().await.unwrap().remove(0);
    let worker = Worker::builder()
        .worker_id("dup")
        .lease_store(store.clone())
        .source(Arc::new(stream.clone()))
        .lease_duration(LEASE)
        .processor(recorder.factory("second"))
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    let second = tokio::spawn(worker.run(cancel.clone()));
    wait_until("the first to be fenced", LEASE, || {
        recorder
            .events()
            .iter()
            .any(|(w, _, e)| w == "dup" && *e == Event::LeaseLost)
    })
    .await;
    let after = store.list_leases().await.unwrap().remove(0);
    assert!(
        after.generation > before.generation,
        "{before:?} -> {after:?}"
    );
    cancel.cancel();
    second.await.unwrap().unwrap();
    first.stop().await;
}

/// Path 5: an owner cut off from the store stops (lease_lost) before any
/// peer can take its shard, and hands no record to its processor after
/// that: never two workers on one shard.
#[tokio::test(start_paused = true)]
async fn an_owner_cut_off_from_the_store_stops_before_a_peer_takes() {
    let stream = FakeStream::new(1);
    let store = store();
    let recorder = Recorder::new();
    let cut_off = PausableLeaseStore::new(store.clone());
    // A renew interval that does not divide the lease duration, as on a
    // real clock where ticks never land exactly on it.
    let spawn = |id: &str, store: Arc<dyn LeaseStore>| {
        spawn_worker_with(id, store, &stream, &recorder, |builder| {
            builder.renew_interval(LEASE * 2 / 5)
        })
    };
    let z = spawn("z", Arc::new(cut_off.clone()));
    let (stop_producer, producer) = producer(&stream, Duration::from_millis(20));
    wait_until("z to process", Duration::from_secs(10), || {
        recorder.count() > 10
    })
    .await;
    let p = spawn("p", store.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    cut_off.set_paused(true);
    let paused_at = Instant::now();
    wait_until("p to take the shard", LEASE * 3, || {
        recorder.processed().iter().any(|r| r.worker == "p")
    })
    .await;
    let events = recorder.events();
    assert!(
        events
            .iter()
            .any(|(w, _, e)| w == "z" && *e == Event::LeaseLost),
        "z had not stopped when p started: {events:?}"
    );
    let processed = recorder.processed();
    let p_first = processed.iter().find(|r| r.worker == "p").unwrap().at;
    let z_last = processed
        .iter()
        .filter(|r| r.worker == "z")
        .last()
        .unwrap()
        .at;
    println!(
        "cut off: z's last record {:?} after the cut, p's first {:?} after it",
        z_last - paused_at,
        p_first - paused_at
    );
    assert!(z_last < p_first, "z processed after p started");
    // z never delivers again, even when the store comes back.
    cut_off.set_paused(false);
    tokio::time::sleep(LEASE).await;
    let late = recorder
        .processed()
        .iter()
        .filter(|r| r.worker == "z" && r.at > z_last)
        .count();
    assert_eq!(late, 0);
    stop_producer.cancel();
    producer.await.unwrap();
    z.kill().await;
    p.stop().await;
}
