//! The engine on Redis through a Redis restart: a `Worker` keeps running
//! while its store is down (calls fail with retryable errors), recovers
//! without being restarted once Redis is back, processes every record, and
//! ends with every shard checkpointed at its last record; no checkpoint
//! ever moves backwards. Needs `KCL_TEST_REDIS_SERVER_BIN`.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kcl_core::testkit::FakeStream;
use kcl_core::testkit::engine::Recorder;
use kcl_core::testkit::server_from_env;
use kcl_core::{ExtendedSequenceNumber, LeaseStore, Worker};
use kcl_store_redis::RedisStore;
use tokio_util::sync::CancellationToken;

fn fill(stream: &FakeStream, from: usize, n: usize) {
    for i in from..from + n {
        stream
            .put_record(format!("key-{i}"), format!("{i}"))
            .unwrap();
    }
}

async fn wait_until(what: &str, limit: Duration, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every lease's checkpoint, keyed by shard, read past any outage.
async fn checkpoints(store: &RedisStore) -> Option<HashMap<String, ExtendedSequenceNumber>> {
    let leases = store.list_leases().await.ok()?;
    Some(
        leases
            .into_iter()
            .map(|l| (l.shard_id.to_string(), l.checkpoint))
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_rides_out_a_redis_restart() {
    let Some(bin) = server_from_env("KCL_TEST_REDIS_SERVER_BIN") else {
        return;
    };
    let mut server = common::persistent_server(&bin);
    let store = common::restart_tolerant_store(&server).await;

    let stream = FakeStream::new(4);
    fill(&stream, 0, 400);
    let recorder = Recorder::new();
    let worker = Worker::builder()
        .worker_id("w1")
        .lease_store(Arc::new(store.clone()))
        .source(Arc::new(stream.clone()))
        .processor(recorder.factory("w1"))
        .lease_duration(Duration::from_secs(2))
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(worker.run(cancel.clone()));

    wait_until(
        "400 records before the outage",
        Duration::from_secs(60),
        || recorder.distinct() >= 400,
    )
    .await;
    // Checkpoints seen so far: none may ever be undercut later.
    let mut high: HashMap<String, ExtendedSequenceNumber> = HashMap::new();
    let mut observe = |seen: HashMap<String, ExtendedSequenceNumber>| {
        for (shard, cp) in seen {
            if let Some(before) = high.get(&shard) {
                assert!(
                    cp >= *before,
                    "checkpoint of {shard} went back from {before} to {cp}"
                );
            }
            high.insert(shard, cp);
        }
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    observe(checkpoints(&store).await.expect("read before the outage"));

    server.kill();
    fill(&stream, 400, 400);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !run.is_finished(),
        "the worker must keep running while Redis is down"
    );
    assert!(checkpoints(&store).await.is_none(), "Redis is down");
    let during_outage = recorder.distinct() - 400;
    server.spawn();

    wait_until(
        "every record after the restart",
        Duration::from_secs(90),
        || recorder.distinct() >= 800,
    )
    .await;
    let expected: HashMap<String, ExtendedSequenceNumber> = stream
        .shards()
        .into_iter()
        .filter_map(|s| {
            let records = stream.records(&s.shard_id).unwrap();
            records
                .last()
                .map(|r| (s.shard_id.to_string(), r.extended_sequence_number()))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(now) = checkpoints(&store).await {
            observe(now.clone());
            if now == expected {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "final checkpoints never reached {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "worker recovered: {during_outage} new records processed while Redis was down; \
         {} processed in all, {} distinct, {} re-delivered",
        recorder.count(),
        recorder.distinct(),
        recorder.count() - recorder.distinct()
    );

    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("shutdown in time")
        .unwrap()
        .expect("the worker ends cleanly");
}
