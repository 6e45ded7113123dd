//! `kcl`: the kcl command line. `kcl multilang --properties-file F` (or
//! `kcl multilang F`) runs a MultiLang processor on the kcl engine, no JVM;
//! the admin subcommands (`kcl leases`, `kcl workers`, `kcl checkpoint
//! reset`, `kcl app delete`, `kcl fanout deregister`, `kcl watch`) live
//! in [`kcl_cli::admin`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kcl_cli::admin::{AdminCommand, EXIT_CODES_HELP, Exit};
use kcl_cli::metrics_export::MetricsArgs;
use kcl_cli::multilang::{self, Options};
use kcl_cli::properties::MultiLangProperties;
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
#[command(
    name = "kcl",
    version,
    about = "Kinesis Client Library tools",
    after_help = EXIT_CODES_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a MultiLang processor (Python, Node, Go, Ruby, Rust...) from the
    /// Java MultiLangDaemon's .properties file, one child per leased shard.
    Multilang {
        /// The .properties file (the Java daemon's format and keys).
        #[arg(long = "properties-file", short = 'p', value_name = "FILE")]
        properties_file: Option<PathBuf>,
        /// The .properties file, positional form.
        #[arg(value_name = "FILE", conflicts_with = "properties_file")]
        file: Option<PathBuf>,
        /// Exit with status 1 when any child fails, as the Java daemon does
        /// (default: restart only that shard's child).
        #[arg(long)]
        java_compatible_exit: bool,
        /// Speak the KCL 1.x protocol (`shutdown` TERMINATE/ZOMBIE) for
        /// KCL-1-era children (kclpy <= 1.5, gokinesis-style Go clients).
        #[arg(long)]
        legacy_protocol: bool,
        #[command(flatten)]
        metrics: MetricsArgs,
    },
    #[command(flatten)]
    Admin(AdminCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The daemon logs its progress; an admin command prints its answer and
    // logs only errors (RUST_LOG overrides both).
    let default_filter = match cli.command {
        Command::Multilang { .. } => "info",
        Command::Admin(_) => "error",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .init();
    let (properties_file, file, java_compatible_exit, legacy_protocol, metrics) = match cli.command
    {
        Command::Multilang {
            properties_file,
            file,
            java_compatible_exit,
            legacy_protocol,
            metrics,
        } => (
            properties_file,
            file,
            java_compatible_exit,
            legacy_protocol,
            metrics,
        ),
        Command::Admin(admin) => return run_admin(admin),
    };
    let Some(path) = properties_file.or(file) else {
        eprintln!("kcl multilang: give the properties file (--properties-file FILE or FILE)");
        return ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("kcl multilang: cannot read {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    let props = match MultiLangProperties::parse(&text) {
        Ok(props) => props,
        Err(e) => {
            eprintln!("kcl multilang: {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    let mut options = Options::new();
    options.java_compatible_exit = java_compatible_exit;
    options.legacy_protocol = legacy_protocol;
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kcl multilang: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let exporters = match metrics.install(props.region.as_deref()).await {
            Ok(exporters) => exporters,
            Err(e) => {
                eprintln!("kcl multilang: {e}");
                return ExitCode::from(2);
            }
        };
        let cancel = CancellationToken::new();
        let signals = cancel.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                tracing::error!("cannot listen for SIGTERM/SIGINT");
                return;
            };
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: shutting down gracefully"),
                _ = int.recv() => tracing::info!("SIGINT: shutting down gracefully"),
            }
            signals.cancel();
        });
        let result = multilang::run(props, options, cancel).await;
        exporters.flush().await;
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "kcl multilang failed");
                eprintln!("kcl multilang: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// An admin subcommand: one line on stderr and a documented exit code on
/// failure, never a panic's trace.
fn run_admin(command: AdminCommand) -> ExitCode {
    let name = command.name();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kcl {name}: {e}");
            return Exit::Failed.into();
        }
    };
    match runtime.block_on(command.run()) {
        Ok(()) => Exit::Ok.into(),
        Err(e) => {
            eprintln!("kcl {name}: {e}");
            e.exit.into()
        }
    }
}
