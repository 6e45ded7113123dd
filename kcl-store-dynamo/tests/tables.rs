//! Table set-up: creation (on-demand or provisioned) with the heartbeat
//! table beside it, a clear error for an incompatible key schema or a
//! missing table when creation is off, and no secrets in `Debug`.

mod common;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use kcl_core::Error;
use kcl_core::testkit::conformance::random_application;
use kcl_store_dynamo::{DynamoStore, TableCapacity};

#[tokio::test]
async fn creates_lease_and_heartbeat_tables() {
    let Some(endpoint) = common::endpoint() else {
        return;
    };
    let client = common::client(&endpoint);
    let app = random_application();
    let store = DynamoStore::builder()
        .application(app.as_str())
        .client(client.clone())
        .build()
        .await
        .expect("build");
    assert_eq!(
        store.table_name(),
        app.as_str(),
        "the table is named after the application"
    );
    assert_eq!(
        store.heartbeat_table_name(),
        format!("{app}-WorkerHeartbeats")
    );
    let lease_table = client
        .describe_table()
        .table_name(app.as_str())
        .send()
        .await
        .unwrap();
    let table = lease_table.table.unwrap();
    assert_eq!(table.key_schema()[0].attribute_name(), "leaseKey");
    assert_eq!(
        table.billing_mode_summary().and_then(|b| b.billing_mode()),
        Some(&BillingMode::PayPerRequest)
    );
    client
        .describe_table()
        .table_name(store.heartbeat_table_name())
        .send()
        .await
        .expect("the heartbeat table exists");

    // Building again on existing tables is fine (idempotent).
    DynamoStore::builder()
        .application(app.as_str())
        .client(client.clone())
        .create_tables_if_absent(false)
        .build()
        .await
        .expect("existing tables are accepted");
}

#[tokio::test]
async fn provisioned_capacity_is_an_option() {
    let Some(endpoint) = common::endpoint() else {
        return;
    };
    let client = common::client(&endpoint);
    let app = random_application();
    DynamoStore::builder()
        .application(app.as_str())
        .client(client.clone())
        .capacity(TableCapacity::Provisioned {
            read_capacity_units: 5,
            write_capacity_units: 7,
        })
        .build()
        .await
        .expect("build");
    let table = client
        .describe_table()
        .table_name(app.as_str())
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    let throughput = table.provisioned_throughput().unwrap();
    assert_eq!(throughput.read_capacity_units(), Some(5));
    assert_eq!(throughput.write_capacity_units(), Some(7));

    let bad = DynamoStore::builder()
        .application(random_application().as_str())
        .client(client)
        .capacity(TableCapacity::Provisioned {
            read_capacity_units: 0,
            write_capacity_units: 7,
        })
        .build()
        .await;
    assert!(matches!(bad, Err(Error::Config(_))), "{bad:?}");
}

#[tokio::test]
async fn refuses_a_table_with_another_key_schema() {
    let Some(endpoint) = common::endpoint() else {
        return;
    };
    let client = common::client(&endpoint);
    let name = random_application();
    client
        .create_table()
        .table_name(name.as_str())
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    let result = DynamoStore::builder()
        .application("some-app")
        .table_name(name.as_str())
        .client(client)
        .build()
        .await;
    match result {
        Err(Error::Config(message)) => {
            assert!(
                message.contains(name.as_str()) && message.contains("leaseKey"),
                "{message}"
            );
        }
        other => panic!("expected Error::Config, got {other:?}"),
    }
}

#[tokio::test]
async fn a_missing_table_without_creation_is_not_initialized() {
    let Some(endpoint) = common::endpoint() else {
        return;
    };
    let result = DynamoStore::builder()
        .application(random_application().as_str())
        .client(common::client(&endpoint))
        .create_tables_if_absent(false)
        .build()
        .await;
    assert!(
        matches!(result, Err(Error::NotInitialized(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn bad_settings_are_config_errors_and_debug_shows_no_secrets() {
    let client = common::client("http://127.0.0.1:9");
    let builder = DynamoStore::builder()
        .application("orders")
        .client(client.clone());
    let shown = format!("{builder:?}");
    assert!(
        !shown.contains("test"),
        "Debug must not show credentials: {shown}"
    );
    assert!(shown.contains("<given>"));

    for bad in [
        DynamoStore::builder().client(client.clone()),
        DynamoStore::builder()
            .application("a b")
            .client(client.clone()),
        DynamoStore::builder()
            .application("ok-name")
            .table_name("x")
            .client(client.clone()),
        DynamoStore::builder()
            .application("ok-name")
            .heartbeat_table_name("ok-name")
            .client(client.clone()),
    ] {
        let result = bad.build().await;
        assert!(matches!(result, Err(Error::Config(_))), "{result:?}");
    }
}
