//! Retrieval from Amazon Kinesis Data Streams on `aws-sdk-kinesis`
//! (feature `kinesis`, on by default).
//!
//! [`KinesisSource`] implements [`ShardSource`](super::ShardSource) by
//! polling: `ListShards` (paged) to discover shards, `GetShardIterator`
//! (all five iterator types) and `GetRecords` to read them, one
//! [`PollingReader`] per shard. Readers pace themselves within Kinesis'
//! 5 calls/s per shard, back off with jitter on throttling and transient
//! failures, re-seek after an expired iterator, and report the shard's end
//! with its children. Each reader records the `kcl_kinesis_get_records_seconds`
//! histogram (the `GetRecords` call alone, label `shard`) through the
//! `metrics` facade; the engine records `kcl_get_records_seconds` (a read
//! as the prefetch sees it, waits included) and the
//! `kcl_millis_behind_latest` gauge.
//!
//! The endpoint is whatever the client says: aws-config's chain honours
//! `AWS_ENDPOINT_URL`, and the builder's
//! [`endpoint_url`](KinesisSourceBuilder::endpoint_url) overrides it, so
//! the same code runs against AWS and local emulators.
//!
//! Enhanced fan-out (`RegisterStreamConsumer` + `SubscribeToShard`) is
//! [`FanOutSource`], made from a polling source with
//! [`KinesisSource::fan_out`]; see the [`fanout`] module.

mod config;
mod error;
pub mod fanout;
mod reader;
mod source;

pub use config::{KinesisSourceBuilder, MAX_RECORDS_LIMIT, PollingSettings};
pub use fanout::{FanOutReader, FanOutSettings, FanOutSource, FanOutSourceBuilder};
pub use reader::PollingReader;
pub use source::KinesisSource;
