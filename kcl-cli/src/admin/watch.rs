//! `kcl watch`: a live view of an application, refreshed every second:
//! who owns which shard, the checkpoints, and with `--stream` the lag and
//! the records per second each shard's checkpoint moves by (the records
//! between the previous and the current checkpoint, read from the stream,
//! over the time between the two looks).

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use clap::Args;
use kcl_core::{ExtendedSequenceNumber, ShardId};

use super::aws::StreamArgs;
use super::leases::{LeasesReport, report};
use super::output::{Table, or_dash};
use super::stream::{DEFAULT_COUNT_LIMIT, records_between};
use super::{AdminError, StoreArgs};
use crate::metrics_export::MetricsArgs;

/// `kcl watch`.
#[derive(Args, Debug)]
pub struct WatchArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    stream: StreamArgs,
    /// Time between refreshes.
    #[arg(long, default_value = "1s", value_parser = super::workers::parse_duration, value_name = "DURATION")]
    interval: Duration,
    /// Stop after this many refreshes (default: until Ctrl-C).
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    #[command(flatten)]
    metrics: MetricsArgs,
}

/// The gauges `kcl watch` publishes on its own `--metrics-addr`.
const WATCH_RECORDS_BEHIND: &str = "kcl_watch_records_behind";
const WATCH_RECORDS_PER_SECOND: &str = "kcl_watch_records_per_second";

impl WatchArgs {
    /// Run until Ctrl-C (or `--count` refreshes).
    pub async fn run(self) -> Result<(), AdminError> {
        let exporters = self
            .metrics
            .install(None)
            .await
            .map_err(AdminError::usage)?;
        let result = self.refresh_until_done().await;
        exporters.flush().await;
        result
    }

    async fn refresh_until_done(&self) -> Result<(), AdminError> {
        metrics::describe_gauge!(
            WATCH_RECORDS_BEHIND,
            "Records after the checkpoint, per shard, as kcl watch sees them."
        );
        metrics::describe_gauge!(
            WATCH_RECORDS_PER_SECOND,
            "Records per second the checkpoint moves by, per shard, as kcl watch sees them."
        );
        let client = match &self.stream.stream {
            Some(_) => Some(self.stream.aws.kinesis().await?),
            None => None,
        };
        let mut previous: HashMap<String, (ExtendedSequenceNumber, Instant)> = HashMap::new();
        let mut refreshes = 0u64;
        let mut tick = tokio::time::interval(self.interval);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = tokio::signal::ctrl_c() => return Ok(()),
            }
            let now = Instant::now();
            let report = report(&self.store, &self.stream, DEFAULT_COUNT_LIMIT).await?;
            let mut rates: HashMap<String, f64> = HashMap::new();
            if let (Some(client), Some(stream)) = (&client, &self.stream.stream) {
                for lease in &report.leases {
                    let current = checkpoint_of(lease);
                    if let Some((before, at)) = previous.get(&lease.shard) {
                        let shard = ShardId::new(&lease.shard)?;
                        let n = records_between(
                            client,
                            stream,
                            &shard,
                            before,
                            &current,
                            DEFAULT_COUNT_LIMIT,
                        )
                        .await?;
                        let secs = now.duration_since(*at).as_secs_f64().max(0.001);
                        rates.insert(lease.shard.clone(), n as f64 / secs);
                    }
                }
            }
            for lease in &report.leases {
                previous.insert(lease.shard.clone(), (checkpoint_of(lease), now));
                if let Some(lag) = &lease.lag {
                    metrics::gauge!(WATCH_RECORDS_BEHIND, "shard" => lease.shard.clone())
                        .set(lag.records_behind as f64);
                }
                if let Some(rate) = rates.get(&lease.shard) {
                    metrics::gauge!(WATCH_RECORDS_PER_SECOND, "shard" => lease.shard.clone())
                        .set(*rate);
                }
            }
            let mut out = std::io::stdout().lock();
            // Clear the screen and go home, then draw.
            let _ = write!(
                out,
                "\x1b[2J\x1b[H{}",
                render(&report, &rates, self.interval)
            );
            let _ = out.flush();
            refreshes += 1;
            if self.count.is_some_and(|n| refreshes >= n) {
                return Ok(());
            }
        }
    }
}

fn checkpoint_of(lease: &super::leases::LeaseView) -> ExtendedSequenceNumber {
    let c = &lease.checkpoint;
    ExtendedSequenceNumber::from_parts(&c.sequence, c.sub_sequence)
        .unwrap_or(ExtendedSequenceNumber::TrimHorizon)
}

/// One screen.
pub fn render(report: &LeasesReport, rates: &HashMap<String, f64>, interval: Duration) -> String {
    let mut table = Table::new(&[
        "SHARD",
        "OWNER",
        "STATE",
        "CHECKPOINT",
        "MS_BEHIND",
        "RECORDS_BEHIND",
        "REC/S",
    ]);
    for l in &report.leases {
        table.row(vec![
            l.shard.clone(),
            or_dash(l.owner.as_ref()),
            l.state.to_string(),
            l.checkpoint.to_string(),
            or_dash(l.lag.as_ref().map(|g| g.millis_behind)),
            or_dash(l.lag.as_ref().map(|g| g.records_behind)),
            or_dash(rates.get(&l.shard).map(|r| format!("{r:.1}"))),
        ]);
    }
    let mut owners: Vec<&str> = report
        .leases
        .iter()
        .filter_map(|l| l.owner.as_deref())
        .collect();
    owners.sort();
    owners.dedup();
    let total_rate = if rates.is_empty() {
        "-".to_string()
    } else {
        format!("{:.1}", rates.values().fold(0.0, |a, b| a + b))
    };
    let mut screen = format!(
        "kcl watch: application {} ({} leases, {} workers holding), every {:?}; Ctrl-C quits\n\n",
        report.application,
        report.leases.len(),
        owners.len(),
        interval
    );
    screen.push_str(&table.render());
    if let Some(total) = &report.total {
        screen.push_str(&format!(
            "\ntotal: {} records behind, at most {} ms behind, {} records/s\n",
            total.records_behind, total.max_millis_behind, total_rate
        ));
    }
    screen
}
