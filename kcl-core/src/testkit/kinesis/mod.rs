//! A Kinesis endpoint for tests, examples and benchmarks (feature
//! `testkit-kinesis`): an [`EmbeddedKinesis`] emulator in this process,
//! and the few stream chores every Kinesis test repeats (a client for an
//! emulator, a unique stream name, create and wait until ACTIVE, put,
//! delete).
//!
//! The helpers work against any endpoint: the embedded one, a standalone
//! emulator (kinesis-mock, kinesalite) or a test account. They panic when a
//! call fails, as a test wants; they are not for production code.
//!
//! [`StoreOptions`] is ferrokinesis' own type, re-exported: this module
//! follows that crate's 0.x releases and is not a stable part of the API.

mod embedded;

use std::time::Duration;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, StreamStatus};

pub use embedded::{EmbeddedKinesis, fast_options};
pub use ferrokinesis::store::StoreOptions;

/// A Kinesis client for an emulator at `endpoint` (`http://host:port`):
/// static dummy credentials, region `us-east-1`.
pub fn client(endpoint: &str) -> Client {
    let conf = aws_sdk_kinesis::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "kcl-tests"))
        .endpoint_url(endpoint)
        .build();
    Client::from_conf(conf)
}

/// `"{prefix}-"` and 16 random hex digits: a stream (or application) name
/// no other test uses, so tests can share one emulator and run in parallel.
pub fn unique_stream(prefix: &str) -> String {
    format!("{prefix}-{:016x}", rand::random::<u64>())
}

/// Wait until `stream` is ACTIVE (after a create, split or merge), polling
/// every 50 ms.
///
/// # Panics
///
/// If it is not ACTIVE after 30 s.
pub async fn wait_active(client: &Client, stream: &str) {
    for _ in 0..600 {
        let out = client
            .describe_stream_summary()
            .stream_name(stream)
            .send()
            .await;
        if let Ok(out) = out
            && out
                .stream_description_summary()
                .is_some_and(|s| s.stream_status() == &StreamStatus::Active)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("stream {stream} never became ACTIVE");
}

/// Create `stream` with `shards` shards and wait until it is ACTIVE.
///
/// # Panics
///
/// If the create fails or the stream does not become ACTIVE.
pub async fn create_stream(client: &Client, stream: &str, shards: i32) {
    client
        .create_stream()
        .stream_name(stream)
        .shard_count(shards)
        .send()
        .await
        .expect("create stream");
    wait_active(client, stream).await;
}

/// Delete a stream a test made, with its consumers; errors are ignored.
/// Emulators keep every stream, and count its shards against their shard
/// limit, until they stop.
pub async fn delete_stream(client: &Client, stream: &str) {
    let _ = client
        .delete_stream()
        .stream_name(stream)
        .enforce_consumer_deletion(true)
        .send()
        .await;
}

/// Put `n` records on `stream`, record `i` with data `"{tag}-{i}"` and
/// partition key `"key-{tag}-{i}"`, in `PutRecords` calls of up to 500.
/// Returns, per record in order, the shard it landed on and its sequence
/// number.
///
/// # Panics
///
/// If a call fails or any record is rejected.
pub async fn put(client: &Client, stream: &str, tag: &str, n: usize) -> Vec<(String, String)> {
    let mut placed = Vec::with_capacity(n);
    let mut i = 0;
    while i < n {
        let end = (i + 500).min(n);
        let entries: Vec<_> = (i..end)
            .map(|j| {
                PutRecordsRequestEntry::builder()
                    .partition_key(format!("key-{tag}-{j}"))
                    .data(Blob::new(format!("{tag}-{j}")))
                    .build()
                    .expect("partition key and data are set")
            })
            .collect();
        let out = client
            .put_records()
            .stream_name(stream)
            .set_records(Some(entries))
            .send()
            .await
            .expect("put records");
        assert_eq!(out.failed_record_count(), Some(0), "no record may fail");
        for r in out.records() {
            placed.push((
                r.shard_id().unwrap_or_default().to_owned(),
                r.sequence_number().unwrap_or_default().to_owned(),
            ));
        }
        i = end;
    }
    placed
}
