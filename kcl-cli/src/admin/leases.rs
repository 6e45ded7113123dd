//! `kcl leases`: every lease of an application, with its lag when the
//! stream is given; `kcl leases release` and `kcl leases assign`.
//!
//! In a multi-stream application (lease keys `account:name:epoch:shardId`)
//! each lease shows its stream (a `STREAM` column and a `stream` JSON
//! field) and, in the table, its raw shard id; `--stream NAME` gives the
//! lag of that stream's leases only. `--shard` of `release` / `assign`
//! takes the whole lease key.

use std::collections::HashMap;

use clap::{Args, Subcommand};
use kcl_core::stream::{StreamArn, StreamIdentifier};
use kcl_core::{ExtendedSequenceNumber, Lease, ShardId, WorkerId};
use serde::Serialize;

use super::aws::StreamArgs;
use super::output::{Output, Table, or_dash, print_json};
use super::stream::{DEFAULT_COUNT_LIMIT, ShardLag, shard_lag};
use super::{AdminError, StoreArgs};

/// `kcl leases [release|assign]`.
#[derive(Args, Debug)]
pub struct LeasesCommand {
    // `Option`: absent when a subcommand is given (it has its own).
    #[command(flatten)]
    store: Option<StoreArgs>,
    #[command(flatten)]
    list: ListArgs,
    #[command(subcommand)]
    action: Option<LeasesAction>,
}

/// `kcl leases`: what to show.
#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    stream: StreamArgs,
    /// Stop counting a shard's records behind at this many (the count is
    /// then shown as a lower bound, `N+`).
    #[arg(long, default_value_t = DEFAULT_COUNT_LIMIT, value_name = "N")]
    count_limit: u64,
    /// Table or JSON.
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

/// What `kcl leases` can do to one lease.
#[derive(Subcommand, Debug)]
pub enum LeasesAction {
    /// Free a lease: its owner is fenced out (its next renew or checkpoint
    /// fails) and any worker may take it.
    Release {
        /// Where the leases are.
        #[command(flatten)]
        store: StoreArgs,
        /// The shard whose lease to free.
        #[arg(long, value_name = "SHARD")]
        shard: String,
    },
    /// Ask the lease's owner to hand it to another worker (a graceful
    /// hand-off; the owner checkpoints and releases it on its next renew).
    Assign {
        /// Where the leases are.
        #[command(flatten)]
        store: StoreArgs,
        /// The shard whose lease to hand over.
        #[arg(long, value_name = "SHARD")]
        shard: String,
        /// The worker to hand it to.
        #[arg(long, value_name = "WORKER")]
        worker: String,
    },
}

impl LeasesCommand {
    /// Run it.
    pub async fn run(self) -> Result<(), AdminError> {
        match (self.action, self.store) {
            (None, Some(store)) => self.list.run(&store).await,
            (None, None) => Err(AdminError::usage(
                "give --store URL (see kcl leases --help)",
            )),
            (Some(LeasesAction::Release { store, shard }), _) => release(&store, &shard).await,
            (
                Some(LeasesAction::Assign {
                    store,
                    shard,
                    worker,
                }),
                _,
            ) => assign(&store, &shard, &worker).await,
        }
    }
}

/// One lease as `kcl leases` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LeaseView {
    /// The shard (the lease key: `account:name:epoch:shardId` in a
    /// multi-stream application).
    pub shard: String,
    /// The stream (`account:name:epoch`) of a multi-stream lease; absent
    /// in a single-stream application.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// The owner, if any.
    pub owner: Option<String>,
    /// The checkpoint.
    pub checkpoint: PositionView,
    /// The prepared checkpoint, if any.
    pub pending_checkpoint: Option<PositionView>,
    /// Parent shards.
    pub parents: Vec<String>,
    /// Child shards, once known.
    pub children: Vec<String>,
    /// `open`, `finished` or `waiting on parents`.
    pub state: &'static str,
    /// Owner changes since the last checkpoint.
    pub owner_switches: u64,
    /// A worker the owner was asked to hand the lease to.
    pub handoff_to: Option<String>,
    /// The lease counter (moves on every renew).
    pub counter: u64,
    /// How far behind the tip, when the stream was given.
    pub lag: Option<ShardLag>,
}

/// A checkpoint: a sequence number with its sub-sequence, or a sentinel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PositionView {
    /// `TRIM_HORIZON`, `LATEST`, `AT_TIMESTAMP`, `SHARD_END`, or the
    /// sequence number.
    pub sequence: String,
    /// The sub-sequence number (a user record inside a KPL aggregate); 0
    /// for a sentinel.
    pub sub_sequence: u64,
    /// Whether `sequence` is a sentinel.
    pub sentinel: bool,
}

impl From<&ExtendedSequenceNumber> for PositionView {
    fn from(position: &ExtendedSequenceNumber) -> Self {
        let (sequence, sub_sequence) = position.to_parts();
        PositionView {
            sequence,
            sub_sequence,
            sentinel: position.is_sentinel(),
        }
    }
}

impl std::fmt::Display for PositionView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.sub_sequence == 0 {
            f.write_str(&self.sequence)
        } else {
            write!(f, "{}/{}", self.sequence, self.sub_sequence)
        }
    }
}

/// The whole answer of `kcl leases`.
#[derive(Debug, Clone, Serialize)]
pub struct LeasesReport {
    /// The application.
    pub application: String,
    /// Every lease, by shard id.
    pub leases: Vec<LeaseView>,
    /// Sums over the leases, when the stream was given.
    pub total: Option<TotalLag>,
}

/// The lag of the whole application.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TotalLag {
    /// Records behind, summed over the shards.
    pub records_behind: u64,
    /// The largest `millis_behind` of any shard.
    pub max_millis_behind: i64,
    /// Some shard's count stopped at the limit (the sum is a lower bound).
    pub capped: bool,
}

/// `open`, `finished` or `waiting on parents` (a parent lease that exists
/// and is not finished; a deleted parent lease is done).
pub fn state(lease: &Lease, by_shard: &HashMap<&ShardId, &Lease>) -> &'static str {
    if lease.is_finished() {
        "finished"
    } else if lease
        .parent_shard_ids
        .iter()
        .any(|p| by_shard.get(p).is_some_and(|parent| !parent.is_finished()))
    {
        "waiting on parents"
    } else {
        "open"
    }
}

/// The views of `leases`, sorted by shard.
pub fn views(mut leases: Vec<Lease>) -> Vec<LeaseView> {
    leases.sort_by(|a, b| a.shard_id.cmp(&b.shard_id));
    let by_shard: HashMap<&ShardId, &Lease> = leases.iter().map(|l| (&l.shard_id, l)).collect();
    leases
        .iter()
        .map(|l| LeaseView {
            shard: l.shard_id.to_string(),
            stream: StreamIdentifier::split_lease_key(&l.shard_id).map(|(s, _)| s.to_string()),
            owner: l.owner.as_ref().map(ToString::to_string),
            checkpoint: (&l.checkpoint).into(),
            pending_checkpoint: l.pending_checkpoint.as_ref().map(|p| (&p.sequence).into()),
            parents: l.parent_shard_ids.iter().map(ToString::to_string).collect(),
            children: l.child_shard_ids.iter().map(ToString::to_string).collect(),
            state: state(l, &by_shard),
            owner_switches: l.owner_switches_since_checkpoint,
            handoff_to: l.handoff_to.as_ref().map(ToString::to_string),
            counter: l.counter,
            lag: None,
        })
        .collect()
}

/// Read the leases (and the lag, when `stream` names the stream).
pub async fn report(
    store: &StoreArgs,
    stream: &StreamArgs,
    count_limit: u64,
) -> Result<LeasesReport, AdminError> {
    let application = store.application()?;
    let leases = store.open().await?.list_leases().await?;
    let checkpoints: Vec<ExtendedSequenceNumber> = {
        let mut sorted = leases.clone();
        sorted.sort_by(|a, b| a.shard_id.cmp(&b.shard_id));
        sorted.into_iter().map(|l| l.checkpoint).collect()
    };
    let mut views = views(leases);
    let mut total = None;
    if let Some(name) = &stream.stream {
        let client = stream.aws.kinesis().await?;
        let mut sum = TotalLag::default();
        for (view, checkpoint) in views.iter_mut().zip(&checkpoints) {
            let key = ShardId::new(&view.shard)?;
            // A multi-stream lease: only those of the stream named, read
            // by their raw shard id.
            let Some(shard) = shard_of_stream(&key, name) else {
                continue;
            };
            let lag = shard_lag(&client, name, &shard, checkpoint, count_limit).await?;
            sum.records_behind += lag.records_behind;
            sum.max_millis_behind = sum.max_millis_behind.max(lag.millis_behind);
            sum.capped |= lag.capped;
            view.lag = Some(lag);
        }
        total = Some(sum);
    }
    Ok(LeasesReport {
        application,
        leases: views,
        total,
    })
}

/// The shard to read for lease `key` when `--stream` is `stream` (a name
/// or an ARN): a single-stream lease's own key; a multi-stream lease's raw
/// shard id when its stream is the one named (by an ARN: same name and
/// account); `None` for another stream's lease.
fn shard_of_stream(key: &ShardId, stream: &str) -> Option<ShardId> {
    let Some((of, raw)) = StreamIdentifier::split_lease_key(key) else {
        return Some(key.clone());
    };
    let matches = match stream.parse::<StreamArn>() {
        Ok(arn) if stream.starts_with("arn:") => {
            arn.stream_name() == of.stream_name() && arn.account_id() == of.account_id()
        }
        _ => of.stream_name() == stream,
    };
    matches.then_some(raw)
}

/// The report as a table.
pub fn render(report: &LeasesReport) -> String {
    let with_lag = report.total.is_some();
    let multi_stream = report.leases.iter().any(|l| l.stream.is_some());
    let mut header = if multi_stream {
        vec!["STREAM"]
    } else {
        Vec::new()
    };
    header.extend([
        "SHARD",
        "OWNER",
        "CHECKPOINT",
        "PENDING",
        "PARENTS",
        "STATE",
        "SWITCHES",
    ]);
    if with_lag {
        header.extend(["MS_BEHIND", "RECORDS_BEHIND"]);
    }
    let mut table = Table::new(&header);
    for l in &report.leases {
        let raw = |id: &str| -> String {
            match ShardId::new(id)
                .ok()
                .and_then(|k| StreamIdentifier::split_lease_key(&k))
            {
                Some((_, shard)) => shard.to_string(),
                None => id.to_string(),
            }
        };
        let mut row = if multi_stream {
            vec![or_dash(l.stream.as_ref())]
        } else {
            Vec::new()
        };
        row.extend([
            raw(&l.shard),
            or_dash(l.owner.as_ref()),
            l.checkpoint.to_string(),
            or_dash(l.pending_checkpoint.as_ref()),
            if l.parents.is_empty() {
                "-".into()
            } else {
                l.parents
                    .iter()
                    .map(|p| raw(p))
                    .collect::<Vec<_>>()
                    .join(",")
            },
            l.state.to_string(),
            l.owner_switches.to_string(),
        ]);
        match &l.lag {
            Some(lag) => {
                row.push(lag.millis_behind.to_string());
                row.push(count(lag.records_behind, lag.capped));
            }
            // A lease of another stream than the one asked about.
            None if with_lag => row.extend(["-".to_string(), "-".to_string()]),
            None => {}
        }
        table.row(row);
    }
    let mut out = table.render();
    if let Some(total) = &report.total {
        out.push_str(&format!(
            "total: {} records behind, at most {} ms behind\n",
            count(total.records_behind, total.capped),
            total.max_millis_behind
        ));
    }
    if report.leases.is_empty() {
        out.push_str(&format!(
            "no leases for application {}\n",
            report.application
        ));
    }
    out
}

fn count(n: u64, capped: bool) -> String {
    if capped {
        format!("{n}+")
    } else {
        n.to_string()
    }
}

impl ListArgs {
    async fn run(self, store: &StoreArgs) -> Result<(), AdminError> {
        let report = report(store, &self.stream, self.count_limit).await?;
        match self.output {
            Output::Json => print_json(&report),
            Output::Table => {
                print!("{}", render(&report));
                Ok(())
            }
        }
    }
}

async fn lease(
    store: &StoreArgs,
    shard: &str,
) -> Result<(std::sync::Arc<dyn kcl_core::LeaseStore>, Lease), AdminError> {
    let shard = ShardId::new(shard)?;
    let store = store.open().await?;
    let lease = store.get_lease(&shard).await?.ok_or_else(|| {
        AdminError::new(super::Exit::NotFound, format!("no lease for shard {shard}"))
    })?;
    Ok((store, lease))
}

async fn release(store: &StoreArgs, shard: &str) -> Result<(), AdminError> {
    let (store, lease) = lease(store, shard).await?;
    let Some(owner) = lease.owner.clone() else {
        println!("lease {} is already free", lease.shard_id);
        return Ok(());
    };
    store.release_lease(&lease, None).await?;
    println!("released lease {} (was held by {owner})", lease.shard_id);
    Ok(())
}

async fn assign(store: &StoreArgs, shard: &str, worker: &str) -> Result<(), AdminError> {
    let worker = WorkerId::new(worker)?;
    let (store, lease) = lease(store, shard).await?;
    match &lease.owner {
        None => Err(AdminError::refused(format!(
            "lease {} is free: a hand-off needs an owner (any worker, {worker} too, may take it)",
            lease.shard_id
        ))),
        Some(owner) if *owner == worker => {
            println!("lease {} is already held by {worker}", lease.shard_id);
            Ok(())
        }
        Some(owner) => {
            store.request_handoff(&lease, &worker).await?;
            println!(
                "asked {owner} to hand lease {} to {worker} (it does on its next renew)",
                lease.shard_id
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod stream_filter_tests {
    use super::*;

    #[test]
    fn stream_given_by_name_or_arn_picks_that_streams_leases() {
        let ours = ShardId::new("123456789012:orders:1700000000:shardId-000000000001").unwrap();
        let other = ShardId::new("123456789012:clicks:1700000000:shardId-000000000001").unwrap();
        let other_account =
            ShardId::new("210987654321:orders:1700000000:shardId-000000000001").unwrap();
        let single = ShardId::new("shardId-000000000001").unwrap();
        let raw = ShardId::new("shardId-000000000001").unwrap();
        let arn = "arn:aws:kinesis:eu-west-1:123456789012:stream/orders";
        for stream in ["orders", arn] {
            assert_eq!(
                shard_of_stream(&ours, stream),
                Some(raw.clone()),
                "{stream}"
            );
            assert_eq!(shard_of_stream(&other, stream), None, "{stream}");
            assert_eq!(
                shard_of_stream(&single, stream),
                Some(raw.clone()),
                "{stream}"
            );
        }
        assert_eq!(shard_of_stream(&other_account, arn), None);
        assert_eq!(shard_of_stream(&other_account, "orders"), Some(raw));
    }
}
