//! The KCL MultiLang protocol, both directions.
//!
//! - [`protocol`]: the messages, a writer that produces the Java daemon's
//!   exact bytes and a reader more lenient than Java's.
//! - [`child`]: run a Rust [`ShardProcessor`](kcl_core::ShardProcessor)
//!   under any MultiLang daemon with [`child::run`].
//! - [`daemon`]: the daemon side: a processor that drives one MultiLang
//!   child process per shard on the kcl engine (what `kcl multilang` runs).
//!
//! The wire reference is `MULTILANG.md` (built from the Java message
//! classes, not from the javadoc).

pub mod child;
pub mod daemon;
mod error;
pub mod protocol;

pub use error::CheckpointError;
