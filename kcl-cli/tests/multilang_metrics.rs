//! `kcl multilang --metrics-addr`: the daemon's Prometheus endpoint during
//! a run, scraped and parsed: records processed per shard and the leases
//! the worker holds.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};
use support::{EmbeddedKinesis, fast_options};

fn scrape(addr: &str) -> Option<String> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.lines()
        .next()?
        .contains(" 200 ")
        .then(|| body.to_string())
}

/// The sum of the samples of `name` whose labels contain `label`.
fn sum(body: &str, name: &str, label: &str) -> f64 {
    body.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_serves_its_metrics() {
    let Some(redis) = support::server_from_env("KCL_TEST_REDIS_URL") else {
        return;
    };
    let kinesis = EmbeddedKinesis::start(fast_options()).await.unwrap();
    let client = support::client(&kinesis.endpoint);
    let stream = support::unique("mlm");
    support::create_stream(&client, &stream, 2).await;
    let mut ledger = support::Ledger::default();
    ledger.put(&client, &stream, 30).await;
    let dir = tempfile::tempdir().unwrap();
    let props = support::sample_child_properties(
        dir.path(),
        &stream,
        &kinesis.endpoint,
        "metrics-worker",
        &redis,
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_kcl"))
        .args(["multilang", "--metrics-addr", &addr, "--properties-file"])
        .arg(&props)
        .env("KCL_SAMPLE_OUT", dir.path().join("records"))
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("log")).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    let ok = loop {
        if Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let Some(body) = scrape(&addr) else { continue };
        last = body;
        let processed = sum(&last, "kcl_records_processed_total", "shard=");
        let leases = sum(&last, "kcl_current_leases", "worker=\"metrics-worker\"");
        if processed >= 30.0 && leases == 2.0 {
            break true;
        }
    };
    let _ = kill_process(Pid::from_raw(daemon.id() as i32).unwrap(), Signal::TERM);
    let _ = tokio::task::spawn_blocking(move || daemon.wait()).await;
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap_or_default();
    assert!(
        ok,
        "no plausible metrics in 30 s; last scrape:\n{last}\nlog:\n{log}"
    );
    assert!(last.contains("# HELP kcl_current_leases"), "{last}");
}
