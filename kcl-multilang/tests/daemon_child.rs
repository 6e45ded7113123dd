//! The daemon side against scripted child processes (a small Python
//! script): the exact lines a child receives, checkpoint replies, and
//! every failure ending only that child.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kcl_core::processor::DetachedCheckpointer;
use kcl_core::retrieval::Record;
use kcl_core::{
    CheckpointStore, ExtendedSequenceNumber, InitializeInput, ProcessRecordsInput,
    ProcessorFactory, ShardId, ShardProcessor,
};
use kcl_multilang::daemon::{ChildConfig, ChildFailure, ChildProcessorFactory};
use kcl_store_memory::MemoryStore;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/children/scripted_child.py"
);

struct Setup {
    dir: tempfile_dir::Dir,
    factory: ChildProcessorFactory,
    store: Arc<MemoryStore>,
    shard: ShardId,
}

mod tempfile_dir {
    /// A private directory under the target dir, removed on drop.
    pub(crate) struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub(crate) fn new() -> Dir {
            let p = std::env::temp_dir().join(format!(
                "kcl-ml-{}-{}",
                std::process::id(),
                rand_suffix()
            ));
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    fn rand_suffix() -> u64 {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos(),
        );
        h.finish()
    }
}

fn setup(mode: &str, tune: impl FnOnce(&mut ChildConfig)) -> Setup {
    let dir = tempfile_dir::Dir::new();
    let log = dir.0.join("received.log");
    let mut config = ChildConfig::new(vec![
        "python3".into(),
        SCRIPT.into(),
        mode.into(),
        log.display().to_string(),
    ]);
    config.action_timeout = Duration::from_secs(20);
    tune(&mut config);
    Setup {
        dir,
        factory: ChildProcessorFactory::new(config),
        store: Arc::new(
            MemoryStore::builder()
                .application("ml-test")
                .build()
                .unwrap(),
        ),
        shard: ShardId::new("shardId-000000000007").unwrap(),
    }
}

impl Setup {
    fn received(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.0.join("received.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.starts_with("pid "))
            .map(String::from)
            .collect()
    }

    fn checkpointer(&self) -> DetachedCheckpointer {
        DetachedCheckpointer::new(
            self.store.clone(),
            self.shard.clone(),
            ExtendedSequenceNumber::TrimHorizon,
        )
    }

    fn init(&self) -> InitializeInput {
        InitializeInput {
            shard_id: self.shard.clone(),
            checkpoint: ExtendedSequenceNumber::TrimHorizon,
            pending_checkpoint: None,
        }
    }

    async fn stored(&self) -> Option<ExtendedSequenceNumber> {
        self.store.get_checkpoint(&self.shard).await.unwrap()
    }
}

fn batch(shard: &ShardId, seqs: &[u128], cp: &mut DetachedCheckpointer) -> ProcessRecordsInput {
    let records: Vec<Record> = seqs
        .iter()
        .map(|s| Record::new((*s).into(), "pk", format!("data-{s}").into_bytes()))
        .collect();
    cp.on_delivered(records.last().unwrap().extended_sequence_number());
    ProcessRecordsInput {
        shard_id: shard.clone(),
        records: Arc::new(records),
        millis_behind_latest: Some(5),
    }
}

fn failure(e: &kcl_core::BoxError) -> &ChildFailure {
    e.downcast_ref::<ChildFailure>()
        .unwrap_or_else(|| panic!("not a child failure: {e}"))
}

#[tokio::test]
async fn lifecycle_bytes_and_checkpoints() {
    let s = setup("ok", |_| {});
    let mut p = s.factory.create_processor(&s.shard);
    let mut cp = s.checkpointer();
    p.initialize(s.init()).await.unwrap();
    let input = batch(&s.shard, &[100, 101], &mut cp);
    p.process_records(input, cp.checkpointer()).await.unwrap();
    cp.on_processed();
    assert_eq!(
        s.stored().await,
        Some(ExtendedSequenceNumber::at(101u128.into(), 0))
    );
    let input = batch(&s.shard, &[102], &mut cp);
    p.process_records(input, cp.checkpointer()).await.unwrap();
    cp.on_shard_ended();
    // The child checkpoints the last delivered sequence number at shard
    // end: that is SHARD_END.
    p.shard_ended(cp.checkpointer()).await.unwrap();
    assert_eq!(s.stored().await, Some(ExtendedSequenceNumber::ShardEnd));
    assert_eq!(
        s.received(),
        vec![
            r#"{"action":"initialize","shardId":"shardId-000000000007","sequenceNumber":"TRIM_HORIZON","subSequenceNumber":0}"#.to_string(),
            r#"{"action":"processRecords","records":[{"data":"ZGF0YS0xMDA=","partitionKey":"pk","sequenceNumber":"100","approximateArrivalTimestamp":null,"subSequenceNumber":0,"action":"record"},{"data":"ZGF0YS0xMDE=","partitionKey":"pk","sequenceNumber":"101","approximateArrivalTimestamp":null,"subSequenceNumber":0,"action":"record"}],"millisBehindLatest":5}"#.into(),
            r#"{"action":"checkpoint","sequenceNumber":null,"subSequenceNumber":null,"error":null}"#.into(),
            r#"{"action":"checkpoint","sequenceNumber":"not-a-number","subSequenceNumber":null,"error":"IllegalArgumentException"}"#.into(),
            r#"{"action":"processRecords","records":[{"data":"ZGF0YS0xMDI=","partitionKey":"pk","sequenceNumber":"102","approximateArrivalTimestamp":null,"subSequenceNumber":0,"action":"record"}],"millisBehindLatest":5}"#.into(),
            r#"{"action":"checkpoint","sequenceNumber":null,"subSequenceNumber":null,"error":null}"#.into(),
            r#"{"action":"checkpoint","sequenceNumber":"not-a-number","subSequenceNumber":null,"error":"IllegalArgumentException"}"#.into(),
            r#"{"action":"shardEnded"}"#.into(),
            r#"{"action":"checkpoint","sequenceNumber":"102","subSequenceNumber":0,"error":null}"#.into(),
        ]
    );
}

/// A hand-off / graceful shutdown: shutdownRequested (checkpoint allowed),
/// then leaseLost (checkpoint refused with InvalidStateException).
#[tokio::test]
async fn shutdown_requested_then_lease_lost() {
    let s = setup("ok", |_| {});
    let mut p = s.factory.create_processor(&s.shard);
    let mut cp = s.checkpointer();
    p.initialize(s.init()).await.unwrap();
    let input = batch(&s.shard, &[5], &mut cp);
    p.process_records(input, cp.checkpointer()).await.unwrap();
    p.shutdown_requested(cp.checkpointer()).await.unwrap();
    let got = s.received();
    let tail: Vec<&str> = got[got.len() - 4..].iter().map(String::as_str).collect();
    assert_eq!(
        tail,
        [
            r#"{"action":"shutdownRequested"}"#,
            r#"{"action":"checkpoint","sequenceNumber":null,"subSequenceNumber":null,"error":null}"#,
            r#"{"action":"leaseLost"}"#,
            r#"{"action":"checkpoint","sequenceNumber":null,"subSequenceNumber":null,"error":"InvalidStateException"}"#,
        ]
    );
}

/// Checkpoints during initialize are refused, as in Java.
#[tokio::test]
async fn no_checkpointer_at_initialize() {
    let s = setup("checkpoint-in-initialize", |_| {});
    let mut p = s.factory.create_processor(&s.shard);
    p.initialize(s.init()).await.unwrap();
    assert_eq!(
        s.received()[1],
        r#"{"action":"checkpoint","sequenceNumber":null,"subSequenceNumber":null,"error":"InvalidStateException"}"#
    );
}

/// A crash mid-batch fails the call (that child only); the same batch
/// called again goes to a new child, initialized at the last checkpoint.
#[tokio::test]
async fn crash_then_redelivery_to_a_new_child() {
    let s = setup("crash-on-records", |_| {});
    let mut p = s.factory.create_processor(&s.shard);
    let mut cp = s.checkpointer();
    p.initialize(s.init()).await.unwrap();
    let input = batch(&s.shard, &[9], &mut cp);
    let e = p
        .process_records(input.clone(), cp.checkpointer())
        .await
        .unwrap_err();
    assert!(matches!(failure(&e), ChildFailure::Gone { .. }), "{e}");
    let e = p
        .process_records(input, cp.checkpointer())
        .await
        .unwrap_err();
    assert!(matches!(failure(&e), ChildFailure::Gone { .. }), "{e}");
    let log = std::fs::read_to_string(s.dir.0.join("received.log")).unwrap();
    assert_eq!(log.matches("\"action\":\"initialize\"").count(), 2, "{log}");
    assert_eq!(
        log.matches("\"action\":\"processRecords\"").count(),
        2,
        "{log}"
    );
}

#[tokio::test]
async fn wrong_status_is_a_failure() {
    let s = setup("wrong-status", |_| {});
    let mut p = s.factory.create_processor(&s.shard);
    let mut cp = s.checkpointer();
    p.initialize(s.init()).await.unwrap();
    let input = batch(&s.shard, &[1], &mut cp);
    let e = p
        .process_records(input, cp.checkpointer())
        .await
        .unwrap_err();
    match failure(&e) {
        ChildFailure::WrongStatus { expected, got } => {
            assert_eq!(
                (expected.as_str(), got.as_str()),
                ("processRecords", "initialize")
            )
        }
        other => panic!("{other}"),
    }
}

/// A hung child is killed after the action timeout, its whole group.
#[tokio::test]
async fn timeout_kills_the_hung_child() {
    let s = setup("hang", |c| c.action_timeout = Duration::from_millis(800));
    let mut p = s.factory.create_processor(&s.shard);
    let mut cp = s.checkpointer();
    p.initialize(s.init()).await.unwrap();
    let pid = child_pid(&s);
    let input = batch(&s.shard, &[1], &mut cp);
    let start = Instant::now();
    let e = p
        .process_records(input, cp.checkpointer())
        .await
        .unwrap_err();
    assert!(matches!(failure(&e), ChildFailure::Timeout(..)), "{e}");
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(
        wait_gone(pid, Duration::from_secs(5)),
        "the hung child still runs"
    );
}

/// A child that ignores stdin EOF and SIGTERM is SIGKILLed after the
/// bounded waits. Children run in their own process group.
#[tokio::test]
async fn bounded_exit_wait_then_sigterm_then_sigkill() {
    let s = setup("ignore-eof", |c| {
        c.exit_wait = Duration::from_millis(300);
        c.term_wait = Duration::from_millis(300);
    });
    let mut p = s.factory.create_processor(&s.shard);
    p.initialize(s.init()).await.unwrap();
    let pid = child_pid(&s);
    let log = std::fs::read_to_string(s.dir.0.join("received.log")).unwrap();
    let first = log.lines().next().unwrap();
    let parts: Vec<&str> = first.split(' ').collect();
    assert_eq!(
        parts[1], parts[3],
        "the child leads its own process group: {first}"
    );
    assert_ne!(parts[3], std::process::id().to_string());
    let start = Instant::now();
    p.lease_lost().await;
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );
    assert!(wait_gone(pid, Duration::from_secs(5)));
}

/// The legacy protocol: shutdown TERMINATE at shard end, ZOMBIE on lease
/// loss (checkpoints answered with ShutdownException), null sub-sequence
/// numbers on plain records.
#[tokio::test]
async fn legacy_protocol() {
    let s = setup("ok", |c| c.legacy = true);
    let mut p = s.factory.create_processor(&s.shard);
    let mut cp = s.checkpointer();
    p.initialize(s.init()).await.unwrap();
    let input = batch(&s.shard, &[3], &mut cp);
    p.process_records(input, cp.checkpointer()).await.unwrap();
    p.lease_lost().await;
    let got = s.received();
    assert!(
        got[1].contains(r#""subSequenceNumber":null,"action":"record""#),
        "{}",
        got[1]
    );
    assert_eq!(
        got[got.len() - 2],
        r#"{"action":"shutdown","reason":"ZOMBIE"}"#
    );
    assert_eq!(
        got[got.len() - 1],
        r#"{"action":"checkpoint","sequenceNumber":"3","subSequenceNumber":null,"error":"ShutdownException"}"#
    );

    let s = setup("ok", |c| c.legacy = true);
    let mut p = s.factory.create_processor(&s.shard);
    let mut cp = s.checkpointer();
    p.initialize(s.init()).await.unwrap();
    cp.on_shard_ended();
    p.shard_ended(cp.checkpointer()).await.unwrap();
    assert_eq!(s.stored().await, Some(ExtendedSequenceNumber::ShardEnd));
    assert_eq!(
        s.received()[1],
        r#"{"action":"shutdown","reason":"TERMINATE"}"#
    );
}

fn child_pid(s: &Setup) -> i32 {
    let log = std::fs::read_to_string(s.dir.0.join("received.log")).unwrap();
    log.lines()
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}

fn wait_gone(pid: i32, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        // Gone, or a zombie waiting for its parent.
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            Ok(stat) if stat.split(' ').nth(2) == Some("Z") => return true,
            Ok(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    false
}

/// A `processRecords` line of about 40 MB reaches a child that, before
/// reading it, fills its stdout and stderr pipes with 2 MiB of chatter
/// each: the daemon reads while it writes, so neither side blocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_batch_while_the_child_chatters() {
    use base64::Engine as _;
    let s = setup("chatty", |c| c.action_timeout = Duration::from_secs(120));
    let mut p = s.factory.create_processor(&s.shard);
    let mut cp = s.checkpointer();
    p.initialize(s.init()).await.unwrap();
    let records: Vec<Record> = (0..30u8)
        .map(|i| Record::new(u128::from(i).into(), "pk", vec![b'a' + i % 26; 1 << 20]))
        .collect();
    cp.on_delivered(records.last().unwrap().extended_sequence_number());
    let input = ProcessRecordsInput {
        shard_id: s.shard.clone(),
        records: Arc::new(records.clone()),
        millis_behind_latest: Some(0),
    };
    tokio::time::timeout(
        Duration::from_secs(150),
        p.process_records(input, cp.checkpointer()),
    )
    .await
    .expect("deadlock: the batch never completed")
    .unwrap();
    let received = s.received();
    let chatter = received.iter().position(|l| l == "chatter done").unwrap();
    let batch = received
        .iter()
        .position(|l| l.starts_with(r#"{"action":"processRecords""#))
        .unwrap();
    assert!(chatter < batch, "the chatter came first");
    let line = &received[batch];
    assert!(line.len() > 40 << 20, "{} bytes", line.len());
    let json: serde_json::Value = serde_json::from_str(line).unwrap();
    let got = json["records"].as_array().unwrap();
    assert_eq!(got.len(), records.len());
    for (r, g) in records.iter().zip(got) {
        let data = base64::engine::general_purpose::STANDARD
            .decode(g["data"].as_str().unwrap())
            .unwrap();
        assert_eq!(data, r.data.as_ref(), "record {}", r.sequence_number);
    }
}

/// A child that closes its stdin and keeps running: the next write fails,
/// the call fails at once as a broken pipe (not after the action
/// timeout), that child is killed, and a child on another shard carries
/// on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_pipe_ends_only_that_child() {
    let s = setup("close-stdin", |c| {
        c.action_timeout = Duration::from_secs(60)
    });
    let other = setup("ok", |_| {});
    let mut p = s.factory.create_processor(&s.shard);
    let mut q = other.factory.create_processor(&other.shard);
    let mut cp = s.checkpointer();
    let mut other_cp = other.checkpointer();
    p.initialize(s.init()).await.unwrap();
    q.initialize(other.init()).await.unwrap();
    let pid = child_pid(&s);
    let other_pid = child_pid(&other);
    let start = Instant::now();
    while !s.received().iter().any(|l| l == "stdin closed") {
        assert!(start.elapsed() < Duration::from_secs(10), "never closed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let start = Instant::now();
    let input = batch(&s.shard, &[1], &mut cp);
    let e = p
        .process_records(input, cp.checkpointer())
        .await
        .unwrap_err();
    assert!(matches!(failure(&e), ChildFailure::BrokenPipe), "{e}");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "found only after {:?}",
        start.elapsed()
    );
    assert!(
        wait_gone(pid, Duration::from_secs(5)),
        "the child still runs"
    );
    assert!(!wait_gone(other_pid, Duration::from_millis(100)));
    let input = batch(&other.shard, &[2], &mut other_cp);
    q.process_records(input, other_cp.checkpointer())
        .await
        .unwrap();
}
