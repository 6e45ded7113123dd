//! Checks of the [`CheckpointStore`] contract.

use futures::future::join_all;

use super::{expect_invalid_checkpoint, shard};
use crate::sequence::ExtendedSequenceNumber as Esn;
use crate::store::CheckpointStore;

fn seq(digits: &str, sub: u64) -> Esn {
    Esn::at(digits.parse().expect("digits"), sub)
}

/// Missing reads as `None`; every kind of position round-trips.
pub async fn checkpoint_store_round_trips(store: &dyn CheckpointStore) {
    assert_eq!(store.get_checkpoint(&shard(1)).await.expect("get"), None);
    let positions = [
        Esn::AtTimestamp,
        Esn::TrimHorizon,
        Esn::Latest,
        seq(
            "49590338271490256608559692538361571095921575989136588898",
            0,
        ),
        seq(
            "49590338271490256608559692538361571095921575989136588898",
            12,
        ),
        Esn::ShardEnd,
    ];
    for p in &positions {
        store
            .set_checkpoint(&shard(1), p)
            .await
            .unwrap_or_else(|e| panic!("set {p}: {e}"));
        assert_eq!(
            store.get_checkpoint(&shard(1)).await.expect("get").as_ref(),
            Some(p)
        );
    }
    assert_eq!(
        store.get_checkpoint(&shard(2)).await.expect("get"),
        None,
        "shards are separate"
    );
}

/// Backwards is refused and changes nothing; equal is accepted.
pub async fn checkpoint_store_never_goes_backwards(store: &dyn CheckpointStore) {
    let s = shard(3);
    store
        .set_checkpoint(&s, &seq("10", 0))
        .await
        .expect("set 10");
    store
        .set_checkpoint(&s, &seq("10", 0))
        .await
        .expect("set 10 again");
    expect_invalid_checkpoint(store.set_checkpoint(&s, &seq("9", 0)).await, "10 -> 9");
    store.set_checkpoint(&s, &seq("10", 3)).await.expect("10/3");
    expect_invalid_checkpoint(
        store.set_checkpoint(&s, &seq("10", 2)).await,
        "10/3 -> 10/2",
    );
    expect_invalid_checkpoint(
        store.set_checkpoint(&s, &Esn::Latest).await,
        "10/3 -> LATEST",
    );
    assert_eq!(
        store.get_checkpoint(&s).await.expect("get"),
        Some(seq("10", 3))
    );
    store
        .set_checkpoint(&s, &Esn::ShardEnd)
        .await
        .expect("SHARD_END");
    expect_invalid_checkpoint(
        store.set_checkpoint(&s, &seq("11", 0)).await,
        "past SHARD_END",
    );
}

/// Writers racing with different positions leave the largest stored: the
/// compare and the write are one atomic step.
pub async fn checkpoint_store_concurrent_writers_keep_the_max(store: &dyn CheckpointStore) {
    let s = shard(4);
    for round in 0..5u64 {
        let base = round * 1000;
        let values: Vec<Esn> = (0..32u64)
            .map(|i| seq(&(base + (i * 37) % 32 + 1).to_string(), 0))
            .collect();
        let results = join_all(values.iter().map(|v| store.set_checkpoint(&s, v))).await;
        for r in results {
            match r {
                Ok(()) | Err(crate::Error::InvalidCheckpoint(_)) => {}
                Err(e) => panic!("concurrent set: unexpected {e}"),
            }
        }
        let max = values.iter().max().expect("values");
        assert_eq!(
            store.get_checkpoint(&s).await.expect("get").as_ref(),
            Some(max),
            "round {round}: the largest must win"
        );
    }
}

/// Two applications' checkpoints never mix.
pub async fn checkpoint_namespaces_are_isolated(
    one: &dyn CheckpointStore,
    two: &dyn CheckpointStore,
) {
    one.set_checkpoint(&shard(5), &seq("500", 0))
        .await
        .expect("set");
    assert_eq!(two.get_checkpoint(&shard(5)).await.expect("get"), None);
    two.set_checkpoint(&shard(5), &seq("1", 0))
        .await
        .expect("set lower in the other namespace");
    assert_eq!(
        one.get_checkpoint(&shard(5)).await.expect("get"),
        Some(seq("500", 0))
    );
}
