//! `kcl app delete`: remove every lease and heartbeat of an application
//! (Java KCL users drop the lease table for this). The tables or keys'
//! home (a DynamoDB table, a Postgres schema) stay.

use std::io::{BufRead, IsTerminal, Write};

use clap::{Args, Subcommand};

use super::{AdminError, StoreArgs};

/// `kcl app …`.
#[derive(Subcommand, Debug)]
pub enum AppCommand {
    /// Delete every lease and worker heartbeat of the application. Asks to
    /// type the application name unless --yes. Stop the workers first:
    /// running ones re-create leases for the shards they list.
    Delete(DeleteArgs),
}

impl AppCommand {
    /// Run it.
    pub async fn run(self) -> Result<(), AdminError> {
        match self {
            AppCommand::Delete(args) => args.run().await,
        }
    }
}

/// `kcl app delete`.
#[derive(Args, Debug)]
pub struct DeleteArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Do not ask.
    #[arg(long)]
    yes: bool,
}

impl DeleteArgs {
    async fn run(self) -> Result<(), AdminError> {
        let application = self.store.application()?;
        let store = self.store.open().await?;
        let leases = store.list_leases().await?;
        let workers = store.list_workers().await?;
        println!(
            "application {application}: {} lease(s), {} worker heartbeat(s)",
            leases.len(),
            workers.len()
        );
        if !self.yes {
            confirm(&application)?;
        }
        for lease in &leases {
            store.delete_lease(&lease.shard_id).await?;
        }
        for worker in &workers {
            store.remove_worker(&worker.worker_id).await?;
        }
        println!(
            "deleted {} lease(s) and {} worker heartbeat(s) of {application}",
            leases.len(),
            workers.len()
        );
        Ok(())
    }
}

/// Ask on stderr for the application name, read it from stdin.
fn confirm(application: &str) -> Result<(), AdminError> {
    let stdin = std::io::stdin();
    let mut stderr = std::io::stderr();
    let _ = write!(
        stderr,
        "type the application name ({application}) to delete all of it{}: ",
        if stdin.is_terminal() {
            ""
        } else {
            " (or pass --yes)"
        }
    );
    let _ = stderr.flush();
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .map_err(|e| AdminError::refused(format!("no confirmation: {e}")))?;
    if answer.trim() == application {
        Ok(())
    } else {
        Err(AdminError::refused("not confirmed: nothing was deleted"))
    }
}
