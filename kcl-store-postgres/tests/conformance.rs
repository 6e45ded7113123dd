//! The shared conformance suite against a real PostgreSQL, every check in
//! its own random schema and application.

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use common::Schemas;
use kcl_core::testkit::conformance::{self, StoreFactory};
use kcl_core::{CheckpointStore, LeaseStore};

#[derive(Debug)]
struct Factory(Schemas);

#[async_trait]
impl StoreFactory for Factory {
    async fn lease_store(&self) -> Arc<dyn LeaseStore> {
        Arc::new(self.0.store().await)
    }
    async fn checkpoint_store(&self) -> Arc<dyn CheckpointStore> {
        Arc::new(self.0.store().await)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_passes_the_whole_suite() {
    let Some(url) = common::url() else { return };
    let factory = Factory(Schemas::new(common::pool(&url).await));
    conformance::run_all(&factory).await;
    factory.0.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applications_share_one_schema_without_seeing_each_other() {
    let Some(url) = common::url() else { return };
    let schemas = Schemas::new(common::pool(&url).await);
    let one = schemas.store().await;
    let two = one.with_application(conformance::random_application());
    conformance::namespaces_are_isolated(&one, &two).await;
    conformance::checkpoint_namespaces_are_isolated(&one, &two).await;
    schemas.drop_all().await;
}
