//! The child side: run a [`ShardProcessor`] under any MultiLang daemon
//! (the Java `MultiLangDaemon` of KCL 1.x, 2.x or 3.x, or `kcl multilang`).
//!
//! ```no_run
//! use kcl_core::{BoxError, Checkpointer, ProcessRecordsInput, ShardProcessor};
//!
//! struct Printer;
//!
//! impl ShardProcessor for Printer {
//!     async fn process_records(
//!         &mut self,
//!         input: ProcessRecordsInput,
//!         checkpointer: &mut Checkpointer,
//!     ) -> Result<(), BoxError> {
//!         for record in input.records() {
//!             eprintln!("{} bytes", record.data.len());
//!         }
//!         checkpointer.checkpoint().await?;
//!         Ok(())
//!     }
//! }
//!
//! fn main() -> std::io::Result<()> {
//!     kcl_multilang::child::run(Printer)
//! }
//! ```
//!
//! # How the same processor runs on the engine and as a child
//!
//! The processor gets the engine's own [`Checkpointer`](kcl_core::Checkpointer)
//! (through [`DetachedCheckpointer`](kcl_core::processor::DetachedCheckpointer)),
//! whose store is the daemon: every checkpoint is a `checkpoint` request,
//! answered before the call returns. The range checks are the engine's
//! (`[last checkpoint, largest delivered]`, `SHARD_END` after the shard
//! ended), made locally before the request, and the daemon checks again.
//! A refusal is a [`kcl_core::Error`]: `ShutdownException` is a
//! `Conflict` (lease lost; later checkpoints fail at once),
//! `ThrottlingException` and `KinesisClientLibDependencyException` are
//! retryable (`Throttled`, `Unavailable`: the checkpointer retries them
//! with backoff before giving up), `IllegalArgumentException` is
//! `InvalidCheckpoint`; see [`CheckpointError`](crate::CheckpointError).
//!
//! # Actions
//!
//! - `initialize` → [`ShardProcessor::initialize`] with the checkpoint sent;
//! - `processRecords` → [`ShardProcessor::process_records`]; an error is
//!   retried with backoff on the same batch (nothing is skipped, as on the
//!   engine) until it succeeds or the lease is lost;
//! - `shardEnded`, and the legacy `shutdown` with `TERMINATE` (1.x) or
//!   `SHARD_END` (2.0.x) → [`ShardProcessor::shard_ended`] (the default
//!   checkpoints `SHARD_END`);
//! - `leaseLost`, and `shutdown` with `ZOMBIE` (1.x) or `LEASE_LOST`
//!   (2.0.x) → [`ShardProcessor::lease_lost`]; checkpoints fail from then
//!   on, as the 1.x daemon made them fail on `ZOMBIE`;
//! - `shutdownRequested` → [`ShardProcessor::shutdown_requested`];
//! - any other action is answered with its `status` without calling the
//!   processor, so a newer daemon is not blocked.
//!
//! Exactly one `status` per action, sent after the processor's call
//! returned. End of stdin ends [`run`] with `Ok` (exit status 0). Lines that
//! are not messages are logged and skipped. A panic in the processor is not
//! caught: the child dies without answering, and the daemon re-delivers.

mod channel;
mod session;
mod stdio;

use kcl_core::ShardProcessor;
use tokio::io::{AsyncBufRead, AsyncWrite, BufReader};

pub use stdio::reserve_stdout;

/// Serve the daemon on stdin/stdout until stdin ends, then return `Ok`.
///
/// Stdout is reserved for the protocol first (see [`reserve_stdout`]):
/// anything printed to stdout afterwards goes to stderr. Log to stderr
/// (for example with a `tracing` subscriber writing there).
pub fn run<P: ShardProcessor>(processor: P) -> std::io::Result<()> {
    let out = reserve_stdout()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(
        processor,
        BufReader::with_capacity(1 << 16, tokio::io::stdin()),
        tokio::fs::File::from_std(out),
    ))
}

/// Serve one daemon connection over any reader and writer (what [`run`]
/// does over stdin/stdout; tests drive it over in-memory pipes).
pub async fn serve<P, R, W>(processor: P, input: R, output: W) -> std::io::Result<()>
where
    P: ShardProcessor,
    R: AsyncBufRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    session::serve(processor, input, output).await
}
