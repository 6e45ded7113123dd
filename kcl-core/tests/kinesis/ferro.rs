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

/// A peer that sends a request head without end (no blank line, or one
/// endless header) gets a 431 and the connection closed once 64 KiB are
/// read, instead of the emulator buffering all it sends; the emulator
/// still serves the next connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_request_head_is_refused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = server().await;
    let mut conn = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    conn.write_all(b"POST / HTTP/1.1\r\nX-Endless: ")
        .await
        .unwrap();
    let filler = vec![b'a'; 16 << 10];
    let mut answer = Vec::new();
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        // Keep sending until the server answers and closes.
        for _ in 0..64 {
            if conn.write_all(&filler).await.is_err() {
                break;
            }
        }
        let _ = conn.read_to_end(&mut answer).await;
    })
    .await;
    assert!(got.is_ok(), "the emulator kept reading the endless head");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    // Still serving.
    support::list_shards_pages(&s.endpoint).await;
}
