//! The shared conformance suite against moto_server, each check on its own
//! random table.

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use kcl_core::testkit::conformance::StoreFactory;
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

async fn factory() -> Option<Factory> {
    common::endpoint().map(|endpoint| Factory(common::client(&endpoint)))
}

kcl_core::store_conformance_tests!(factory);
