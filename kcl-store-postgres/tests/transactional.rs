//! Checkpoints inside the user's own transaction: they commit or roll back
//! with the user's rows, stay fenced by the lease, and survive a worker
//! killed between processing and commit without losing or duplicating a
//! row.

mod common;

use std::time::Duration;

use common::Schemas;
use kcl_core::{Error, ExtendedSequenceNumber as Esn, Lease, LeaseStore, ShardId, WorkerId};
use kcl_store_postgres::PostgresStore;

fn seq(n: u64) -> Esn {
    Esn::at(u128::from(n).into(), 0)
}

fn shard() -> ShardId {
    ShardId::new("shardId-000000000000").unwrap()
}

fn worker(name: &str) -> WorkerId {
    WorkerId::new(name).unwrap()
}

/// A user table in the store's schema for processed records.
async fn user_table(store: &PostgresStore) -> String {
    let table = format!("\"{}\".processed", store.schema());
    sqlx::query(&format!(
        "CREATE TABLE {table} (record bigint NOT NULL, worker text NOT NULL)"
    ))
    .execute(store.pool())
    .await
    .unwrap();
    table
}

async fn taken(store: &PostgresStore, by: &str) -> Lease {
    let lease = Lease::new(shard(), Esn::TrimHorizon);
    store.create_lease_if_absent(&lease).await.unwrap();
    let observed = store.get_lease(&shard()).await.unwrap().unwrap();
    store.take_lease(&observed, &worker(by)).await.unwrap()
}

async fn stored_checkpoint(store: &PostgresStore) -> Esn {
    store.get_lease(&shard()).await.unwrap().unwrap().checkpoint
}

async fn rows(store: &PostgresStore, table: &str) -> Vec<i64> {
    sqlx::query_scalar(&format!("SELECT record FROM {table} ORDER BY record"))
        .fetch_all(store.pool())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_commits_and_rolls_back_with_the_users_rows() {
    let Some(schemas) = common::schemas().await else {
        return;
    };
    let store = schemas.store().await;
    let table = user_table(&store).await;
    let held = taken(&store, "w-a").await;

    // Rolled back: neither the rows nor the checkpoint.
    let mut tx = store.pool().begin().await.unwrap();
    sqlx::query(&format!("INSERT INTO {table} VALUES (1, 'a'), (2, 'a')"))
        .execute(&mut *tx)
        .await
        .unwrap();
    store
        .checkpoint_in_transaction(&mut tx, &held, &seq(2))
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(stored_checkpoint(&store).await, Esn::TrimHorizon);
    assert!(rows(&store, &table).await.is_empty());

    // Committed: both, and invisible to others until the commit.
    let mut tx = store.pool().begin().await.unwrap();
    sqlx::query(&format!("INSERT INTO {table} VALUES (1, 'a'), (2, 'a')"))
        .execute(&mut *tx)
        .await
        .unwrap();
    store
        .checkpoint_in_transaction(&mut tx, &held, &seq(2))
        .await
        .unwrap();
    assert_eq!(
        stored_checkpoint(&store).await,
        Esn::TrimHorizon,
        "uncommitted checkpoint must not be visible"
    );
    tx.commit().await.unwrap();
    assert_eq!(stored_checkpoint(&store).await, seq(2));
    assert_eq!(rows(&store, &table).await, vec![1, 2]);

    // Backwards: InvalidCheckpoint, and the transaction is aborted.
    let mut tx = store.pool().begin().await.unwrap();
    sqlx::query(&format!("INSERT INTO {table} VALUES (3, 'a')"))
        .execute(&mut *tx)
        .await
        .unwrap();
    match store
        .checkpoint_in_transaction(&mut tx, &held, &seq(1))
        .await
    {
        Err(Error::InvalidCheckpoint(_)) => {}
        other => panic!("backwards checkpoint: expected InvalidCheckpoint, got {other:?}"),
    }
    let _ = tx.commit().await; // COMMIT of an aborted transaction rolls back
    assert_eq!(rows(&store, &table).await, vec![1, 2]);
    assert_eq!(stored_checkpoint(&store).await, seq(2));

    // The CheckpointStore form behaves the same way.
    let mut tx = store.pool().begin().await.unwrap();
    store
        .set_checkpoint_in_transaction(&mut tx, &shard(), &seq(10))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.pool().begin().await.unwrap();
    match store
        .set_checkpoint_in_transaction(&mut tx, &shard(), &seq(9))
        .await
    {
        Err(Error::InvalidCheckpoint(_)) => {}
        other => panic!("expected InvalidCheckpoint, got {other:?}"),
    }
    drop(tx);
    assert_eq!(
        kcl_core::CheckpointStore::get_checkpoint(&store, &shard())
            .await
            .unwrap(),
        Some(seq(10))
    );
    schemas.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_lost_its_lease_cannot_commit_its_rows() {
    let Some(schemas) = common::schemas().await else {
        return;
    };
    let store = schemas.store().await;
    let table = user_table(&store).await;
    let held_by_a = taken(&store, "w-a").await;

    // A processes a batch; meanwhile B takes the lease (A's lease expired).
    let mut tx = store.pool().begin().await.unwrap();
    sqlx::query(&format!("INSERT INTO {table} VALUES (1, 'a'), (2, 'a')"))
        .execute(&mut *tx)
        .await
        .unwrap();
    let observed = store.get_lease(&shard()).await.unwrap().unwrap();
    let held_by_b = store.take_lease(&observed, &worker("w-b")).await.unwrap();

    match store
        .checkpoint_in_transaction(&mut tx, &held_by_a, &seq(2))
        .await
    {
        Err(Error::Conflict { .. }) => {}
        other => panic!("stale worker: expected Conflict, got {other:?}"),
    }
    // Even if the stale worker ignores the error and commits, nothing
    // lands: COMMIT of an aborted transaction is a rollback.
    let _ = tx.commit().await;
    assert!(
        rows(&store, &table).await.is_empty(),
        "the stale worker's rows must not be committed"
    );
    assert_eq!(stored_checkpoint(&store).await, Esn::TrimHorizon);

    // The new owner's transactional checkpoint works.
    let mut tx = store.pool().begin().await.unwrap();
    sqlx::query(&format!("INSERT INTO {table} VALUES (1, 'b'), (2, 'b')"))
        .execute(&mut *tx)
        .await
        .unwrap();
    store
        .checkpoint_in_transaction(&mut tx, &held_by_b, &seq(2))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let owners: Vec<String> = sqlx::query_scalar(&format!("SELECT DISTINCT worker FROM {table}"))
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert_eq!(owners, vec!["b".to_string()]);
    schemas.drop_all().await;
}

/// A take racing an uncommitted transactional checkpoint waits for it:
/// the checkpoint is committed while the lease was still held, and the
/// taker sees it; it can never be committed after the take.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_take_waits_for_the_checkpoint_transaction_and_sees_its_result() {
    let Some(schemas) = common::schemas().await else {
        return;
    };
    let store = schemas.store().await;
    let table = user_table(&store).await;
    let held_by_a = taken(&store, "w-a").await;
    let observed = store.get_lease(&shard()).await.unwrap().unwrap();

    let mut tx = store.pool().begin().await.unwrap();
    sqlx::query(&format!("INSERT INTO {table} VALUES (1, 'a')"))
        .execute(&mut *tx)
        .await
        .unwrap();
    store
        .checkpoint_in_transaction(&mut tx, &held_by_a, &seq(1))
        .await
        .unwrap();

    let taker = {
        let store = store.clone();
        tokio::spawn(async move { store.take_lease(&observed, &worker("w-b")).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !taker.is_finished(),
        "the take must wait for the open checkpoint transaction"
    );
    tx.commit().await.unwrap();
    let taken_by_b = tokio::time::timeout(Duration::from_secs(10), taker)
        .await
        .expect("take finishes after the commit")
        .unwrap()
        .expect("take succeeds: a checkpoint does not move the counter");
    assert_eq!(taken_by_b.owner, Some(worker("w-b")));
    assert_eq!(
        taken_by_b.checkpoint,
        seq(1),
        "the new owner starts after A's committed batch"
    );
    assert_eq!(rows(&store, &table).await, vec![1]);
    schemas.drop_all().await;
}

/// Where the simulated workers run and what they process.
#[derive(Clone)]
struct Job {
    url: String,
    schema: String,
    application: String,
    table: String,
    total: u64,
    batch: u64,
}

/// One simulated worker process: its own pool (as a separate process would
/// have), processing records `next..total` in batches, each batch's rows
/// and checkpoint in one transaction. When `crash_in_batch` is reached it
/// writes the batch and the checkpoint, then hangs before `COMMIT` until
/// it is killed.
async fn run_worker(
    job: Job,
    name: String,
    crash_in_batch: Option<u64>,
    reached_crash: tokio::sync::oneshot::Sender<()>,
) -> u64 {
    let Job {
        url,
        schema,
        application,
        table,
        total,
        batch,
    } = job;
    let store = PostgresStore::builder()
        .url(url)
        .schema(schema)
        .application(application)
        .max_connections(2)
        .build()
        .await
        .unwrap();
    let observed = store.get_lease(&shard()).await.unwrap().unwrap();
    let held = store.take_lease(&observed, &worker(&name)).await.unwrap();
    // Resume after the stored checkpoint: record n has sequence number n + 1.
    let mut next = match &held.checkpoint {
        Esn::Sequence { sequence, .. } => sequence.to_u128().unwrap() as u64,
        _ => 0,
    };
    let mut batches = 0;
    let mut reached_crash = Some(reached_crash);
    while next < total {
        let end = (next + batch).min(total);
        let mut tx = store.pool().begin().await.unwrap();
        for record in next..end {
            sqlx::query(&format!("INSERT INTO {table} VALUES ($1, $2)"))
                .bind(record as i64)
                .bind(&name)
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        store
            .checkpoint_in_transaction(&mut tx, &held, &seq(end))
            .await
            .unwrap();
        if crash_in_batch == Some(batches) {
            if let Some(tx) = reached_crash.take() {
                let _ = tx.send(());
            }
            std::future::pending::<()>().await; // killed here, before COMMIT
        }
        tx.commit().await.unwrap();
        next = end;
        batches += 1;
    }
    next
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_before_commit_loses_and_duplicates_nothing() {
    let Some(url) = common::url() else {
        return;
    };
    let schemas = Schemas::new(common::pool(&url).await);
    let store = schemas.store().await;
    let table = user_table(&store).await;
    store
        .create_lease_if_absent(&Lease::new(shard(), Esn::TrimHorizon))
        .await
        .unwrap();
    const TOTAL: u64 = 200;
    let job = Job {
        url: url.clone(),
        schema: store.schema().to_owned(),
        application: store.application().as_str().to_owned(),
        table: table.clone(),
        total: TOTAL,
        batch: 7,
    };

    // Kill a worker in the middle of several different batches, each time
    // restarting a fresh worker from the stored checkpoint.
    for (round, crash_in_batch) in [0u64, 3, 1, 5].into_iter().enumerate() {
        let (reached, crashed) = tokio::sync::oneshot::channel();
        let before = stored_checkpoint(&store).await;
        let worker = tokio::spawn(run_worker(
            job.clone(),
            format!("w-{round}"),
            Some(crash_in_batch),
            reached,
        ));
        tokio::time::timeout(Duration::from_secs(30), crashed)
            .await
            .expect("worker reaches the crash point")
            .expect("worker signals");
        worker.abort(); // the process dies between processing and COMMIT
        assert!(worker.await.unwrap_err().is_cancelled());
        // The killed batch left nothing: the checkpoint moved only by the
        // batches committed before it.
        let after = stored_checkpoint(&store).await;
        assert!(after >= before);
        let committed = rows(&store, &table).await;
        let expected_upto = match &after {
            Esn::Sequence { sequence, .. } => sequence.to_u128().unwrap() as i64,
            _ => 0,
        };
        assert_eq!(
            committed,
            (0..expected_upto).collect::<Vec<_>>(),
            "round {round}: the rows committed are exactly those up to the checkpoint"
        );
    }

    // A final worker runs to the end.
    let (reached, _crashed) = tokio::sync::oneshot::channel();
    let done = tokio::time::timeout(
        Duration::from_secs(60),
        run_worker(job.clone(), "w-final".into(), None, reached),
    )
    .await
    .expect("final worker finishes");
    assert_eq!(done, TOTAL);
    let all = rows(&store, &table).await;
    assert_eq!(
        all,
        (0..TOTAL as i64).collect::<Vec<_>>(),
        "every record exactly once across the kills and restarts"
    );
    assert_eq!(stored_checkpoint(&store).await, seq(TOTAL));
    schemas.drop_all().await;
}
