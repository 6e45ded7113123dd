//! A Redis [`LeaseStore`](kcl_core::LeaseStore) and
//! [`CheckpointStore`](kcl_core::CheckpointStore) for kcl.
//!
//! `RedisStore` keeps one application's leases, worker heartbeats and
//! checkpoints in Redis (tested on 7.0; any server with Lua scripting and
//! multi-field `HSET`, 4.0 or later, should do). Every compare-and-set (create, take, renew, release, hand-off,
//! checkpoint, prepare, child ids, reset) is one Lua script, kept as a
//! `.lua` file in `src/scripts/`, so its condition and its write are one
//! atomic step on the server. It keeps the whole store contract and passes
//! `kcl_core::testkit::conformance` against a real `redis-server`.
//!
//! # Quick start
//!
//! ```no_run
//! use kcl_core::{ExtendedSequenceNumber, Lease, LeaseStore, ShardId, WorkerId};
//! use kcl_store_redis::RedisStore;
//!
//! # async fn demo() -> kcl_core::Result<()> {
//! let store = RedisStore::builder()
//!     .url("redis://127.0.0.1:6379")
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
//! Or hand it a [`ConnectionManager`](redis::aio::ConnectionManager) you
//! already have with [`RedisStoreBuilder::connection`].
//!
//! # Key layout
//!
//! Every key starts with the hash tag `{<prefix>:<application>}` (prefix
//! `kcl` unless [`RedisStoreBuilder::key_prefix`] says otherwise):
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `{kcl:app}:lease:<shard id>` | hash | one lease |
//! | `{kcl:app}:leases` | set | the shard ids that have a lease |
//! | `{kcl:app}:workers` | hash | worker id → heartbeat counter |
//! | `{kcl:app}:checkpoint:<shard id>` | hash | a `CheckpointStore` checkpoint |
//!
//! A lease hash has the fields `shard_id`, `owner`, `counter`,
//! `generation`, `checkpoint` and `checkpoint_sub` (the sequence number or
//! sentinel, Java KCL style), `pending_checkpoint`,
//! `pending_checkpoint_sub`, `pending_state`, `owner_switches`,
//! `parent_shard_ids` and `child_shard_ids` (newline-separated),
//! `hash_key_start` and `hash_key_end` (decimal), and `handoff_to`; absent
//! optional values are absent fields. Sequence numbers stay decimal strings
//! everywhere and the scripts compare them by length, then digit by digit,
//! so 56-digit Kinesis sequence numbers compare exactly. Listing walks the
//! index with `SSCAN` and reads each page of 1,000 leases in one pipelined
//! round trip.
//!
//! # Redis Cluster
//!
//! The hash tag puts all of one application's keys in one slot, so every
//! script (which names at most a lease and the lease index, both in
//! `KEYS`), the pipelined reads of a listing and the `MULTI` of a delete
//! keep Cluster's key-slot rules; different applications land in
//! different slots. `tests/cluster.rs` proves it by running the whole
//! conformance suite against a `redis-server` in cluster mode, which
//! refuses any cross-slot script or transaction.
//!
//! By default the store talks to one server through a
//! [`ConnectionManager`](redis::aio::ConnectionManager): it does not follow
//! `MOVED` redirections, so point it at the primary serving the
//! application's slot or at a cluster-aware proxy (a `MOVED` reply is
//! [`Error::Generic`](kcl_core::Error::Generic), not a silent success).
//!
//! With the `cluster` feature and [`RedisStoreBuilder::cluster`] (or a
//! `redis+cluster://host:port` URL, or `?cluster=true`), it talks to the
//! cluster through `redis::cluster_async` instead: the URL names any one
//! node, the client learns the others, routes each script to its slot's
//! primary, follows `MOVED`/`ASK`, and refreshes its slot map when the
//! cluster fails over; `TRYAGAIN`, `CLUSTERDOWN` and `MASTERDOWN` are
//! retryable. `tests/cluster_client.rs` runs the conformance suite on a
//! six-node cluster (three primaries, three replicas) and a
//! `CLUSTER FAILOVER` of the application's slot while a worker renews and
//! checkpoints: no fenced write is refused, no checkpoint moves back, and
//! the promoted replica enforces the fence.
//!
//! # Failures
//!
//! A server that is down, restarting, loading its data or failing over
//! makes calls fail with the retryable
//! [`Error::Unavailable`](kcl_core::Error::Unavailable) within the
//! configured timeouts (never hanging); the connection is re-established
//! on its own and the same store works again once the server is back.
//! Scripts are reloaded automatically after a restart empties the script
//! cache. A `READONLY` reply (the server was demoted to a replica: a
//! Sentinel or manual failover behind a name or address that now points
//! at the new primary) fails that call retryably and makes a store built
//! from a URL open a new connection, so the next call reaches the current
//! primary instead of meeting `READONLY` forever on the old connection (a
//! store handed its own connection keeps it). How much survives a restart is the server's persistence setting
//! (use `appendonly yes` with `appendfsync always` to lose no acknowledged
//! checkpoint).
//!
//! Eviction: leases and checkpoints have no TTL, so a server whose
//! `maxmemory-policy` is `allkeys-*` may evict them when full; `build`
//! logs a warning when it sees such a policy (`noeviction` is right).
//!
//! Replication and fencing: Redis replicates asynchronously. A write
//! acknowledged by a primary that fails before its replica received it is
//! lost when the replica is promoted: a take, renew or checkpoint can
//! silently roll back, so a worker may find its lease owned by the
//! previous holder again (its next fenced write fails with `Conflict`,
//! and it stops) and a checkpoint may move back to an earlier position
//! (records after it are delivered again: at-least-once holds, exactly
//! once does not). Fencing itself stays sound on the promoted replica:
//! every fenced write is one script checked against what that server
//! holds. `WAIT 1 <ms>` after writes would narrow the window; it is not
//! done today.
//!
//! # Features
//!
//! - `cluster` (off by default): the Redis Cluster client above. Without
//!   it, `cluster(true)` or a `redis+cluster://` URL is an
//!   [`Error::Config`](kcl_core::Error::Config) that names the feature.
//! - `tls` (off by default): `rediss://` URLs, through rustls with the
//!   aws-lc-rs provider and the platform's root certificates. Without it a
//!   `rediss://` URL is an [`Error::Config`](kcl_core::Error::Config) that
//!   names the feature. Passwords (`redis://user:password@host`) work
//!   either way and never appear in `Debug` or error messages.

mod codec;
mod config;
mod connection;
mod error;
mod keys;
mod scripts;
mod store;

pub use config::{
    DEFAULT_CONNECTION_TIMEOUT, DEFAULT_KEY_PREFIX, DEFAULT_RESPONSE_TIMEOUT, RedisStoreBuilder,
};
pub use store::RedisStore;

/// The redis crate this store is built on, for building a
/// [`ConnectionManager`](redis::aio::ConnectionManager) to pass to
/// [`RedisStoreBuilder::connection`].
pub use redis;
