//! Pick the lease store by URL scheme: the one place the binary chooses a
//! backend. Each scheme needs its cargo feature (all on by default).
//!
//! | URL | store | feature |
//! |---|---|---|
//! | `dynamodb://[table]` | DynamoDB (Java-compatible lease table; default table: the application name) | `dynamodb` |
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
        "memory" => memory(application),
        _ => Err(Error::Config(format!(
            "lease store URL {} has no known scheme (dynamodb://, redis://, rediss://, postgres://, postgresql://, memory://)",
            redact(url)
        ))),
    }
}

/// The URL with any password replaced by `***`, for logs and errors.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}{}", &rest[authority_end..])
        }
        None => url.to_string(),
    }
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
    let rest = url.trim_start_matches("dynamodb://");
    let table = rest.split(['?', '/']).next().unwrap_or_default();
    let mut b = kcl_store_dynamo::DynamoStore::builder().application(application);
    if let Some(client) = dynamo.client {
        b = b.client(client);
    }
    if !table.is_empty() {
        b = b.table_name(table);
    } else if let Some(table) = dynamo.default_table {
        b = b.table_name(table);
    }
    Ok(Arc::new(b.build().await?))
}

#[cfg(not(feature = "dynamodb"))]
async fn dynamodb(url: &str, _: &str, _: DynamoSettings) -> Result<Arc<dyn LeaseStore>> {
    Err(missing("dynamodb", url))
}

#[cfg(feature = "redis")]
async fn redis(url: &str, application: &str) -> Result<Arc<dyn LeaseStore>> {
    let store = kcl_store_redis::RedisStore::builder()
        .url(url)
        .application(application)
        .build()
        .await?;
    Ok(Arc::new(store))
}

#[cfg(not(feature = "redis"))]
async fn redis(url: &str, _: &str) -> Result<Arc<dyn LeaseStore>> {
    Err(missing("redis", url))
}

#[cfg(feature = "postgres")]
async fn postgres(url: &str, application: &str) -> Result<Arc<dyn LeaseStore>> {
    let store = kcl_store_postgres::PostgresStore::builder()
        .url(url)
        .application(application)
        .build()
        .await?;
    Ok(Arc::new(store))
}

#[cfg(not(feature = "postgres"))]
async fn postgres(url: &str, _: &str) -> Result<Arc<dyn LeaseStore>> {
    Err(missing("postgres", url))
}

#[cfg(feature = "memory")]
fn memory(application: &str) -> Result<Arc<dyn LeaseStore>> {
    Ok(Arc::new(
        kcl_store_memory::MemoryStore::builder()
            .application(application)
            .build()?,
    ))
}

#[cfg(not(feature = "memory"))]
fn memory(_: &str) -> Result<Arc<dyn LeaseStore>> {
    Err(missing("memory", "memory://"))
}
