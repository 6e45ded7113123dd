//! Test support for users and backend authors (feature `testkit`).
//!
//! - [`conformance`]: the suite every [`LeaseStore`](crate::LeaseStore) and
//!   [`CheckpointStore`](crate::CheckpointStore) backend must pass against a
//!   real server.
//! - [`FakeStream`]: an in-memory Kinesis stream (splits, merges, iterator
//!   expiry, injected faults) to run the engine and your processors on.
//! - [`engine`]: recording processors, a pausable lease store, and workers
//!   spawned on a fake stream for engine tests.
//! - `kinesis` (feature `testkit-kinesis`): an embedded Kinesis emulator
//!   and the stream chores Kinesis tests repeat.
//! - [`multistream`]: the many-streams scenario every store runs.
//! - [`server_from_env`]: how server-backed tests find their server, and
//!   skip (or, in CI, fail) without one.

pub mod conformance;
pub mod engine;
pub mod fake_stream;
#[cfg(feature = "testkit-kinesis")]
pub mod kinesis;
pub mod multistream;
mod servers;

pub use fake_stream::{FakeRecord, FakeStream, FakeStreamConfig, FakeStreamStats, Fault};
pub use servers::server_from_env;
