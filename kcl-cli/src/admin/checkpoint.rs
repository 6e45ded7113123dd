//! `kcl checkpoint reset`: move checkpoints, even backwards. A dry run
//! unless `--execute`: the plan is printed and nothing changes.
//!
//! Each reset goes through the store's `reset_checkpoint`, which also frees
//! the lease and bumps its generation, so the current owner is fenced out
//! (its next checkpoint or renew fails) and the next owner starts from the
//! new position.

use std::str::FromStr;
use std::time::SystemTime;

use aws_sdk_kinesis::primitives::{DateTime, DateTimeFormat};
use clap::{Args, Subcommand};
use kcl_core::{ExtendedSequenceNumber, Lease, ShardId};
use serde::Serialize;

use super::aws::StreamArgs;
use super::leases::PositionView;
use super::output::{Output, Table, or_dash, print_json};
use super::stream::{checkpoint_before, sequence_in_shard};
use super::{AdminError, StoreArgs};

/// `kcl checkpoint …`.
#[derive(Subcommand, Debug)]
pub enum CheckpointCommand {
    /// Set checkpoints to a position (dry run unless --execute).
    Reset(ResetArgs),
}

impl CheckpointCommand {
    /// Run it.
    pub async fn run(self) -> Result<(), AdminError> {
        match self {
            CheckpointCommand::Reset(args) => args.run().await,
        }
    }
}

/// `kcl checkpoint reset`.
#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["shard", "all"])))]
pub struct ResetArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    stream: StreamArgs,
    /// Where to: `trim-horizon`, `latest`, `timestamp:T` (RFC 3339 or Unix
    /// seconds; needs --stream: the checkpoint becomes the last record
    /// before T) or `sequence:N` (N counts as processed: reading resumes
    /// after it; with --stream, N must be a record of the shard).
    #[arg(long, value_name = "POSITION")]
    to: Target,
    /// A shard to reset (repeatable).
    #[arg(long, value_name = "SHARD")]
    shard: Vec<String>,
    /// Every lease of the application.
    #[arg(long)]
    all: bool,
    /// Do it. Without this flag the plan is printed and nothing changes.
    #[arg(long)]
    execute: bool,
    /// Table or JSON.
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

/// A position `--to` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The oldest record kept.
    TrimHorizon,
    /// Only records put from now on.
    Latest,
    /// The first record at or after this time.
    Timestamp(SystemTime),
    /// This sequence number, as processed.
    Sequence(kcl_core::SequenceNumber),
}

impl FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "trim-horizon" | "trim_horizon" => return Ok(Target::TrimHorizon),
            "latest" => return Ok(Target::Latest),
            _ => {}
        }
        if let Some(t) = s.strip_prefix("timestamp:") {
            return parse_time(t).map(Target::Timestamp);
        }
        if let Some(n) = s.strip_prefix("sequence:") {
            return n
                .parse()
                .map(Target::Sequence)
                .map_err(|e: kcl_core::Error| e.to_string());
        }
        Err(format!(
            "{s:?}: expected trim-horizon, latest, timestamp:T or sequence:N"
        ))
    }
}

fn parse_time(text: &str) -> Result<SystemTime, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let secs: u64 = text.parse().map_err(|e| format!("{text:?}: {e}"))?;
        return Ok(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs));
    }
    let t = DateTime::from_str(text, DateTimeFormat::DateTimeWithOffset)
        .or_else(|_| DateTime::from_str(text, DateTimeFormat::DateTime))
        .map_err(|_| {
            format!("{text:?} is not a time (RFC 3339, e.g. 2026-01-31T12:00:00Z, or Unix seconds)")
        })?;
    SystemTime::try_from(t).map_err(|_| format!("{text:?} is before 1970"))
}

/// One line of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedReset {
    /// The shard.
    pub shard: String,
    /// Its owner now (fenced out by the reset).
    pub owner: Option<String>,
    /// The checkpoint now.
    pub from: PositionView,
    /// The checkpoint after.
    pub to: PositionView,
    /// How `to` was checked against the stream: `checked`, or why not.
    pub check: &'static str,
}

/// The plan, and whether it was carried out.
#[derive(Debug, Clone, Serialize)]
pub struct ResetReport {
    /// The application.
    pub application: String,
    /// Whether the checkpoints were changed (`--execute`).
    pub executed: bool,
    /// One entry per lease.
    pub resets: Vec<PlannedReset>,
}

impl ResetArgs {
    async fn run(self) -> Result<(), AdminError> {
        let application = self.store.application()?;
        let store = self.store.open().await?;
        let mut leases: Vec<Lease> = if self.all {
            store.list_leases().await?
        } else {
            let mut found = Vec::new();
            for shard in &self.shard {
                let id = ShardId::new(shard)?;
                let lease = store.get_lease(&id).await?.ok_or_else(|| {
                    AdminError::new(super::Exit::NotFound, format!("no lease for shard {id}"))
                })?;
                found.push(lease);
            }
            found
        };
        leases.sort_by(|a, b| a.shard_id.cmp(&b.shard_id));
        leases.dedup_by(|a, b| a.shard_id == b.shard_id);
        let client = match &self.stream.stream {
            Some(_) => Some(self.stream.aws.kinesis().await?),
            None => None,
        };
        // Every position is resolved and checked before anything changes.
        let mut plan = Vec::new();
        for lease in &leases {
            let (to, check) = match (&self.to, &client, &self.stream.stream) {
                (Target::TrimHorizon, ..) => (ExtendedSequenceNumber::TrimHorizon, "-"),
                (Target::Latest, ..) => (ExtendedSequenceNumber::Latest, "-"),
                (Target::Timestamp(at), Some(client), Some(stream)) => (
                    checkpoint_before(client, stream, &lease.shard_id, *at).await?,
                    "checked",
                ),
                (Target::Timestamp(_), ..) => {
                    return Err(AdminError::usage(
                        "timestamp:T needs --stream (the checkpoint is the last record before T, read from the stream)",
                    ));
                }
                (Target::Sequence(n), Some(client), Some(stream)) => {
                    if !sequence_in_shard(client, stream, &lease.shard_id, n.as_str()).await? {
                        return Err(AdminError::refused(format!(
                            "sequence {n} is not a record of shard {} in stream {stream} (nothing was changed)",
                            lease.shard_id
                        )));
                    }
                    (ExtendedSequenceNumber::at(n.clone(), 0), "checked")
                }
                (Target::Sequence(n), ..) => (
                    ExtendedSequenceNumber::at(n.clone(), 0),
                    "not checked (no --stream)",
                ),
            };
            plan.push((lease.shard_id.clone(), to, check));
        }
        let resets: Vec<PlannedReset> = leases
            .iter()
            .zip(&plan)
            .map(|(lease, (_, to, check))| PlannedReset {
                shard: lease.shard_id.to_string(),
                owner: lease.owner.as_ref().map(ToString::to_string),
                from: (&lease.checkpoint).into(),
                to: to.into(),
                check,
            })
            .collect();
        if self.execute {
            for (shard, to, _) in &plan {
                store.reset_checkpoint(shard, to).await?;
            }
        }
        let report = ResetReport {
            application,
            executed: self.execute,
            resets,
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

/// The plan as a table, with a last line saying what happened.
pub fn render(report: &ResetReport) -> String {
    let mut table = Table::new(&["SHARD", "OWNER", "FROM", "TO", "CHECK"]);
    for r in &report.resets {
        table.row(vec![
            r.shard.clone(),
            or_dash(r.owner.as_ref()),
            r.from.to_string(),
            r.to.to_string(),
            r.check.to_string(),
        ]);
    }
    let mut out = table.render();
    if report.executed {
        out.push_str(&format!(
            "reset {} checkpoint(s); their owners were fenced out\n",
            report.resets.len()
        ));
    } else {
        out.push_str("dry run: nothing changed (add --execute to reset)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!("trim-horizon".parse(), Ok(Target::TrimHorizon));
        assert_eq!("LATEST".parse(), Ok(Target::Latest));
        assert_eq!(
            "sequence:0042".parse(),
            Ok(Target::Sequence("42".parse().unwrap()))
        );
        assert_eq!(
            "timestamp:60".parse(),
            Ok(Target::Timestamp(
                SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(60)
            ))
        );
        assert_eq!(
            "timestamp:1970-01-01T00:01:00Z".parse(),
            Ok(Target::Timestamp(
                SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(60)
            ))
        );
        for bad in ["sequence:x", "timestamp:soon", "earliest", "sequence:"] {
            assert!(bad.parse::<Target>().is_err(), "{bad}");
        }
    }
}
