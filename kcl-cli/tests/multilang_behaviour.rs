//! `kcl multilang` behaviour where it differs from Java on purpose, and
//! the Rust child adapter's stdout reservation, with real processes.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{EmbeddedKinesis, Ledger, fast_options};

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../kcl-multilang/tests/children/scripted_child.py"
);

/// A stray `println!` in a Rust child goes to stderr, not into the protocol.
#[test]
fn rust_child_keeps_stdout_for_the_protocol() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kcl-sample-child"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"{\"action\":\"initialize\",\"shardId\":\"shardId-000000000000\",\"sequenceNumber\":\"TRIM_HORIZON\",\"subSequenceNumber\":0}\n")
        .unwrap();
    stdin.flush().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert_eq!(
        first,
        "{\"action\":\"status\",\"responseFor\":\"initialize\"}\n"
    );
    drop(stdin);
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "", "nothing else on stdout");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        stderr.contains("sample child starting on shardId-000000000000"),
        "{stderr}"
    );
    assert_eq!(child.wait().unwrap().code(), Some(0), "exit 0 on EOF");
}

struct Scene {
    _kinesis: EmbeddedKinesis,
    endpoint: String,
    client: aws_sdk_kinesis::Client,
    stream: String,
    dir: tempfile::TempDir,
}

async fn scene(shards: i32) -> Scene {
    let kinesis = EmbeddedKinesis::start(fast_options()).await.unwrap();
    let client = support::client(&kinesis.endpoint);
    let stream = support::unique("mlb");
    support::create_stream(&client, &stream, shards).await;
    Scene {
        endpoint: kinesis.endpoint.clone(),
        _kinesis: kinesis,
        client,
        stream,
        dir: tempfile::tempdir().unwrap(),
    }
}

fn start_scripted(
    s: &Scene,
    name: &str,
    mode: &str,
    extra: &str,
    flags: &[&str],
) -> std::process::Child {
    let props = s.dir.path().join(format!("{name}.properties"));
    let received = s.dir.path().join(format!("{name}.received"));
    std::fs::write(
        &props,
        format!(
            "executableName = python3 {SCRIPT} {mode} {}\nstreamName = {}\napplicationName = {}\n\
             AwsCredentialsProvider = EnvironmentVariableCredentialsProvider\nregionName = us-east-1\n\
             kinesisEndpoint = {}\ninitialPositionInStream = TRIM_HORIZON\nidleTimeBetweenReadsInMillis = 200\n\
             leaseStoreUrl = memory://\n{extra}\n",
            received.display(),
            s.stream,
            support::unique("app"),
            s.endpoint
        ),
    )
    .unwrap();
    Command::new(env!("CARGO_BIN_EXE_kcl"))
        .arg("multilang")
        .args(flags)
        .arg(&props) // the positional form
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(s.dir.path().join(format!("{name}.log"))).unwrap())
        .spawn()
        .unwrap()
}

fn wait_exit(child: &mut std::process::Child, limit: Duration) -> Option<i32> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

fn log(s: &Scene, name: &str) -> String {
    std::fs::read_to_string(s.dir.path().join(format!("{name}.log"))).unwrap_or_default()
}

/// Java exits the whole daemon when a child crashes; we restart that
/// shard's child (and redeliver), unless `--java-compatible-exit`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_child_ends_only_itself_unless_java_compatible() {
    let s = scene(1).await;
    let mut ledger = Ledger::default();
    ledger.put(&s.client, &s.stream, 3).await;

    let mut ours = start_scripted(&s, "ours", "crash-on-records", "", &[]);
    let start = Instant::now();
    while log(&s, "ours")
        .matches("starting a new MultiLang child")
        .count()
        < 2
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no restart:\n{}",
            log(&s, "ours")
        );
        assert_eq!(
            ours.try_wait().unwrap(),
            None,
            "the daemon exited:\n{}",
            log(&s, "ours")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(ours.id() as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    assert_eq!(
        wait_exit(&mut ours, Duration::from_secs(30)),
        Some(0),
        "{}",
        log(&s, "ours")
    );

    let mut java = start_scripted(
        &s,
        "java",
        "crash-on-records",
        "",
        &["--java-compatible-exit"],
    );
    assert_eq!(
        wait_exit(&mut java, Duration::from_secs(60)),
        Some(1),
        "{}",
        log(&s, "java")
    );
}

/// stderr is forwarded line by line with the shard id; a partial line is
/// shown while the child still runs (Java: only at EOF).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stderr_is_forwarded_with_the_shard_id() {
    let s = scene(1).await;
    let mut d = start_scripted(&s, "err", "stderr-partial", "", &[]);
    let start = Instant::now();
    loop {
        let text = log(&s, "err");
        let partial = text.lines().find(|l| l.contains("no newline yet"));
        if let Some(line) = partial {
            assert!(line.contains("shardId-000000000000"), "{line}");
            assert!(
                text.lines()
                    .any(|l| l.contains("first line") && l.contains("shardId-000000000000"))
            );
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(d.id() as i32).unwrap(),
        rustix::process::Signal::INT,
    )
    .unwrap();
    assert_eq!(
        wait_exit(&mut d, Duration::from_secs(30)),
        Some(0),
        "{}",
        log(&s, "err")
    );
}

/// An unmappable credentials provider is a clear start error.
#[tokio::test]
async fn unmappable_credentials_fail_at_start() {
    let s = scene(1).await;
    let mut d = start_scripted(
        &s,
        "creds",
        "ok",
        "AwsCredentialsProvider = SystemPropertyCredentialsProvider",
        &[],
    );
    let code = wait_exit(&mut d, Duration::from_secs(30));
    let text = log(&s, "creds");
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("SystemPropertyCredentialsProvider"), "{text}");
}
