//! Shared by the `kcl` tests: `kcl` daemons run as real processes (signals,
//! SIGKILL) and the record ids each kind of child reports; the in-process
//! Kinesis emulator and stream helpers are `kcl_core::testkit::kinesis`'s.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
pub(crate) use kcl_core::testkit::kinesis::{
    EmbeddedKinesis, client, create_stream, fast_options, wait_active,
};
// A server variable; unset, the test skips (or fails under
// `KCL_TEST_REQUIRE_SERVERS=1`).
pub(crate) use kcl_core::testkit::server_from_env;
use rustix::process::{Pid, Signal, kill_process};

pub(crate) fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Split `shard` in two halves of its hash range (the stream's first shard
/// of a 2-shard stream covers `[0, 2^127)`).
pub(crate) async fn split(client: &Client, stream: &str, shard: &str, at: u128) {
    client
        .split_shard()
        .stream_name(stream)
        .shard_to_split(shard)
        .new_starting_hash_key(at.to_string())
        .send()
        .await
        .expect("split shard");
    wait_active(client, stream).await;
}

/// Records put so far: id → sequence number.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    pub ids: BTreeMap<String, String>,
    next: usize,
}

impl Ledger {
    /// Put `n` records with fresh ids (the data is the id).
    pub(crate) async fn put(&mut self, client: &Client, stream: &str, n: usize) {
        let mut entries = Vec::new();
        let mut ids = Vec::new();
        for _ in 0..n {
            let id = format!("id-{:06}", self.next);
            self.next += 1;
            entries.push(
                PutRecordsRequestEntry::builder()
                    .data(Blob::new(id.clone()))
                    .partition_key(format!("pk-{}", uuid::Uuid::new_v4().simple()))
                    .build()
                    .unwrap(),
            );
            ids.push(id);
        }
        let out = client
            .put_records()
            .stream_name(stream)
            .set_records(Some(entries))
            .send()
            .await
            .expect("put records");
        assert_eq!(out.failed_record_count(), Some(0));
        for (id, r) in ids.into_iter().zip(out.records()) {
            self.ids
                .insert(id, r.sequence_number().unwrap_or_default().to_string());
        }
    }
}

/// Which official (or our) child library a daemon runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChildKind {
    /// `kcl-sample-child` on `kcl_multilang::child::run`.
    Rust,
    /// PyPI amazon-kclpy's `samples/sample_kclpy_app.py`, unmodified.
    Kclpy,
    /// npm aws-kcl with `tests/node/processor.js`.
    Node,
}

impl ChildKind {
    /// The executableName and environment for this kind, or `None` (with a
    /// printed line) when its library is not installed.
    pub(crate) fn command(self, out: &Path) -> Option<(String, Vec<(String, String)>)> {
        match self {
            ChildKind::Rust => Some((
                env!("CARGO_BIN_EXE_kcl-sample-child").to_string(),
                vec![("KCL_SAMPLE_OUT".into(), out.display().to_string())],
            )),
            ChildKind::Kclpy => {
                let dir = server_from_env("KCL_TEST_KCLPY_DIR")?;
                Some((
                    // `-u`: each of the sample's stderr writes arrives whole.
                    format!("python3 -u {dir}/samples/sample_kclpy_app.py"),
                    vec![("PYTHONPATH".into(), dir)],
                ))
            }
            ChildKind::Node => {
                let path = server_from_env("KCL_TEST_AWS_KCL_NODE_PATH")?;
                let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/node/processor.js");
                Some((
                    format!("node {script}"),
                    vec![
                        ("NODE_PATH".into(), path),
                        ("KCL_NODE_OUT".into(), out.display().to_string()),
                    ],
                ))
            }
        }
    }
}

/// One `kcl multilang` process.
#[derive(Debug)]
pub(crate) struct Daemon {
    pub name: String,
    pub child: Child,
    pub out: PathBuf,
    pub log: PathBuf,
}

/// Settings for a daemon.
pub(crate) struct DaemonSpec<'a> {
    pub dir: &'a Path,
    pub name: &'a str,
    pub kind: ChildKind,
    pub endpoint: &'a str,
    pub stream: &'a str,
    pub application: &'a str,
    pub store_url: &'a str,
    pub extra: &'a str,
}

impl Daemon {
    pub(crate) fn start(spec: &DaemonSpec<'_>) -> Option<Daemon> {
        let out = spec.dir.join(format!("{}.records", spec.name));
        let log = spec.dir.join(format!("{}.log", spec.name));
        let (exe, env) = spec.kind.command(&out)?;
        let props = spec.dir.join(format!("{}.properties", spec.name));
        std::fs::write(
            &props,
            format!(
                "# written by the kcl-cli tests\n\
                 executableName = {exe}\n\
                 streamName = {stream}\n\
                 applicationName = {app}\n\
                 AwsCredentialsProvider = EnvironmentVariableCredentialsProvider\n\
                 regionName = us-east-1\n\
                 kinesisEndpoint = {endpoint}\n\
                 workerId = {name}\n\
                 initialPositionInStream = TRIM_HORIZON\n\
                 idleTimeBetweenReadsInMillis = 200\n\
                 failoverTimeMillis = 3000\n\
                 shutdownGraceMillis = 15000\n\
                 timeoutInSeconds = 60\n\
                 {store}\n\
                 {extra}\n",
                stream = spec.stream,
                app = spec.application,
                endpoint = spec.endpoint,
                name = spec.name,
                store = if spec.store_url.is_empty() {
                    String::new()
                } else {
                    format!("leaseStoreUrl = {}", spec.store_url)
                },
                extra = spec.extra,
            ),
        )
        .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_kcl"))
            .arg("multilang")
            .arg("--properties-file")
            .arg(&props)
            .envs(env)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("RUST_LOG", "info,kcl_multilang=debug")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(spec.dir.join(format!("{}.stdout", spec.name))).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start kcl multilang");
        Some(Daemon {
            name: spec.name.to_string(),
            child,
            out,
            log,
        })
    }

    pub(crate) fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32).unwrap()
    }

    pub(crate) fn signal(&self, signal: Signal) {
        let _ = kill_process(self.pid(), signal);
    }

    /// The pids of this daemon's child processes.
    pub(crate) fn children(&self) -> Vec<i32> {
        let mut pids = Vec::new();
        let tasks = format!("/proc/{}/task", self.child.id());
        for task in std::fs::read_dir(tasks).into_iter().flatten().flatten() {
            if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
                pids.extend(
                    text.split_whitespace()
                        .filter_map(|p| p.parse::<i32>().ok()),
                );
            }
        }
        pids
    }

    /// Wait for the daemon to exit; its status code.
    pub(crate) fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The ids a daemon's children reported seeing.
pub(crate) fn seen(kind: ChildKind, daemon: &Daemon, ledger: &Ledger) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    match kind {
        ChildKind::Rust | ChildKind::Node => {
            let text = std::fs::read_to_string(&daemon.out).unwrap_or_default();
            for line in text.lines() {
                if let Some(id) = line.split(' ').next_back() {
                    *counts.entry(id.to_string()).or_insert(0) += 1;
                }
            }
        }
        ChildKind::Kclpy => {
            // The unmodified sample logs each record to stderr (without a
            // newline); the daemon forwards it. Map sequence numbers back.
            let by_seq: BTreeMap<&str, &str> = ledger
                .ids
                .iter()
                .map(|(id, seq)| (seq.as_str(), id.as_str()))
                .collect();
            let text = daemon.log_text();
            for piece in text.split("Sequence Number: ").skip(1) {
                let seq: String = piece.chars().take_while(char::is_ascii_digit).collect();
                if let Some(id) = by_seq.get(seq.as_str()) {
                    *counts.entry(id.to_string()).or_insert(0) += 1;
                }
            }
        }
    }
    counts
}

/// Ids put but seen by no daemon.
pub(crate) fn missing(kind: ChildKind, daemons: &[&Daemon], ledger: &Ledger) -> BTreeSet<String> {
    let mut all = BTreeSet::new();
    for d in daemons {
        all.extend(seen(kind, d, ledger).into_keys());
    }
    ledger
        .ids
        .keys()
        .filter(|id| !all.contains(*id))
        .cloned()
        .collect()
}

/// Wait until every id put was seen by one of `daemons`.
pub(crate) async fn wait_all_seen(
    kind: ChildKind,
    daemons: &[&Daemon],
    ledger: &Ledger,
    what: &str,
) {
    let start = Instant::now();
    loop {
        let missing = missing(kind, daemons, ledger);
        if missing.is_empty() {
            println!(
                "{what}: all {} records seen after {:?}",
                ledger.ids.len(),
                start.elapsed()
            );
            return;
        }
        if start.elapsed() > Duration::from_secs(90) {
            for d in daemons {
                let log = d.log_text();
                let tail: String = log
                    .chars()
                    .rev()
                    .take(6000)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                eprintln!("==== {} log tail:\n{tail}", d.name);
            }
            panic!(
                "{what}: {} of {} records never seen: {:?}",
                missing.len(),
                ledger.ids.len(),
                missing.iter().take(10).collect::<Vec<_>>()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Write a daemon properties file into `dir` that runs the Rust sample
/// child (`kcl-sample-child`) on `stream` at `endpoint`, leases in `store`,
/// from TRIM_HORIZON, reading every 200 ms; a fresh application name.
pub(crate) fn sample_child_properties(
    dir: &Path,
    stream: &str,
    endpoint: &str,
    worker: &str,
    store: &str,
) -> PathBuf {
    let props = dir.join("d.properties");
    std::fs::write(
        &props,
        format!(
            "executableName = {child}\nstreamName = {stream}\napplicationName = {app}\n\
             AwsCredentialsProvider = EnvironmentVariableCredentialsProvider\nregionName = us-east-1\n\
             kinesisEndpoint = {endpoint}\nworkerId = {worker}\ninitialPositionInStream = TRIM_HORIZON\n\
             idleTimeBetweenReadsInMillis = 200\nleaseStoreUrl = {store}\n",
            child = env!("CARGO_BIN_EXE_kcl-sample-child"),
            app = unique("app"),
        ),
    )
    .unwrap();
    props
}
