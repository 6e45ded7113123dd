//! A paused ("zombie") worker whose lease was taken cannot checkpoint, is
//! told it lost the lease, and the checkpoint never moves backwards
//! (DESIGN.md section 3, invariants 1 and 2).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;
use kcl_core::testkit::FakeStream;
use kcl_core::testkit::engine::{Event, PausableLeaseStore, Recorder};
use kcl_core::{ExtendedSequenceNumber, LeaseStore};
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn a_paused_worker_loses_its_lease_cannot_checkpoint_and_checkpoints_never_regress() {
    let stream = FakeStream::new(1);
    let store = store();
    let recorder = Recorder::new();
    let zombie_store = PausableLeaseStore::new(store.clone());
    let z = spawn_worker("z", Arc::new(zombie_store.clone()), &stream, &recorder);
    let (stop_producer, producer) = producer(&stream, Duration::from_millis(20));
    wait_until("z to process", Duration::from_secs(10), || {
        recorder.count() > 10
    })
    .await;
    let p = spawn_worker("p", store.clone(), &stream, &recorder);

    // Watch the stored checkpoint: it must never move backwards.
    let history: Arc<Mutex<Vec<ExtendedSequenceNumber>>> = Arc::default();
    let watcher = {
        let store = store.clone();
        let history = history.clone();
        tokio::spawn(async move {
            loop {
                if let Some(lease) = store.list_leases().await.unwrap().first() {
                    history.lock().unwrap().push(lease.checkpoint.clone());
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        owners(&*store).await.get("z"),
        Some(&1),
        "z holds the shard"
    );

    // Freeze z: its processor stops mid-batch, its renewals hang.
    recorder.set_blocked("z", true);
    zombie_store.set_paused(true);
    let paused_at = Instant::now();
    let took = wait_until("p to take the shard", LEASE * 2, || {
        recorder
            .processed()
            .iter()
            .any(|r| r.worker == "p" && r.at >= paused_at)
    })
    .await;
    println!("zombie: the peer took over the paused worker's shard {took:?} after the pause");
    let checkpoint_before_wake = store.list_leases().await.unwrap()[0].checkpoint.clone();
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Wake z up: its processor finishes the batch and tries to checkpoint.
    zombie_store.set_paused(false);
    recorder.set_blocked("z", false);
    wait_until("z to be told", Duration::from_secs(10), || {
        recorder
            .events()
            .iter()
            .any(|(w, _, e)| w == "z" && *e == Event::LeaseLost)
    })
    .await;
    let events = recorder.events();
    let failed: Vec<_> = events
        .iter()
        .filter(|(w, _, e)| w == "z" && matches!(e, Event::CheckpointFailed(_)))
        .collect();
    assert_eq!(
        failed.len(),
        1,
        "the zombie's checkpoint was refused once: {events:?}"
    );
    println!("zombie: refused checkpoint: {:?}", failed[0].2);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let lease = store.list_leases().await.unwrap()[0].clone();
    assert_eq!(
        lease.owner.as_ref().map(|o| o.as_str()),
        Some("p"),
        "p keeps the shard"
    );
    assert!(lease.checkpoint >= checkpoint_before_wake);

    stop_producer.cancel();
    let put = producer.await.unwrap();
    wait_until("every record", Duration::from_secs(30), || {
        recorder.distinct() >= put
    })
    .await;
    assert_nothing_lost(&stream, &recorder);
    watcher.abort();
    let history = history.lock().unwrap().clone();
    assert!(history.len() > 100);
    for w in history.windows(2) {
        assert!(
            w[0] <= w[1],
            "checkpoint moved backwards: {} -> {}",
            w[0],
            w[1]
        );
    }
    // Every duplicate was processed by z before the move and again by p.
    for (_, position, times) in recorder.duplicates() {
        assert_eq!(times, 2, "{position} processed {times} times");
    }
    z.stop().await;
    p.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_admin_reset_fences_the_owner_which_resumes_from_the_reset_position() {
    let stream = FakeStream::new(1);
    fill(&stream, 0, 50);
    let store = store();
    let recorder = Recorder::new();
    let w = spawn_worker("w", store.clone(), &stream, &recorder);
    wait_until("50 records", Duration::from_secs(10), || {
        recorder.count() >= 50
    })
    .await;
    let lease = store.list_leases().await.unwrap().remove(0);
    let records = stream.records(&lease.shard_id).unwrap();
    // Reset back to record 9: the owner is fenced out at its next renew.
    store
        .reset_checkpoint(&lease.shard_id, &records[9].extended_sequence_number())
        .await
        .unwrap();
    let took = wait_until("lease lost", LEASE, || {
        recorder
            .events()
            .iter()
            .any(|(_, _, e)| *e == Event::LeaseLost)
    })
    .await;
    println!("admin reset: the owner learned it lost the lease {took:?} later");
    assert!(
        took <= LEASE / 3 + Duration::from_millis(100),
        "renew interval bound"
    );
    // It takes the now free lease again and re-processes from record 10.
    wait_until("re-processing", Duration::from_secs(5), || {
        recorder.count() >= 90
    })
    .await;
    let again: Vec<_> = recorder.processed()[50..]
        .iter()
        .map(|p| p.position.clone())
        .collect();
    let expected: Vec<_> = records[10..]
        .iter()
        .map(|r| r.extended_sequence_number())
        .collect();
    assert_eq!(again, expected);
    w.stop().await;
}
