//! The read path between a shard's reader and its processor: the first
//! batch reaches the processor without waiting for the read-ahead to fill,
//! the vectors of finished batches are read into again (and an idle shard
//! keeps none), and a source that does not say whether a batch holds KPL
//! aggregates still has them de-aggregated.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use kcl_core::kpl::Aggregator;
use kcl_core::retrieval::{
    Record, RecordBatch, ShardDescription, ShardReader, ShardSource, StartingPosition,
};
use kcl_core::testkit::{FakeRecord, FakeStream, FakeStreamConfig};
use kcl_core::{ShardId, Worker};
use tokio_util::sync::CancellationToken;

use crate::common::*;

/// The fake stream, logging the capacity of each vector its readers are
/// handed, and (`unsaid`) dropping what a batch says about aggregates.
#[derive(Clone, Debug)]
struct Observed {
    stream: FakeStream,
    handed: Arc<Mutex<Vec<usize>>>,
    unsaid: bool,
}

impl Observed {
    fn new(stream: &FakeStream, unsaid: bool) -> Self {
        Observed {
            stream: stream.clone(),
            handed: Arc::default(),
            unsaid,
        }
    }
}

#[async_trait]
impl ShardSource for Observed {
    async fn list_shards(&self) -> kcl_core::Result<Vec<ShardDescription>> {
        self.stream.list_shards().await
    }

    async fn open_reader(
        &self,
        shard_id: &ShardId,
        from: StartingPosition,
    ) -> kcl_core::Result<Box<dyn ShardReader>> {
        Ok(Box::new(ObservedReader {
            inner: self.stream.open_reader(shard_id, from).await?,
            handed: Arc::clone(&self.handed),
            unsaid: self.unsaid,
        }))
    }
}

#[derive(Debug)]
struct ObservedReader {
    inner: Box<dyn ShardReader>,
    handed: Arc<Mutex<Vec<usize>>>,
    unsaid: bool,
}

#[async_trait]
impl ShardReader for ObservedReader {
    async fn next_batch(&mut self) -> kcl_core::Result<RecordBatch> {
        self.next_batch_into(Vec::new()).await
    }

    async fn next_batch_into(&mut self, records: Vec<Record>) -> kcl_core::Result<RecordBatch> {
        self.handed.lock().unwrap().push(records.capacity());
        let mut batch = self.inner.next_batch_into(records).await?;
        if self.unsaid {
            batch.has_aggregates = None;
        }
        Ok(batch)
    }
}

fn batches_of(n: usize) -> FakeStreamConfig {
    FakeStreamConfig {
        max_records: n,
        ..FakeStreamConfig::default()
    }
}

/// Run a worker over `source` until `total` records were processed, and
/// `linger` longer; returns their payloads in order and the stream's read
/// count when the processor saw its first batch.
async fn process(
    source: Arc<dyn ShardSource>,
    stream: &FakeStream,
    total: usize,
    linger: Duration,
) -> (Vec<String>, u64) {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let reads_at_first = Arc::new(OnceLock::new());
    let worker = {
        let (seen, reads_at_first, stream) = (seen.clone(), reads_at_first.clone(), stream.clone());
        Worker::builder()
            .worker_id("reader")
            .lease_store(store())
            .source(source)
            .prefetch_max_records(100)
            .process_with(move |batch| {
                reads_at_first.get_or_init(|| stream.stats().get_records_calls);
                seen.lock().unwrap().extend(
                    batch
                        .records()
                        .iter()
                        .map(|r| String::from_utf8_lossy(&r.data).into_owned()),
                );
                async { Ok(()) }
            })
            .build()
            .unwrap()
    };
    let cancel = CancellationToken::new();
    let run = tokio::spawn(worker.run(cancel.clone()));
    wait_until("every record", Duration::from_secs(60), || {
        seen.lock().unwrap().len() >= total
    })
    .await;
    tokio::time::sleep(linger).await;
    cancel.cancel();
    run.await.unwrap().unwrap();
    let seen = seen.lock().unwrap().clone();
    (seen, *reads_at_first.get().unwrap())
}

/// A reader that always has records ready (a backlog) must not keep the
/// thread until the read-ahead bound is full: the processor starts on the
/// first batch while the rest is read. (Before, it waited for ten reads of
/// ten records, the whole 100-record bound, on a one-thread runtime.)
#[tokio::test(start_paused = true)]
async fn the_first_batch_reaches_the_processor_before_the_read_ahead_fills() {
    let stream = FakeStream::with_config(1, batches_of(10));
    for i in 0..200 {
        stream.put_record("k", format!("r-{i}")).unwrap();
    }
    let (seen, reads_at_first) =
        process(Arc::new(stream.clone()), &stream, 200, Duration::ZERO).await;
    assert_eq!(seen.len(), 200);
    assert!(
        reads_at_first <= 2,
        "the processor's first batch came after {reads_at_first} reads"
    );
}

/// Finished batches' vectors go back to the reader, so a busy shard reads
/// into a few allocations (no records of an earlier batch leak into a
/// later one); once the shard idles, the kept vectors are freed.
#[tokio::test(start_paused = true)]
async fn finished_batch_vectors_are_read_into_again_and_an_idle_shard_keeps_none() {
    let stream = FakeStream::with_config(1, batches_of(10));
    for i in 0..300 {
        stream.put_record("k", format!("r-{i}")).unwrap();
    }
    let observed = Observed::new(&stream, false);
    let handed = Arc::clone(&observed.handed);
    let (seen, _) = process(Arc::new(observed), &stream, 300, Duration::from_secs(1)).await;
    let expected: Vec<String> = (0..300).map(|i| format!("r-{i}")).collect();
    assert_eq!(seen, expected, "every record once, in order");
    let handed = handed.lock().unwrap().clone();
    let reused = handed.iter().filter(|&&c| c >= 10).count();
    assert!(
        reused >= 20,
        "of {} reads only {reused} reused a vector: {handed:?}",
        handed.len()
    );
    // At the tip a read comes back empty and frees the kept vector: the
    // idle reads after it get new, empty ones.
    let idle_tail = handed.iter().rev().take_while(|&&c| c == 0).count();
    assert!(
        idle_tail >= 5,
        "an idle reader still gets vectors: {handed:?}"
    );
}

/// A source that does not say whether a batch holds aggregates
/// (`has_aggregates: None`, the default) gets each payload checked by the
/// engine, and its aggregates de-aggregated.
#[tokio::test(start_paused = true)]
async fn a_source_that_does_not_say_still_has_its_aggregates_de_aggregated() {
    let stream = FakeStream::new(1);
    let mut aggregator = Aggregator::new();
    for i in 0..5 {
        aggregator.add("k", None, format!("sub-{i}")).unwrap();
    }
    let aggregate = aggregator.flush().unwrap();
    stream.put_record("k", "plain").unwrap();
    stream
        .put(FakeRecord::new(aggregate.partition_key, aggregate.data))
        .unwrap();
    let (seen, _) = process(
        Arc::new(Observed::new(&stream, true)),
        &stream,
        6,
        Duration::ZERO,
    )
    .await;
    assert_eq!(seen, ["plain", "sub-0", "sub-1", "sub-2", "sub-3", "sub-4"]);
}
