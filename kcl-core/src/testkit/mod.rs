//! Test support for users and backend authors (feature `testkit`).
//!
//! - [`conformance`]: the suite every [`LeaseStore`](crate::LeaseStore) and
//!   [`CheckpointStore`](crate::CheckpointStore) backend must pass against a
//!   real server.
//! - [`server_from_env`]: how server-backed tests find their server, and
//!   skip (or, in CI, fail) without one.

pub mod conformance;
mod servers;

pub use servers::server_from_env;
