//! Creating the tables if absent, waiting until they are active, and
//! refusing a table whose key schema is not the one we need.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ProvisionedThroughput,
    ScalarAttributeType, TableDescription, TableStatus,
};
use kcl_core::{Error, Result};

use crate::config::TableCapacity;
use crate::error::{Kind, STORE, kind, map_sdk};

/// What [`ensure_table`] needs to know.
#[derive(Debug, Clone)]
pub(crate) struct TableSpec<'a> {
    pub(crate) name: &'a str,
    /// The single hash key, of type S.
    pub(crate) hash_key: &'a str,
    pub(crate) capacity: &'a TableCapacity,
    pub(crate) create_if_absent: bool,
    pub(crate) active_timeout: Duration,
}

/// Make sure `spec.name` exists with the right key schema and is ACTIVE.
pub(crate) async fn ensure_table(client: &Client, spec: &TableSpec<'_>) -> Result<()> {
    match describe(client, spec.name).await? {
        Some(table) => {
            check_key_schema(spec, &table)?;
        }
        None if !spec.create_if_absent => {
            return Err(Error::NotInitialized(format!(
                "DynamoDB table {} does not exist and table creation is off",
                spec.name
            )));
        }
        None => create(client, spec).await?,
    }
    wait_until_active(client, spec).await
}

async fn describe(client: &Client, name: &str) -> Result<Option<TableDescription>> {
    match client.describe_table().table_name(name).send().await {
        Ok(out) => Ok(out.table),
        Err(e) if kind(&e) == Kind::TableMissing => Ok(None),
        Err(e) => Err(map_sdk(name, e)),
    }
}

async fn create(client: &Client, spec: &TableSpec<'_>) -> Result<()> {
    let key = KeySchemaElement::builder()
        .attribute_name(spec.hash_key)
        .key_type(KeyType::Hash)
        .build()
        .map_err(|e| Error::generic(STORE, e))?;
    let definition = AttributeDefinition::builder()
        .attribute_name(spec.hash_key)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(|e| Error::generic(STORE, e))?;
    let mut request = client
        .create_table()
        .table_name(spec.name)
        .key_schema(key)
        .attribute_definitions(definition);
    request = match spec.capacity {
        TableCapacity::OnDemand => request.billing_mode(BillingMode::PayPerRequest),
        TableCapacity::Provisioned {
            read_capacity_units,
            write_capacity_units,
        } => request
            .billing_mode(BillingMode::Provisioned)
            .provisioned_throughput(
                ProvisionedThroughput::builder()
                    .read_capacity_units(*read_capacity_units)
                    .write_capacity_units(*write_capacity_units)
                    .build()
                    .map_err(|e| Error::generic(STORE, e))?,
            ),
    };
    match request.send().await {
        Ok(_) => {
            tracing::info!(table = spec.name, "created DynamoDB table");
            Ok(())
        }
        // Another worker created it first: fine, check what it made.
        Err(e) if e.code() == Some("ResourceInUseException") => {
            match describe(client, spec.name).await? {
                Some(table) => check_key_schema(spec, &table),
                None => Ok(()),
            }
        }
        Err(e) => Err(map_sdk(spec.name, e)),
    }
}

/// The table must have exactly one key, `spec.hash_key` of type S, as Java
/// KCL's lease table has; anything else cannot hold our items.
fn check_key_schema(spec: &TableSpec<'_>, table: &TableDescription) -> Result<()> {
    let keys: Vec<String> = table
        .key_schema()
        .iter()
        .map(|k| format!("{} ({})", k.attribute_name(), k.key_type().as_str()))
        .collect();
    let hash_type = table
        .attribute_definitions()
        .iter()
        .find(|d| d.attribute_name() == spec.hash_key)
        .map(|d| d.attribute_type().as_str().to_string());
    let ok = table.key_schema().len() == 1
        && table.key_schema()[0].attribute_name() == spec.hash_key
        && table.key_schema()[0].key_type() == &KeyType::Hash
        && hash_type.as_deref() == Some("S");
    if ok {
        return Ok(());
    }
    Err(Error::Config(format!(
        "DynamoDB table {} has key schema [{}] with {} typed {}; kcl needs a single hash key {} of type S \
         (Java KCL's lease table layout). Point the store at another table name.",
        spec.name,
        keys.join(", "),
        spec.hash_key,
        hash_type.as_deref().unwrap_or("nothing"),
        spec.hash_key,
    )))
}

async fn wait_until_active(client: &Client, spec: &TableSpec<'_>) -> Result<()> {
    let started = Instant::now();
    let mut delay = Duration::from_millis(100);
    loop {
        let status = describe(client, spec.name)
            .await?
            .and_then(|t| t.table_status().cloned());
        if status == Some(TableStatus::Active) {
            return Ok(());
        }
        if started.elapsed() >= spec.active_timeout {
            return Err(Error::NotInitialized(format!(
                "DynamoDB table {} is not ACTIVE after {:?} (status {:?})",
                spec.name, spec.active_timeout, status
            )));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}
