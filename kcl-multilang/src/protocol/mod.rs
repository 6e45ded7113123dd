//! The wire protocol: messages, the writer (Java's exact bytes) and the
//! lenient reader. It follows the Java daemon's message classes, not their
//! javadoc; `tests/protocol_golden.rs` holds every daemon line byte for byte.

mod lines;
mod message;
mod read;
mod write;

pub use lines::{Line, LineReader};
pub use message::{CheckpointReply, ChildMessage, DaemonMessage, ShutdownReason, WireRecord};
pub use read::{ParseError, parse_child_line, parse_daemon_line};
pub use write::{encode_child, encode_daemon, encode_process_records};

/// The longest line a daemon accepts from a child by default (a child only
/// sends short `status` and `checkpoint` lines).
pub const DEFAULT_MAX_CHILD_LINE: usize = 1 << 20;
