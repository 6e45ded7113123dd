//! The conformance suite: the [`LeaseStore`] and [`CheckpointStore`]
//! contracts as executable checks.
//!
//! Each check is a plain `pub async fn` over `&dyn LeaseStore` (or
//! `&dyn CheckpointStore`) that panics with a clear message when the store
//! breaks the contract. [`run_all`] runs every one, each on a fresh
//! namespace from a [`StoreFactory`] (write one, as below, or build one
//! from a closure with [`store_factory`]); a backend's test is then:
//!
//! ```
//! use std::sync::Arc;
//! use kcl_core::testkit::conformance::{self, StoreFactory};
//! use kcl_core::{ApplicationName, CheckpointStore, LeaseStore};
//! use kcl_store_memory::MemoryStore;
//!
//! #[derive(Debug)]
//! struct Factory(MemoryStore); // a real backend holds the server's address
//!
//! #[async_trait::async_trait]
//! impl StoreFactory for Factory {
//!     async fn lease_store(&self) -> Arc<dyn LeaseStore> {
//!         // A fresh, random namespace on the same server.
//!         Arc::new(self.0.with_application(conformance::random_application()))
//!     }
//!     async fn checkpoint_store(&self) -> Arc<dyn CheckpointStore> {
//!         Arc::new(self.0.with_application(conformance::random_application()))
//!     }
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let server = MemoryStore::new(ApplicationName::new("unused")?);
//! conformance::run_all(&Factory(server)).await;
//! # Ok::<(), kcl_core::Error>(()) }).unwrap();
//! ```

mod checkpoint;
mod factory;
mod lease;
mod pinning;
mod strict;
mod throughput;

use std::sync::Arc;

use async_trait::async_trait;

pub use checkpoint::*;
pub use factory::{FnStoreFactory, store_factory};
pub use lease::*;
pub use pinning::*;
pub use strict::*;
pub use throughput::*;

use crate::error::{Error, Result};
use crate::ids::{ApplicationName, ShardId, WorkerId};
use crate::store::{CheckpointStore, LeaseStore};

/// Makes stores for the suite: each call returns a store bound to a fresh
/// application namespace (random name, prefix, schema or table) on the
/// server under test, so tests run in parallel and never see each other.
#[async_trait]
pub trait StoreFactory: Send + Sync {
    /// A lease store in a namespace no other call returns.
    async fn lease_store(&self) -> Arc<dyn LeaseStore>;
    /// A checkpoint store in a namespace no other call returns.
    async fn checkpoint_store(&self) -> Arc<dyn CheckpointStore>;
}

/// How many leases [`run_all`] lists in [`list_many_leases`].
pub const LIST_MANY_COUNT: usize = 10_000;

/// Run the whole suite: every lease-store and checkpoint-store check, each
/// on fresh stores from `factory`. Panics at the first broken rule.
pub async fn run_all(factory: &dyn StoreFactory) {
    run_lease_store_suite(factory).await;
    run_checkpoint_store_suite(factory).await;
}

/// Every [`LeaseStore`] check, each on a fresh store.
pub async fn run_lease_store_suite(factory: &dyn StoreFactory) {
    macro_rules! check {
        ($f:ident) => {{
            eprintln!("conformance: {}", stringify!($f));
            $f(&*factory.lease_store().await).await;
        }};
    }
    check!(create_if_absent_is_idempotent);
    check!(concurrent_creates_make_one_lease);
    check!(missing_leases);
    check!(concurrent_takers_have_one_winner);
    check!(take_needs_an_unchanged_snapshot);
    check!(renew_moves_the_counter_only);
    check!(fencing_after_takeover);
    check!(fencing_survives_retake_by_same_worker);
    check!(recreated_lease_fence_never_repeats);
    check!(checkpoints_never_go_backwards);
    check!(checkpoint_clears_pending_and_switches);
    check!(release_frees_the_lease);
    check!(handoff_to_a_named_worker);
    check!(request_handoff_reaches_the_owner);
    check!(pending_checkpoint_round_trips);
    check!(lineage_round_trips);
    check!(reset_checkpoint_moves_back_and_fences);
    check!(delete_is_idempotent);
    check!(heartbeats);
    check!(take_of_a_missing_lease_is_not_found);
    check!(fencing_checks_the_owner_as_well_as_the_generation);
    check!(fencing_comes_before_ordering);
    check!(ownership_changes_clear_the_handoff_request);
    check!(retake_by_the_same_owner_is_not_a_switch);
    check!(lease_checkpoints_compare_every_digit);
    check!(fenced_writes_never_undo_a_take);
    check!(fenced_writes_race_each_other);
    check!(pinned_start_round_trips_and_is_fenced);
    check!(withdraw_handoff_clears_only_our_request);
    check!(throughput_round_trips_on_renew_and_is_fenced);
    eprintln!("conformance: namespaces_are_isolated");
    namespaces_are_isolated(&*factory.lease_store().await, &*factory.lease_store().await).await;
    eprintln!("conformance: list_many_leases");
    list_many_leases(&*factory.lease_store().await, LIST_MANY_COUNT).await;
}

/// Every [`CheckpointStore`] check, each on a fresh store.
pub async fn run_checkpoint_store_suite(factory: &dyn StoreFactory) {
    macro_rules! check {
        ($f:ident) => {{
            eprintln!("conformance: {}", stringify!($f));
            $f(&*factory.checkpoint_store().await).await;
        }};
    }
    check!(checkpoint_store_round_trips);
    check!(checkpoint_store_never_goes_backwards);
    check!(checkpoint_store_concurrent_writers_keep_the_max);
    check!(checkpoint_store_compares_every_digit);
    eprintln!("conformance: checkpoint_namespaces_are_isolated");
    checkpoint_namespaces_are_isolated(
        &*factory.checkpoint_store().await,
        &*factory.checkpoint_store().await,
    )
    .await;
}

/// One `#[tokio::test]` per conformance check, so the first failure does
/// not hide the rest: `kcl_core::store_conformance_tests!(factory);` in a
/// store's test file, where `factory` is an `async fn() -> Option<F>`
/// with `F: StoreFactory` (`None` when the test server is not configured:
/// every test then skips). The tests land in a module `conformance_suite`
/// and run on a two-thread runtime; the calling crate needs `tokio` with
/// the `macros` and `rt-multi-thread` features.
#[macro_export]
macro_rules! store_conformance_tests {
    ($factory:ident) => {
        $crate::__store_conformance_tests! {
            $factory;
            lease:
                create_if_absent_is_idempotent,
                concurrent_creates_make_one_lease,
                missing_leases,
                concurrent_takers_have_one_winner,
                take_needs_an_unchanged_snapshot,
                renew_moves_the_counter_only,
                fencing_after_takeover,
                fencing_survives_retake_by_same_worker,
                recreated_lease_fence_never_repeats,
                checkpoints_never_go_backwards,
                checkpoint_clears_pending_and_switches,
                release_frees_the_lease,
                handoff_to_a_named_worker,
                request_handoff_reaches_the_owner,
                pending_checkpoint_round_trips,
                lineage_round_trips,
                reset_checkpoint_moves_back_and_fences,
                delete_is_idempotent,
                heartbeats,
                take_of_a_missing_lease_is_not_found,
                fencing_checks_the_owner_as_well_as_the_generation,
                fencing_comes_before_ordering,
                ownership_changes_clear_the_handoff_request,
                retake_by_the_same_owner_is_not_a_switch,
                lease_checkpoints_compare_every_digit,
                fenced_writes_never_undo_a_take,
                fenced_writes_race_each_other,
                pinned_start_round_trips_and_is_fenced,
                withdraw_handoff_clears_only_our_request,
                throughput_round_trips_on_renew_and_is_fenced;
            checkpoint:
                checkpoint_store_round_trips,
                checkpoint_store_never_goes_backwards,
                checkpoint_store_concurrent_writers_keep_the_max,
                checkpoint_store_compares_every_digit
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __store_conformance_tests {
    ($factory:ident; lease: $($lease:ident),* ; checkpoint: $($checkpoint:ident),*) => {
        mod conformance_suite {
            use $crate::testkit::conformance::{self as suite, StoreFactory};
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $lease() {
                    let Some(factory) = super::$factory().await else { return };
                    suite::$lease(&*factory.lease_store().await).await;
                }
            )*
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $checkpoint() {
                    let Some(factory) = super::$factory().await else { return };
                    suite::$checkpoint(&*factory.checkpoint_store().await).await;
                }
            )*
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn namespaces_are_isolated() {
                let Some(factory) = super::$factory().await else { return };
                suite::namespaces_are_isolated(
                    &*factory.lease_store().await,
                    &*factory.lease_store().await,
                )
                .await;
            }
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn checkpoint_namespaces_are_isolated() {
                let Some(factory) = super::$factory().await else { return };
                suite::checkpoint_namespaces_are_isolated(
                    &*factory.checkpoint_store().await,
                    &*factory.checkpoint_store().await,
                )
                .await;
            }
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn list_many_leases() {
                let Some(factory) = super::$factory().await else { return };
                suite::list_many_leases(&*factory.lease_store().await, suite::LIST_MANY_COUNT)
                    .await;
            }
        }
    };
}

/// A random application name (`kcl-test-` and 16 hex digits) for a fresh
/// namespace.
pub fn random_application() -> ApplicationName {
    use std::hash::{BuildHasher, Hasher};
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    ApplicationName::new(format!("kcl-test-{:016x}", h.finish())).expect("valid name")
}

pub(crate) fn shard(i: usize) -> ShardId {
    ShardId::new(format!("shardId-{i:012}")).expect("valid shard id")
}

pub(crate) fn worker(name: &str) -> WorkerId {
    WorkerId::new(name).expect("valid worker id")
}

#[track_caller]
pub(crate) fn expect_conflict<T: std::fmt::Debug>(result: Result<T>, what: &str) {
    match result {
        Err(Error::Conflict { .. }) => {}
        other => panic!("{what}: expected Error::Conflict, got {other:?}"),
    }
}

#[track_caller]
pub(crate) fn expect_invalid_checkpoint<T: std::fmt::Debug>(result: Result<T>, what: &str) {
    match result {
        Err(Error::InvalidCheckpoint(_)) => {}
        other => panic!("{what}: expected Error::InvalidCheckpoint, got {other:?}"),
    }
}

#[track_caller]
pub(crate) fn expect_missing<T: std::fmt::Debug>(result: Result<T>, what: &str) {
    match result {
        Err(Error::NotFound { .. }) | Err(Error::Conflict { .. }) => {}
        other => panic!("{what}: expected Error::NotFound (or Conflict), got {other:?}"),
    }
}
