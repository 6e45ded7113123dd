//! An in-memory [`LeaseStore`](kcl_core::LeaseStore) and
//! [`CheckpointStore`](kcl_core::CheckpointStore) for kcl.
//!
//! `MemoryStore` keeps everything in the process: use it in unit tests of
//! your processors (swap it in for the real store), and for a
//! single-process consumer that does not need checkpoints to survive a
//! restart. It keeps the full store contract (fencing, never-backwards
//! checkpoints, namespaces), proven by the same conformance suite the
//! server-backed stores pass.
//!
//! Clones share data. [`MemoryStore::with_application`] gives a view of the
//! same data under another application namespace, as two applications
//! sharing one server would see it.
//!
//! ```
//! use kcl_core::{ExtendedSequenceNumber, Lease, LeaseStore, ShardId, WorkerId};
//! use kcl_store_memory::MemoryStore;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = MemoryStore::builder().application("orders-consumer").build()?;
//! let lease = Lease::new(ShardId::new("shardId-000000000000")?, ExtendedSequenceNumber::TrimHorizon);
//! store.create_lease_if_absent(&lease).await?;
//! let held = store.take_lease(&lease, &WorkerId::new("worker-1")?).await?;
//! store.update_checkpoint(&held, &ExtendedSequenceNumber::at("42".parse()?, 0)).await?;
//! # Ok::<(), kcl_core::Error>(()) }).unwrap();
//! ```

mod config;
mod error;
mod store;

pub use config::MemoryStoreBuilder;
pub use store::MemoryStore;
