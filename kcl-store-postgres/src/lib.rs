#![doc = include_str!("../README.md")]

mod config;
mod error;
mod migrate;
mod row;
mod sql;
mod store;
mod transactional;

pub use config::{
    DEFAULT_LEASE_CONNECTIONS, DEFAULT_LOCK_TIMEOUT, DEFAULT_STATEMENT_TIMEOUT, IDENTIFIER_RULE,
    PostgresStoreBuilder,
};
pub use store::PostgresStore;
