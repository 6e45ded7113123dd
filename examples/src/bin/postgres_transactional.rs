//! Exactly-once processing into PostgreSQL: each batch's results and its
//! checkpoint commit in one transaction.
//!
//! A simulated shard of numbered order records (with real-looking 56-digit
//! sequence numbers) is processed in batches. For each batch the program
//! opens a transaction on the store's pool, inserts one row per record into
//! its own `orders` table, checkpoints the lease with
//! `PostgresStore::checkpoint_in_transaction`, and commits. A crash at any
//! point leaves either the whole batch and its checkpoint, or neither; the
//! next run resumes after the last committed checkpoint, so no order is
//! written twice or lost. The checkpoint is still fenced by the lease: had
//! another worker taken it, the transaction would fail instead of
//! committing stale rows.
//!
//! ```sh
//! export KCL_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres
//! # process three batches, then "crash" in the middle of the fourth:
//! cargo run -p kcl-examples --bin postgres_transactional -- --crash-in-batch 3
//! # run again: resumes after batch 3 and finishes; every order exactly once
//! cargo run -p kcl-examples --bin postgres_transactional
//! # start over
//! cargo run -p kcl-examples --bin postgres_transactional -- --reset
//! ```

use clap::Parser;
use kcl_core::{ExtendedSequenceNumber, Lease, LeaseStore, SequenceNumber, ShardId, WorkerId};
use kcl_store_postgres::PostgresStore;

#[derive(Parser, Debug)]
#[command(about = "Process records into PostgreSQL with the checkpoint in the same transaction")]
struct Args {
    /// PostgreSQL URL.
    #[arg(long, env = "KCL_TEST_POSTGRES_URL")]
    url: String,
    /// Schema for the lease tables and the example's `orders` table.
    #[arg(long, default_value = "kcl_example")]
    schema: String,
    /// Records in the simulated shard.
    #[arg(long, default_value_t = 1000)]
    records: u64,
    /// Records per batch (one transaction each).
    #[arg(long, default_value_t = 100)]
    batch: u64,
    /// Exit abruptly in this batch (0-based, counted in this run), after
    /// inserting its rows and checkpointing but before COMMIT.
    #[arg(long)]
    crash_in_batch: Option<u64>,
    /// Drop the example's schema first.
    #[arg(long)]
    reset: bool,
}

/// Record `i`'s sequence number (56 digits, as Kinesis's are).
fn sequence(i: u64) -> SequenceNumber {
    format!("4959033827149025660855969253836157109592157598{i:010}")
        .parse()
        .expect("digits")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let store = PostgresStore::builder()
        .url(&args.url)
        .schema(&args.schema)
        .application("postgres-transactional-example")
        .build()
        .await?;
    let orders = format!("\"{}\".orders", store.schema());
    if args.reset {
        sqlx::query(&format!("DROP SCHEMA \"{}\" CASCADE", store.schema()))
            .execute(store.pool())
            .await?;
        store.migrate().await?;
        println!("dropped and re-created schema {}", store.schema());
    }
    // The user's own table. No unique key on purpose: a duplicate would show.
    sqlx::query(&format!(
        "CREATE TABLE IF NOT EXISTS {orders} (
             sequence_number numeric NOT NULL,
             record bigint NOT NULL,
             payload text NOT NULL
         )"
    ))
    .execute(store.pool())
    .await?;

    let shard = ShardId::new("shardId-000000000000")?;
    store
        .create_lease_if_absent(&Lease::new(
            shard.clone(),
            ExtendedSequenceNumber::TrimHorizon,
        ))
        .await?;
    // One process, so it takes the lease whoever had it (a fleet's engine
    // would take it only once free or expired).
    let observed = store.get_lease(&shard).await?.ok_or("lease vanished")?;
    let worker = WorkerId::new(format!("example-{}", std::process::id()))?;
    let held = store.take_lease(&observed, &worker).await?;

    // Resume after the checkpoint: the first record whose sequence number
    // is above it.
    let mut next = (0..args.records)
        .find(|&i| ExtendedSequenceNumber::at(sequence(i), 0) > held.checkpoint)
        .unwrap_or(args.records);
    println!(
        "{worker} took {shard} at checkpoint {}; resuming at record {next} of {}",
        held.checkpoint, args.records
    );

    let mut batch_no = 0;
    while next < args.records {
        let end = (next + args.batch).min(args.records);
        let mut tx = store.pool().begin().await?;
        for i in next..end {
            sqlx::query(&format!(
                "INSERT INTO {orders} (sequence_number, record, payload) VALUES ($1::numeric, $2, $3)"
            ))
            .bind(sequence(i).as_str())
            .bind(i as i64)
            .bind(format!("order-{i}"))
            .execute(&mut *tx)
            .await?;
        }
        let last = ExtendedSequenceNumber::at(sequence(end - 1), 0);
        store
            .checkpoint_in_transaction(&mut tx, &held, &last)
            .await?;
        if args.crash_in_batch == Some(batch_no) {
            println!("crashing in batch {batch_no} (records {next}..{end}) before COMMIT");
            std::process::exit(3); // the server rolls the open transaction back
        }
        tx.commit().await?;
        println!("batch {batch_no}: records {next}..{end} committed with checkpoint {last}");
        next = end;
        batch_no += 1;
    }

    let (rows, distinct): (i64, i64) = sqlx::query_as(&format!(
        "SELECT count(*), count(DISTINCT record) FROM {orders}"
    ))
    .fetch_one(store.pool())
    .await?;
    let stored = store.get_lease(&shard).await?.ok_or("lease vanished")?;
    println!(
        "done: {rows} rows, {distinct} distinct records of {}, checkpoint {}",
        args.records, stored.checkpoint
    );
    if rows != distinct || distinct != args.records as i64 {
        return Err(format!("expected each of {} records exactly once", args.records).into());
    }
    store.release_lease(&stored, None).await?;
    Ok(())
}
