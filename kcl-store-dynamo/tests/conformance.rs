//! The shared conformance suite against moto_server, each check on its own
//! random table.

mod common;

use kcl_core::testkit::conformance::{StoreFactory, store_factory};

async fn factory() -> Option<impl StoreFactory> {
    let client = common::client(&common::endpoint()?);
    Some(store_factory(move || {
        let client = client.clone();
        async move { common::store(&client).await }
    }))
}

kcl_core::store_conformance_tests!(factory);
