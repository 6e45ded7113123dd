//! Pick the lease store by URL scheme: the one place the binary chooses a
//! backend, on top of each store's `from_url` (see their docs for the
//! options a URL may carry). Each scheme needs its cargo feature (all on by
//! default). The properties' `applicationName` is the namespace unless the
//! URL sets `application=` itself.
//!
//! | URL | store | feature |
//! |---|---|---|
//! | `dynamodb://[table][?region=…&endpoint=…]` | DynamoDB (Java-compatible lease table; default table: `tableName`, else the application name) | `dynamodb` |
//! | `redis://…`, `rediss://…` | Redis | `redis` |
//! | `postgres://…`, `postgresql://…` | Postgres | `postgres` |
//! | `memory://` | in-process memory (one process only) | `memory` |

use std::sync::Arc;

use kcl_core::{Error, LeaseStore, Result};

/// What a `dynamodb://` store (and the Java default) needs besides the URL.
#[derive(Debug, Clone, Default)]
pub struct DynamoSettings {
    /// A client with the credentials, region and endpoint of the run.
    pub client: Option<aws_sdk_dynamodb::Client>,
    /// The table when the URL names none (Java: `tableName`, else the
    /// application name).
    pub default_table: Option<String>,
}

/// Open the lease store `url` names, for `application`.
pub async fn lease_store_from_url(
    url: &str,
    application: &str,
    dynamo: DynamoSettings,
) -> Result<Arc<dyn LeaseStore>> {
    let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or_default();
    match scheme {
        "dynamodb" => dynamodb(url, application, dynamo).await,
        "redis" | "rediss" => redis(url, application).await,
        "postgres" | "postgresql" => postgres(url, application).await,
        "memory" => memory(url, application),
        _ => Err(Error::Config(format!(
            "lease store URL {} has no known scheme (dynamodb://, redis://, rediss://, postgres://, postgresql://, memory://)",
            redact(url)
        ))),
    }
}

/// The URL with any password hidden, for logs and errors.
pub fn redact(url: &str) -> String {
    kcl_core::store_url::redact_url(url)
}

/// Whether the URL sets the application itself (then it wins over the
/// properties' `applicationName`).
#[cfg(any(
    feature = "dynamodb",
    feature = "redis",
    feature = "postgres",
    feature = "memory"
))]
fn names_application(url: &str) -> bool {
    url.split_once('?')
        .is_some_and(|(_, query)| query.split('&').any(|kv| kv.starts_with("application=")))
}

#[cfg(not(all(
    feature = "dynamodb",
    feature = "redis",
    feature = "postgres",
    feature = "memory"
)))]
fn missing(feature: &str, url: &str) -> Error {
    Error::Config(format!(
        "lease store URL {}: this kcl was built without the {feature:?} feature",
        redact(url)
    ))
}

#[cfg(feature = "dynamodb")]
async fn dynamodb(
    url: &str,
    application: &str,
    dynamo: DynamoSettings,
) -> Result<Arc<dyn LeaseStore>> {
    let mut b = kcl_store_dynamo::DynamoStoreBuilder::from_url(url)?;
    if !names_application(url) {
        b = b.application(application);
    }
    if let Some(client) = dynamo.client {
        b = b.client(client);
    }
    let table = kcl_core::store_url::StoreUrl::parse(url)?.host()?;
    if table.is_empty()
        && let Some(default) = dynamo.default_table
    {
        b = b.table_name(default);
    }
    Ok(Arc::new(b.build().await?))
}

#[cfg(not(feature = "dynamodb"))]
async fn dynamodb(url: &str, _: &str, _: DynamoSettings) -> Result<Arc<dyn LeaseStore>> {
    Err(missing("dynamodb", url))
}

#[cfg(feature = "redis")]
async fn redis(url: &str, application: &str) -> Result<Arc<dyn LeaseStore>> {
    let mut b = kcl_store_redis::RedisStoreBuilder::from_url(url)?;
    if !names_application(url) {
        b = b.application(application);
    }
    Ok(Arc::new(b.build().await?))
}

#[cfg(not(feature = "redis"))]
async fn redis(url: &str, _: &str) -> Result<Arc<dyn LeaseStore>> {
    Err(missing("redis", url))
}

#[cfg(feature = "postgres")]
async fn postgres(url: &str, application: &str) -> Result<Arc<dyn LeaseStore>> {
    let mut b = kcl_store_postgres::PostgresStoreBuilder::from_url(url)?;
    if !names_application(url) {
        b = b.application(application);
    }
    Ok(Arc::new(b.build().await?))
}

#[cfg(not(feature = "postgres"))]
async fn postgres(url: &str, _: &str) -> Result<Arc<dyn LeaseStore>> {
    Err(missing("postgres", url))
}

#[cfg(feature = "memory")]
fn memory(url: &str, application: &str) -> Result<Arc<dyn LeaseStore>> {
    let mut b = kcl_store_memory::MemoryStoreBuilder::from_url(url)?;
    if !names_application(url) {
        b = b.application(application);
    }
    Ok(Arc::new(b.build()?))
}

#[cfg(not(feature = "memory"))]
fn memory(url: &str, _: &str) -> Result<Arc<dyn LeaseStore>> {
    Err(missing("memory", url))
}
