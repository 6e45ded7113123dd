//! The prefetch bounds hold after de-aggregation (issue 11, path 12): a
//! crafted KPL aggregate of many sub-records cannot carry one read past
//! `prefetch_max_records`, and the sub-records share their partition key.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;
use kcl_core::Worker;
use kcl_core::kpl::Aggregator;
use kcl_core::testkit::{FakeRecord, FakeStream};
use tokio_util::sync::CancellationToken;

#[tokio::test(start_paused = true)]
async fn an_aggregate_of_many_sub_records_is_cut_to_the_prefetch_bound() {
    let stream = FakeStream::new(1);
    let mut aggregator = Aggregator::new();
    for aggregate_no in 0..3 {
        for i in 0..1_000 {
            // Ten keys shared by a thousand records, as a KPL producer
            // would; long enough (over 40 bytes) to be held shared, not
            // inline.
            let full = aggregator
                .add(
                    format!("{}-{}", "long-key".repeat(8), i % 10),
                    None,
                    format!("{aggregate_no}-{i}"),
                )
                .unwrap();
            assert!(full.is_none(), "the aggregate fits in one record");
        }
        let aggregate = aggregator.flush().unwrap();
        stream
            .put(FakeRecord::new(aggregate.partition_key, aggregate.data))
            .unwrap();
    }
    let batches: Arc<Mutex<Vec<Vec<kcl_core::retrieval::Record>>>> = Arc::default();
    let seen = Arc::clone(&batches);
    let worker = Worker::builder()
        .worker_id("bounded")
        .lease_store(store())
        .source(Arc::new(stream.clone()))
        .prefetch_max_records(100)
        .process_with(move |batch| {
            let seen = Arc::clone(&seen);
            async move {
                seen.lock().unwrap().push(batch.records().to_vec());
                tokio::time::sleep(Duration::from_millis(10)).await;
                Ok(())
            }
        })
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(worker.run(cancel.clone()));
    wait_until("3,000 sub-records", Duration::from_secs(60), || {
        batches.lock().unwrap().iter().map(Vec::len).sum::<usize>() >= 3_000
    })
    .await;
    cancel.cancel();
    run.await.unwrap().unwrap();
    let batches = batches.lock().unwrap().clone();
    let largest = batches.iter().map(Vec::len).max().unwrap();
    println!("{} batches, largest {largest}", batches.len());
    assert!(largest <= 100, "a batch of {largest} passed a bound of 100");
    let records: Vec<_> = batches.into_iter().flatten().collect();
    assert_eq!(records.len(), 3_000);
    assert!(
        records
            .windows(2)
            .all(|w| { w[0].extended_sequence_number() < w[1].extended_sequence_number() })
    );
    // Sub-records of one aggregate naming one long key share one allocation.
    let first = &records[0];
    let same_key = records[1..1_000]
        .iter()
        .filter(|r| r.partition_key == first.partition_key)
        .collect::<Vec<_>>();
    assert_eq!(same_key.len(), 99);
    assert!(
        same_key
            .iter()
            .all(|r| r.partition_key.as_ptr() == first.partition_key.as_ptr())
    );
}
