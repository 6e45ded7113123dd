//! [`KinesisSourceBuilder`]: which stream, which client, how to pace.

use std::fmt;
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::config::retry::RetryConfig;
use aws_sdk_kinesis::config::{ProvideCredentials, Region, SharedCredentialsProvider};

use super::source::KinesisSource;
use crate::error::{Error, Result};

/// The largest `Limit` `GetRecords` accepts, and the default.
pub const MAX_RECORDS_LIMIT: i32 = 10_000;

/// How a polling reader paces `GetRecords` and retries failures.
///
/// Kinesis allows 5 `GetRecords` calls per second per shard, shared by
/// every consumer of the shard. A reader therefore never calls more often
/// than once per [`min_call_interval`](Self::min_call_interval) (default
/// 200 ms). While the shard has a backlog — the last batch held records,
/// or `MillisBehindLatest` was above zero — it calls again as soon as that
/// interval allows, so a backlog drains at the full allowed rate. When it
/// is caught up (an empty batch with nothing behind), it waits
/// [`idle_time`](Self::idle_time) (default 1 s) before the next call.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PollingSettings {
    /// `Limit` of each `GetRecords` call, 1 to 10,000. Default 10,000.
    pub max_records: i32,
    /// Least time between two `GetRecords` calls on one shard. Default
    /// 200 ms (5 calls/s). Zero is allowed for emulators and benchmarks.
    pub min_call_interval: Duration,
    /// Wait before the next call once the shard is caught up. Default 1 s.
    pub idle_time: Duration,
    /// First backoff delay after a throttle or transient failure; later
    /// delays double, with full jitter. Default 100 ms.
    pub retry_min_delay: Duration,
    /// Cap on one backoff delay. Default 5 s.
    pub retry_max_delay: Duration,
    /// Retries of one call before the reader gives up and returns the
    /// error. Default 10 (about 20 s of backoff at the defaults).
    pub max_retries: usize,
    /// `MaxResults` of each `ListShards` page, 1 to 10,000. Default 1,000.
    pub list_shards_page_size: i32,
}

impl Default for PollingSettings {
    fn default() -> Self {
        PollingSettings {
            max_records: MAX_RECORDS_LIMIT,
            min_call_interval: Duration::from_millis(200),
            idle_time: Duration::from_secs(1),
            retry_min_delay: Duration::from_millis(100),
            retry_max_delay: Duration::from_secs(5),
            max_retries: 10,
            list_shards_page_size: 1_000,
        }
    }
}

impl PollingSettings {
    pub(crate) fn validate(&self) -> Result<()> {
        if !(1..=MAX_RECORDS_LIMIT).contains(&self.max_records) {
            return Err(Error::Config(format!(
                "max_records {} is outside 1..={MAX_RECORDS_LIMIT}",
                self.max_records
            )));
        }
        if !(1..=10_000).contains(&self.list_shards_page_size) {
            return Err(Error::Config(format!(
                "list_shards_page_size {} is outside 1..=10000",
                self.list_shards_page_size
            )));
        }
        if self.retry_min_delay > self.retry_max_delay {
            return Err(Error::Config(format!(
                "retry_min_delay {:?} is longer than retry_max_delay {:?}",
                self.retry_min_delay, self.retry_max_delay
            )));
        }
        if self.idle_time < self.min_call_interval {
            return Err(Error::Config(format!(
                "idle_time {:?} is shorter than min_call_interval {:?}",
                self.idle_time, self.min_call_interval
            )));
        }
        Ok(())
    }
}

/// A stream named by name or by ARN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum StreamRef {
    Name(String),
    Arn(String),
}

impl fmt::Display for StreamRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamRef::Name(n) | StreamRef::Arn(n) => f.write_str(n),
        }
    }
}

/// Builds a [`KinesisSource`].
///
/// The client is, in order of preference: the one given to
/// [`client`](Self::client) (used as is); or one built from the
/// [`sdk_config`](Self::sdk_config) given, else from aws-config's
/// standard chain (environment, profile, SSO, container and instance
/// credentials; `AWS_REGION`; `AWS_ENDPOINT_URL`), with
/// [`endpoint_url`](Self::endpoint_url), [`region`](Self::region) and
/// [`credentials_provider`](Self::credentials_provider) overriding it, and
/// the SDK's own retries turned off because the reader backs off itself.
///
/// So each stream of a multi-stream application (see [`crate::stream`])
/// can have its own account, region, credentials and endpoint, while its
/// leases live in the application's one store:
///
/// ```no_run
/// use std::sync::Arc;
/// use kcl_core::retrieval::kinesis::KinesisSource;
/// use kcl_core::stream::{StreamConfig, StreamTracker};
/// # async fn demo() -> kcl_core::Result<()> {
/// // A stream of another account, by ARN, with that account's role.
/// let theirs = aws_config::from_env().region("eu-west-1").profile_name("partner").load().await;
/// let source = KinesisSource::builder()
///     .stream("arn:aws:kinesis:eu-west-1:210987654321:stream/partner-orders")
///     .sdk_config(&theirs)
///     .build()
///     .await?;
/// // account:name:creationEpoch, from DescribeStreamSummary.
/// let id = source.stream_identifier().await?;
/// let tracker = StreamTracker::fixed([StreamConfig::new(id, Arc::new(source))]);
/// # let _ = tracker; Ok(()) }
/// ```
///
/// ```no_run
/// use kcl_core::retrieval::kinesis::KinesisSource;
/// # async fn demo() -> kcl_core::Result<()> {
/// let source = KinesisSource::builder()
///     .stream("orders")
///     .endpoint_url("http://127.0.0.1:4567")
///     .region("us-east-1")
///     .max_records(1_000)
///     .build()
///     .await?;
/// # let _ = source; Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct KinesisSourceBuilder {
    stream: Option<StreamRef>,
    client: Option<Client>,
    endpoint_url: Option<String>,
    region: Option<String>,
    sdk_config: Option<SdkConfig>,
    credentials: Option<SharedCredentialsProvider>,
    settings: PollingSettings,
}

impl fmt::Debug for KinesisSourceBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KinesisSourceBuilder")
            .field("stream", &self.stream)
            .field("client", &self.client.as_ref().map(|_| "<given>"))
            .field("endpoint_url", &self.endpoint_url)
            .field("region", &self.region)
            .field("sdk_config", &self.sdk_config.as_ref().map(|_| "<given>"))
            .field("credentials", &self.credentials.as_ref().map(|_| "<given>"))
            .field("settings", &self.settings)
            .finish()
    }
}

impl KinesisSourceBuilder {
    /// The stream, by name or (if it starts with `arn:`) by ARN. Required.
    pub fn stream(mut self, name_or_arn: impl Into<String>) -> Self {
        let s = name_or_arn.into();
        self.stream = Some(if s.starts_with("arn:") {
            StreamRef::Arn(s)
        } else {
            StreamRef::Name(s)
        });
        self
    }

    /// Use this client as is (its endpoint, region, credentials, retries).
    pub fn client(mut self, client: Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Override the endpoint (for emulators). Ignored with [`client`](Self::client).
    pub fn endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint_url = Some(url.into());
        self
    }

    /// Override the region. Ignored with [`client`](Self::client).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Build the client from this configuration (its region, credentials,
    /// endpoint, timeouts) instead of aws-config's default chain; the
    /// overrides of this builder still apply. Ignored with
    /// [`client`](Self::client).
    pub fn sdk_config(mut self, config: &SdkConfig) -> Self {
        self.sdk_config = Some(config.clone());
        self
    }

    /// Sign with these credentials (for example an assumed role of the
    /// account that owns the stream). Ignored with [`client`](Self::client).
    pub fn credentials_provider(mut self, provider: impl ProvideCredentials + 'static) -> Self {
        self.credentials = Some(SharedCredentialsProvider::new(provider));
        self
    }

    /// `Limit` of each `GetRecords` call, 1 to 10,000 (default 10,000).
    pub fn max_records(mut self, max_records: i32) -> Self {
        self.settings.max_records = max_records;
        self
    }

    /// Least time between two `GetRecords` calls on one shard (default 200 ms).
    pub fn min_call_interval(mut self, interval: Duration) -> Self {
        self.settings.min_call_interval = interval;
        self
    }

    /// Wait before polling a caught-up shard again (default 1 s).
    pub fn idle_time(mut self, idle: Duration) -> Self {
        self.settings.idle_time = idle;
        self
    }

    /// Backoff bounds for throttles and transient failures (default 100 ms to 5 s).
    pub fn retry_delays(mut self, min: Duration, max: Duration) -> Self {
        self.settings.retry_min_delay = min;
        self.settings.retry_max_delay = max;
        self
    }

    /// Retries of one call before giving up (default 10).
    pub fn max_retries(mut self, retries: usize) -> Self {
        self.settings.max_retries = retries;
        self
    }

    /// `MaxResults` of each `ListShards` page (default 1,000).
    pub fn list_shards_page_size(mut self, size: i32) -> Self {
        self.settings.list_shards_page_size = size;
        self
    }

    /// All pacing and retry settings at once.
    pub fn settings(mut self, settings: PollingSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Validate the settings and build the source (loading aws-config's
    /// chain when no client was given).
    pub async fn build(self) -> Result<KinesisSource> {
        let stream = self
            .stream
            .ok_or_else(|| Error::Config("a stream name or ARN is required".into()))?;
        if stream.to_string().is_empty() {
            return Err(Error::Config("the stream name must not be empty".into()));
        }
        if let StreamRef::Arn(arn) = &stream {
            crate::stream::StreamArn::parse(arn)?;
        }
        self.settings.validate()?;
        let client = match self.client {
            Some(client) => client,
            None => {
                let sdk_config = match self.sdk_config {
                    Some(config) => config,
                    None => aws_config::defaults(BehaviorVersion::latest()).load().await,
                };
                let mut conf = aws_sdk_kinesis::config::Builder::from(&sdk_config)
                    .retry_config(RetryConfig::disabled());
                if let Some(url) = &self.endpoint_url {
                    conf = conf.endpoint_url(url);
                }
                if let Some(region) = self.region {
                    conf = conf.region(Region::new(region));
                }
                if let Some(credentials) = self.credentials {
                    conf = conf.credentials_provider(credentials);
                }
                Client::from_conf(conf.build())
            }
        };
        Ok(KinesisSource::new(client, stream, self.settings))
    }
}
