//! Shared by the server-backed tests: a client for the emulator the test
//! command started, and stores in fresh random tables.

#![allow(dead_code)]

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use kcl_core::testkit::conformance::random_application;
use kcl_store_dynamo::DynamoStore;

/// The emulator's endpoint, or `None` (the test skips) when unset.
pub(crate) fn endpoint() -> Option<String> {
    kcl_core::testkit::server_from_env("KCL_TEST_DYNAMO_ENDPOINT")
}

/// A client with static dummy credentials in us-east-1.
pub(crate) fn client(endpoint: &str) -> Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "kcl-tests"))
        // moto is far slower than DynamoDB (a 1 MB scan page of the 10,000
        // lease check takes seconds while every other check runs beside
        // it): generous bounds instead of the store's 2 s / 5 s defaults.
        .timeout_config(
            aws_sdk_dynamodb::config::timeout::TimeoutConfig::builder()
                .operation_attempt_timeout(std::time::Duration::from_secs(60))
                .operation_timeout(std::time::Duration::from_secs(120))
                .build(),
        )
        .build();
    Client::from_conf(config)
}

/// A store on a fresh random table (the application name is random).
pub(crate) async fn store(client: &Client) -> DynamoStore {
    DynamoStore::builder()
        .application(random_application().as_str())
        .client(client.clone())
        .build()
        .await
        .expect("build a DynamoStore on the emulator")
}
