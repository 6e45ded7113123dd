//! The processor API through the engine: the checkpointer's range checks
//! and prepared checkpoints, the error policies, panic isolation, the
//! closure shortcut and configuration errors.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;
use kcl_core::testkit::FakeStream;
use kcl_core::{
    BoxError, Checkpointer, Error, ExtendedSequenceNumber, InitializeInput, LeaseStore,
    ProcessRecordsInput, ProcessorErrorPolicy, ShardId, ShardProcessor, Worker,
};
use tokio_util::sync::CancellationToken;

/// What test processors saw, shared.
#[derive(Clone, Default)]
struct Seen {
    records: Arc<Mutex<Vec<(ShardId, ExtendedSequenceNumber)>>>,
    notes: Arc<Mutex<Vec<String>>>,
    calls: Arc<AtomicUsize>,
}

impl Seen {
    fn note(&self, s: impl Into<String>) {
        self.notes.lock().unwrap().push(s.into());
    }
    fn notes(&self) -> Vec<String> {
        self.notes.lock().unwrap().clone()
    }
    fn records(&self) -> Vec<(ShardId, ExtendedSequenceNumber)> {
        self.records.lock().unwrap().clone()
    }
    fn distinct(&self) -> usize {
        self.records().into_iter().collect::<HashSet<_>>().len()
    }
}

fn run_worker<P: kcl_core::ProcessorFactory>(
    store: Arc<dyn LeaseStore>,
    stream: &FakeStream,
    policy: ProcessorErrorPolicy,
    factory: P,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<kcl_core::Result<()>>,
) {
    let worker = Worker::builder()
        .worker_id("w")
        .lease_store(store)
        .source(Arc::new(stream.clone()))
        .error_policy(policy)
        .processor(factory)
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    (cancel.clone(), tokio::spawn(worker.run(cancel)))
}

/// Tries bad checkpoints, then a prepared one with bytes.
struct RangeChecker {
    seen: Seen,
}

impl ShardProcessor for RangeChecker {
    async fn initialize(&mut self, input: InitializeInput) -> Result<(), BoxError> {
        if let Some(pending) = input.pending_checkpoint {
            self.seen.note(format!(
                "pending {} {:?}",
                pending.sequence,
                pending.state.map(String::from_utf8)
            ));
        }
        Ok(())
    }

    async fn process_records(
        &mut self,
        input: ProcessRecordsInput,
        cp: &mut Checkpointer,
    ) -> Result<(), BoxError> {
        let records = input.records();
        let first = records[0].extended_sequence_number();
        let last = records[records.len() - 1].extended_sequence_number();
        self.seen.records.lock().unwrap().extend(
            records
                .iter()
                .map(|r| (input.shard_id.clone(), r.extended_sequence_number())),
        );
        if self.seen.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            // Beyond what was delivered.
            let beyond = ExtendedSequenceNumber::at(last.sequence_number().unwrap().clone(), 99);
            match cp
                .checkpoint_at_sequence(beyond.sequence_number().unwrap().clone(), 99)
                .await
            {
                Err(Error::InvalidCheckpoint(msg)) => self.seen.note(format!("beyond: {msg}")),
                other => self.seen.note(format!("beyond unexpectedly {other:?}")),
            }
            // SHARD_END before the shard ended.
            match cp.checkpoint_shard_end().await {
                Err(Error::InvalidCheckpoint(_)) => self.seen.note("shard end refused"),
                other => self.seen.note(format!("shard end unexpectedly {other:?}")),
            }
            cp.checkpoint_at(&records[records.len() / 2]).await?;
            // Behind the last checkpoint.
            match cp.checkpoint_at(&records[0]).await {
                Err(Error::InvalidCheckpoint(msg)) if records.len() > 2 => {
                    self.seen.note(format!("behind: {msg}"))
                }
                other => self
                    .seen
                    .note(format!("behind unexpectedly {other:?} {first}")),
            }
            // Prepare the end of the batch with application bytes, and do
            // not commit: the next owner sees it.
            let prepared = cp
                .prepare_checkpoint(last.clone(), Some(b"state-1".to_vec()))
                .await?;
            self.seen.note(format!("prepared {}", prepared.position()));
            return Ok(());
        }
        cp.prepare_checkpoint(last, Some(b"state-2".to_vec()))
            .await?
            .checkpoint()
            .await?;
        Ok(())
    }

    async fn shutdown_requested(&mut self, _cp: &mut Checkpointer) -> Result<(), BoxError> {
        // Leave the prepared checkpoint pending.
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn checkpoints_outside_the_delivered_range_are_refused_and_prepared_ones_survive() {
    let stream = FakeStream::new(1);
    fill(&stream, 0, 10);
    let store = store();
    let seen = Seen::default();
    let s = seen.clone();
    let (cancel, run) = run_worker(
        store.clone(),
        &stream,
        ProcessorErrorPolicy::Retry,
        move |_: &ShardId| RangeChecker { seen: s.clone() },
    );
    wait_until("first batch", Duration::from_secs(5), || {
        seen.notes().len() >= 4
    })
    .await;
    cancel.cancel();
    run.await.unwrap().unwrap();
    let notes = seen.notes();
    println!("{notes:#?}");
    assert!(
        notes[0].starts_with("beyond: ") && notes[0].contains("outside ["),
        "{}",
        notes[0]
    );
    assert_eq!(notes[1], "shard end refused");
    assert!(notes[2].starts_with("behind: "), "{}", notes[2]);
    assert!(notes[3].starts_with("prepared "));
    let lease = store.list_leases().await.unwrap().remove(0);
    let pending = lease
        .pending_checkpoint
        .clone()
        .expect("pending checkpoint stored");
    assert_eq!(pending.state.as_deref(), Some(&b"state-1"[..]));
    let records = stream.records(&lease.shard_id).unwrap();
    assert_eq!(
        lease.checkpoint,
        records[5].extended_sequence_number(),
        "checkpoint at the middle record"
    );

    // The next owner is told about the pending checkpoint and resumes
    // after the committed one.
    fill(&stream, 10, 5);
    let seen2 = Seen::default();
    seen2.calls.store(1, Ordering::SeqCst);
    let s = seen2.clone();
    let (cancel, run) = run_worker(
        store.clone(),
        &stream,
        ProcessorErrorPolicy::Retry,
        move |_: &ShardId| RangeChecker { seen: s.clone() },
    );
    wait_until("second run", Duration::from_secs(5), || {
        seen2.records().len() >= 9
    })
    .await;
    cancel.cancel();
    run.await.unwrap().unwrap();
    assert!(
        seen2.notes()[0].starts_with("pending ") && seen2.notes()[0].contains("state-1"),
        "{:?}",
        seen2.notes()
    );
    let resumed: Vec<_> = seen2.records().into_iter().map(|r| r.1).collect();
    let expected: Vec<_> = stream.records(&lease.shard_id).unwrap()[6..]
        .iter()
        .map(|r| r.extended_sequence_number())
        .collect();
    assert_eq!(
        resumed, expected,
        "resumed right after the checkpointed record"
    );
    let lease = store.list_leases().await.unwrap().remove(0);
    assert_eq!(
        lease.pending_checkpoint, None,
        "committing cleared the pending checkpoint"
    );
    assert_eq!(lease.checkpoint, *expected.last().unwrap());
}

/// Fails every batch `failures` times before succeeding; panics when told.
struct Flaky {
    seen: Seen,
    failures: usize,
    attempts: usize,
    panic_on: Option<ShardId>,
    shard: ShardId,
}

impl ShardProcessor for Flaky {
    async fn process_records(
        &mut self,
        input: ProcessRecordsInput,
        cp: &mut Checkpointer,
    ) -> Result<(), BoxError> {
        if self.panic_on.as_ref() == Some(&self.shard)
            && self.seen.calls.fetch_add(1, Ordering::SeqCst) == 0
        {
            panic!("processor bug on {}", self.shard);
        }
        if self.attempts < self.failures {
            self.attempts += 1;
            self.seen.note(format!("fail {}", input.records().len()));
            return Err(format!("failure {}", self.attempts).into());
        }
        self.attempts = 0;
        self.seen.records.lock().unwrap().extend(
            input
                .records()
                .iter()
                .map(|r| (input.shard_id.clone(), r.extended_sequence_number())),
        );
        cp.checkpoint().await?;
        Ok(())
    }
}

fn flaky(
    seen: &Seen,
    failures: usize,
    panic_on: Option<ShardId>,
) -> impl Fn(&ShardId) -> Flaky + Send + Sync + 'static {
    let seen = seen.clone();
    move |shard: &ShardId| Flaky {
        seen: seen.clone(),
        failures,
        attempts: 0,
        panic_on: panic_on.clone(),
        shard: shard.clone(),
    }
}

#[tokio::test(start_paused = true)]
async fn retry_policy_redelivers_the_same_batch_and_skips_nothing() {
    let stream = FakeStream::new(2);
    fill(&stream, 0, 100);
    let seen = Seen::default();
    let (cancel, run) = run_worker(
        store(),
        &stream,
        ProcessorErrorPolicy::Retry,
        flaky(&seen, 2, None),
    );
    wait_until("every record", Duration::from_secs(10), || {
        seen.distinct() >= 100
    })
    .await;
    cancel.cancel();
    run.await.unwrap().unwrap();
    assert_eq!(
        seen.records().len(),
        100,
        "each record delivered to a successful call exactly once"
    );
    assert!(
        seen.notes().len() >= 4,
        "two failures per batch: {:?}",
        seen.notes()
    );
}

#[tokio::test(start_paused = true)]
async fn skip_policy_moves_on_and_stop_policy_stops_the_worker() {
    let stream = FakeStream::new(1);
    fill(&stream, 0, 10);
    let store = store();
    let seen = Seen::default();
    let (cancel, run) = run_worker(
        store.clone(),
        &stream,
        ProcessorErrorPolicy::Skip,
        flaky(&seen, 1, None),
    );
    wait_until("the failure", Duration::from_secs(5), || {
        !seen.notes().is_empty()
    })
    .await;
    fill(&stream, 10, 5);
    wait_until("later records", Duration::from_secs(5), || {
        seen.distinct() >= 5
    })
    .await;
    cancel.cancel();
    run.await.unwrap().unwrap();
    assert_eq!(
        seen.distinct(),
        5,
        "the failed batch of 10 was skipped, the next processed"
    );
    let records = stream.records(&stream.shards()[0].shard_id).unwrap();
    let lease = store.list_leases().await.unwrap().remove(0);
    assert_eq!(lease.checkpoint, records[14].extended_sequence_number());

    let stream = FakeStream::new(1);
    fill(&stream, 0, 10);
    let seen = Seen::default();
    let (_cancel, run) = run_worker(
        crate::common::store(),
        &stream,
        ProcessorErrorPolicy::Stop,
        flaky(&seen, 1, None),
    );
    let result = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .unwrap()
        .unwrap();
    let err = result.expect_err("Stop ends the worker with the error");
    println!("stop policy: {err}");
    assert!(err.to_string().contains("failure 1"), "{err}");
    assert!(seen.records().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_panicking_processor_does_not_stop_other_shards_and_its_shard_resumes() {
    let stream = FakeStream::new(4);
    fill(&stream, 0, 200);
    let victim = stream.shards()[1].shard_id.clone();
    let seen = Seen::default();
    let (cancel, run) = run_worker(
        store(),
        &stream,
        ProcessorErrorPolicy::Retry,
        flaky(&seen, 0, Some(victim.clone())),
    );
    wait_until("every record", Duration::from_secs(30), || {
        seen.distinct() >= 200
    })
    .await;
    cancel.cancel();
    run.await.unwrap().unwrap();
    assert_eq!(seen.records().len(), 200, "nothing lost, nothing twice");
    assert!(
        seen.records().iter().any(|(s, _)| *s == victim),
        "the panicked shard was processed by a fresh processor"
    );
}

#[tokio::test(start_paused = true)]
async fn the_closure_shortcut_checkpoints_after_each_batch() {
    let stream = FakeStream::new(2);
    fill(&stream, 0, 50);
    let store = store();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let worker = Worker::builder()
        .lease_store(store.clone())
        .source(Arc::new(stream.clone()))
        .process_with(move |batch| {
            let c = c.clone();
            async move {
                c.fetch_add(batch.records().len(), Ordering::SeqCst);
                Ok(())
            }
        })
        .build()
        .unwrap();
    assert!(!worker.id().as_str().is_empty(), "a generated worker id");
    let cancel = CancellationToken::new();
    let run = tokio::spawn(worker.run(cancel.clone()));
    wait_until("50 records", Duration::from_secs(5), || {
        count.load(Ordering::SeqCst) >= 50
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    for lease in store.list_leases().await.unwrap() {
        let records = stream.records(&lease.shard_id).unwrap();
        assert_eq!(
            lease.checkpoint,
            records.last().unwrap().extended_sequence_number()
        );
    }
    cancel.cancel();
    run.await.unwrap().unwrap();
}

#[test]
fn invalid_configuration_is_refused_with_a_clear_error() {
    let stream = Arc::new(FakeStream::new(1));
    let base = || Worker::builder().process_with(|_| async { Ok(()) });
    let err = |r: kcl_core::Result<_>| match r {
        Err(Error::Config(msg)) => msg,
        Err(e) => panic!("not a config error: {e}"),
        Ok(_) => panic!("accepted"),
    };
    assert!(err(base().source(stream.clone()).build().map(|_| ())).contains("lease store"));
    assert!(err(base().lease_store(store()).build().map(|_| ())).contains("source"));
    let full = || base().lease_store(store()).source(stream.clone());
    assert!(
        err(full().lease_duration(Duration::ZERO).build().map(|_| ())).contains("lease_duration")
    );
    assert!(
        err(full()
            .renew_interval(Duration::from_secs(20))
            .build()
            .map(|_| ()))
        .contains("renew_interval")
    );
    assert!(err(full().max_records(0).build().map(|_| ())).contains("max_records"));
    assert!(err(full().worker_id("").build().map(|_| ())).contains("WorkerId"));
    let worker = full()
        .lease_duration(Duration::from_secs(30))
        .build()
        .unwrap();
    assert_eq!(worker.config().renew_interval, Duration::from_secs(10));
    assert_eq!(worker.config().take_interval, Duration::from_secs(15));
    // Java's forced hand-off wait: 30 s plus a lease duration (issue 11,
    // path 9; it was one lease duration).
    assert_eq!(worker.config().handoff_timeout, Duration::from_secs(60));
}

/// Commits checkpoints itself (as inside its own database transaction),
/// then tells the engine.
struct SelfCommitting {
    store: Arc<dyn LeaseStore>,
    seen: Seen,
}

impl ShardProcessor for SelfCommitting {
    async fn process_records(
        &mut self,
        input: ProcessRecordsInput,
        cp: &mut Checkpointer,
    ) -> Result<(), BoxError> {
        let last = input.records().last().unwrap().extended_sequence_number();
        cp.validate(&last)?;
        // "In the application's transaction": a fenced write under the
        // lease the checkpointer holds.
        self.store.update_checkpoint(cp.lease(), &last).await?;
        cp.record_committed_checkpoint(last.clone())?;
        assert_eq!(*cp.last_checkpoint(), last);
        let first = input.records()[0].extended_sequence_number();
        if first < last {
            match cp.record_committed_checkpoint(first) {
                Err(Error::InvalidCheckpoint(_)) => self.seen.note("below refused"),
                other => self.seen.note(format!("below unexpectedly {other:?}")),
            }
        }
        self.seen
            .calls
            .fetch_add(input.records().len(), Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn checkpoints_committed_by_the_application_are_recorded() {
    let stream = FakeStream::new(1);
    fill(&stream, 0, 20);
    let store = store();
    let seen = Seen::default();
    let (s, st) = (seen.clone(), store.clone());
    let (cancel, run) = run_worker(
        store.clone(),
        &stream,
        ProcessorErrorPolicy::Stop,
        move |_: &ShardId| SelfCommitting {
            store: st.clone(),
            seen: s.clone(),
        },
    );
    wait_until("20 records", Duration::from_secs(5), || {
        seen.calls.load(Ordering::SeqCst) >= 20
    })
    .await;
    cancel.cancel();
    run.await.unwrap().unwrap();
    assert_eq!(seen.notes(), vec!["below refused".to_string()]);
    let lease = store.list_leases().await.unwrap().remove(0);
    let records = stream.records(&lease.shard_id).unwrap();
    assert_eq!(lease.checkpoint, records[19].extended_sequence_number());
}
