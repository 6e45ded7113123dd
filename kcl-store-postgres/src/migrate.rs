//! Embedded migrations, applied safely by many workers starting at once.
//!
//! `sqlx::migrate!` cannot put a configurable schema name into its SQL, so
//! the store carries its own small migrator: the SQL files in
//! `migrations/` hold `{schema}`, `{leases}`, `{workers}` and
//! `{checkpoints}` placeholders, replaced by the validated, quoted names.
//! All of it runs in one transaction that first takes a transaction-scoped
//! advisory lock on the schema name, so concurrent startups queue up and
//! only the first applies anything; applied versions are recorded in
//! `<schema>.kcl_migrations`, keyed by the table names, so re-running is a
//! no-op and several table sets can share one schema.

use kcl_core::Result;
use sqlx::{Executor, PgPool};

use crate::config::Tables;
use crate::error::map_sqlx;

/// The version table's name inside the store's schema; no store table may
/// be called this.
pub(crate) const VERSION_TABLE: &str = "kcl_migrations";

/// First key of the advisory lock (`'kcl'` in ASCII); the second is the
/// schema name's hash.
const LOCK_CLASS: i32 = 0x006b_636c;

/// Every migration, in order: version and SQL text.
const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        include_str!("../migrations/0001_leases_workers_checkpoints.sql"),
    ),
    (2, include_str!("../migrations/0002_pinned_start.sql")),
    (3, include_str!("../migrations/0003_throughput.sql")),
];

fn render(sql: &str, tables: &Tables) -> String {
    sql.replace("{schema}", &tables.schema.quoted())
        .replace("{leases}", &tables.leases.quoted())
        .replace("{workers}", &tables.workers.quoted())
        .replace("{checkpoints}", &tables.checkpoints.quoted())
}

/// The key the version table records a table set under.
fn table_set(tables: &Tables) -> String {
    format!(
        "{},{},{}",
        tables.leases.as_str(),
        tables.workers.as_str(),
        tables.checkpoints.as_str()
    )
}

/// Create the schema and tables, or bring them up to date. Idempotent and
/// safe to run from many processes at once. Returns the versions this call
/// applied (empty when everything was there).
pub(crate) async fn run(pool: &PgPool, tables: &Tables) -> Result<Vec<i32>> {
    let mut tx = pool.begin().await.map_err(map_sqlx)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .bind(LOCK_CLASS)
        .bind(tables.schema.as_str())
        .execute(&mut *tx)
        .await
        .map_err(map_sqlx)?;
    let schema = tables.schema.quoted();
    let setup = format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         CREATE TABLE IF NOT EXISTS {schema}.{VERSION_TABLE} (
             table_set  text        NOT NULL,
             version    integer     NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now(),
             PRIMARY KEY (table_set, version)
         );"
    );
    // A plain string with no binds runs as a simple query, so a file of
    // several statements runs as one.
    (&mut *tx).execute(setup.as_str()).await.map_err(map_sqlx)?;
    let set = table_set(tables);
    let applied: Vec<i32> = sqlx::query_scalar(&format!(
        "SELECT version FROM {schema}.{VERSION_TABLE} WHERE table_set = $1"
    ))
    .bind(&set)
    .fetch_all(&mut *tx)
    .await
    .map_err(map_sqlx)?;
    let mut newly = Vec::new();
    for (version, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        (&mut *tx)
            .execute(render(sql, tables).as_str())
            .await
            .map_err(map_sqlx)?;
        sqlx::query(&format!(
            "INSERT INTO {schema}.{VERSION_TABLE} (table_set, version) VALUES ($1, $2)"
        ))
        .bind(&set)
        .bind(version)
        .execute(&mut *tx)
        .await
        .map_err(map_sqlx)?;
        newly.push(*version);
    }
    tx.commit().await.map_err(map_sqlx)?;
    if !newly.is_empty() {
        tracing::info!(schema = tables.schema.as_str(), table_set = %set, versions = ?newly, "applied kcl migrations");
    }
    Ok(newly)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Identifier;

    #[test]
    fn rendering_fills_every_placeholder_with_quoted_names() {
        let tables = Tables {
            schema: Identifier::new("schema", "s1").unwrap(),
            leases: Identifier::new("t", "l1").unwrap(),
            workers: Identifier::new("t", "w1").unwrap(),
            checkpoints: Identifier::new("t", "c1").unwrap(),
        };
        let mut all = String::new();
        for (_, sql) in MIGRATIONS {
            let out = render(sql, &tables);
            for placeholder in ["{schema}", "{leases}", "{workers}", "{checkpoints}"] {
                assert!(!out.contains(placeholder), "{placeholder} left in");
            }
            all.push_str(&out);
        }
        assert!(all.contains("\"s1\".\"l1\""));
        assert!(all.contains("\"s1\".\"w1\""));
        assert!(all.contains("\"s1\".\"c1\""));
    }
}
