//! The library half of the `kcl` binary: what `kcl multilang` is made of,
//! so tests and other tools can use the same pieces.
//!
//! - [`properties`]: the Java daemon's `.properties` file, every key with
//!   its default beside Java's;
//! - [`credentials`]: `AwsCredentialsProvider` values mapped onto
//!   aws-config;
//! - [`store_url`]: the one function that picks the lease store by URL
//!   scheme (cargo features `dynamodb`, `redis`, `postgres`, `memory`);
//! - [`multilang`]: the daemon itself;
//! - [`admin`]: the admin subcommands (`kcl leases`, `kcl workers`,
//!   `kcl checkpoint reset`, `kcl app delete`, `kcl fanout deregister`);
//! - [`metrics_export`]: the Prometheus endpoint (`--metrics-addr`) and,
//!   with the `cloudwatch` feature, CloudWatch.

pub mod admin;
pub mod credentials;
pub mod metrics_export;
pub mod multilang;
pub mod properties;
pub mod store_url;
