//! PostgreSQL lease and checkpoint store for kcl, with transactional
//! checkpoints.
//!
//! [`PostgresStore`] implements [`LeaseStore`](kcl_core::LeaseStore) and
//! [`CheckpointStore`](kcl_core::CheckpointStore) on three tables in one
//! schema (default `kcl`): leases keyed by (application, shard id), worker
//! heartbeats, and single-process checkpoints. Many applications share the
//! tables; each store instance sees only its own application's rows.
//!
//! What it guarantees, beyond the traits' contracts (proven by the shared
//! conformance suite against a real server):
//! - **One statement per conditional write.** Every compare-and-set is a
//!   single SQL statement (`UPDATE … WHERE owner = … AND generation = …`),
//!   so it is atomic in the server, and tells a lost lease
//!   (`Conflict`) from a backwards checkpoint (`InvalidCheckpoint`) from a
//!   missing lease (`NotFound`) in one round trip.
//! - **Numbers compared as numbers.** Sequence numbers are exact `NUMERIC`s
//!   (real ones have 56 digits); sentinels sort in the KCL order
//!   (`AT_TIMESTAMP < TRIM_HORIZON < LATEST < numbers < SHARD_END`).
//! - **Transactional checkpoints.**
//!   [`PostgresStore::checkpoint_in_transaction`] writes the checkpoint in
//!   the caller's own transaction, still fenced by the lease: a worker that
//!   lost its lease cannot commit its writes.
//! - **Embedded migrations**, safe when many workers start at once, and
//!   idempotent.
//! - **No SQL injection through names**: schema and table names must match
//!   [`IDENTIFIER_RULE`] and are quoted.
//! - **Its own connections.** The store runs its statements on a small
//!   pool of its own ([`PostgresStoreBuilder::lease_connections`], 4),
//!   separate from the application's pool ([`PostgresStore::pool`]) that
//!   your queries and transactional checkpoints use: a pool full of long
//!   user transactions cannot make a renew wait for a connection (and
//!   give up after a third of the lease). `tests/pools.rs` holds it.
//! - **Bounded waits**: every connection of the store's pool starts with
//!   `lock_timeout` (2 s), `statement_timeout` (5 s) and READ COMMITTED
//!   as its default isolation, whatever the server's, role's, URL's or
//!   your pool's defaults (with [`PostgresStoreBuilder::pool`] it is built
//!   from your pool's connect options); so a hung transactional
//!   checkpoint holding a lease's row lock delays a peer's take by at most
//!   the lock timeout (a retryable error; the taker tries again), and lost
//!   races stay `Conflict` under a SERIALIZABLE default (`tests/session.rs`
//!   and `tests/pools.rs` run the suite so).
//! - **Retryable errors** ([`kcl_core::Error::Unavailable`] /
//!   [`Throttled`](kcl_core::Error::Throttled)) while the server is down or
//!   restarting; the pool reconnects by itself.
//!
//! ```no_run
//! use kcl_core::{ExtendedSequenceNumber, Lease, LeaseStore, ShardId, WorkerId};
//! use kcl_store_postgres::PostgresStore;
//!
//! # async fn demo() -> kcl_core::Result<()> {
//! let store = PostgresStore::builder()
//!     .url("postgres://kcl@127.0.0.1:5432/app")
//!     .application("orders-consumer")
//!     .build()
//!     .await?;
//! let lease = Lease::new(ShardId::new("shardId-000000000000")?, ExtendedSequenceNumber::TrimHorizon);
//! store.create_lease_if_absent(&lease).await?;
//! let held = store.take_lease(&lease, &WorkerId::new("worker-1")?).await?;
//! store.update_checkpoint(&held, &ExtendedSequenceNumber::at("42".parse()?, 0)).await?;
//! # Ok(()) }
//! ```
//!
//! # Tables
//!
//! `<schema>.leases` (primary key application + shard id),
//! `<schema>.workers` (heartbeats) and `<schema>.checkpoints` (the
//! [`CheckpointStore`](kcl_core::CheckpointStore) side), plus
//! `<schema>.kcl_migrations` and a `<schema>.kcl_fail` function that the
//! transactional checkpoint uses to abort a fenced-out transaction. Table
//! names are configurable on the builder.
//!
//! # Not yet
//!
//! The engine does not hand the held lease to processors yet, nor can it
//! be told that a checkpoint was written outside it; until it can,
//! [`PostgresStore::checkpoint_in_transaction`] takes the `&Lease` the
//! caller holds (from `take_lease`).
//!
//! # Features
//!
//! - `tls` (off by default): TLS to the server through rustls (aws-lc-rs,
//!   as kcl-store-redis's `tls`), set with sqlx's URL options:
//!   `postgres://…?sslmode=verify-full&sslrootcert=/path/ca.pem`.
//!   `tests/tls.rs` proves it against a server that accepts only TLS, with
//!   a certificate from a private CA (and refuses another CA's root or a
//!   name the certificate does not carry). Without the feature,
//!   `sslmode=require`, `verify-ca` or `verify-full` is an
//!   [`Error::Config`](kcl_core::Error::Config) that names it: asking for
//!   TLS never falls back to plaintext.
//!
//! Tests run against a real PostgreSQL named by `KCL_TEST_POSTGRES_URL`
//! (`scripts/test-all.sh` starts one), each in its own random schema.

mod config;
mod error;
mod migrate;
mod row;
mod sql;
mod store;
mod transactional;

pub use config::{
    DEFAULT_LEASE_CONNECTIONS, DEFAULT_LOCK_TIMEOUT, DEFAULT_STATEMENT_TIMEOUT, IDENTIFIER_RULE,
    PostgresStoreBuilder,
};
pub use store::PostgresStore;
