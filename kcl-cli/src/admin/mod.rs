//! The admin subcommands of `kcl`: read and repair an application's leases
//! on any lease store, chosen by URL as `kcl multilang` chooses it
//! ([`crate::store_url`]).
//!
//! | command | what it does |
//! |---|---|
//! | `kcl leases` | every lease: owner, checkpoint, state; with `--stream`, the lag |
//! | `kcl leases release --shard S` | free a lease (fences its owner) |
//! | `kcl leases assign --shard S --worker W` | ask the owner to hand a lease to `W` |
//! | `kcl workers` | workers whose heartbeat moves, and the leases each holds |
//! | `kcl checkpoint reset --to … (--shard S… \| --all)` | move checkpoints (dry run unless `--execute`) |
//! | `kcl app delete` | every lease and heartbeat of the application |
//! | `kcl fanout deregister` | the application's enhanced fan-out consumer |
//! | `kcl watch` | a live view: owners, lag, records/s, every second |
//!
//! Every failure is one line on stderr and an exit code from [`Exit`];
//! store URLs are printed with their password hidden.

pub mod app;
pub mod aws;
pub mod checkpoint;
pub mod exit;
pub mod fanout;
pub mod leases;
pub mod output;
pub mod stream;
pub mod watch;
pub mod workers;

use std::fmt;
use std::sync::Arc;

use clap::{Args, Subcommand};
use kcl_core::LeaseStore;

pub use exit::{AdminError, EXIT_CODES_HELP, Exit};

use crate::store_url::{DynamoSettings, lease_store_from_url, redact};

/// The admin subcommands, flattened into `kcl`'s own.
#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// List every lease of an application (or release / assign one).
    #[command(subcommand_negates_reqs = true, args_conflicts_with_subcommands = true)]
    Leases(leases::LeasesCommand),
    /// List the application's workers: live or stale, leases held, last
    /// heartbeat age.
    Workers(workers::WorkersArgs),
    /// Move checkpoints.
    #[command(subcommand)]
    Checkpoint(checkpoint::CheckpointCommand),
    /// Application-wide acts.
    #[command(subcommand)]
    App(app::AppCommand),
    /// Enhanced fan-out consumers.
    #[command(subcommand)]
    Fanout(fanout::FanoutCommand),
    /// A live view of owners, lag and records/s, refreshed every second.
    Watch(watch::WatchArgs),
}

impl AdminCommand {
    /// Run the command; the exit code tells how it went.
    pub async fn run(self) -> Result<(), AdminError> {
        match self {
            AdminCommand::Leases(cmd) => cmd.run().await,
            AdminCommand::Workers(args) => args.run().await,
            AdminCommand::Checkpoint(cmd) => cmd.run().await,
            AdminCommand::App(cmd) => cmd.run().await,
            AdminCommand::Fanout(cmd) => cmd.run().await,
            AdminCommand::Watch(args) => args.run().await,
        }
    }

    /// The command's name, for error lines (`kcl leases: …`).
    pub fn name(&self) -> &'static str {
        match self {
            AdminCommand::Leases(_) => "leases",
            AdminCommand::Workers(_) => "workers",
            AdminCommand::Checkpoint(_) => "checkpoint",
            AdminCommand::App(_) => "app",
            AdminCommand::Fanout(_) => "fanout",
            AdminCommand::Watch(_) => "watch",
        }
    }
}

/// Which lease store and application a command acts on.
#[derive(Args, Clone)]
pub struct StoreArgs {
    /// The lease store: `dynamodb://[TABLE][?region=…&endpoint=…]`,
    /// `redis://…`, `rediss://…`, `postgres://…` (the URL `kcl multilang`
    /// takes as `leaseStoreUrl`). A password in it is never printed.
    #[arg(
        long,
        env = "KCL_STORE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub store: String,
    /// The application name (`applicationName`): the namespace inside the
    /// store. Optional when the URL sets `application=` (or, for DynamoDB,
    /// names the table, which is the application's by default).
    #[arg(long = "app", env = "KCL_APPLICATION", value_name = "NAME")]
    pub app: Option<String>,
}

impl fmt::Debug for StoreArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreArgs")
            .field("store", &redact(&self.store))
            .field("app", &self.app)
            .finish()
    }
}

impl StoreArgs {
    /// The application name the store is opened for.
    pub fn application(&self) -> Result<String, AdminError> {
        if let Some(app) = &self.app {
            return Ok(app.clone());
        }
        let mut url = kcl_core::store_url::StoreUrl::parse(&self.store)?;
        if let Some(app) = url.take("application") {
            return Ok(app);
        }
        if url.scheme() == "dynamodb" {
            let table = url.host()?;
            if !table.is_empty() {
                return Ok(table);
            }
        }
        Err(AdminError::usage(
            "give the application: --app NAME (or KCL_APPLICATION, or application= in the store URL)",
        ))
    }

    /// Open the store. Admin commands never create tables or schemas: a
    /// store that is not set up is a "not found" error, not a new empty
    /// table.
    pub async fn open(&self) -> Result<Arc<dyn LeaseStore>, AdminError> {
        let application = self.application()?;
        let mut url = self.store.clone();
        let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or_default();
        match scheme {
            "dynamodb" => url = with_option(&url, "create_tables", "false"),
            "postgres" | "postgresql" => url = with_option(&url, "migrate", "false"),
            _ => {}
        }
        let store = lease_store_from_url(&url, &application, DynamoSettings::default()).await?;
        Ok(store)
    }
}

/// `url` with `key=value` added to its query unless it sets `key` already.
fn with_option(url: &str, key: &str, value: &str) -> String {
    if query_value(url, key).is_some() {
        return url.to_string();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={value}")
}

/// The value of `key` in the URL's query, if set.
fn query_value(url: &str, key: &str) -> Option<String> {
    let (_, query) = url.split_once('?')?;
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(store: &str, app: Option<&str>) -> StoreArgs {
        StoreArgs {
            store: store.into(),
            app: app.map(str::to_string),
        }
    }

    #[test]
    fn the_application_comes_from_the_flag_the_url_or_the_table() {
        assert_eq!(args("redis://h", Some("a")).application().unwrap(), "a");
        assert_eq!(
            args("redis://h?application=b", None).application().unwrap(),
            "b"
        );
        assert_eq!(args("dynamodb://T", None).application().unwrap(), "T");
        let err = args("redis://h", None).application().unwrap_err();
        assert_eq!(err.exit, Exit::Usage);
    }

    #[test]
    fn options_are_added_once() {
        assert_eq!(
            with_option("dynamodb://t", "create_tables", "false"),
            "dynamodb://t?create_tables=false"
        );
        assert_eq!(
            with_option("dynamodb://t?region=x", "create_tables", "false"),
            "dynamodb://t?region=x&create_tables=false"
        );
        assert_eq!(
            with_option("postgres://h/db?migrate=true", "migrate", "false"),
            "postgres://h/db?migrate=true"
        );
    }

    #[test]
    fn debug_hides_the_password() {
        let shown = format!("{:?}", args("redis://u:s3cret@h:6379", Some("a")));
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
