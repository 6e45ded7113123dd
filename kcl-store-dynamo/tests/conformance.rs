//! The shared conformance suite against moto_server, each check on its own
//! random table.

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use kcl_core::testkit::conformance::{self, StoreFactory};
use kcl_core::{CheckpointStore, LeaseStore};

struct Factory(Client);

#[async_trait]
impl StoreFactory for Factory {
    async fn lease_store(&self) -> Arc<dyn LeaseStore> {
        Arc::new(common::store(&self.0).await)
    }
    async fn checkpoint_store(&self) -> Arc<dyn CheckpointStore> {
        Arc::new(common::store(&self.0).await)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamo_store_passes_the_whole_suite() {
    let Some(endpoint) = common::endpoint() else {
        return;
    };
    conformance::run_all(&Factory(common::client(&endpoint))).await;
}
