#![doc = include_str!("../README.md")]

pub mod admin;
pub mod credentials;
pub mod metrics_export;
pub mod multilang;
pub mod properties;
pub mod store_url;
