//! The shared conformance suite against a real PostgreSQL, every check in
//! its own random schema and application.

mod common;

use std::sync::Arc;

use kcl_core::LeaseStore;
use kcl_core::testkit::conformance::{self, StoreFactory, store_factory};

/// Stores in fresh random schemas (`kcl_test_…`) on the test server; the
/// per-check tests leave their schemas behind in the test server (which
/// `scripts/test-all.sh` starts fresh and discards).
async fn factory() -> Option<impl StoreFactory> {
    let schemas = Arc::new(common::schemas().await?);
    Some(store_factory(move || {
        let schemas = schemas.clone();
        async move { schemas.store().await }
    }))
}

kcl_core::store_conformance_tests!(factory);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applications_share_one_schema_without_seeing_each_other() {
    let Some(schemas) = common::schemas().await else {
        return;
    };
    let one = schemas.store().await;
    let two = one.with_application(conformance::random_application());
    conformance::namespaces_are_isolated(&one, &two).await;
    conformance::checkpoint_namespaces_are_isolated(&one, &two).await;
    schemas.drop_all().await;
}

/// Fenced writes racing on one row: the statement's snapshot can say "this
/// should apply" while a concurrent write changes the row first; the store
/// must still keep the largest checkpoint, and report a lost lease as
/// `Conflict`, never as a generic error or a silent overwrite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_fenced_writes_keep_the_contract() {
    use kcl_core::{Error, ExtendedSequenceNumber as Esn, Lease, ShardId, WorkerId};
    let Some(schemas) = common::schemas().await else {
        return;
    };
    let store = schemas.store().await;
    let shard = ShardId::new("shardId-000000000007").unwrap();
    let lease = Lease::new(shard.clone(), Esn::TrimHorizon);
    store.create_lease_if_absent(&lease).await.unwrap();
    let held = store
        .take_lease(&lease, &WorkerId::new("w-a").unwrap())
        .await
        .unwrap();

    // 40 concurrent checkpoints by the holder, in scrambled order.
    let tasks: Vec<_> = (0..40u64)
        .map(|i| {
            let (store, held) = (store.clone(), held.clone());
            let position = Esn::at(u128::from((i * 17) % 40 + 1).into(), i % 3);
            tokio::spawn(async move {
                let r = store.update_checkpoint(&held, &position).await;
                (position, r)
            })
        })
        .collect();
    let mut max = Esn::TrimHorizon;
    for task in tasks {
        let (position, result) = task.await.unwrap();
        match result {
            Ok(()) | Err(Error::InvalidCheckpoint(_)) => {}
            Err(e) => panic!("concurrent checkpoint by the holder: unexpected {e:?}"),
        }
        max = max.max(position);
    }
    assert_eq!(
        store.get_lease(&shard).await.unwrap().unwrap().checkpoint,
        max
    );

    // Checkpoints racing a take: each is Ok (before the take) or Conflict.
    let observed = store.get_lease(&shard).await.unwrap().unwrap();
    let base = match &max {
        Esn::Sequence { sequence, .. } => sequence.to_u128().unwrap(),
        _ => unreachable!(),
    };
    let writers: Vec<_> = (1..=20u128)
        .map(|i| {
            let (store, held) = (store.clone(), held.clone());
            tokio::spawn(async move {
                store
                    .update_checkpoint(&held, &Esn::at((base + i).into(), 0))
                    .await
            })
        })
        .collect();
    let taken = store
        .take_lease(&observed, &WorkerId::new("w-b").unwrap())
        .await
        .expect("checkpoints do not move the counter, so the take wins");
    let mut conflicts = 0;
    for w in writers {
        match w.await.unwrap() {
            Ok(()) | Err(Error::InvalidCheckpoint(_)) => {}
            Err(Error::Conflict { .. }) => conflicts += 1,
            Err(e) => panic!("checkpoint racing a take: unexpected {e:?}"),
        }
    }
    eprintln!("{conflicts} of 20 racing checkpoints were fenced out by the take");
    // After the take, the old holder is fenced out for good.
    assert!(matches!(
        store
            .update_checkpoint(&held, &Esn::at((base + 100).into(), 0))
            .await,
        Err(Error::Conflict { .. })
    ));
    assert_eq!(
        store.get_lease(&shard).await.unwrap().unwrap().owner,
        taken.owner
    );
    schemas.drop_all().await;
}
