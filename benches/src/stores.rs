//! The lease stores a bench runs against: the memory store always, and
//! each server store whose `KCL_TEST_*` variable is set (as
//! `scripts/lib/servers.sh` exports them), each in a fresh application
//! (and, on Postgres, a fresh schema).

use std::sync::Arc;

use kcl_core::LeaseStore;
use kcl_core::testkit::conformance::random_application;

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// `(name, store)` for memory, then redis, postgres and dynamodb where
/// their variable is set, of those `wanted` accepts by name. Panics if a
/// configured server cannot be reached (a bench has no better answer).
pub async fn from_env(wanted: impl Fn(&str) -> bool) -> Vec<(&'static str, Arc<dyn LeaseStore>)> {
    let app = || random_application().as_str().to_string();
    let mut out: Vec<(&'static str, Arc<dyn LeaseStore>)> = Vec::new();
    if wanted("memory") {
        let store = kcl_store_memory::MemoryStore::builder()
            .application(app())
            .build()
            .unwrap();
        out.push(("memory", Arc::new(store)));
    }
    if let Some(url) = env("KCL_TEST_REDIS_URL").filter(|_| wanted("redis")) {
        let store = kcl_store_redis::RedisStore::builder()
            .url(url)
            .application(app())
            .build()
            .await
            .expect("redis");
        out.push(("redis", Arc::new(store)));
    }
    if let Some(url) = env("KCL_TEST_POSTGRES_URL").filter(|_| wanted("postgres")) {
        let schema = format!("kcl_bench_{}", &app()[9..]);
        let store = kcl_store_postgres::PostgresStore::builder()
            .url(url)
            .schema(schema)
            .application(app())
            .build()
            .await
            .expect("postgres");
        out.push(("postgres", Arc::new(store)));
    }
    if let Some(endpoint) = env("KCL_TEST_DYNAMO_ENDPOINT").filter(|_| wanted("dynamodb")) {
        use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("bench", "bench", None, None, "kcl-bench"))
            .build();
        let store = kcl_store_dynamo::DynamoStore::builder()
            .application(app())
            .client(aws_sdk_dynamodb::Client::from_conf(config))
            .build()
            .await
            .expect("dynamodb");
        out.push(("dynamodb", Arc::new(store)));
    }
    out
}
