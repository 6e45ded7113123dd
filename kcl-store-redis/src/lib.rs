#![doc = include_str!("../README.md")]

mod codec;
mod config;
mod connection;
mod error;
mod keys;
mod scripts;
mod store;

pub use config::{
    DEFAULT_CONNECTION_TIMEOUT, DEFAULT_KEY_PREFIX, DEFAULT_RESPONSE_TIMEOUT, RedisStoreBuilder,
};
pub use store::RedisStore;

/// The redis crate this store is built on, for building a
/// [`ConnectionManager`](redis::aio::ConnectionManager) to pass to
/// [`RedisStoreBuilder::connection`].
pub use redis;
