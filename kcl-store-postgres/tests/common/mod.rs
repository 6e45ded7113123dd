//! Shared helpers for the server-backed tests: the server's URL, a pool on
//! it, and stores in fresh random schemas that are dropped afterwards.

#![allow(dead_code)] // each test binary uses a different subset

pub(crate) mod cluster;

use std::sync::Mutex;

use kcl_core::testkit::conformance::random_application;
use kcl_core::testkit::server_from_env;
use kcl_store_postgres::PostgresStore;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

/// The test server's URL, or `None` (with a printed skip line) when unset.
pub(crate) fn url() -> Option<String> {
    server_from_env("KCL_TEST_POSTGRES_URL")
}

/// Schemas on the test server, or `None` (the test skips) when unset.
pub(crate) async fn schemas() -> Option<Schemas> {
    let url = url()?;
    Some(Schemas::new(pool(&url).await))
}

/// A pool of up to 20 connections on `url`.
pub(crate) async fn pool(url: &str) -> PgPool {
    PgPoolOptions::new()
        .max_connections(20)
        .connect(url)
        .await
        .expect("connect to KCL_TEST_POSTGRES_URL")
}

/// A fresh schema name: `kcl_test_` and 16 random hex digits.
pub(crate) fn random_schema() -> String {
    let app = random_application();
    format!(
        "kcl_test_{}",
        app.as_str().trim_start_matches("kcl-test-").to_lowercase()
    )
}

/// Hands out stores in fresh schemas on one pool and drops every schema it
/// made when [`Schemas::drop_all`] is called.
#[derive(Debug)]
pub(crate) struct Schemas {
    pub pool: PgPool,
    made: Mutex<Vec<String>>,
}

impl Schemas {
    pub(crate) fn new(pool: PgPool) -> Self {
        Schemas {
            pool,
            made: Mutex::default(),
        }
    }

    /// A store for a random application in a fresh random schema.
    pub(crate) async fn store(&self) -> PostgresStore {
        let schema = random_schema();
        self.made.lock().unwrap().push(schema.clone());
        PostgresStore::builder()
            .pool(self.pool.clone())
            .schema(schema)
            .application(random_application().as_str())
            .build()
            .await
            .expect("build a store in a fresh schema")
    }

    pub(crate) async fn drop_all(&self) {
        let made = std::mem::take(&mut *self.made.lock().unwrap());
        for schema in made {
            sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                .execute(&self.pool)
                .await
                .expect("drop test schema");
        }
    }
}
