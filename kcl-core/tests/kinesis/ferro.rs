//! Kinesis retrieval against the `ferrokinesis` emulator, in-process on a
//! loopback port: every iterator type, `ListShards` paging, shard end after
//! a split and a merge (ferrokinesis sends no `ChildShards`, so this proves
//! the `ListShards` lineage path), and an expired iterator.

use std::time::Duration;

use kcl_core::ShardId;
use kcl_core::retrieval::{ShardSource, StartingPosition};
use kcl_core::testkit::kinesis::{EmbeddedKinesis, StoreOptions, fast_options};

use crate::support;

async fn server() -> EmbeddedKinesis {
    EmbeddedKinesis::start(fast_options())
        .await
        .expect("start ferrokinesis")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_shards_pages() {
    let s = server().await;
    support::list_shards_pages(&s.endpoint).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iterator_types() {
    let s = server().await;
    support::iterator_types(support::Mode::Polling, &s.endpoint).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_shard_end_from_lineage() {
    let s = server().await;
    support::split_shard_end(support::Mode::Polling, &s.endpoint).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_shard_end_from_lineage() {
    let s = server().await;
    support::merge_shard_end(support::Mode::Polling, &s.endpoint).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_stream_is_not_found() {
    let s = server().await;
    support::missing_stream(&s.endpoint).await;
}

/// Iterators live one second here. A reader that sleeps past that between
/// batches re-seeks after the last record it delivered: no record twice,
/// none skipped, and not back to the start of the shard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_iterator_resumes_after_last_delivered() {
    let s = EmbeddedKinesis::start(StoreOptions {
        iterator_ttl_seconds: 1,
        ..fast_options()
    })
    .await
    .unwrap();
    let stream = support::unique_stream("expiry");
    let c = support::client(&s.endpoint);
    support::create_stream(&c, &stream, 1).await;
    let placed = support::put(&c, &stream, "e", 12).await;
    let shard = ShardId::new(&placed[0].0).unwrap();
    let source = kcl_core::retrieval::kinesis::KinesisSource::builder()
        .stream(&stream)
        .client(c.clone())
        .max_records(5)
        .min_call_interval(Duration::ZERO)
        .idle_time(Duration::from_millis(20))
        .build()
        .await
        .unwrap();
    let mut reader = source
        .open_reader(&shard, StartingPosition::TrimHorizon)
        .await
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 12 {
        let batch = reader
            .next_batch()
            .await
            .expect("reader recovers by itself");
        seen.extend(
            batch
                .records
                .iter()
                .map(|r| String::from_utf8(r.data.to_vec()).unwrap()),
        );
        // Outlive the iterator before every call.
        tokio::time::sleep(Duration::from_millis(2100)).await;
    }
    let want: Vec<_> = (0..12).map(|i| format!("e-{i}")).collect();
    assert_eq!(seen, want);

    // Expired before anything was delivered: back to where it was opened
    // (AT_SEQUENCE_NUMBER of record 7), not to the start of the shard.
    let at7: kcl_core::SequenceNumber = placed[7].1.parse().unwrap();
    let mut reader = source
        .open_reader(&shard, StartingPosition::AtSequenceNumber(at7))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let batch = reader.next_batch().await.unwrap();
    let first: Vec<_> = batch
        .records
        .iter()
        .map(|r| String::from_utf8(r.data.to_vec()).unwrap())
        .collect();
    assert_eq!(first, vec!["e-7", "e-8", "e-9", "e-10", "e-11"]);
}
