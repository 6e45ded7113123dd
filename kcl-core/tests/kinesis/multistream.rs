//! Many streams through the real Kinesis retrieval: two emulators stand
//! for two accounts (kinesis-mock at `KCL_TEST_KINESIS_ENDPOINT`, which
//! accepts `StreamARN`, and an in-process ferrokinesis, which does not),
//! each behind a loopback relay that records which access key signed each
//! request. One worker reads a stream of each, the kinesis-mock one named
//! by ARN, each source built from its own `SdkConfig`
//! (endpoint, region, credentials), with their leases in one store: every
//! record of both streams is processed, each account saw only its own
//! key, and `stream_identifier` reads `account:name:epoch` from
//! `DescribeStreamSummary`.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_kinesis::config::{Credentials, Region};
use kcl_core::retrieval::kinesis::KinesisSource;
use kcl_core::stream::{MultiStreamSource, StreamArn, StreamConfig, StreamTracker};
use kcl_core::testkit::engine::Recorder;
use kcl_core::testkit::kinesis::{EmbeddedKinesis, fast_options};
use kcl_core::{LeaseStore, Worker};
use kcl_store_memory::MemoryStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::support;

/// A relay in front of `upstream` that records the access key id of every
/// SigV4-signed request it forwards (`Credential=<key>/...`).
async fn key_recording_relay(upstream: String) -> (String, Arc<Mutex<BTreeSet<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let keys = Arc::new(Mutex::new(BTreeSet::new()));
    let seen = Arc::clone(&keys);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(upstream.as_str()).await else {
                continue;
            };
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let (mut client_rx, mut client_tx) = client.into_split();
                let (mut server_rx, mut server_tx) = server.into_split();
                let up = async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut tail = Vec::new();
                    while let Ok(n) = client_rx.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        tail.extend_from_slice(&buf[..n]);
                        let text = String::from_utf8_lossy(&tail).into_owned();
                        for part in text.split("Credential=").skip(1) {
                            if let Some((key, _)) = part.split_once('/') {
                                seen.lock().unwrap().insert(key.to_string());
                            }
                        }
                        // Keep a little for a token split across reads.
                        let keep = tail.len().saturating_sub(128);
                        tail.drain(..keep);
                        if server_tx.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = server_tx.shutdown().await;
                };
                let down = async move {
                    let _ = tokio::io::copy(&mut server_rx, &mut client_tx).await;
                    let _ = client_tx.shutdown().await;
                };
                tokio::join!(up, down);
            });
        }
    });
    (endpoint, keys)
}

/// An account's configuration: its endpoint, a region, its own key.
fn account_config(endpoint: &str, key: &str) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_sdk_kinesis::config::SharedCredentialsProvider::new(
            Credentials::new(key, "secret-of-that-account", None, None, "kcl-tests"),
        ))
        .build()
}

async fn source(config: &SdkConfig, stream: &str) -> KinesisSource {
    KinesisSource::builder()
        .stream(stream)
        .sdk_config(config)
        .min_call_interval(Duration::ZERO)
        .idle_time(Duration::from_millis(20))
        .build()
        .await
        .expect("source")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_reads_streams_of_two_accounts_one_by_arn() {
    let Some(kinesis_mock) = kcl_core::testkit::server_from_env("KCL_TEST_KINESIS_ENDPOINT") else {
        return;
    };
    let second = EmbeddedKinesis::start(fast_options()).await.unwrap();
    let upstream = kinesis_mock
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let (first_endpoint, first_keys) = key_recording_relay(upstream).await;
    let (second_endpoint, second_keys) = key_recording_relay(second.addr.to_string()).await;

    let (orders, clicks) = (
        support::unique_stream("orders"),
        support::unique_stream("clicks"),
    );
    let first_client = support::client(&kinesis_mock);
    let second_client = support::client(&second.endpoint);
    support::create_stream(&first_client, &orders, 2).await;
    support::create_stream(&second_client, &clicks, 3).await;
    let orders_arn = first_client
        .describe_stream_summary()
        .stream_name(&orders)
        .send()
        .await
        .unwrap()
        .stream_description_summary()
        .unwrap()
        .stream_arn()
        .to_string();
    let arn = StreamArn::parse(&orders_arn).expect("the emulator's ARN parses");
    let put_orders = support::put(&first_client, &orders, "order", 60).await;
    let put_clicks = support::put(&second_client, &clicks, "click", 60).await;

    // Stream A by ARN with account A's config; stream B by name with B's.
    let by_arn = source(
        &account_config(&first_endpoint, "AKIDACCOUNTA"),
        &orders_arn,
    )
    .await;
    let by_name = source(&account_config(&second_endpoint, "AKIDACCOUNTB"), &clicks).await;
    let orders_id = by_arn.stream_identifier().await.unwrap();
    let clicks_id = by_name.stream_identifier().await.unwrap();
    assert_eq!(orders_id.stream_name(), orders);
    assert_eq!(orders_id.account_id(), arn.account_id());
    assert!(orders_id.creation_epoch() > 1_600_000_000, "{orders_id}");
    assert_eq!(clicks_id.stream_name(), clicks);

    let tracker = StreamTracker::fixed([
        StreamConfig::new(orders_id.clone(), Arc::new(by_arn)),
        StreamConfig::new(clicks_id.clone(), Arc::new(by_name)),
    ]);
    let store = Arc::new(
        MemoryStore::builder()
            .application("two-accounts")
            .build()
            .unwrap(),
    );
    let recorder = Recorder::new();
    let worker = Worker::builder()
        .worker_id("w")
        .lease_store(store.clone())
        .source(Arc::new(MultiStreamSource::new(tracker)))
        .processor(recorder.factory("w"))
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(worker.run(cancel.clone()));
    let want: HashSet<String> = (0..60)
        .flat_map(|i| [format!("order-{i}"), format!("click-{i}")])
        .collect();
    let start = std::time::Instant::now();
    loop {
        let got: HashSet<String> = recorder
            .processed()
            .iter()
            .map(|p| String::from_utf8_lossy(&p.data).into_owned())
            .collect();
        if want.is_subset(&got) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{} of {} records processed",
            want.intersection(&got).count(),
            want.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cancel.cancel();
    run.await.unwrap().unwrap();
    assert_eq!((put_orders.len(), put_clicks.len()), (60, 60));

    let leases = store.list_leases().await.unwrap();
    assert_eq!(leases.len(), 5);
    let prefixes = [
        format!("{orders_id}:shardId-"),
        format!("{clicks_id}:shardId-"),
    ];
    assert!(
        leases
            .iter()
            .all(|l| prefixes.iter().any(|p| l.shard_id.as_str().starts_with(p))),
        "{:?}",
        leases
            .iter()
            .map(|l| l.shard_id.to_string())
            .collect::<Vec<_>>()
    );
    assert_eq!(
        *first_keys.lock().unwrap(),
        BTreeSet::from(["AKIDACCOUNTA".to_string()])
    );
    assert_eq!(
        *second_keys.lock().unwrap(),
        BTreeSet::from(["AKIDACCOUNTB".to_string()])
    );
    support::delete_stream(&first_client, &orders).await;
    println!(
        "two accounts: {} records in {:?}; keys seen {:?} / {:?}",
        recorder.distinct(),
        start.elapsed(),
        first_keys.lock().unwrap(),
        second_keys.lock().unwrap()
    );
}

#[tokio::test]
async fn a_malformed_arn_is_a_config_error_at_build() {
    let err = KinesisSource::builder()
        .stream("arn:aws:kinesis:us-east-1:123456789012:table/nope")
        .region("us-east-1")
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, kcl_core::Error::Config(_)), "{err}");
}
