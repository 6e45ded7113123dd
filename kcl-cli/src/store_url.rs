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
//! | `redis+cluster://host:port…`, `rediss+cluster://…`, or `redis://…?cluster=true` | Redis Cluster (the URL names any one node; the client finds the rest and follows failovers) | `redis-cluster` |
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
        "redis" | "rediss" | "redis+cluster" | "rediss+cluster" => {
            if wants_cluster(scheme, url) && !cfg!(feature = "redis-cluster") {
                return Err(missing("redis-cluster", url));
            }
            redis(url, application).await
        }
        "postgres" | "postgresql" => postgres(url, application).await,
        "memory" => memory(url, application),
        _ => Err(Error::Config(format!(
            "lease store URL {} has no known scheme (dynamodb://, redis://, rediss://, redis+cluster://, rediss+cluster://, postgres://, postgresql://, memory://)",
            redact(url)
        ))),
    }
}

/// The URL with any password hidden, for logs and errors.
pub fn redact(url: &str) -> String {
    kcl_core::store_url::redact_url(url)
}

/// Whether a Redis URL asks for the cluster client.
fn wants_cluster(scheme: &str, url: &str) -> bool {
    scheme.ends_with("+cluster")
        || url.split_once('?').is_some_and(|(_, query)| {
            query.split('&').any(|kv| {
                matches!(
                    kv,
                    "cluster=true" | "cluster=yes" | "cluster=1" | "cluster=on"
                )
            })
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls_are_recognised() {
        for url in [
            "redis+cluster://h:7000",
            "rediss+cluster://h:7000/?prefix=p",
            "redis://h:7000?prefix=p&cluster=true",
        ] {
            let scheme = url.split_once("://").unwrap().0;
            assert!(wants_cluster(scheme, url), "{url}");
        }
        assert!(!wants_cluster("redis", "redis://h:7000?cluster=false"));
        assert!(!wants_cluster("redis", "redis://h:7000?clustered=true"));
    }

    /// A cluster URL reaches the cluster client (which cannot connect to a
    /// closed port: retryable), not the "no known scheme" refusal.
    #[cfg(feature = "redis-cluster")]
    #[tokio::test]
    async fn a_cluster_url_opens_the_cluster_client() {
        let err = lease_store_from_url(
            "redis+cluster://:hunter2@127.0.0.1:1?connection_timeout=300ms&response_timeout=300ms",
            "orders",
            DynamoSettings::default(),
        )
        .await
        .unwrap_err();
        assert!(err.is_retryable(), "{err:?}");
        assert!(!format!("{err} {err:?}").contains("hunter2"), "{err:?}");
    }
}
