//! `callProcessRecordsEvenForEmptyRecordList = true` end to end: `kcl
//! multilang` on the Kinesis emulator sends `processRecords` with no
//! records to a processor on the official amazon-kclpy library for reads
//! that returned none; the child parses them (kclpy requires
//! `millisBehindLatest` on every `processRecords`), answers, and goes on
//! to process records put afterwards. Without the property no empty
//! batch is sent.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};
use support::{EmbeddedKinesis, Ledger, fast_options};

const PROCESSOR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/empty_batches.py");

/// Start `kcl multilang` running the kclpy processor; returns the daemon
/// and the file the processor writes.
fn start(
    dir: &Path,
    name: &str,
    kclpy: &str,
    endpoint: &str,
    stream: &str,
    empty_batches: bool,
) -> (Child, PathBuf) {
    let props = dir.join(format!("{name}.properties"));
    let out = dir.join(format!("{name}.out"));
    std::fs::write(
        &props,
        format!(
            "executableName = python3 -u {PROCESSOR}\nstreamName = {stream}\napplicationName = {app}\n\
             AwsCredentialsProvider = EnvironmentVariableCredentialsProvider\nregionName = us-east-1\n\
             kinesisEndpoint = {endpoint}\ninitialPositionInStream = TRIM_HORIZON\n\
             idleTimeBetweenReadsInMillis = 200\nleaseStoreUrl = memory://\n\
             callProcessRecordsEvenForEmptyRecordList = {empty_batches}\n",
            app = support::unique("app"),
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_kcl"))
        .arg("multilang")
        .arg("--properties-file")
        .arg(&props)
        .env("PYTHONPATH", kclpy)
        .env("KCL_PY_OUT", &out)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("{name}.log"))).unwrap())
        .spawn()
        .expect("start kcl multilang");
    (child, out)
}

/// The lines the processor wrote so far.
fn lines(out: &Path) -> Vec<String> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// `EMPTY <millisBehindLatest>` → the number.
fn millis_behind(line: &str) -> Option<u64> {
    line.strip_prefix("EMPTY ")?.parse().ok()
}

fn empties(lines: &[String]) -> usize {
    lines.iter().filter(|l| l.starts_with("EMPTY ")).count()
}

/// Wait until `done` holds for the processor's lines, or fail showing the
/// daemon's log.
async fn wait_for(
    out: &Path,
    log: &Path,
    daemon: &mut Child,
    what: &str,
    done: impl Fn(&[String]) -> bool,
) {
    let start = Instant::now();
    while !done(&lines(out)) {
        assert!(
            daemon.try_wait().unwrap().is_none(),
            "the daemon exited waiting for {what}:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what} never came; the processor wrote {:?}; daemon log:\n{}",
            lines(out),
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn stop(daemon: &mut Child, log: &Path) {
    let _ = kill_process(Pid::from_raw(daemon.id() as i32).unwrap(), Signal::TERM);
    let start = Instant::now();
    loop {
        if let Some(status) = daemon.try_wait().unwrap() {
            assert_eq!(
                status.code(),
                Some(0),
                "exit after SIGTERM:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kclpy_receives_empty_process_records_and_keeps_going() {
    let Some(kclpy) = support::server_from_env("KCL_TEST_KCLPY_DIR") else {
        return;
    };
    let kinesis = EmbeddedKinesis::start(fast_options()).await.unwrap();
    let client = support::client(&kinesis.endpoint);
    let stream = support::unique("mle");
    support::create_stream(&client, &stream, 1).await;
    let dir = tempfile::tempdir().unwrap();

    // An empty stream: every read returns nothing, each one reaches the
    // child as an empty processRecords, and the child answers each (the
    // daemon sends the next action only after its status).
    let (mut daemon, out) = start(dir.path(), "on", &kclpy, &kinesis.endpoint, &stream, true);
    let log = dir.path().join("on.log");
    wait_for(&out, &log, &mut daemon, "three empty batches", |l| {
        empties(l) >= 3
    })
    .await;
    let first = lines(&out);
    assert!(
        first.iter().all(|l| l.starts_with("EMPTY ")),
        "only empty batches before any record was put: {first:?}"
    );
    assert!(
        first.iter().all(|l| millis_behind(l).is_some()),
        "millisBehindLatest is a number in each: {first:?}"
    );

    // Records put now are delivered after the empty batches, and empty
    // batches go on once the shard is caught up.
    let mut ledger = Ledger::default();
    ledger.put(&client, &stream, 5).await;
    let ids: Vec<String> = ledger.ids.keys().cloned().collect();
    wait_for(
        &out,
        &log,
        &mut daemon,
        "the records and empty batches after them",
        |l| {
            let last_record = l.iter().rposition(|x| x.starts_with("RECORD "));
            ids.iter().all(|id| l.contains(&format!("RECORD {id}")))
                && last_record.is_some_and(|i| empties(&l[i..]) >= 2)
        },
    )
    .await;
    stop(&mut daemon, &log);

    // The same daemon without the property: records only, no empty batch.
    let (mut off, out) = start(dir.path(), "off", &kclpy, &kinesis.endpoint, &stream, false);
    let log = dir.path().join("off.log");
    wait_for(&out, &log, &mut off, "the records", |l| {
        ids.iter().all(|id| l.contains(&format!("RECORD {id}")))
    })
    .await;
    // Reads at the tip every 200 ms: five of them deliver nothing.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let got = lines(&out);
    assert_eq!(
        empties(&got),
        0,
        "empty batches sent with the property off: {got:?}"
    );
    stop(&mut off, &log);
}
