//! Error paths of the Kinesis polling reader, against `aws-smithy-mocks`:
//! throttling sequences and 5xx (backoff with jitter, then success or
//! giving up), an expired iterator (re-seek after the last delivered
//! record), resource not found, shard end with and without `ChildShards`,
//! and pacing. Tokio's clock is paused, so backoff and pacing are measured
//! on virtual time.

use std::time::Duration;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesis::operation::get_records::{GetRecordsError, GetRecordsOutput};
use aws_sdk_kinesis::operation::get_shard_iterator::{
    GetShardIteratorError, GetShardIteratorOutput,
};
use aws_sdk_kinesis::operation::list_shards::ListShardsOutput;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::error::{
    ExpiredIteratorException, KmsThrottlingException, ProvisionedThroughputExceededException,
    ResourceNotFoundException,
};
use aws_sdk_kinesis::types::{
    ChildShard, HashKeyRange, Record, SequenceNumberRange, Shard, ShardIteratorType,
};
use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, create_mock_http_client, mock};
use kcl_core::retrieval::kinesis::KinesisSource;
use kcl_core::retrieval::{ShardReader, ShardSource, StartingPosition};
use kcl_core::{Error, ShardId};
use tokio::time::Instant;

fn client(mode: RuleMode, rules: &[&Rule]) -> Client {
    let mut interceptor = MockResponseInterceptor::new().rule_mode(mode);
    for rule in rules {
        interceptor = interceptor.with_rule(rule);
    }
    let conf = aws_sdk_kinesis::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "mocks"))
        .retry_config(aws_sdk_kinesis::config::retry::RetryConfig::disabled())
        .http_client(create_mock_http_client())
        .interceptor(interceptor)
        .build();
    Client::from_conf(conf)
}

async fn source(client: Client) -> KinesisSource {
    KinesisSource::builder()
        .stream("orders")
        .client(client)
        .build()
        .await
        .unwrap()
}

fn shard() -> ShardId {
    ShardId::new("shardId-000000000000").unwrap()
}

fn record(seq: &str) -> Record {
    Record::builder()
        .sequence_number(seq)
        .partition_key("k")
        .data(Blob::new(format!("data-{seq}")))
        .build()
        .unwrap()
}

fn iterator_rule(iterator: &'static str) -> Rule {
    mock!(Client::get_shard_iterator)
        .match_requests(|r| r.shard_iterator_type() == Some(&ShardIteratorType::TrimHorizon))
        .then_output(move || {
            GetShardIteratorOutput::builder()
                .shard_iterator(iterator)
                .build()
        })
}

fn records_output(seqs: &[&str], next: Option<&str>) -> GetRecordsOutput {
    let mut out = GetRecordsOutput::builder()
        .millis_behind_latest(0)
        .set_records(Some(Vec::new()));
    for s in seqs {
        out = out.records(record(s));
    }
    if let Some(next) = next {
        out = out.next_shard_iterator(next);
    }
    out.build().unwrap()
}

fn seqs(batch: &kcl_core::retrieval::RecordBatch) -> Vec<String> {
    batch
        .records
        .iter()
        .map(|r| r.sequence_number.to_string())
        .collect()
}

const LIMIT_EXCEEDED: &str = r#"{"__type":"LimitExceededException","message":"rate exceeded"}"#;

/// Throughput, KMS and limit throttling, a 500 and a 503 in a row: the
/// reader backs off (exponentially, with jitter) and returns the records.
#[tokio::test(start_paused = true)]
async fn throttling_sequence_backs_off_then_succeeds() {
    let get_records = mock!(Client::get_records)
        .sequence()
        .error(|| {
            GetRecordsError::ProvisionedThroughputExceededException(
                ProvisionedThroughputExceededException::builder().build(),
            )
        })
        .error(|| {
            GetRecordsError::KmsThrottlingException(KmsThrottlingException::builder().build())
        })
        .http_status(400, Some(LIMIT_EXCEEDED.into()))
        .http_status(500, None)
        .http_status(503, None)
        .output(|| records_output(&["1", "2"], Some("it-2")))
        .build();
    let it = iterator_rule("it-1");
    let source = source(client(RuleMode::MatchAny, &[&it, &get_records])).await;
    let mut reader = source
        .open_reader(&shard(), StartingPosition::TrimHorizon)
        .await
        .unwrap();
    let started = Instant::now();
    let batch = reader.next_batch().await.expect("retried to success");
    let waited = started.elapsed();
    assert_eq!(seqs(&batch), ["1", "2"]);
    assert_eq!(get_records.num_calls(), 6);
    // Five backoffs from 100 ms doubling: at least 100+200+400+800+1600 ms,
    // and jitter adds at most as much again.
    assert!(waited >= Duration::from_millis(3100), "{waited:?}");
    assert!(waited <= Duration::from_millis(6200), "{waited:?}");
}

/// Each batch says whether a record in it carries the KPL aggregate
/// framing (checked as the payloads are copied, so the engine need not read
/// them again), and a read into a handed-back vector holds only its own
/// records.
#[tokio::test(start_paused = true)]
async fn a_batch_says_whether_it_holds_an_aggregate_and_reads_into_a_used_vector() {
    let mut aggregator = kcl_core::kpl::Aggregator::new();
    aggregator.add("k", None, "inside").unwrap();
    let aggregate = aggregator.flush().unwrap();
    let get_records = mock!(Client::get_records)
        .sequence()
        .output(|| records_output(&["1", "2"], Some("it-2")))
        .output(move || {
            let mut out = records_output(&["3"], Some("it-3"));
            out.records.push(
                Record::builder()
                    .sequence_number("4")
                    .partition_key("k")
                    .data(Blob::new(aggregate.data.to_vec()))
                    .build()
                    .unwrap(),
            );
            out
        })
        .build();
    let mut reader = source_from(&[&iterator_rule("it-1"), &get_records])
        .await
        .open_reader(&shard(), StartingPosition::TrimHorizon)
        .await
        .unwrap();
    let plain = reader.next_batch().await.unwrap();
    assert_eq!(seqs(&plain), ["1", "2"]);
    assert_eq!(plain.has_aggregates, Some(false));
    // Handed back with its records still in it: they must not leak.
    let mixed = reader.next_batch_into(plain.records).await.unwrap();
    assert_eq!(seqs(&mixed), ["3", "4"]);
    assert_eq!(mixed.has_aggregates, Some(true));
}

/// Throttled on every call: the reader gives up after `max_retries` and
/// returns a retryable `Throttled`.
#[tokio::test(start_paused = true)]
async fn persistent_throttling_gives_up_with_throttled() {
    let get_records = mock!(Client::get_records)
        .sequence()
        .error(|| {
            GetRecordsError::ProvisionedThroughputExceededException(
                ProvisionedThroughputExceededException::builder().build(),
            )
        })
        .repeatedly()
        .build();
    let it = iterator_rule("it-1");
    let source = KinesisSource::builder()
        .stream("orders")
        .client(client(RuleMode::MatchAny, &[&it, &get_records]))
        .max_retries(3)
        .build()
        .await
        .unwrap();
    let mut reader = source
        .open_reader(&shard(), StartingPosition::TrimHorizon)
        .await
        .unwrap();
    let err = reader.next_batch().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Throttled {
                service: "kinesis",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert_eq!(get_records.num_calls(), 4, "one call and three retries");
}

/// Persistent 5xx ends as a retryable `Unavailable`.
#[tokio::test(start_paused = true)]
async fn persistent_5xx_gives_up_with_unavailable() {
    let get_records = mock!(Client::get_records)
        .sequence()
        .http_status(502, None)
        .repeatedly()
        .build();
    let it = iterator_rule("it-1");
    let source = KinesisSource::builder()
        .stream("orders")
        .client(client(RuleMode::MatchAny, &[&it, &get_records]))
        .max_retries(2)
        .build()
        .await
        .unwrap();
    let mut reader = source
        .open_reader(&shard(), StartingPosition::TrimHorizon)
        .await
        .unwrap();
    let err = reader.next_batch().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Unavailable {
                service: "kinesis",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(get_records.num_calls(), 3);
}

/// A throttled `GetShardIterator` at open is retried too.
#[tokio::test(start_paused = true)]
async fn throttled_get_shard_iterator_is_retried() {
    let it = mock!(Client::get_shard_iterator)
        .sequence()
        .error(|| {
            GetShardIteratorError::ProvisionedThroughputExceededException(
                ProvisionedThroughputExceededException::builder().build(),
            )
        })
        .times(2)
        .output(|| {
            GetShardIteratorOutput::builder()
                .shard_iterator("it-1")
                .build()
        })
        .build();
    let get_records = mock!(Client::get_records)
        .match_requests(|r| r.shard_iterator() == Some("it-1"))
        .then_output(|| records_output(&["5"], Some("it-2")));
    let source = source(client(RuleMode::MatchAny, &[&it, &get_records])).await;
    let mut reader = source
        .open_reader(&shard(), StartingPosition::TrimHorizon)
        .await
        .unwrap();
    assert_eq!(it.num_calls(), 3);
    assert_eq!(seqs(&reader.next_batch().await.unwrap()), ["5"]);
}

/// An expired iterator after records 1 and 2 were delivered: the reader
/// asks for a new iterator AFTER_SEQUENCE_NUMBER 2 (not from where the
/// shard or the reader started) and carries on with record 3.
#[tokio::test(start_paused = true)]
async fn expired_iterator_reseeks_after_last_delivered() {
    let first = mock!(Client::get_records)
        .match_requests(|r| r.shard_iterator() == Some("it-1"))
        .then_output(|| records_output(&["1", "2"], Some("it-2")));
    let expired = mock!(Client::get_records)
        .match_requests(|r| r.shard_iterator() == Some("it-2"))
        .then_error(|| {
            GetRecordsError::ExpiredIteratorException(ExpiredIteratorException::builder().build())
        });
    let reseek = mock!(Client::get_shard_iterator)
        .match_requests(|r| {
            r.shard_iterator_type() == Some(&ShardIteratorType::AfterSequenceNumber)
                && r.starting_sequence_number() == Some("2")
        })
        .then_output(|| {
            GetShardIteratorOutput::builder()
                .shard_iterator("it-3")
                .build()
        });
    let resumed = mock!(Client::get_records)
        .match_requests(|r| r.shard_iterator() == Some("it-3"))
        .then_output(|| records_output(&["3"], Some("it-4")));
    let open = iterator_rule("it-1");
    let source = source(client(
        RuleMode::MatchAny,
        &[&open, &first, &expired, &reseek, &resumed],
    ))
    .await;
    let mut reader = source
        .open_reader(&shard(), StartingPosition::TrimHorizon)
        .await
        .unwrap();
    // This runtime is the test's thread alone, so a thread-local recorder
    // sees every metric the reader records.
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    assert_eq!(seqs(&reader.next_batch().await.unwrap()), ["1", "2"]);
    assert_eq!(seqs(&reader.next_batch().await.unwrap()), ["3"]);
    // The expiry is counted against its shard and stream, as the reader's
    // other per-shard series are.
    let expiries: Vec<Vec<(String, String)>> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == kcl_core::engine::metric::KINESIS_EXPIRED_ITERATORS)
        .map(|(key, ..)| {
            let mut labels: Vec<(String, String)> = key
                .key()
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            labels.sort();
            labels
        })
        .collect();
    assert_eq!(
        expiries,
        [vec![
            ("shard".to_owned(), "shardId-000000000000".to_owned()),
            ("stream".to_owned(), "orders".to_owned()),
        ]]
    );
    assert_eq!(open.num_calls(), 1, "never back to TRIM_HORIZON");
    assert_eq!(expired.num_calls(), 1);
    assert_eq!(reseek.num_calls(), 1);
}

/// An iterator that expires before anything was delivered re-seeks to the
/// position the reader was opened at.
#[tokio::test(start_paused = true)]
async fn expired_iterator_before_any_record_reseeks_to_opening_position() {
    let open = mock!(Client::get_shard_iterator)
        .match_requests(|r| {
            r.shard_iterator_type() == Some(&ShardIteratorType::AtSequenceNumber)
                && r.starting_sequence_number() == Some("40")
        })
        .then_output(|| {
            GetShardIteratorOutput::builder()
                .shard_iterator("it-a")
                .build()
        });
    let get_records = mock!(Client::get_records)
        .sequence()
        .error(|| {
            GetRecordsError::ExpiredIteratorException(ExpiredIteratorException::builder().build())
        })
        .output(|| records_output(&["40", "41"], Some("it-b")))
        .build();
    let source = source(client(RuleMode::MatchAny, &[&open, &get_records])).await;
    let mut reader = source
        .open_reader(
            &shard(),
            StartingPosition::AtSequenceNumber("40".parse().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(seqs(&reader.next_batch().await.unwrap()), ["40", "41"]);
    assert_eq!(open.num_calls(), 2);
}

/// Resource not found is `NotFound` at once, without retries.
#[tokio::test(start_paused = true)]
async fn resource_not_found_is_not_found_without_retry() {
    let get_records = mock!(Client::get_records)
        .sequence()
        .error(|| {
            GetRecordsError::ResourceNotFoundException(
                ResourceNotFoundException::builder()
                    .message("no stream")
                    .build(),
            )
        })
        .repeatedly()
        .build();
    let it = iterator_rule("it-1");
    let source = source(client(RuleMode::MatchAny, &[&it, &get_records])).await;
    let mut reader = source
        .open_reader(&shard(), StartingPosition::TrimHorizon)
        .await
        .unwrap();
    let err = reader.next_batch().await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert!(!err.is_retryable());
    assert_eq!(get_records.num_calls(), 1);

    let missing = mock!(Client::get_shard_iterator)
        .sequence()
        .error(|| {
            GetShardIteratorError::ResourceNotFoundException(
                ResourceNotFoundException::builder().build(),
            )
        })
        .repeatedly()
        .build();
    let source = source_from(&[&missing]).await;
    let err = source
        .open_reader(&shard(), StartingPosition::Latest)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}

async fn source_from(rules: &[&Rule]) -> KinesisSource {
    source(client(RuleMode::MatchAny, rules)).await
}

fn range(start: u128, end: u128) -> HashKeyRange {
    HashKeyRange::builder()
        .starting_hash_key(start.to_string())
        .ending_hash_key(end.to_string())
        .build()
        .unwrap()
}

/// No next iterator plus `ChildShards`: the last batch carries the children
/// as the response names them, and `ListShards` is not needed.
#[tokio::test(start_paused = true)]
async fn shard_end_from_child_shards() {
    let get_records = mock!(Client::get_records).then_output(|| {
        GetRecordsOutput::builder()
            .records(record("9"))
            .millis_behind_latest(0)
            .child_shards(
                ChildShard::builder()
                    .shard_id("shardId-000000000001")
                    .parent_shards("shardId-000000000000")
                    .hash_key_range(range(0, 10))
                    .build()
                    .unwrap(),
            )
            .child_shards(
                ChildShard::builder()
                    .shard_id("shardId-000000000002")
                    .parent_shards("shardId-000000000000")
                    .hash_key_range(range(11, u128::MAX))
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    });
    let list = mock!(Client::list_shards).then_output(|| ListShardsOutput::builder().build());
    let it = iterator_rule("it-1");
    let source = source_from(&[&it, &get_records, &list]).await;
    let mut reader = source
        .open_reader(&shard(), StartingPosition::TrimHorizon)
        .await
        .unwrap();
    let batch = reader.next_batch().await.unwrap();
    assert_eq!(seqs(&batch), ["9"]);
    let children = batch.shard_end.expect("shard end");
    let ids: Vec<_> = children.iter().map(|c| c.shard_id.to_string()).collect();
    assert_eq!(ids, ["shardId-000000000001", "shardId-000000000002"]);
    assert_eq!(children[1].hash_key_range.starting_hash_key, 11);
    assert_eq!(children[0].parent_shard_ids, vec![shard()]);
    assert_eq!(list.num_calls(), 0);
    assert!(reader.next_batch().await.is_err(), "finished");
}

fn shard_desc(id: &str, parent: Option<&str>, adjacent: Option<&str>) -> Shard {
    Shard::builder()
        .shard_id(id)
        .set_parent_shard_id(parent.map(str::to_owned))
        .set_adjacent_parent_shard_id(adjacent.map(str::to_owned))
        .hash_key_range(range(0, u128::MAX))
        .sequence_number_range(
            SequenceNumberRange::builder()
                .starting_sequence_number("1")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

/// No next iterator and no `ChildShards` (as some emulators answer): the
/// children come from `ListShards` lineage, read across two pages, and a
/// merge child lists both parents.
#[tokio::test(start_paused = true)]
async fn shard_end_from_list_shards_lineage() {
    let get_records = mock!(Client::get_records).then_output(|| records_output(&[], None));
    let page1 = mock!(Client::list_shards)
        .match_requests(|r| r.exclusive_start_shard_id().is_none())
        .then_output(|| {
            ListShardsOutput::builder()
                .shards(shard_desc("shardId-000000000000", None, None))
                .shards(shard_desc("shardId-000000000001", None, None))
                .next_token("more")
                .build()
        });
    let page2 = mock!(Client::list_shards)
        .match_requests(|r| r.exclusive_start_shard_id() == Some("shardId-000000000001"))
        .then_output(|| {
            ListShardsOutput::builder()
                .shards(shard_desc(
                    "shardId-000000000002",
                    Some("shardId-000000000001"),
                    Some("shardId-000000000000"),
                ))
                .shards(shard_desc(
                    "shardId-000000000003",
                    Some("shardId-000000000009"),
                    None,
                ))
                .build()
        });
    let it = iterator_rule("it-1");
    let source = source_from(&[&it, &get_records, &page1, &page2]).await;
    let mut reader = source
        .open_reader(&shard(), StartingPosition::TrimHorizon)
        .await
        .unwrap();
    let batch = reader.next_batch().await.unwrap();
    let children = batch.shard_end.expect("shard end");
    assert_eq!(children.len(), 1, "{children:?}");
    assert_eq!(children[0].shard_id.as_str(), "shardId-000000000002");
    assert_eq!(
        children[0].parent_shard_ids,
        vec![
            ShardId::new("shardId-000000000001").unwrap(),
            ShardId::new("shardId-000000000000").unwrap()
        ]
    );
    assert_eq!(page1.num_calls(), 1);
    assert_eq!(page2.num_calls(), 1);
}

/// Pacing: after a non-empty batch the next call waits the minimum
/// interval (200 ms); after an empty, caught-up batch it idles (1 s).
/// `MillisBehindLatest` reaches the batch.
#[tokio::test(start_paused = true)]
async fn pacing_backlog_then_idle() {
    let get_records = mock!(Client::get_records)
        .sequence()
        .output(|| {
            GetRecordsOutput::builder()
                .records(record("1"))
                .millis_behind_latest(5_000)
                .next_shard_iterator("it")
                .build()
                .unwrap()
        })
        .output(|| records_output(&[], Some("it")))
        .output(|| records_output(&[], Some("it")))
        .build();
    let it = iterator_rule("it-1");
    let source = source_from(&[&it, &get_records]).await;
    let mut reader: Box<dyn ShardReader> = source
        .open_reader(&shard(), StartingPosition::TrimHorizon)
        .await
        .unwrap();
    let t0 = Instant::now();
    let b1 = reader.next_batch().await.unwrap();
    assert_eq!(b1.millis_behind_latest, Some(5_000));
    assert_eq!(t0.elapsed(), Duration::ZERO, "first call at once");
    let b2 = reader.next_batch().await.unwrap();
    assert!(b2.records.is_empty());
    assert_eq!(b2.millis_behind_latest, Some(0));
    let t2 = t0.elapsed();
    assert!(
        t2 >= Duration::from_millis(200) && t2 < Duration::from_millis(300),
        "{t2:?}"
    );
    reader.next_batch().await.unwrap();
    let t3 = t0.elapsed() - t2;
    assert!(
        t3 >= Duration::from_secs(1) && t3 < Duration::from_millis(1100),
        "{t3:?}"
    );
}

/// Bad settings are refused before anything runs.
#[tokio::test]
async fn builder_validates() {
    for bad in [0, -1, 10_001] {
        let err = KinesisSource::builder()
            .stream("s")
            .client(client(RuleMode::MatchAny, &[]))
            .max_records(bad)
            .build()
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err:?}");
    }
    let err = KinesisSource::builder()
        .client(client(RuleMode::MatchAny, &[]))
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)));
    let err = KinesisSource::builder()
        .stream("s")
        .client(client(RuleMode::MatchAny, &[]))
        .min_call_interval(Duration::from_secs(2))
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Config(_)),
        "idle shorter than min interval"
    );
    let ok = KinesisSource::builder()
        .stream("arn:aws:kinesis:us-east-1:123456789012:stream/s")
        .client(client(RuleMode::MatchAny, &[]))
        .max_records(10_000)
        .build()
        .await
        .unwrap();
    assert_eq!(ok.settings().max_records, 10_000);
}
