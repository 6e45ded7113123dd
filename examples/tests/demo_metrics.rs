//! The demo's Prometheus endpoint during a run: scraped over HTTP, parsed,
//! and checked for records processed and leases per worker.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One sample line: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// Parse the Prometheus text format (the lines that are samples).
fn parse(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample line");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("closing brace");
                let labels = body
                    .split(',')
                    .filter(|kv| !kv.is_empty())
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').expect("label");
                        (k.to_string(), v.trim_matches('"').to_string())
                    })
                    .collect();
                (name.to_string(), labels)
            }
            None => (series.to_string(), BTreeMap::new()),
        };
        samples.push((name, labels, value.parse().expect("value")));
    }
    samples
}

fn scrape(addr: &str) -> Option<String> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.lines().next()?;
    status.contains(" 200 ").then(|| body.to_string())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn demo_serves_records_processed_and_leases_per_worker() {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut demo = Command::new(env!("CARGO_BIN_EXE_demo"))
        .args([
            "--seconds",
            "30",
            "--workers",
            "2",
            "--shards",
            "4",
            "--rate",
            "200",
            "--stop-worker-after",
            "1000",
            "--metrics-addr",
            &addr,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run the demo");
    let deadline = Instant::now() + Duration::from_secs(25);
    let mut last = String::new();
    let outcome = loop {
        if Instant::now() > deadline {
            break Err(format!(
                "no plausible metrics in 25 s; last scrape:\n{last}"
            ));
        }
        std::thread::sleep(Duration::from_millis(500));
        let Some(body) = scrape(&addr) else { continue };
        let samples = parse(&body);
        last = body;
        let processed: f64 = samples
            .iter()
            .filter(|(n, l, _)| n == "kcl_records_processed_total" && l.contains_key("shard"))
            .map(|(_, _, v)| v)
            .sum();
        let leases: BTreeMap<String, f64> = samples
            .iter()
            .filter(|(n, _, _)| n == "kcl_current_leases")
            .filter_map(|(_, l, v)| Some((l.get("worker")?.clone(), *v)))
            .collect();
        let held: f64 = leases.values().sum();
        // Two workers sharing four shards: both hold some, four in all.
        if processed >= 100.0
            && leases.len() == 2
            && held == 4.0
            && leases.values().all(|&n| n >= 1.0)
        {
            let described = last.contains("# HELP kcl_records_processed_total");
            break if described {
                println!("scraped: {processed} records processed, leases {leases:?}");
                Ok(())
            } else {
                Err(format!(
                    "no HELP line for kcl_records_processed_total:\n{last}"
                ))
            };
        }
    };
    let _ = demo.kill();
    let _ = demo.wait();
    outcome.unwrap();
}
