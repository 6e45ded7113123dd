//! The Kinesis readers' per-shard metrics (`kcl_kinesis_*` for polling,
//! `kcl_fanout_*` for enhanced fan-out) carry `stream` beside `shard`, so
//! `shardId-000000000000` of two streams is two series: the stream's name,
//! or, once the source was asked its
//! [`stream_identifier`](kcl_core::retrieval::kinesis::KinesisSource::stream_identifier)
//! (as a multi-stream application does), the identifier
//! (`account:name:epoch`) the engine's own per-shard metrics carry. Against
//! the embedded `ferrokinesis`; one test, as the debugging recorder is
//! global.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kcl_core::ShardId;
use kcl_core::engine::metric;
use kcl_core::retrieval::kinesis::{FanOutSource, KinesisSource};
use kcl_core::retrieval::{ShardSource, StartingPosition};
use kcl_core::testkit::kinesis::{
    EmbeddedKinesis, client, create_stream, fast_options, put, unique_stream,
};
use metrics_util::debugging::{DebuggingRecorder, Snapshotter};

/// The `stream` label of every series of `name` whose `shard` is `shard`
/// (a series with no `stream` label shows as `"-"`).
fn streams_of(snapshotter: &Snapshotter, name: &str, shard: &str) -> BTreeSet<String> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, _, _, _)| key.key().name() == name)
        .map(|(key, _, _, _)| {
            key.key()
                .labels()
                .map(|l| (l.key().to_string(), l.value().to_string()))
                .collect::<BTreeMap<String, String>>()
        })
        .filter(|labels| labels.get("shard").map(String::as_str) == Some(shard))
        .map(|labels| labels.get("stream").cloned().unwrap_or_else(|| "-".into()))
        .collect()
}

async fn read_three(source: &dyn ShardSource, shard: &ShardId) {
    let mut reader = source
        .open_reader(shard, StartingPosition::TrimHorizon)
        .await
        .expect("open reader");
    let mut records = 0;
    while records < 3 {
        let batch = tokio::time::timeout(Duration::from_secs(20), reader.next_batch())
            .await
            .expect("three records within 20 s")
            .expect("next_batch");
        records += batch.records.len();
    }
    assert_eq!(records, 3);
}

/// A polling source on `stream`, with fast test settings.
async fn source(endpoint: &str, stream: &str) -> KinesisSource {
    KinesisSource::builder()
        .stream(stream)
        .client(client(endpoint))
        .min_call_interval(Duration::ZERO)
        .idle_time(Duration::from_millis(20))
        .build()
        .await
        .expect("source")
}

/// An enhanced fan-out source through a freshly registered consumer.
async fn fan_out(polling: KinesisSource) -> FanOutSource {
    polling
        .fan_out()
        .application(unique_stream("app"))
        .describe_interval(Duration::from_millis(50))
        .retry_delays(Duration::from_millis(20), Duration::from_millis(500))
        .build()
        .await
        .expect("fan-out source")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reader_metrics_carry_the_stream_so_equal_shard_ids_of_two_streams_are_two_series() {
    let debugging = DebuggingRecorder::new();
    let snapshotter = debugging.snapshotter();
    debugging.install().unwrap();
    let server = EmbeddedKinesis::start(fast_options())
        .await
        .expect("start ferrokinesis");
    let client = client(&server.endpoint);
    let (a, b) = (unique_stream("metrics-a"), unique_stream("metrics-b"));
    for stream in [&a, &b] {
        create_stream(&client, stream, 1).await;
        put(&client, stream, "r", 3).await;
    }
    let shard = ShardId::new("shardId-000000000000").unwrap();

    // Polling. Stream a's source knows its identifier (a multi-stream
    // application asks for it to build the stream's config), b's only its
    // name.
    let source_a = source(&server.endpoint, &a).await;
    let id_a = source_a.stream_identifier().await.expect("identifier");
    let source_b = source(&server.endpoint, &b).await;
    read_three(&source_a, &shard).await;
    read_three(&source_b, &shard).await;
    let polled = streams_of(
        &snapshotter,
        metric::KINESIS_GET_RECORDS_SECONDS,
        shard.as_str(),
    );
    assert_eq!(
        polled,
        BTreeSet::from([id_a.to_string(), b.clone()]),
        "one series per stream, labelled as the engine labels it"
    );

    // Enhanced fan-out: the same through each stream's subscription.
    for source in [
        fan_out(source(&server.endpoint, &a).await).await,
        fan_out(source(&server.endpoint, &b).await).await,
    ] {
        read_three(&source, &shard).await;
    }
    let subscribed = streams_of(&snapshotter, metric::FANOUT_SUBSCRIPTIONS, shard.as_str());
    assert_eq!(subscribed, BTreeSet::from([a.clone(), b.clone()]));
}
