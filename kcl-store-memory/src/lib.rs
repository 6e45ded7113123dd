#![doc = include_str!("../README.md")]

mod config;
mod error;
mod store;

pub use config::MemoryStoreBuilder;
pub use store::MemoryStore;
