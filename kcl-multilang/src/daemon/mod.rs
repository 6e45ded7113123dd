//! The daemon side: drive MultiLang child processes from the kcl engine.
//!
//! [`ChildProcessorFactory`] plugs into
//! [`WorkerBuilder::processor`](kcl_core::WorkerBuilder::processor): each
//! leased shard gets a [`ChildProcessor`], which spawns one child process
//! (in its own process group) at `initialize` and speaks the protocol to
//! it. Where this is better than the Java daemon, on purpose:
//!
//! - a child's crash, EOF, broken pipe, wrong `status` or timeout ends
//!   that child only; the call fails, and under the engine's default
//!   retry policy the batch goes to a new child after a backoff (Java
//!   exits the whole daemon). A caller that wants Java's behaviour sets
//!   [`ProcessorErrorPolicy::Stop`](kcl_core::ProcessorErrorPolicy::Stop);
//! - every action has a timeout ([`ChildConfig::action_timeout`], measured
//!   from the child's last message; Java has none, then halts the JVM);
//! - after `shardEnded`/`leaseLost` the wait for the child's exit is
//!   bounded: [`ChildConfig::exit_wait`], then SIGTERM to its group,
//!   [`ChildConfig::term_wait`], then SIGKILL;
//! - stderr is forwarded line by line (tracing target
//!   `kcl_multilang::child_stderr`, field `shard`), a partial last line
//!   at EOF included;
//! - a hand-off or graceful shutdown sends `shutdownRequested` (the child
//!   may checkpoint), then `leaseLost`;
//! - at `shardEnded` a checkpoint at the last delivered record counts as
//!   `SHARD_END`;
//! - the `processRecords` line is written by its own task while the
//!   child's answers are read;
//! - [`ChildConfig::legacy`] speaks to KCL-1-era children: `shutdown` with
//!   `TERMINATE`/`ZOMBIE` and null sub-sequence numbers on plain records.

mod process;
mod processor;

use std::time::Duration;

pub use process::ChildFailure;
pub use processor::{ChildProcessor, ChildProcessorFactory};

/// How children are started and supervised.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ChildConfig {
    /// The program and its arguments (no shell).
    pub command: Vec<String>,
    /// Extra environment variables for the child.
    pub env: Vec<(String, String)>,
    /// Longest wait for any message from the child during an action.
    /// Default 5 minutes (Java: none, which blocks a shard forever).
    pub action_timeout: Duration,
    /// How long a child may take to exit after its stdin is closed before
    /// it gets SIGTERM. Default 10 s (Java: unbounded).
    pub exit_wait: Duration,
    /// How long after SIGTERM before SIGKILL. Default 5 s.
    pub term_wait: Duration,
    /// Speak KCL 1.x (`shutdown` TERMINATE/ZOMBIE). Default false.
    pub legacy: bool,
}

impl ChildConfig {
    /// Run `command` (program first) with the defaults.
    pub fn new(command: Vec<String>) -> Self {
        ChildConfig {
            command,
            env: Vec::new(),
            action_timeout: Duration::from_secs(300),
            exit_wait: Duration::from_secs(10),
            term_wait: Duration::from_secs(5),
            legacy: false,
        }
    }
}
