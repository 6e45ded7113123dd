//! Embedded migrations: concurrent startups, re-runs, configurable names,
//! and no password in `Debug`.

mod common;

use kcl_core::testkit::conformance::random_application;
use kcl_core::{ExtendedSequenceNumber as Esn, Lease, LeaseStore, ShardId};
use kcl_store_postgres::PostgresStore;

async fn tables_in(pool: &sqlx::PgPool, schema: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = $1 ORDER BY table_name",
    )
    .bind(schema)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_workers_starting_at_once_migrate_once() {
    let Some(url) = common::url() else { return };
    let pool = common::pool(&url).await;
    let schema = common::random_schema();
    // Eight "processes", each with its own pool, start on a fresh schema.
    let starts: Vec<_> = (0..8)
        .map(|_| {
            let (url, schema) = (url.clone(), schema.clone());
            tokio::spawn(async move {
                PostgresStore::builder()
                    .url(url)
                    .schema(schema)
                    .application(random_application().as_str())
                    .max_connections(1)
                    .build()
                    .await
            })
        })
        .collect();
    let mut stores = Vec::new();
    for start in starts {
        stores.push(
            start
                .await
                .unwrap()
                .expect("every concurrent start succeeds"),
        );
    }
    let versions: Vec<(String, i32)> = sqlx::query_as(&format!(
        "SELECT table_set, version FROM \"{schema}\".kcl_migrations ORDER BY version"
    ))
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        versions,
        vec![
            ("leases,workers,checkpoints".to_string(), 1),
            ("leases,workers,checkpoints".to_string(), 2),
            ("leases,workers,checkpoints".to_string(), 3)
        ],
        "each migration recorded exactly once"
    );
    assert_eq!(
        tables_in(&pool, &schema).await,
        ["checkpoints", "kcl_migrations", "leases", "workers"]
    );
    // Re-running is a no-op, and the stores work.
    assert!(stores[0].migrate().await.unwrap().is_empty());
    let lease = Lease::new(ShardId::new("shardId-1").unwrap(), Esn::TrimHorizon);
    assert!(stores[3].create_lease_if_absent(&lease).await.unwrap());
    sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .execute(&pool)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_names_are_configurable_and_kept_apart() {
    let Some(url) = common::url() else { return };
    let pool = common::pool(&url).await;
    let schema = common::random_schema();
    let app = random_application();
    let build = |leases: &str, workers: &str, checkpoints: &str| {
        PostgresStore::builder()
            .pool(pool.clone())
            .schema(schema.clone())
            .application(app.as_str())
            .leases_table(leases)
            .workers_table(workers)
            .checkpoints_table(checkpoints)
            .build()
    };
    let blue = build("blue_leases", "blue_workers", "blue_checkpoints")
        .await
        .unwrap();
    let green = build("green_leases", "green_workers", "green_checkpoints")
        .await
        .unwrap();
    assert_eq!(
        tables_in(&pool, &schema).await,
        [
            "blue_checkpoints",
            "blue_leases",
            "blue_workers",
            "green_checkpoints",
            "green_leases",
            "green_workers",
            "kcl_migrations"
        ]
    );
    // Same application, different tables: separate data.
    let lease = Lease::new(ShardId::new("shardId-1").unwrap(), Esn::TrimHorizon);
    assert!(blue.create_lease_if_absent(&lease).await.unwrap());
    assert_eq!(green.list_leases().await.unwrap(), vec![]);
    assert_eq!(blue.list_leases().await.unwrap(), vec![lease]);
    sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .execute(&pool)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_never_shows_the_password() {
    let Some(url) = common::url() else { return };
    // Give the test server's role a password and connect with it.
    let pool = common::pool(&url).await;
    let role = common::random_schema();
    let password = "not-a-real-secret-42";
    sqlx::query(&format!(
        "CREATE ROLE {role} LOGIN SUPERUSER PASSWORD '{password}'"
    ))
    .execute(&pool)
    .await
    .unwrap();
    let with_password = url.replacen(
        "postgres://postgres@",
        &format!("postgres://{role}:{password}@"),
        1,
    );
    assert!(
        with_password.contains(password),
        "test URL has the expected shape"
    );
    let builder = PostgresStore::builder()
        .url(with_password)
        .schema(role.clone())
        .application("debug-check");
    assert!(!format!("{builder:?}").contains(password));
    let store = builder.build().await.unwrap();
    let shown = format!("{store:?}");
    assert!(!shown.contains(password), "{shown}");
    assert!(shown.contains(&role), "Debug shows the schema: {shown}");
    sqlx::query(&format!("DROP SCHEMA \"{role}\" CASCADE"))
        .execute(&pool)
        .await
        .unwrap();
    store.pool().close().await;
    sqlx::query(&format!("DROP ROLE {role}"))
        .execute(&pool)
        .await
        .unwrap();
}
