//! The admin subcommands (`kcl leases`, `workers`, `checkpoint reset`,
//! `app delete`, `fanout deregister`) run as the real `kcl` binary against
//! the real stores (Redis, Postgres, DynamoDB on moto) and, for lag and
//! position checks, the in-process Kinesis emulator.

mod support;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use kcl_cli::store_url::{DynamoSettings, lease_store_from_url};
use kcl_core::{
    ExtendedSequenceNumber as Esn, Lease, LeaseStore, PendingCheckpoint, ShardId, WorkerId,
};
use serde_json::Value;
use support::{EmbeddedKinesis, fast_options};

/// One store under test: the `--store` URL and the application.
struct Target {
    url: String,
    app: String,
    store: Arc<dyn LeaseStore>,
}

#[derive(Clone, Copy, Debug)]
enum Backend {
    Redis,
    Postgres,
    Dynamo,
}

impl Backend {
    /// A fresh application on this store (None: skipped, server unset).
    async fn target(self) -> Option<Target> {
        let app = support::unique("adm");
        let mut dynamo = DynamoSettings::default();
        let url = match self {
            Backend::Redis => support::server_from_env("KCL_TEST_REDIS_URL")?,
            Backend::Postgres => support::server_from_env("KCL_TEST_POSTGRES_URL")?,
            Backend::Dynamo => {
                let endpoint = support::server_from_env("KCL_TEST_DYNAMO_ENDPOINT")?;
                dynamo.client = Some(dynamo_client(&endpoint));
                format!("dynamodb://{app}?region=us-east-1&endpoint={endpoint}")
            }
        };
        let store = lease_store_from_url(&url, &app, dynamo)
            .await
            .expect("open the store");
        Some(Target { url, app, store })
    }
}

/// A DynamoDB client for moto: dummy credentials, `us-east-1`.
fn dynamo_client(endpoint: &str) -> aws_sdk_dynamodb::Client {
    use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
    let conf = aws_sdk_dynamodb::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "kcl-tests"))
        .endpoint_url(endpoint)
        .build();
    aws_sdk_dynamodb::Client::from_conf(conf)
}

/// Run `kcl ARGS` (with dummy AWS credentials), feeding `stdin`.
async fn kcl(args: Vec<String>, stdin: Option<&str>) -> Output {
    let stdin = stdin.map(str::to_string);
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kcl"))
            .args(&args)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env_remove("KCL_STORE_URL")
            .env_remove("KCL_APPLICATION")
            .env_remove("AWS_ENDPOINT_URL")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kcl");
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            let _ = input.write_all(text.as_bytes());
        }
        drop(input);
        child.wait_with_output().expect("kcl output")
    })
    .await
    .unwrap()
}

fn args(target: &Target, rest: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
    v.extend([
        "--store".into(),
        target.url.clone(),
        "--app".into(),
        target.app.clone(),
    ]);
    v
}

/// The JSON a successful command printed.
fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "kcl failed ({:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn shard(s: &str) -> ShardId {
    ShardId::new(s).unwrap()
}

fn worker(s: &str) -> WorkerId {
    WorkerId::new(s).unwrap()
}

fn seq(n: u128) -> Esn {
    Esn::at(n.into(), 0)
}

/// Four leases: `s0` held by `w1` at 100/2 with a pending 150; `s1`
/// finished; `s2` a child of `s1` (open); `s3` a child of `s0` (waiting).
/// Returns the lease `w1` holds.
async fn seed(store: &dyn LeaseStore) -> Lease {
    for lease in [
        Lease::new(shard("s0"), Esn::TrimHorizon),
        Lease::new(shard("s1"), Esn::ShardEnd),
        Lease::new(shard("s2"), Esn::TrimHorizon).with_parents([shard("s1")]),
        Lease::new(shard("s3"), Esn::Latest).with_parents([shard("s0")]),
    ] {
        assert!(store.create_lease_if_absent(&lease).await.unwrap());
    }
    let observed = store.get_lease(&shard("s0")).await.unwrap().unwrap();
    let held = store.take_lease(&observed, &worker("w1")).await.unwrap();
    store
        .update_checkpoint(&held, &Esn::at(100u128.into(), 2))
        .await
        .unwrap();
    store
        .prepare_checkpoint(
            &held,
            &PendingCheckpoint {
                sequence: seq(150),
                state: None,
            },
        )
        .await
        .unwrap();
    store.get_lease(&shard("s0")).await.unwrap().unwrap()
}

fn lease_json<'a>(report: &'a Value, shard: &str) -> &'a Value {
    report["leases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["shard"] == shard)
        .unwrap_or_else(|| panic!("no lease {shard} in {report}"))
}

async fn leases_lists_every_lease(backend: Backend) {
    let Some(t) = backend.target().await else {
        return;
    };
    seed(&*t.store).await;
    let report = json(&kcl(args(&t, &["leases", "--output", "json"]), None).await);
    assert_eq!(report["application"], t.app);
    assert_eq!(report["leases"].as_array().unwrap().len(), 4, "{report}");
    let s0 = lease_json(&report, "s0");
    assert_eq!(s0["owner"], "w1");
    assert_eq!(s0["checkpoint"]["sequence"], "100");
    assert_eq!(s0["checkpoint"]["sub_sequence"], 2);
    assert_eq!(s0["checkpoint"]["sentinel"], false);
    assert_eq!(s0["pending_checkpoint"]["sequence"], "150");
    assert_eq!(s0["state"], "open");
    assert_eq!(lease_json(&report, "s1")["state"], "finished");
    assert_eq!(
        lease_json(&report, "s1")["checkpoint"]["sequence"],
        "SHARD_END"
    );
    assert_eq!(lease_json(&report, "s1")["checkpoint"]["sentinel"], true);
    assert_eq!(lease_json(&report, "s2")["state"], "open");
    assert_eq!(
        lease_json(&report, "s2")["parents"],
        serde_json::json!(["s1"])
    );
    let s3 = lease_json(&report, "s3");
    assert_eq!(s3["state"], "waiting on parents");
    assert_eq!(s3["owner"], Value::Null);
    assert_eq!(s3["checkpoint"]["sequence"], "LATEST");
    assert_eq!(report["total"], Value::Null, "no lag without --stream");
}

async fn release_fences_the_owner(backend: Backend) {
    let Some(t) = backend.target().await else {
        return;
    };
    let held = seed(&*t.store).await;
    let out = kcl(args(&t, &["leases", "release", "--shard", "s0"]), None).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("was held by w1"));
    let now = t.store.get_lease(&shard("s0")).await.unwrap().unwrap();
    assert_eq!(now.owner, None);
    assert!(t.store.renew_lease(&held).await.unwrap_err().is_conflict());
    // A lease that does not exist: not found.
    let out = kcl(args(&t, &["leases", "release", "--shard", "nope"]), None).await;
    assert_eq!(out.status.code(), Some(4));
}

async fn assign_requests_a_handoff(backend: Backend) {
    let Some(t) = backend.target().await else {
        return;
    };
    let held = seed(&*t.store).await;
    let out = kcl(
        args(&t, &["leases", "assign", "--shard", "s0", "--worker", "w2"]),
        None,
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The owner learns of it on its next renew, and still holds the lease.
    let renewed = t.store.renew_lease(&held).await.unwrap();
    assert_eq!(renewed.handoff_to, Some(worker("w2")));
    assert_eq!(renewed.owner, Some(worker("w1")));
    // A free lease cannot be handed off: refused.
    let out = kcl(
        args(&t, &["leases", "assign", "--shard", "s2", "--worker", "w2"]),
        None,
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn workers_tells_live_from_stale(backend: Backend) {
    let Some(t) = backend.target().await else {
        return;
    };
    seed(&*t.store).await;
    t.store.heartbeat(&worker("w-stale")).await.unwrap();
    let store = t.store.clone();
    let beat = tokio::spawn(async move {
        loop {
            store.heartbeat(&worker("w1")).await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let report = json(
        &kcl(
            args(&t, &["workers", "--sample", "1500ms", "--output", "json"]),
            None,
        )
        .await,
    );
    beat.abort();
    let find = |id: &str| {
        report["workers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["worker"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no worker {id} in {report}"))
    };
    let w1 = find("w1");
    assert_eq!(w1["status"], "live");
    assert_eq!(w1["leases"], serde_json::json!(["s0"]));
    let age = w1["heartbeat_age_ms"].as_u64().unwrap();
    assert!(age < 1500, "age {age} ms");
    let stale = find("w-stale");
    assert_eq!(stale["status"], "stale");
    assert_eq!(stale["heartbeat_age_ms"], Value::Null);
    assert_eq!(report["free_leases"], serde_json::json!(["s1", "s2", "s3"]));
}

async fn reset_is_a_dry_run_until_execute(backend: Backend) {
    let Some(t) = backend.target().await else {
        return;
    };
    let held = seed(&*t.store).await;
    let before = t.store.list_leases().await.unwrap();
    let plan = json(
        &kcl(
            args(
                &t,
                &[
                    "checkpoint",
                    "reset",
                    "--to",
                    "trim-horizon",
                    "--shard",
                    "s0",
                    "--output",
                    "json",
                ],
            ),
            None,
        )
        .await,
    );
    assert_eq!(plan["executed"], false);
    assert_eq!(plan["resets"][0]["from"]["sequence"], "100");
    assert_eq!(plan["resets"][0]["to"]["sequence"], "TRIM_HORIZON");
    let mut after = t.store.list_leases().await.unwrap();
    let mut before = before;
    before.sort_by(|a, b| a.shard_id.cmp(&b.shard_id));
    after.sort_by(|a, b| a.shard_id.cmp(&b.shard_id));
    assert_eq!(before, after, "a dry run changed the store");

    let done = json(
        &kcl(
            args(
                &t,
                &[
                    "checkpoint",
                    "reset",
                    "--to",
                    "sequence:42",
                    "--all",
                    "--execute",
                    "--output",
                    "json",
                ],
            ),
            None,
        )
        .await,
    );
    assert_eq!(done["executed"], true);
    assert_eq!(done["resets"].as_array().unwrap().len(), 4);
    for lease in t.store.list_leases().await.unwrap() {
        assert_eq!(lease.checkpoint, seq(42), "{lease:?}");
        assert_eq!(lease.owner, None);
        assert_eq!(lease.pending_checkpoint, None);
    }
    // The old owner is fenced out: its checkpoint fails.
    let err = t
        .store
        .update_checkpoint(&held, &seq(500))
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err}");
    // Neither --shard nor --all: a usage error, nothing done.
    let out = kcl(args(&t, &["checkpoint", "reset", "--to", "latest"]), None).await;
    assert_eq!(out.status.code(), Some(2));
}

async fn app_delete_asks_first(backend: Backend) {
    let Some(t) = backend.target().await else {
        return;
    };
    seed(&*t.store).await;
    t.store.heartbeat(&worker("w1")).await.unwrap();
    let out = kcl(args(&t, &["app", "delete"]), Some("something else\n")).await;
    assert_eq!(
        out.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(t.store.list_leases().await.unwrap().len(), 4);
    let answer = format!("{}\n", t.app);
    let out = kcl(args(&t, &["app", "delete"]), Some(&answer)).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(t.store.list_leases().await.unwrap().is_empty());
    assert!(t.store.list_workers().await.unwrap().is_empty());
    seed(&*t.store).await;
    let out = kcl(args(&t, &["app", "delete", "--yes"]), None).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(t.store.list_leases().await.unwrap().is_empty());
}

macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {
        mod redis {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Backend::Redis).await }
            )*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Backend::Postgres).await }
            )*
        }
        mod dynamodb {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Backend::Dynamo).await }
            )*
        }
    };
}

on_every_store!(
    leases_lists_every_lease,
    release_fences_the_owner,
    assign_requests_a_handoff,
    workers_tells_live_from_stale,
    reset_is_a_dry_run_until_execute,
    app_delete_asks_first,
);

/// The table, as a person sees it (committed expected file).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_table_snapshot() {
    let Some(t) = Backend::Redis.target().await else {
        return;
    };
    seed(&*t.store).await;
    let out = kcl(args(&t, &["leases"]), None).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = String::from_utf8(out.stdout).unwrap();
    let expected = include_str!("admin_expected/leases_table.txt");
    assert_eq!(shown, expected, "table changed:\n{shown}");
}

/// Lag from the checkpoints against the emulator: records behind per
/// shard and in total.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_with_stream_shows_lag() {
    let Some(t) = Backend::Redis.target().await else {
        return;
    };
    let kinesis = EmbeddedKinesis::start(fast_options()).await.unwrap();
    let client = support::client(&kinesis.endpoint);
    let stream = support::unique("lag");
    support::create_stream(&client, &stream, 2).await;
    let mut ledger = support::Ledger::default();
    ledger.put(&client, &stream, 40).await;
    // Which shard each record went to, in order.
    let mut per_shard: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for s in ["shardId-000000000000", "shardId-000000000001"] {
        let it = client
            .get_shard_iterator()
            .stream_name(&stream)
            .shard_id(s)
            .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator
            .unwrap();
        let out = client
            .get_records()
            .shard_iterator(it)
            .send()
            .await
            .unwrap();
        per_shard.insert(
            s.into(),
            out.records
                .iter()
                .map(|r| r.sequence_number().to_string())
                .collect(),
        );
    }
    let first = &per_shard["shardId-000000000000"];
    let second = &per_shard["shardId-000000000001"];
    assert_eq!(first.len() + second.len(), 40);
    assert!(first.len() >= 3, "records spread: {}", first.len());
    // Shard 0 processed up to its third record; shard 1 not at all.
    let l0 = Lease::new(
        shard("shardId-000000000000"),
        Esn::at(first[2].parse().unwrap(), 0),
    );
    let l1 = Lease::new(shard("shardId-000000000001"), Esn::TrimHorizon);
    t.store.create_lease_if_absent(&l0).await.unwrap();
    t.store.create_lease_if_absent(&l1).await.unwrap();
    let mut a = args(&t, &["leases", "--output", "json", "--stream", &stream]);
    a.extend(["--endpoint".into(), kinesis.endpoint.clone()]);
    let report = json(&kcl(a.clone(), None).await);
    let behind = |s: &str| {
        lease_json(&report, s)["lag"]["records_behind"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(behind("shardId-000000000000"), first.len() as u64 - 3);
    assert_eq!(behind("shardId-000000000001"), second.len() as u64);
    assert_eq!(report["total"]["records_behind"], 40 - 3);
    assert_eq!(report["total"]["capped"], false);
    // A limit: the count stops there and says so.
    a.extend(["--count-limit".into(), "5".into()]);
    let capped = json(&kcl(a, None).await);
    assert_eq!(capped["total"]["capped"], true);

    // Reset to a sequence number of another shard: refused, nothing changed.
    let mut r = args(
        &t,
        &[
            "checkpoint",
            "reset",
            "--shard",
            "shardId-000000000001",
            "--execute",
            "--stream",
            &stream,
        ],
    );
    r.extend(["--endpoint".into(), kinesis.endpoint.clone()]);
    r.extend(["--to".into(), format!("sequence:{}", first[1])]);
    let out = kcl(r.clone(), None).await;
    assert_eq!(
        out.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let l1_now = t.store.get_lease(&l1.shard_id).await.unwrap().unwrap();
    assert_eq!(l1_now.checkpoint, Esn::TrimHorizon);
    // One of its own: done.
    r.pop();
    r.push(format!("sequence:{}", second[1]));
    let out = kcl(r, None).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let l1_now = t.store.get_lease(&l1.shard_id).await.unwrap().unwrap();
    assert_eq!(l1_now.checkpoint, Esn::at(second[1].parse().unwrap(), 0));
}

/// Milliseconds behind, from an emulator that reports them (kinesis-mock;
/// the in-process one says 0): the age of the first record after the
/// checkpoint next to the newest, however few records are behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_with_stream_shows_millis_behind() {
    let (Some(t), Some(endpoint)) = (
        Backend::Redis.target().await,
        support::server_from_env("KCL_TEST_KINESIS_ENDPOINT"),
    ) else {
        return;
    };
    let client = support::client(&endpoint);
    let stream = support::unique("lagms");
    support::create_stream(&client, &stream, 1).await;
    let put = |data: &'static str| {
        client
            .put_record()
            .stream_name(&stream)
            .partition_key("k")
            .data(aws_sdk_kinesis::primitives::Blob::new(data))
            .send()
    };
    put("old").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let newest = put("new").await.unwrap().sequence_number;
    let behind = Lease::new(shard("shardId-000000000000"), Esn::TrimHorizon);
    t.store.create_lease_if_absent(&behind).await.unwrap();
    let mut a = args(&t, &["leases", "--output", "json", "--stream", &stream]);
    a.extend(["--endpoint".into(), endpoint.clone()]);
    let report = json(&kcl(a.clone(), None).await);
    let lag = &lease_json(&report, "shardId-000000000000")["lag"];
    assert_eq!(lag["records_behind"], 2);
    let ms = lag["millis_behind"].as_i64().unwrap();
    assert!((1_000..60_000).contains(&ms), "millis_behind {ms}");
    assert_eq!(report["total"]["max_millis_behind"], ms);
    // Checkpointed at the newest record: nothing behind.
    t.store
        .delete_lease(&shard("shardId-000000000000"))
        .await
        .unwrap();
    let caught_up = Lease::new(
        shard("shardId-000000000000"),
        Esn::at(newest.parse().unwrap(), 0),
    );
    t.store.create_lease_if_absent(&caught_up).await.unwrap();
    let report = json(&kcl(a, None).await);
    let lag = &lease_json(&report, "shardId-000000000000")["lag"];
    assert_eq!(
        (
            lag["records_behind"].as_u64(),
            lag["millis_behind"].as_i64()
        ),
        (Some(0), Some(0))
    );
}

/// `timestamp:T` checkpoints the last record before T, so reading starts
/// at the first one at or after T.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_to_a_timestamp_starts_at_the_first_record_after_it() {
    let Some(t) = Backend::Redis.target().await else {
        return;
    };
    let kinesis = EmbeddedKinesis::start(fast_options()).await.unwrap();
    let client = support::client(&kinesis.endpoint);
    let stream = support::unique("ts");
    support::create_stream(&client, &stream, 1).await;
    let mut ledger = support::Ledger::default();
    ledger.put(&client, &stream, 5).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let at = std::time::SystemTime::now();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    ledger.put(&client, &stream, 5).await;
    let mut sequences: Vec<(String, String)> = ledger
        .ids
        .iter()
        .map(|(id, s)| (id.clone(), s.clone()))
        .collect();
    sequences.sort();
    let last_before = &sequences[4].1;
    let lease = Lease::new(shard("shardId-000000000000"), Esn::TrimHorizon);
    t.store.create_lease_if_absent(&lease).await.unwrap();
    let secs = at
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1; // inside the 1.1 s gap, whole seconds
    let mut r = args(
        &t,
        &[
            "checkpoint",
            "reset",
            "--all",
            "--execute",
            "--stream",
            &stream,
        ],
    );
    r.extend(["--endpoint".into(), kinesis.endpoint.clone()]);
    r.extend(["--to".into(), format!("timestamp:{secs}")]);
    let out = kcl(r, None).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let now = t.store.get_lease(&lease.shard_id).await.unwrap().unwrap();
    let _ = secs;
    assert_eq!(now.checkpoint, Esn::at(last_before.parse().unwrap(), 0));
}

/// Errors are one line and an exit code; a password never shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_clear_and_keep_secrets() {
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (
            vec!["leases", "--store", "ftp://x", "--app", "app1"],
            2,
            "no known scheme",
        ),
        (
            vec![
                "leases",
                "--store",
                "redis://user:hunter2@127.0.0.1:1",
                "--app",
                "app1",
            ],
            3,
            "unavailable",
        ),
        (vec!["leases", "--store", "redis://127.0.0.1:1"], 2, "--app"),
    ];
    for (a, code, text) in cases {
        let out = kcl(a.iter().map(|s| s.to_string()).collect(), None).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{a:?}: {stderr}");
        assert!(stderr.contains(text), "{a:?}: {stderr}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
    // A DynamoDB table that does not exist: not found, and not created.
    if let Some(endpoint) = support::server_from_env("KCL_TEST_DYNAMO_ENDPOINT") {
        let table = support::unique("missing");
        let url = format!("dynamodb://{table}?region=us-east-1&endpoint={endpoint}");
        let out = kcl(vec!["leases".into(), "--store".into(), url.clone()], None).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{stderr}");
        assert!(stderr.contains("does not exist"), "{stderr}");
        let out = kcl(vec!["leases".into(), "--store".into(), url], None).await;
        assert_eq!(out.status.code(), Some(4), "the table was created");
    }
}

/// `kcl fanout deregister` removes the application's consumer (named
/// after the application by default); a second run finds none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_deregister_removes_the_consumer() {
    let kinesis = EmbeddedKinesis::start(fast_options()).await.unwrap();
    let client = support::client(&kinesis.endpoint);
    let stream = support::unique("efo");
    support::create_stream(&client, &stream, 1).await;
    let stream_arn = client
        .describe_stream_summary()
        .stream_name(&stream)
        .send()
        .await
        .unwrap()
        .stream_description_summary()
        .unwrap()
        .stream_arn()
        .to_string();
    let app = support::unique("app");
    client
        .register_stream_consumer()
        .stream_arn(&stream_arn)
        .consumer_name(&app)
        .send()
        .await
        .unwrap();
    let a: Vec<String> = [
        "fanout",
        "deregister",
        "--stream",
        &stream,
        "--app",
        &app,
        "--endpoint",
        &kinesis.endpoint,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = kcl(a.clone(), None).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut gone = false;
    for _ in 0..100 {
        let listed = client
            .list_stream_consumers()
            .stream_arn(&stream_arn)
            .send()
            .await
            .unwrap();
        if listed.consumers().iter().all(|c| c.consumer_name() != app) {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "consumer {app} still registered");
    let out = kcl(a, None).await;
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// No AWS credentials anywhere: exit 3 and a line that says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_credentials_is_said_plainly() {
    let Some(endpoint) = support::server_from_env("KCL_TEST_DYNAMO_ENDPOINT") else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let url = format!(
        "dynamodb://{}?region=us-east-1&endpoint={endpoint}",
        support::unique("nocreds")
    );
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_kcl"))
            .args(["leases", "--store", &url])
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .env("HOME", home.path())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("credentials"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}
