//! The single-process consumer: only a `CheckpointStore`, parents before
//! children, all five starting positions, restart from checkpoints.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::common::*;
use kcl_core::engine::SingleConsumer;
use kcl_core::retrieval::StartingPosition;
use kcl_core::testkit::engine::Recorder;
use kcl_core::testkit::{FakeRecord, FakeStream};
use kcl_core::{CheckpointStore, ExtendedSequenceNumber, InitialPosition};
use kcl_store_memory::MemoryStore;
use tokio_util::sync::CancellationToken;

struct Run {
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<kcl_core::Result<()>>,
}

impl Run {
    async fn stop(self) {
        self.cancel.cancel();
        self.task.await.unwrap().unwrap();
    }
}

fn start(
    store: &Arc<MemoryStore>,
    stream: &FakeStream,
    recorder: &Recorder,
    initial: InitialPosition,
    positions: Vec<(kcl_core::ShardId, StartingPosition)>,
) -> Run {
    let mut builder = SingleConsumer::builder()
        .checkpoint_store(store.clone())
        .source(Arc::new(stream.clone()))
        .initial_position(initial)
        .shard_sync_interval(Duration::from_secs(1));
    for (shard, position) in positions {
        builder = builder.start_shard_at(shard, position);
    }
    let consumer = builder
        .processor(recorder.factory("single"))
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    Run {
        cancel: cancel.clone(),
        task: tokio::spawn(consumer.run(cancel)),
    }
}

#[tokio::test(start_paused = true)]
async fn consumes_every_shard_parents_first_and_resumes_from_checkpoints() {
    let stream = FakeStream::new(2);
    fill(&stream, 0, 200);
    let parent = stream.shards()[0].clone();
    let mid =
        parent.hash_key_range.starting_hash_key / 2 + parent.hash_key_range.ending_hash_key / 2;
    let (low, high) = stream.split_shard(&parent.shard_id, mid).unwrap();
    fill(&stream, 200, 200);
    let store = Arc::new(
        MemoryStore::builder()
            .application("single")
            .build()
            .unwrap(),
    );
    let recorder = Recorder::new();
    let run = start(
        &store,
        &stream,
        &recorder,
        InitialPosition::TrimHorizon,
        vec![],
    );
    wait_until("400 records", Duration::from_secs(30), || {
        recorder.distinct() >= 400
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    run.stop().await;
    assert_nothing_lost(&stream, &recorder);
    assert!(recorder.duplicates().is_empty());
    let processed = recorder.processed();
    let last_parent = processed
        .iter()
        .rposition(|p| p.shard_id == parent.shard_id)
        .unwrap();
    for child in [&low, &high] {
        let first_child = processed.iter().position(|p| p.shard_id == *child).unwrap();
        assert!(
            last_parent < first_child,
            "{child} started before its parent ended"
        );
    }
    assert_eq!(
        store.get_checkpoint(&parent.shard_id).await.unwrap(),
        Some(ExtendedSequenceNumber::ShardEnd)
    );

    // A restart resumes from the checkpoints: only new records.
    fill(&stream, 400, 50);
    let recorder2 = Recorder::new();
    let run = start(
        &store,
        &stream,
        &recorder2,
        InitialPosition::TrimHorizon,
        vec![],
    );
    wait_until("50 new records", Duration::from_secs(30), || {
        recorder2.count() >= 50
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    run.stop().await;
    assert_eq!(
        recorder2.count(),
        50,
        "only the new records after a restart"
    );
}

#[tokio::test(start_paused = true)]
async fn all_five_starting_positions() {
    let stream = FakeStream::new(1);
    let shard = stream.shards()[0].shard_id.clone();
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
    for i in 0..10u64 {
        stream
            .put(
                FakeRecord::new(format!("k{i}"), format!("{i}"))
                    .arrival(t0 + Duration::from_secs(i)),
            )
            .unwrap();
    }
    let records = stream.records(&shard).unwrap();
    let data = |r: &Recorder| -> Vec<String> {
        r.processed()
            .iter()
            .map(|p| String::from_utf8(p.data.to_vec()).unwrap())
            .collect()
    };
    let expect =
        |range: std::ops::Range<usize>| -> Vec<String> { range.map(|i| i.to_string()).collect() };

    let cases: Vec<(&str, InitialPosition, Option<StartingPosition>, Vec<String>)> = vec![
        (
            "TRIM_HORIZON",
            InitialPosition::TrimHorizon,
            None,
            expect(0..10),
        ),
        (
            "AT_TIMESTAMP",
            InitialPosition::AtTimestamp(t0 + Duration::from_secs(7)),
            None,
            expect(7..10),
        ),
        (
            "AT_SEQUENCE_NUMBER",
            InitialPosition::TrimHorizon,
            Some(StartingPosition::AtSequenceNumber(
                records[4].sequence_number.clone(),
            )),
            expect(4..10),
        ),
        (
            "AFTER_SEQUENCE_NUMBER",
            InitialPosition::TrimHorizon,
            Some(StartingPosition::AfterSequenceNumber(
                records[4].sequence_number.clone(),
            )),
            expect(5..10),
        ),
    ];
    for (name, initial, explicit, expected) in cases {
        let store = Arc::new(
            MemoryStore::builder()
                .application("single")
                .build()
                .unwrap(),
        );
        let recorder = Recorder::new();
        let positions = explicit.into_iter().map(|p| (shard.clone(), p)).collect();
        let run = start(&store, &stream, &recorder, initial, positions);
        wait_until(name, Duration::from_secs(10), || {
            recorder.count() >= expected.len()
        })
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        run.stop().await;
        assert_eq!(data(&recorder), expected, "{name}");
    }

    // LATEST: only what is put after the consumer started.
    let store = Arc::new(
        MemoryStore::builder()
            .application("single")
            .build()
            .unwrap(),
    );
    let recorder = Recorder::new();
    let run = start(&store, &stream, &recorder, InitialPosition::Latest, vec![]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stream.put_record("late", "late").unwrap();
    wait_until("LATEST", Duration::from_secs(10), || recorder.count() >= 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    run.stop().await;
    assert_eq!(data(&recorder), vec!["late".to_string()], "LATEST");
}
