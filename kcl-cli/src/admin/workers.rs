//! `kcl workers`: which workers are alive, what each holds.
//!
//! A heartbeat is a counter, not a time (hosts' clocks are never
//! compared), so liveness is what an observer sees: the command reads the
//! heartbeats every 250 ms for `--sample` (default 5 s, more than the
//! engine's default heartbeat interval of 3.3 s) and calls a worker live
//! when its counter moved in that time; the age is the time since the last
//! move seen. A worker whose counter did not move is `stale` (crashed, or
//! its heartbeats come slower than the sample: lengthen `--sample`).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;

use super::output::{Output, Table, print_json};
use super::{AdminError, StoreArgs};

/// `kcl workers`.
#[derive(Args, Debug)]
pub struct WorkersArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// How long to watch the heartbeats (e.g. `5s`, `500ms`).
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    sample: Duration,
    /// Table or JSON.
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

/// One worker as `kcl workers` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerView {
    /// The worker id.
    pub worker: String,
    /// `live`, `stale` (a heartbeat that did not move) or `no heartbeat`
    /// (an owner of leases without a heartbeat record, e.g. a Java worker).
    pub status: &'static str,
    /// Milliseconds since its heartbeat was last seen moving (live only).
    pub heartbeat_age_ms: Option<u64>,
    /// The shards whose lease it holds.
    pub leases: Vec<String>,
}

/// The whole answer of `kcl workers`.
#[derive(Debug, Clone, Serialize)]
pub struct WorkersReport {
    /// The application.
    pub application: String,
    /// How long the heartbeats were watched, in milliseconds.
    pub sample_ms: u64,
    /// The workers, by id.
    pub workers: Vec<WorkerView>,
    /// Leases nobody holds.
    pub free_leases: Vec<String>,
}

const POLL: Duration = Duration::from_millis(250);

impl WorkersArgs {
    /// Run it.
    pub async fn run(self) -> Result<(), AdminError> {
        let application = self.store.application()?;
        let store = self.store.open().await?;
        let start = Instant::now();
        let mut last_seen: HashMap<String, (u64, Option<Instant>)> = HashMap::new();
        loop {
            let now = Instant::now();
            for hb in store.list_workers().await? {
                let id = hb.worker_id.to_string();
                let entry = last_seen.entry(id).or_insert((hb.counter, None));
                if entry.0 != hb.counter {
                    *entry = (hb.counter, Some(now));
                }
            }
            if start.elapsed() >= self.sample {
                break;
            }
            tokio::time::sleep(POLL.min(self.sample)).await;
        }
        let leases = store.list_leases().await?;
        let end = Instant::now();
        let mut held: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut free = Vec::new();
        for lease in &leases {
            match &lease.owner {
                Some(owner) => held
                    .entry(owner.to_string())
                    .or_default()
                    .push(lease.shard_id.to_string()),
                None => free.push(lease.shard_id.to_string()),
            }
        }
        let mut ids: Vec<String> = last_seen.keys().chain(held.keys()).cloned().collect();
        ids.sort();
        ids.dedup();
        let workers = ids
            .into_iter()
            .map(|id| {
                let (status, age) = match last_seen.get(&id) {
                    Some((_, Some(moved))) => ("live", Some(end.duration_since(*moved))),
                    Some((_, None)) => ("stale", None),
                    None => ("no heartbeat", None),
                };
                let mut leases = held.remove(&id).unwrap_or_default();
                leases.sort();
                WorkerView {
                    worker: id,
                    status,
                    heartbeat_age_ms: age.map(|a| a.as_millis() as u64),
                    leases,
                }
            })
            .collect();
        free.sort();
        let report = WorkersReport {
            application,
            sample_ms: self.sample.as_millis() as u64,
            workers,
            free_leases: free,
        };
        match self.output {
            Output::Json => print_json(&report),
            Output::Table => {
                print!("{}", render(&report));
                Ok(())
            }
        }
    }
}

/// The report as a table.
pub fn render(report: &WorkersReport) -> String {
    let mut table = Table::new(&["WORKER", "STATUS", "HEARTBEAT_AGE", "LEASES", "SHARDS"]);
    for w in &report.workers {
        table.row(vec![
            w.worker.clone(),
            w.status.to_string(),
            w.heartbeat_age_ms.map_or_else(
                || format!(">{} ms", report.sample_ms),
                |a| format!("{a} ms"),
            ),
            w.leases.len().to_string(),
            w.leases.join(","),
        ]);
    }
    let mut out = table.render();
    out.push_str(&format!(
        "{} free lease(s){}\n",
        report.free_leases.len(),
        if report.free_leases.is_empty() {
            String::new()
        } else {
            format!(": {}", report.free_leases.join(","))
        }
    ));
    out
}

/// `5s`, `500ms`, `2m`, or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (digits, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, ""), |i| text.split_at(i));
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. 5s, 500ms, 2m)"))?;
    match unit {
        "" | "s" => Ok(Duration::from_secs(n)),
        "ms" => Ok(Duration::from_millis(n)),
        "m" => Ok(Duration::from_secs(n.saturating_mul(60))),
        _ => Err(format!("{text:?}: unknown unit {unit:?} (ms, s, m)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("5h").is_err());
    }
}
