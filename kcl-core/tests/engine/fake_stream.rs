//! The fake stream behaves as a Kinesis stream does for a consumer.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use kcl_core::retrieval::{ShardSource, StartingPosition};
use kcl_core::testkit::fake_stream::hash_key_of;
use kcl_core::testkit::{FakeRecord, FakeStream, FakeStreamConfig, Fault};
use kcl_core::{Error, ShardId};

fn small_batches(n: usize) -> FakeStreamConfig {
    FakeStreamConfig {
        max_records: n,
        ..FakeStreamConfig::default()
    }
}

async fn drain(stream: &FakeStream, shard: &ShardId, from: StartingPosition) -> Vec<String> {
    let mut reader = stream.open_reader(shard, from).await.unwrap();
    let mut out = Vec::new();
    loop {
        let batch = reader.next_batch().await.unwrap();
        let empty = batch.records.is_empty();
        out.extend(
            batch
                .records
                .iter()
                .map(|r| String::from_utf8(r.data.to_vec()).unwrap()),
        );
        if batch.shard_end.is_some() || empty {
            return out;
        }
    }
}

#[tokio::test]
async fn records_route_by_partition_key_hash_with_long_increasing_sequence_numbers() {
    let stream = FakeStream::new(4);
    let shards = stream.list_shards().await.unwrap();
    assert_eq!(shards.len(), 4);
    assert_eq!(shards[0].hash_key_range.starting_hash_key, 0);
    assert_eq!(shards[3].hash_key_range.ending_hash_key, u128::MAX);
    for w in shards.windows(2) {
        assert_eq!(
            w[0].hash_key_range.ending_hash_key + 1,
            w[1].hash_key_range.starting_hash_key
        );
    }
    for i in 0..1000 {
        let key = format!("pk-{i}");
        let (shard, _) = stream.put_record(key.clone(), "x").unwrap();
        let owner = shards.iter().find(|s| s.shard_id == shard).unwrap();
        assert!(owner.hash_key_range.contains(hash_key_of(&key)));
    }
    assert_eq!(stream.total_records(), 1000);
    for s in &shards {
        let records = stream.records(&s.shard_id).unwrap();
        assert!(
            !records.is_empty(),
            "1000 keys must reach every one of 4 shards"
        );
        for w in records.windows(2) {
            assert!(w[0].sequence_number < w[1].sequence_number);
        }
        assert_eq!(records[0].sequence_number.as_str().len(), 56);
    }
    let (_, seq) = stream
        .put(FakeRecord::new("any", "y").explicit_hash_key(u128::MAX))
        .unwrap();
    assert_eq!(
        stream
            .records(&shards[3].shard_id)
            .unwrap()
            .last()
            .unwrap()
            .sequence_number,
        seq
    );
}

#[tokio::test]
async fn all_five_starting_positions() {
    let stream = FakeStream::new(1);
    let shard = stream.shards()[0].shard_id.clone();
    let t0 = SystemTime::now();
    let mut seqs = Vec::new();
    for i in 0..10u64 {
        let at = t0 + Duration::from_secs(i);
        seqs.push(
            stream
                .put(FakeRecord::new("k", format!("r{i}")).arrival(at))
                .unwrap()
                .1,
        );
    }
    let all: Vec<String> = (0..10).map(|i| format!("r{i}")).collect();
    assert_eq!(
        drain(&stream, &shard, StartingPosition::TrimHorizon).await,
        all
    );
    assert_eq!(
        drain(
            &stream,
            &shard,
            StartingPosition::AtSequenceNumber(seqs[3].clone())
        )
        .await,
        all[3..]
    );
    assert_eq!(
        drain(
            &stream,
            &shard,
            StartingPosition::AfterSequenceNumber(seqs[3].clone())
        )
        .await,
        all[4..]
    );
    assert_eq!(
        drain(
            &stream,
            &shard,
            StartingPosition::AtTimestamp(t0 + Duration::from_secs(7))
        )
        .await,
        all[7..]
    );

    let mut latest = stream
        .open_reader(&shard, StartingPosition::Latest)
        .await
        .unwrap();
    stream.put_record("k", "new").unwrap();
    let batch = latest.next_batch().await.unwrap();
    assert_eq!(
        batch.records.len(),
        1,
        "LATEST delivers only what came after opening"
    );
    assert_eq!(&batch.records[0].data[..], b"new");
}

#[tokio::test]
async fn split_closes_the_parent_and_reports_children_at_its_end() {
    let stream = FakeStream::new(1);
    let parent = stream.shards()[0].shard_id.clone();
    for i in 0..5 {
        stream.put_record(format!("a{i}"), "before").unwrap();
    }
    let (low, high) = stream.split_shard(&parent, 1u128 << 127).unwrap();
    for i in 0..50 {
        stream.put_record(format!("b{i}"), "after").unwrap();
    }
    assert_eq!(
        stream.records(&parent).unwrap().len(),
        5,
        "no record reaches a closed shard"
    );
    let after = stream.records(&low).unwrap().len() + stream.records(&high).unwrap().len();
    assert_eq!(after, 50);

    let shards = stream.list_shards().await.unwrap();
    let p = shards.iter().find(|s| s.shard_id == parent).unwrap();
    assert!(p.is_closed());
    for child in [&low, &high] {
        let c = shards.iter().find(|s| &s.shard_id == child).unwrap();
        assert_eq!(
            c.parents().cloned().collect::<Vec<_>>(),
            vec![parent.clone()]
        );
        assert!(c.starting_sequence_number > *p.ending_sequence_number.as_ref().unwrap());
    }

    let mut reader = stream
        .open_reader(&parent, StartingPosition::TrimHorizon)
        .await
        .unwrap();
    let batch = reader.next_batch().await.unwrap();
    assert_eq!(batch.records.len(), 5);
    let children = batch
        .shard_end
        .expect("the last batch of a closed shard reports its end");
    assert_eq!(
        children
            .iter()
            .map(|c| c.shard_id.clone())
            .collect::<Vec<_>>(),
        vec![low, high]
    );
    assert!(
        reader.next_batch().await.is_err(),
        "a finished reader gives nothing more"
    );

    assert!(
        matches!(stream.split_shard(&parent, 5), Err(Error::Config(_))),
        "a closed shard cannot split"
    );
}

#[tokio::test]
async fn merge_needs_adjacent_shards_and_makes_a_child_of_both() {
    let stream = FakeStream::new(3);
    let ids: Vec<ShardId> = stream.shards().into_iter().map(|s| s.shard_id).collect();
    assert!(matches!(
        stream.merge_shards(&ids[0], &ids[2]),
        Err(Error::Config(_))
    ));
    let child = stream.merge_shards(&ids[1], &ids[0]).unwrap();
    let described = stream
        .shards()
        .into_iter()
        .find(|s| s.shard_id == child)
        .unwrap();
    assert_eq!(
        described.parents().cloned().collect::<Vec<_>>(),
        vec![ids[1].clone(), ids[0].clone()]
    );
    assert_eq!(described.hash_key_range.starting_hash_key, 0);
    for parent in &ids[..2] {
        let mut reader = stream
            .open_reader(parent, StartingPosition::TrimHorizon)
            .await
            .unwrap();
        let end = reader
            .next_batch()
            .await
            .unwrap()
            .shard_end
            .expect("merged parents are closed");
        assert_eq!(end[0].parent_shard_ids.len(), 2);
    }
    let seen: HashSet<_> = (0..200)
        .map(|i| stream.put_record(format!("k{i}"), "v").unwrap().0)
        .collect();
    assert_eq!(seen, HashSet::from([child, ids[2].clone()]));
}

#[tokio::test]
async fn expired_iterators_reseek_after_the_last_delivered_record() {
    let stream = FakeStream::with_config(1, small_batches(3));
    let shard = stream.shards()[0].shard_id.clone();
    for i in 0..9 {
        stream.put_record("k", format!("r{i}")).unwrap();
    }
    let mut reader = stream
        .open_reader(&shard, StartingPosition::TrimHorizon)
        .await
        .unwrap();
    let first = reader.next_batch().await.unwrap();
    assert_eq!(first.records.len(), 3);
    assert!(first.millis_behind_latest.is_some());
    stream.expire_iterators();
    let second = reader.next_batch().await.unwrap();
    assert_eq!(
        &second.records[0].data[..],
        b"r3",
        "re-seek continues after the last delivered record"
    );
    assert_eq!(stream.stats().reseeks, 1);
}

#[tokio::test]
async fn injected_faults_fail_the_next_calls_then_clear() {
    let stream = FakeStream::new(1);
    let shard = stream.shards()[0].shard_id.clone();
    stream.put_record("k", "v").unwrap();
    stream.fail_next_reads(&shard, 2, Fault::Throttled);
    stream.fail_next_list_shards(1, Fault::Unavailable);
    let err = stream.list_shards().await.unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(stream.list_shards().await.unwrap().len(), 1);

    let mut reader = stream
        .open_reader(&shard, StartingPosition::TrimHorizon)
        .await
        .unwrap();
    for _ in 0..2 {
        assert!(matches!(
            reader.next_batch().await,
            Err(Error::Throttled { .. })
        ));
    }
    assert_eq!(
        reader.next_batch().await.unwrap().records.len(),
        1,
        "nothing is lost to a fault"
    );
    stream.fail_next_reads(&shard, 1, Fault::Fatal);
    assert!(!reader.next_batch().await.unwrap_err().is_retryable());
}

#[tokio::test]
async fn a_reader_at_the_tip_wakes_for_a_new_record() {
    let stream = FakeStream::with_config(
        1,
        FakeStreamConfig {
            empty_wait: Duration::from_secs(30),
            ..FakeStreamConfig::default()
        },
    );
    let shard = stream.shards()[0].shard_id.clone();
    let mut reader = stream
        .open_reader(&shard, StartingPosition::Latest)
        .await
        .unwrap();
    let writer = stream.clone();
    let started = std::time::Instant::now();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        writer.put_record("k", "late").unwrap();
    });
    let batch = reader.next_batch().await.unwrap();
    assert_eq!(batch.records.len(), 1);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "woken by the put, not the 30 s wait"
    );
}

#[tokio::test(start_paused = true)]
async fn an_idle_reader_returns_empty_batches() {
    let stream = FakeStream::new(1);
    let shard = stream.shards()[0].shard_id.clone();
    let mut reader = stream
        .open_reader(&shard, StartingPosition::TrimHorizon)
        .await
        .unwrap();
    let batch = reader.next_batch().await.unwrap();
    assert!(batch.records.is_empty() && batch.shard_end.is_none());
    assert_eq!(batch.millis_behind_latest, Some(0));
}

#[tokio::test]
async fn a_read_says_whether_it_holds_an_aggregate() {
    let stream = FakeStream::with_config(1, small_batches(2));
    let shard = stream.shards()[0].shard_id.clone();
    let mut aggregator = kcl_core::kpl::Aggregator::new();
    aggregator.add("k", None, "inside").unwrap();
    let aggregate = aggregator.flush().unwrap();
    stream.put_record("k", "plain-0").unwrap();
    stream.put_record("k", "plain-1").unwrap();
    stream.put_record("k", "plain-2").unwrap();
    stream
        .put(FakeRecord::new(aggregate.partition_key, aggregate.data))
        .unwrap();
    let mut reader = stream
        .open_reader(&shard, StartingPosition::TrimHorizon)
        .await
        .unwrap();
    let plain = reader.next_batch().await.unwrap();
    assert_eq!(plain.records.len(), 2);
    assert_eq!(plain.has_aggregates, Some(false));
    let mixed = reader.next_batch().await.unwrap();
    assert_eq!(mixed.records.len(), 2);
    assert_eq!(mixed.has_aggregates, Some(true));
}

#[tokio::test]
async fn a_read_into_a_used_vector_holds_only_its_own_records() {
    let stream = FakeStream::with_config(1, small_batches(3));
    let shard = stream.shards()[0].shard_id.clone();
    for i in 0..5 {
        stream.put_record("k", format!("r-{i}")).unwrap();
    }
    let mut reader = stream
        .open_reader(&shard, StartingPosition::TrimHorizon)
        .await
        .unwrap();
    let first = reader.next_batch().await.unwrap().records;
    let capacity = first.capacity();
    // A vector handed back with records still in it: they must not leak
    // into the next batch.
    let second = reader.next_batch_into(first).await.unwrap().records;
    let data: Vec<_> = second.iter().map(|r| r.data.to_vec()).collect();
    assert_eq!(data, [b"r-3".to_vec(), b"r-4".to_vec()]);
    assert!(second.capacity() >= capacity, "the vector was read into");
}
