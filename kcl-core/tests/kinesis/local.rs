//! Kinesis retrieval against kinesis-mock (npm `kinesis-local`), the second
//! emulator, started by `scripts/test-all.sh` (scripts/servers/kinesis.sh)
//! and found through `KCL_TEST_KINESIS_ENDPOINT`. Unlike ferrokinesis it
//! sends `ChildShards` at a closed shard's end, so the split and merge
//! tests here prove that path. Streams stay small: kinesis-mock's
//! `PutRecords` slows down as a shard fills.

use kcl_core::testkit::server_from_env;

use crate::support;

fn endpoint() -> Option<String> {
    server_from_env("KCL_TEST_KINESIS_ENDPOINT")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_shards_pages() {
    let Some(endpoint) = endpoint() else { return };
    support::list_shards_pages(&endpoint).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iterator_types() {
    let Some(endpoint) = endpoint() else { return };
    support::iterator_types(support::Mode::Polling, &endpoint).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_shard_end_from_child_shards() {
    let Some(endpoint) = endpoint() else { return };
    support::split_shard_end(support::Mode::Polling, &endpoint).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_shard_end_from_child_shards() {
    let Some(endpoint) = endpoint() else { return };
    support::merge_shard_end(support::Mode::Polling, &endpoint).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_stream_is_not_found() {
    let Some(endpoint) = endpoint() else { return };
    support::missing_stream(&endpoint).await;
}
