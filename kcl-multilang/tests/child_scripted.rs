//! The child adapter under a scripted daemon that sends the exact bytes of
//! MULTILANG.md: every action, every error reply, the legacy forms.

use std::sync::{Arc, Mutex};

use kcl_core::{
    BoxError, Checkpointer, Error, InitializeInput, ProcessRecordsInput, ShardProcessor,
};
use kcl_multilang::child;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, Lines};

const SEQ0: &str = "49590338271490256608559692538361571095921575989136588898";
const SEQ1: &str = "49590338271490256608559692540925702759324208523137515618";

fn batch(records: &[(&str, u64)]) -> String {
    let items: Vec<String> = records
        .iter()
        .map(|(seq, sub)| format!(r#"{{"data":"aGVsbG8gd29ybGQ=","partitionKey":"pk-1","sequenceNumber":"{seq}","approximateArrivalTimestamp":1700000000000,"subSequenceNumber":{sub},"action":"record"}}"#))
        .collect();
    format!(
        r#"{{"action":"processRecords","records":[{}],"millisBehindLatest":0}}"#,
        items.join(",")
    )
}

fn ok_reply(seq: &str, sub: &str) -> String {
    format!(
        r#"{{"action":"checkpoint","sequenceNumber":{seq},"subSequenceNumber":{sub},"error":null}}"#
    )
}

fn err_reply(seq: &str, sub: &str, error: &str) -> String {
    format!(
        r#"{{"action":"checkpoint","sequenceNumber":{seq},"subSequenceNumber":{sub},"error":"{error}"}}"#
    )
}

/// What the test processor does in `process_records`.
#[derive(Clone, Copy)]
enum Plan {
    /// Checkpoint at the first record (sequence, sub-sequence), then the batch.
    AtFirstThenAll,
    /// Checkpoint the batch once.
    All,
    /// Fail the first call, then checkpoint.
    FailOnce,
}

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn push(&self, s: impl Into<String>) {
        self.0.lock().unwrap().push(s.into());
    }
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

struct Probe {
    log: Log,
    plan: Plan,
    failed: bool,
}

fn describe(e: &Error) -> String {
    match e {
        Error::Conflict { .. } => "conflict".into(),
        Error::InvalidCheckpoint(_) => "invalid".into(),
        Error::Throttled { .. } => "throttled".into(),
        Error::Unavailable { .. } => "unavailable".into(),
        other => format!("other: {other}"),
    }
}

impl ShardProcessor for Probe {
    async fn initialize(&mut self, input: InitializeInput) -> Result<(), BoxError> {
        self.log
            .push(format!("init {} {}", input.shard_id, input.checkpoint));
        Ok(())
    }

    async fn process_records(
        &mut self,
        input: ProcessRecordsInput,
        cp: &mut Checkpointer,
    ) -> Result<(), BoxError> {
        self.log.push(format!("records {}", input.records().len()));
        match self.plan {
            Plan::AtFirstThenAll => {
                if let Err(e) = cp.checkpoint_at(&input.records()[0]).await {
                    self.log.push(format!("at-first failed: {}", describe(&e)));
                }
                if let Err(e) = cp.checkpoint().await {
                    self.log.push(format!("all failed: {}", describe(&e)));
                }
            }
            Plan::All => {
                if let Err(e) = cp.checkpoint().await {
                    self.log.push(format!("all failed: {}", describe(&e)));
                }
            }
            Plan::FailOnce => {
                if !self.failed {
                    self.failed = true;
                    return Err("boom".into());
                }
                cp.checkpoint().await?;
            }
        }
        Ok(())
    }

    async fn lease_lost(&mut self) {
        self.log.push("lease lost");
    }

    async fn shard_ended(&mut self, cp: &mut Checkpointer) -> Result<(), BoxError> {
        self.log.push("shard ended");
        cp.checkpoint_shard_end().await?;
        Ok(())
    }

    async fn shutdown_requested(&mut self, cp: &mut Checkpointer) -> Result<(), BoxError> {
        self.log.push("shutdown requested");
        cp.checkpoint_processed().await?;
        Ok(())
    }
}

struct Daemon {
    to_child: DuplexStream,
    from_child: Lines<BufReader<DuplexStream>>,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
    log: Log,
}

impl Daemon {
    fn start(plan: Plan) -> Daemon {
        let (to_child, child_in) = tokio::io::duplex(1 << 16);
        let (child_out, from_child) = tokio::io::duplex(1 << 16);
        let log = Log::default();
        let probe = Probe {
            log: log.clone(),
            plan,
            failed: false,
        };
        let done = tokio::spawn(child::serve(probe, BufReader::new(child_in), child_out));
        Daemon {
            to_child,
            from_child: BufReader::new(from_child).lines(),
            done,
            log,
        }
    }

    async fn send(&mut self, raw: &str) {
        self.to_child.write_all(raw.as_bytes()).await.unwrap();
        self.to_child.write_all(b"\n").await.unwrap();
    }

    async fn expect(&mut self, line: &str) {
        let got = self
            .from_child
            .next_line()
            .await
            .unwrap()
            .expect("the child closed stdout");
        assert_eq!(got, line);
    }

    async fn expect_status(&mut self, action: &str) {
        self.expect(&format!(
            r#"{{"action":"status","responseFor":"{action}"}}"#
        ))
        .await;
    }

    async fn close(self) -> Vec<String> {
        drop(self.to_child);
        self.done.await.unwrap().unwrap();
        self.log.take()
    }
}

fn checkpoint_req(seq: &str, sub: &str) -> String {
    format!(r#"{{"action":"checkpoint","sequenceNumber":{seq},"subSequenceNumber":{sub}}}"#)
}

#[tokio::test]
async fn kcl3_lifecycle_with_checkpoints() {
    let mut d = Daemon::start(Plan::AtFirstThenAll);
    d.send(r#"{"action":"initialize","shardId":"shardId-000000000001","sequenceNumber":"TRIM_HORIZON","subSequenceNumber":0}"#).await;
    d.expect_status("initialize").await;
    d.send(&batch(&[(SEQ0, 0), (SEQ1, 2)])).await;
    let q0 = format!("\"{SEQ0}\"");
    let q1 = format!("\"{SEQ1}\"");
    d.expect(&checkpoint_req(&q0, "0")).await;
    d.send(&ok_reply(&q0, "0")).await;
    d.expect(&checkpoint_req(&q1, "2")).await;
    d.send(&ok_reply(&q1, "2")).await;
    d.expect_status("processRecords").await;
    // Nothing new was processed since: no checkpoint at shutdown.
    d.send(r#"{"action":"shutdownRequested"}"#).await;
    d.expect_status("shutdownRequested").await;
    d.send(r#"{"action":"leaseLost"}"#).await;
    d.expect_status("leaseLost").await;
    assert_eq!(
        d.close().await,
        vec![
            "init shardId-000000000001 TRIM_HORIZON".to_string(),
            "records 2".into(),
            "shutdown requested".into(),
            "lease lost".into(),
        ]
    );
}

#[tokio::test]
async fn shard_end_checkpoints_null_then_answers() {
    let mut d = Daemon::start(Plan::All);
    d.send(&format!(r#"{{"action":"initialize","shardId":"shardId-000000000000","sequenceNumber":"{SEQ0}","subSequenceNumber":0}}"#)).await;
    d.expect_status("initialize").await;
    d.send(&batch(&[(SEQ1, 0)])).await;
    let q1 = format!("\"{SEQ1}\"");
    d.expect(&checkpoint_req(&q1, "0")).await;
    d.send(&ok_reply(&q1, "0")).await;
    d.expect_status("processRecords").await;
    d.send(r#"{"action":"shardEnded"}"#).await;
    d.expect(&checkpoint_req("null", "null")).await;
    d.send(&ok_reply("null", "null")).await;
    d.expect_status("shardEnded").await;
    let log = d.close().await;
    assert_eq!(log[0], format!("init shardId-000000000000 {SEQ0}"));
    assert_eq!(log.last().unwrap(), "shard ended");
}

/// Throttling is retried by the checkpointer; ShutdownException is a lost
/// lease (and later checkpoints fail without asking); IllegalArgument is an
/// invalid checkpoint; the status still follows each action.
#[tokio::test(start_paused = true)]
async fn error_replies_are_typed() {
    let mut d = Daemon::start(Plan::AtFirstThenAll);
    d.send(r#"{"action":"initialize","shardId":"shardId-000000000001","sequenceNumber":"TRIM_HORIZON","subSequenceNumber":0}"#).await;
    d.expect_status("initialize").await;
    d.send(&batch(&[(SEQ0, 0), (SEQ1, 0)])).await;
    let q0 = format!("\"{SEQ0}\"");
    let q1 = format!("\"{SEQ1}\"");
    d.expect(&checkpoint_req(&q0, "0")).await;
    d.send(&err_reply(&q0, "0", "ThrottlingException")).await;
    d.expect(&checkpoint_req(&q0, "0")).await; // retried
    d.send(&err_reply(&q0, "0", "IllegalArgumentException"))
        .await;
    d.expect(&checkpoint_req(&q1, "0")).await;
    d.send(&err_reply(&q1, "0", "ShutdownException")).await;
    d.expect_status("processRecords").await;
    d.send(&batch(&[(
        "49590338271490256608559692540925702759324208523137515619",
        0,
    )]))
    .await;
    // The lease is known lost: the checkpoints fail without a request.
    d.expect_status("processRecords").await;
    let log = d.close().await;
    assert_eq!(
        log,
        vec![
            "init shardId-000000000001 TRIM_HORIZON".to_string(),
            "records 2".into(),
            "at-first failed: invalid".into(),
            "all failed: conflict".into(),
            "records 1".into(),
            "at-first failed: conflict".into(),
            "all failed: conflict".into(),
        ]
    );
}

#[tokio::test]
async fn checkpoints_outside_an_action_with_a_checkpointer_fail_at_the_daemon() {
    // InvalidStateException and KinesisClientLibDependencyException (the
    // latter retryable: retried until the daemon answers otherwise).
    let mut d = Daemon::start(Plan::All);
    d.send(r#"{"action":"initialize","shardId":"s","sequenceNumber":"TRIM_HORIZON","subSequenceNumber":0}"#).await;
    d.expect_status("initialize").await;
    d.send(&batch(&[("5", 0)])).await;
    d.expect(&checkpoint_req("\"5\"", "0")).await;
    d.send(&err_reply(
        "\"5\"",
        "0",
        "KinesisClientLibDependencyException",
    ))
    .await;
    d.expect(&checkpoint_req("\"5\"", "0")).await;
    d.send(&err_reply("\"5\"", "0", "InvalidStateException"))
        .await;
    d.expect_status("processRecords").await;
    let log = d.close().await;
    assert!(log[2].starts_with("all failed: other"), "{log:?}");
}

#[tokio::test(start_paused = true)]
async fn a_failed_batch_is_retried_not_skipped() {
    let mut d = Daemon::start(Plan::FailOnce);
    d.send(r#"{"action":"initialize","shardId":"s","sequenceNumber":"TRIM_HORIZON","subSequenceNumber":0}"#).await;
    d.expect_status("initialize").await;
    d.send(&batch(&[("7", 0)])).await;
    d.expect(&checkpoint_req("\"7\"", "0")).await;
    d.send(&ok_reply("\"7\"", "0")).await;
    d.expect_status("processRecords").await;
    let log = d.close().await;
    assert_eq!(log[1..], ["records 1".to_string(), "records 1".into()]);
}

/// KCL 1.x: `shutdown` TERMINATE checkpoints, ZOMBIE is a lost lease;
/// both answered for `shutdown`. A 1.x record has a null sub-sequence.
#[tokio::test]
async fn kcl1_shutdown_forms() {
    let mut d = Daemon::start(Plan::All);
    d.send(r#"{"action":"initialize","shardId":"shardId-000000000000","sequenceNumber":"TRIM_HORIZON"}"#).await;
    d.expect_status("initialize").await;
    d.send(r#"{"action":"processRecords","records":[{"data":"","partitionKey":"k","sequenceNumber":"11","approximateArrivalTimestamp":null,"subSequenceNumber":null,"action":"record"}]}"#).await;
    d.expect(&checkpoint_req("\"11\"", "0")).await;
    d.send(&ok_reply("\"11\"", "0")).await;
    d.expect_status("processRecords").await;
    d.send(r#"{"action":"shutdown","reason":"TERMINATE"}"#)
        .await;
    d.expect(&checkpoint_req("null", "null")).await;
    d.send(&ok_reply("null", "null")).await;
    d.expect_status("shutdown").await;
    assert_eq!(d.close().await.last().unwrap(), "shard ended");

    let mut d = Daemon::start(Plan::All);
    d.send(r#"{"action":"initialize","shardId":"shardId-000000000000","sequenceNumber":"TRIM_HORIZON"}"#).await;
    d.expect_status("initialize").await;
    d.send(r#"{"action":"shutdown","reason":"ZOMBIE"}"#).await;
    d.expect_status("shutdown").await;
    assert_eq!(d.close().await.last().unwrap(), "lease lost");
}

/// KCL 2.0.x: `shutdown` with SHARD_END / LEASE_LOST.
#[tokio::test]
async fn kcl20_shutdown_forms() {
    let mut d = Daemon::start(Plan::All);
    d.send(
        r#"{"action":"initialize","shardId":"a","sequenceNumber":"LATEST","subSequenceNumber":0}"#,
    )
    .await;
    d.expect_status("initialize").await;
    d.send(r#"{"action":"shutdown","reason":"SHARD_END"}"#)
        .await;
    d.expect(&checkpoint_req("null", "null")).await;
    d.send(&ok_reply("null", "null")).await;
    d.expect_status("shutdown").await;
    d.send(r#"{"action":"shutdown","reason":"LEASE_LOST"}"#)
        .await;
    d.expect_status("shutdown").await;
    assert_eq!(
        d.close().await[1..],
        ["shard ended".to_string(), "lease lost".into()]
    );
}

/// Unknown actions get their status; garbage, blank lines and `\r\n` are
/// skipped; an unsolicited checkpoint reply gets no answer.
#[tokio::test]
async fn unknown_actions_and_noise() {
    let mut d = Daemon::start(Plan::All);
    d.send("").await;
    d.send("not json at all").await;
    d.send(r#"{"action":"initialize","shardId":"a","sequenceNumber":"TRIM_HORIZON","subSequenceNumber":0,"future":true}"#).await;
    d.expect_status("initialize").await;
    d.send(&ok_reply("null", "null")).await;
    d.send("{\"action\":\"somethingNew\"}\r").await;
    d.expect_status("somethingNew").await;
    d.send("{\"action\":\"leaseLost\"}\r").await;
    d.expect_status("leaseLost").await;
    assert_eq!(d.close().await[1..], ["lease lost".to_string()]);
}
