//! Error paths of the enhanced fan-out reader and the consumer
//! registration that the emulators cannot produce, on `aws-smithy-mocks`:
//! `ResourceInUseException` and `LimitExceededException` on subscribe
//! (backoff, then success or giving up), errors not worth retrying, an
//! exception inside the event stream, renewal AT the continuation with the
//! repeated record dropped, shard end from `ChildShards` with no
//! continuation, and `DescribeStreamConsumer` throttling and a
//! registration race. Event streams are real encoded frames, decoded by
//! the SDK. Tokio's clock is paused, so backoff is measured on virtual
//! time.

use std::time::Duration;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesis::operation::describe_stream_consumer::DescribeStreamConsumerError;
use aws_sdk_kinesis::operation::describe_stream_consumer::DescribeStreamConsumerOutput;
use aws_sdk_kinesis::operation::register_stream_consumer::RegisterStreamConsumerError;
use aws_sdk_kinesis::operation::subscribe_to_shard::SubscribeToShardError;
use aws_sdk_kinesis::types::error::{
    InvalidArgumentException, LimitExceededException, ResourceInUseException,
    ResourceNotFoundException,
};
use aws_sdk_kinesis::types::{ConsumerDescription, ConsumerStatus, ShardIteratorType};
use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, create_mock_http_client, mock};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use kcl_core::retrieval::kinesis::{FanOutSource, KinesisSource};
use kcl_core::retrieval::{ShardSource, StartingPosition};
use kcl_core::{Error, ShardId};
use tokio::time::Instant;

const STREAM_ARN: &str = "arn:aws:kinesis:us-east-1:000000000000:stream/orders";
const CONSUMER_ARN: &str = "arn:aws:kinesis:us-east-1:000000000000:stream/orders/consumer/app:1";

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

fn active_rule() -> Rule {
    mock!(Client::describe_stream_consumer).then_output(|| described(ConsumerStatus::Active))
}

fn described(status: ConsumerStatus) -> DescribeStreamConsumerOutput {
    DescribeStreamConsumerOutput::builder()
        .consumer_description(
            ConsumerDescription::builder()
                .consumer_name("app")
                .consumer_arn(CONSUMER_ARN)
                .consumer_status(status)
                .consumer_creation_timestamp(aws_smithy_types::DateTime::from_secs(0))
                .stream_arn(STREAM_ARN)
                .build()
                .unwrap(),
        )
        .build()
}

async fn fan_out(client: Client, max_retries: usize) -> FanOutSource {
    KinesisSource::builder()
        .stream(STREAM_ARN)
        .client(client)
        .build()
        .await
        .unwrap()
        .fan_out()
        .consumer_arn(CONSUMER_ARN)
        .retry_delays(Duration::from_millis(100), Duration::from_secs(2))
        .max_retries(max_retries)
        .build()
        .await
        .unwrap()
}

fn shard() -> ShardId {
    ShardId::new("shardId-000000000000").unwrap()
}

fn frame(headers: &[(&str, &str)], payload: &str) -> Vec<u8> {
    let mut message = Message::new(bytes::Bytes::copy_from_slice(payload.as_bytes()));
    for (name, value) in headers {
        message = message.add_header(Header::new(
            name.to_string(),
            HeaderValue::String(value.to_string().into()),
        ));
    }
    let mut out = Vec::new();
    write_message_to(&message, &mut out).unwrap();
    out
}

fn initial() -> Vec<u8> {
    frame(
        &[
            (":message-type", "event"),
            (":event-type", "initial-response"),
        ],
        "{}",
    )
}

/// One `SubscribeToShardEvent` holding records `seqs` (payload "data").
fn event(seqs: &[&str], continuation: Option<&str>, children: &str) -> Vec<u8> {
    let records: Vec<String> = seqs
        .iter()
        .map(|s| {
            format!(
                r#"{{"SequenceNumber":"{s}","Data":"ZGF0YQ==","PartitionKey":"k","ApproximateArrivalTimestamp":1700000000}}"#
            )
        })
        .collect();
    let continuation = continuation
        .map(|c| format!(r#","ContinuationSequenceNumber":"{c}""#))
        .unwrap_or_default();
    let payload = format!(
        r#"{{"Records":[{}],"MillisBehindLatest":42{continuation},"ChildShards":[{children}]}}"#,
        records.join(",")
    );
    frame(
        &[
            (":message-type", "event"),
            (":event-type", "SubscribeToShardEvent"),
            (":content-type", "application/json"),
        ],
        &payload,
    )
}

fn exception(kind: &str) -> Vec<u8> {
    frame(
        &[
            (":message-type", "exception"),
            (":exception-type", kind),
            (":content-type", "application/json"),
        ],
        r#"{"message":"injected"}"#,
    )
}

fn stream_response(frames: Vec<Vec<u8>>) -> HttpResponse {
    let body: Vec<u8> = frames.concat();
    let mut response = HttpResponse::new(StatusCode::try_from(200).unwrap(), SdkBody::from(body));
    response
        .headers_mut()
        .insert("content-type", "application/vnd.amazon.eventstream");
    response
}

fn in_use() -> SubscribeToShardError {
    SubscribeToShardError::ResourceInUseException(
        ResourceInUseException::builder()
            .message("another subscription")
            .build(),
    )
}

#[tokio::test(start_paused = true)]
async fn resource_in_use_and_limit_exceeded_are_retried_with_backoff() {
    let subscribe = mock!(Client::subscribe_to_shard)
        .sequence()
        .error(in_use)
        .times(2)
        .error(|| {
            SubscribeToShardError::LimitExceededException(
                LimitExceededException::builder().message("1/s").build(),
            )
        })
        .http_response(|| stream_response(vec![initial(), event(&["1", "2"], Some("2"), "")]))
        .build();
    let c = client(RuleMode::MatchAny, &[&active_rule(), &subscribe]);
    let source = fan_out(c, 5).await;
    let started = Instant::now();
    let mut reader = source
        .open_reader(&shard(), StartingPosition::TrimHorizon)
        .await
        .expect("retried until subscribed");
    let waited = started.elapsed();
    assert_eq!(subscribe.num_calls(), 4);
    // The first retry is at once; the next two back off by a jittered
    // 100 ms and 200 ms step: at least a tenth of each, at most the step.
    assert!(waited >= Duration::from_millis(30), "{waited:?}");
    assert!(waited <= Duration::from_millis(300), "{waited:?}");
    let batch = reader.next_batch().await.unwrap();
    let seqs: Vec<_> = batch
        .records
        .iter()
        .map(|r| r.sequence_number.to_string())
        .collect();
    assert_eq!(seqs, ["1", "2"]);
    assert_eq!(batch.millis_behind_latest, Some(42), "from the event");
    assert_eq!(&batch.records[0].data[..], b"data");
}

#[tokio::test(start_paused = true)]
async fn gives_up_after_max_retries_with_a_retryable_error() {
    let subscribe = mock!(Client::subscribe_to_shard)
        .sequence()
        .error(in_use)
        .times(10)
        .build();
    let c = client(RuleMode::MatchAny, &[&active_rule(), &subscribe]);
    let source = fan_out(c, 3).await;
    let err = source
        .open_reader(&shard(), StartingPosition::TrimHorizon)
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert_eq!(subscribe.num_calls(), 4, "one call and three retries");
}

#[tokio::test(start_paused = true)]
async fn errors_not_worth_retrying_are_returned_at_once() {
    let subscribe = mock!(Client::subscribe_to_shard)
        .sequence()
        .error(|| {
            SubscribeToShardError::InvalidArgumentException(
                InvalidArgumentException::builder().message("bad").build(),
            )
        })
        .error(|| {
            SubscribeToShardError::ResourceNotFoundException(
                ResourceNotFoundException::builder()
                    .message("no shard")
                    .build(),
            )
        })
        .build();
    let c = client(RuleMode::MatchAny, &[&active_rule(), &subscribe]);
    let source = fan_out(c, 5).await;
    let err = source
        .open_reader(&shard(), StartingPosition::TrimHorizon)
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "{err:?}");
    let err = source
        .open_reader(&shard(), StartingPosition::TrimHorizon)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert_eq!(subscribe.num_calls(), 2);
}

/// kinesis-mock (and the Kinesis docs' wording) make the continuation the
/// last record's own number: a resubscription AT it sends that record
/// again, and the reader drops it.
#[tokio::test(start_paused = true)]
async fn renewal_is_at_the_continuation_without_a_repeat() {
    let first = mock!(Client::subscribe_to_shard)
        .match_requests(|r| {
            r.starting_position().map(|p| p.r#type()) == Some(&ShardIteratorType::TrimHorizon)
        })
        .then_http_response(|| stream_response(vec![initial(), event(&["1", "2"], Some("2"), "")]));
    let second = mock!(Client::subscribe_to_shard)
        .match_requests(|r| {
            r.starting_position().is_some_and(|p| {
                p.r#type() == &ShardIteratorType::AtSequenceNumber
                    && p.sequence_number() == Some("2")
            })
        })
        .then_http_response(|| stream_response(vec![initial(), event(&["2", "3"], Some("3"), "")]));
    let c = client(RuleMode::MatchAny, &[&active_rule(), &first, &second]);
    let source = fan_out(c, 5).await;
    let mut reader = source
        .open_reader(&shard(), StartingPosition::TrimHorizon)
        .await
        .unwrap();
    let a = reader.next_batch().await.unwrap();
    assert_eq!(a.has_aggregates, Some(false), "plain payloads, checked");
    // The stream ends after one event: the reader renews by itself. The
    // second batch is read into the first's vector, records left in it.
    let a_seqs: Vec<_> = a
        .records
        .iter()
        .map(|r| r.sequence_number.to_string())
        .collect();
    let b = reader.next_batch_into(a.records).await.unwrap();
    let seqs = |batch: &kcl_core::retrieval::RecordBatch| {
        batch
            .records
            .iter()
            .map(|r| r.sequence_number.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(a_seqs, ["1", "2"]);
    assert_eq!(seqs(&b), ["3"], "record 2 is not delivered twice");
    assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn an_exception_inside_the_stream_resubscribes_from_the_continuation() {
    let first = mock!(Client::subscribe_to_shard)
        .match_requests(|r| {
            r.starting_position().map(|p| p.r#type()) == Some(&ShardIteratorType::TrimHorizon)
        })
        .then_http_response(|| {
            stream_response(vec![
                initial(),
                event(&["1"], Some("1"), ""),
                exception("InternalFailureException"),
            ])
        });
    let second = mock!(Client::subscribe_to_shard)
        .match_requests(|r| r.starting_position().and_then(|p| p.sequence_number()) == Some("1"))
        .then_http_response(|| stream_response(vec![initial(), event(&["1", "2"], Some("2"), "")]));
    let c = client(RuleMode::MatchAny, &[&active_rule(), &first, &second]);
    let source = fan_out(c, 5).await;
    let mut reader = source
        .open_reader(&shard(), StartingPosition::TrimHorizon)
        .await
        .unwrap();
    let mut seqs = Vec::new();
    while seqs.len() < 2 {
        let batch = reader.next_batch().await.unwrap();
        seqs.extend(batch.records.iter().map(|r| r.sequence_number.to_string()));
    }
    assert_eq!(seqs, ["1", "2"]);
    assert_eq!(second.num_calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn shard_end_from_child_shards_without_a_continuation() {
    let children = r#"{"ShardId":"shardId-000000000001","ParentShards":["shardId-000000000000"],"HashKeyRange":{"StartingHashKey":"0","EndingHashKey":"100"}},{"ShardId":"shardId-000000000002","ParentShards":["shardId-000000000000"],"HashKeyRange":{"StartingHashKey":"101","EndingHashKey":"340282366920938463463374607431768211455"}}"#;
    let subscribe = mock!(Client::subscribe_to_shard).then_http_response(move || {
        stream_response(vec![initial(), event(&["7"], None, children)])
    });
    let c = client(RuleMode::MatchAny, &[&active_rule(), &subscribe]);
    let source = fan_out(c, 5).await;
    let mut reader = source
        .open_reader(&shard(), StartingPosition::TrimHorizon)
        .await
        .unwrap();
    let batch = reader.next_batch().await.unwrap();
    assert_eq!(batch.records.len(), 1, "the last records come with the end");
    let children = batch.shard_end.expect("shard end");
    let ids: Vec<_> = children.iter().map(|c| c.shard_id.to_string()).collect();
    assert_eq!(ids, ["shardId-000000000001", "shardId-000000000002"]);
    assert_eq!(children[1].hash_key_range.starting_hash_key, 101);
    assert!(reader.next_batch().await.is_err(), "finished");
}

#[tokio::test(start_paused = true)]
async fn a_malformed_sequence_number_is_an_error_not_a_panic() {
    let subscribe = mock!(Client::subscribe_to_shard)
        .then_http_response(|| stream_response(vec![initial(), event(&["12x"], Some("12"), "")]));
    let c = client(RuleMode::MatchAny, &[&active_rule(), &subscribe]);
    let source = fan_out(c, 5).await;
    let mut reader = source
        .open_reader(&shard(), StartingPosition::TrimHorizon)
        .await
        .unwrap();
    assert!(reader.next_batch().await.is_err());
}

/// Registration by name: DescribeStreamConsumer throttled twice (paced
/// backoff), absent, RegisterStreamConsumer loses a race to a peer
/// (ResourceInUse) and the peer's consumer is used once ACTIVE.
#[tokio::test(start_paused = true)]
async fn registration_backs_off_on_throttling_and_joins_a_racing_peer() {
    let describe = mock!(Client::describe_stream_consumer)
        .sequence()
        .error(|| {
            DescribeStreamConsumerError::LimitExceededException(
                LimitExceededException::builder()
                    .message("slow down")
                    .build(),
            )
        })
        .times(2)
        .error(|| {
            DescribeStreamConsumerError::ResourceNotFoundException(
                ResourceNotFoundException::builder()
                    .message("absent")
                    .build(),
            )
        })
        .output(|| described(ConsumerStatus::Creating))
        .output(|| described(ConsumerStatus::Creating))
        .output(|| described(ConsumerStatus::Active))
        .build();
    let register = mock!(Client::register_stream_consumer).then_error(|| {
        RegisterStreamConsumerError::ResourceInUseException(
            ResourceInUseException::builder().message("exists").build(),
        )
    });
    let c = client(RuleMode::MatchAny, &[&describe, &register]);
    let started = Instant::now();
    let source = KinesisSource::builder()
        .stream(STREAM_ARN)
        .client(c)
        .build()
        .await
        .unwrap()
        .fan_out()
        .application("app")
        .describe_interval(Duration::from_secs(1))
        .build()
        .await
        .expect("joined the peer's consumer");
    assert_eq!(source.consumer_arn(), CONSUMER_ARN);
    assert_eq!(register.num_calls(), 1);
    assert_eq!(describe.num_calls(), 6);
    // Two throttles and one CREATING answer (the other came from the
    // lookup after the race), each followed by a describe interval.
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(3), "{waited:?}");
}

/// Subscriptions that end before their first event are counted as
/// failures: backed off, and given up after `max_retries`, not a tight
/// loop.
#[tokio::test(start_paused = true)]
async fn subscriptions_ending_before_any_event_back_off_and_give_up() {
    let subscribe = mock!(Client::subscribe_to_shard)
        .match_requests(|r| {
            r.starting_position().map(|p| p.r#type()) == Some(&ShardIteratorType::TrimHorizon)
        })
        .then_http_response(|| stream_response(vec![initial()]));
    let c = client(RuleMode::MatchAny, &[&active_rule(), &subscribe]);
    let source = fan_out(c, 3).await;
    let mut reader = source
        .open_reader(&shard(), StartingPosition::TrimHorizon)
        .await
        .unwrap();
    let started = Instant::now();
    let err = reader.next_batch().await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert_eq!(subscribe.num_calls(), 4, "the first and three more");
    assert!(
        started.elapsed() >= Duration::from_millis(30),
        "{:?}",
        started.elapsed()
    );
}
