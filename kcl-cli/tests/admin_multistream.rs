//! `kcl leases` on a multi-stream application (lease keys
//! `account:name:epoch:shardId`), as the real binary on real Redis: each
//! lease names its stream (JSON `stream`, a `STREAM` column with raw shard
//! ids in the table), and `--stream NAME` gives the lag of that stream's
//! leases only, read from the in-process emulator by their raw shard ids.

mod support;

use std::process::{Command, Output, Stdio};

use kcl_cli::store_url::{DynamoSettings, lease_store_from_url};
use kcl_core::stream::StreamIdentifier;
use kcl_core::{ExtendedSequenceNumber as Esn, Lease, ShardId};
use serde_json::Value;
use support::{EmbeddedKinesis, fast_options};

async fn kcl(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_kcl"))
            .args(&args)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env_remove("KCL_STORE_URL")
            .env_remove("KCL_APPLICATION")
            .env_remove("AWS_ENDPOINT_URL")
            .stdin(Stdio::null())
            .output()
            .expect("run kcl")
    })
    .await
    .unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "kcl failed ({:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_of_a_multi_stream_application_name_their_stream() {
    let Some(url) = support::server_from_env("KCL_TEST_REDIS_URL") else {
        return;
    };
    let app = support::unique("adm-multi");
    let store = lease_store_from_url(&url, &app, DynamoSettings::default())
        .await
        .expect("open the store");
    let kinesis = EmbeddedKinesis::start(fast_options()).await.unwrap();
    let client = support::client(&kinesis.endpoint);
    let lagging = support::unique("lagging");
    support::create_stream(&client, &lagging, 1).await;
    support::Ledger::default().put(&client, &lagging, 7).await;

    let ours = StreamIdentifier::new("123456789012", &lagging, 1_700_000_000).unwrap();
    let other = StreamIdentifier::new("123456789012", "other-stream", 1_700_000_001).unwrap();
    let raw = |n: u32| ShardId::new(format!("shardId-{n:012}")).unwrap();
    let leases = [
        Lease::new(ours.lease_key(&raw(0)).unwrap(), Esn::TrimHorizon),
        Lease::new(other.lease_key(&raw(0)).unwrap(), Esn::TrimHorizon),
        Lease::new(other.lease_key(&raw(1)).unwrap(), Esn::TrimHorizon)
            .with_parents([other.lease_key(&raw(0)).unwrap()]),
    ];
    for lease in &leases {
        store.create_lease_if_absent(lease).await.unwrap();
    }
    let base = |rest: &[&str]| {
        let mut v: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
        v.extend(["--store".into(), url.clone(), "--app".into(), app.clone()]);
        v
    };

    let report: Value =
        serde_json::from_str(&stdout(&kcl(base(&["leases", "--output", "json"])).await)).unwrap();
    let streams: Vec<(String, String)> = report["leases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["shard"].as_str().unwrap().to_string(),
                l["stream"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(streams.len(), 3, "{report}");
    for (key, stream) in &streams {
        assert_eq!(
            key,
            &format!("{stream}:{}", &key[stream.len() + 1..]),
            "{report}"
        );
    }

    let table = stdout(&kcl(base(&["leases"])).await);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("STREAM "), "{table}");
    assert!(
        lines.iter().any(|l| l.starts_with(&format!("{other} "))
            && l.contains(" shardId-000000000001 ")
            && l.contains(" shardId-000000000000 ")),
        "raw shard and parent ids beside the stream:\n{table}"
    );
    assert!(!table.contains(&format!("{other}:shardId")), "{table}");

    let mut with_lag = base(&["leases", "--output", "json", "--stream", &lagging]);
    with_lag.extend(["--endpoint".into(), kinesis.endpoint.clone()]);
    let report: Value = serde_json::from_str(&stdout(&kcl(with_lag).await)).unwrap();
    for lease in report["leases"].as_array().unwrap() {
        let of_ours = lease["stream"] == ours.to_string();
        assert_eq!(!lease["lag"].is_null(), of_ours, "{report}");
    }
    assert_eq!(report["total"]["records_behind"], 7, "{report}");
}
