//! The engine's tests on the testkit's fake stream and the memory store, one
//! test binary (one link step) with a module per area. Needs the `testkit`
//! feature (declared as `required-features` in `kcl-core/Cargo.toml`):
//! `cargo test -p kcl-core --features testkit --test engine`.
//!
//! The metrics tests (`engine_metrics`, `engine_metric_series`,
//! `engine_multistream_metrics`) stay binaries of their own: each installs a
//! global metrics recorder.

mod common;

mod balance;
mod basic;
mod bounds;
mod config;
mod endings;
mod failover;
mod fake_stream;
mod lineage;
mod multistream;
mod options;
mod paths;
mod pinned;
mod processor;
mod property;
mod read_path;
mod reshard;
mod scans;
mod single;
mod zombie;
