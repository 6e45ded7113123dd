#![doc = include_str!("../README.md")]

pub mod child;
pub mod daemon;
mod error;
pub mod protocol;

pub use error::CheckpointError;
