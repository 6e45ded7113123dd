//! Shared set-up for the engine tests: a fresh memory store here (the
//! testkit cannot depend on kcl-store-memory), the rest from
//! `kcl_core::testkit::engine`.

use std::sync::Arc;

use kcl_store_memory::MemoryStore;

pub(crate) use kcl_core::testkit::engine::{
    LEASE, Running, assert_nothing_lost, fill, owners, producer, spawn_worker, spawn_worker_with,
    wait_until,
};

pub(crate) fn store() -> Arc<MemoryStore> {
    Arc::new(
        MemoryStore::builder()
            .application("engine-test")
            .build()
            .unwrap(),
    )
}
