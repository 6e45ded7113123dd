//! Building a [`DynamoStore`].

use std::fmt;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use kcl_core::store_url::{StoreOptions, StoreUrl};
use kcl_core::{ApplicationName, Error, Result};

use crate::store::DynamoStore;
use crate::table::{TableSpec, ensure_table};

/// Default bound on one attempt of a request ([`DynamoStoreBuilder::attempt_timeout`]).
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default bound on a request with all its retries ([`DynamoStoreBuilder::operation_timeout`]).
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// Suffix of the worker-heartbeat table's default name.
pub const HEARTBEAT_TABLE_SUFFIX: &str = "-WorkerHeartbeats";

/// The settings [`DynamoStoreBuilder::from_map`] knows.
const KNOWN: [&str; 11] = [
    "url",
    "java_failover_time",
    "table",
    "application",
    "region",
    "endpoint",
    "heartbeat_table",
    "create_tables",
    "table_active_timeout",
    "attempt_timeout",
    "operation_timeout",
];

/// How a table the store creates is billed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TableCapacity {
    /// On-demand (`PAY_PER_REQUEST`), as Java KCL 2.x and later create
    /// lease tables. The default.
    #[default]
    OnDemand,
    /// Provisioned capacity.
    Provisioned {
        /// Read capacity units.
        read_capacity_units: i64,
        /// Write capacity units.
        write_capacity_units: i64,
    },
}

/// Builder for [`DynamoStore`].
///
/// Every setting but the application name has a default:
///
/// | setting | default |
/// |---|---|
/// | [`client`](Self::client) | built from aws-config's default chain (env, profile, IMDS…), with [`endpoint_url`](Self::endpoint_url) and [`region`](Self::region) applied |
/// | [`table_name`](Self::table_name) | the application name (Java KCL's convention) |
/// | [`heartbeat_table_name`](Self::heartbeat_table_name) | `<table>-WorkerHeartbeats` |
/// | [`capacity`](Self::capacity) | on-demand |
/// | [`create_tables_if_absent`](Self::create_tables_if_absent) | `true` |
/// | [`table_active_timeout`](Self::table_active_timeout) | 5 minutes |
/// | [`attempt_timeout`](Self::attempt_timeout) | 2 s (or the given client's own) |
/// | [`operation_timeout`](Self::operation_timeout) | 5 s (or the given client's own) |
/// | [`java_failover_time`](Self::java_failover_time) | off (set it on a table shared with Java workers) |
///
/// `Debug` never shows credentials: the client is printed as whether one
/// was given, nothing more.
///
/// Retries: every request goes through the SDK's retry layer (standard
/// mode: exponential backoff with jitter on throttling, 5xx and transient
/// network errors, 3 attempts by default). Configure it on the client you
/// pass in (`aws_sdk_dynamodb::config::Builder::retry_config`).
#[derive(Clone, Default)]
pub struct DynamoStoreBuilder {
    application: Option<String>,
    client: Option<Client>,
    endpoint_url: Option<String>,
    region: Option<String>,
    table_name: Option<String>,
    heartbeat_table_name: Option<String>,
    capacity: TableCapacity,
    create_tables: Option<bool>,
    active_timeout: Option<Duration>,
    attempt_timeout: Option<Duration>,
    operation_timeout: Option<Duration>,
    java_failover_time: Option<Duration>,
}

impl fmt::Debug for DynamoStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamoStoreBuilder")
            .field("application", &self.application)
            .field("client", &self.client.as_ref().map(|_| "<given>"))
            .field("endpoint_url", &self.endpoint_url)
            .field("region", &self.region)
            .field("table_name", &self.table_name)
            .field("heartbeat_table_name", &self.heartbeat_table_name)
            .field("capacity", &self.capacity)
            .field("create_tables", &self.create_tables)
            .field("active_timeout", &self.active_timeout)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("operation_timeout", &self.operation_timeout)
            .field("java_failover_time", &self.java_failover_time)
            .finish()
    }
}

impl DynamoStoreBuilder {
    /// The application namespace. Required; see [`ApplicationName`] for the
    /// rules (they are DynamoDB's table-name rules).
    pub fn application(mut self, name: impl Into<String>) -> Self {
        self.application = Some(name.into());
        self
    }

    /// Use this client (its credentials, region, endpoint and retry
    /// configuration) instead of building one from the default chain.
    /// [`endpoint_url`](Self::endpoint_url) and [`region`](Self::region)
    /// are then ignored.
    pub fn client(mut self, client: Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Endpoint for a client built from the default chain (a local
    /// emulator, say). Default: the SDK's (`AWS_ENDPOINT_URL` or AWS).
    pub fn endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint_url = Some(url.into());
        self
    }

    /// Region for a client built from the default chain. Default: the
    /// chain's (`AWS_REGION`, profile…).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// The lease table. Default: the application name, as Java KCL names
    /// it, so a Java application of the same name shares the table. The
    /// table is the namespace: two stores on one table see the same leases.
    pub fn table_name(mut self, name: impl Into<String>) -> Self {
        self.table_name = Some(name.into());
        self
    }

    /// The worker-heartbeat table. Default: `<table>-WorkerHeartbeats`.
    /// Heartbeats never go into the lease table, where Java workers would
    /// take them for leases.
    pub fn heartbeat_table_name(mut self, name: impl Into<String>) -> Self {
        self.heartbeat_table_name = Some(name.into());
        self
    }

    /// Billing of tables the store creates. Default: on-demand.
    pub fn capacity(mut self, capacity: TableCapacity) -> Self {
        self.capacity = capacity;
        self
    }

    /// Create missing tables at build time (default `true`). When `false`,
    /// a missing table is [`Error::NotInitialized`].
    pub fn create_tables_if_absent(mut self, create: bool) -> Self {
        self.create_tables = Some(create);
        self
    }

    /// Bound on one attempt of a request (the SDK retries a timed-out
    /// attempt within the operation timeout). Default 2 s, or the given
    /// [`client`](Self::client)'s own if it has one: a renew must be
    /// able to fail and retry well inside a third of the lease duration.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = Some(timeout);
        self
    }

    /// Bound on a request with all its retries; past it the call fails
    /// with the retryable [`Error::Unavailable`], never hangs. Default 5 s,
    /// or the given [`client`](Self::client)'s own if it has one.
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = Some(timeout);
        self
    }

    /// Turn on the mixed-fleet guard: the largest `failoverTimeMillis` of
    /// any Java KCL worker sharing the table
    /// ([`DEFAULT_JAVA_FAILOVER_TIME`](crate::DEFAULT_JAVA_FAILOVER_TIME),
    /// 10 s, if they keep Java's default). A lease whose owner has never
    /// written a heartbeat to this application's heartbeat table (a Java
    /// worker: every Rust worker heartbeats, no Java worker can) is taken
    /// only once this store has seen its counter stand still for this
    /// long, whatever the engine's lease duration: Rust workers with a
    /// short lease duration never take a live Java worker's leases, and
    /// take a crashed one's on Java's own schedule. The first refusal per
    /// Java owner logs a warning naming the rule. Must not be zero. Off by
    /// default (any taker may take from an unchanged snapshot, as the
    /// store contract says); then the first take of a lease whose owner
    /// has no heartbeat logs a warning naming this setting.
    pub fn java_failover_time(mut self, time: Duration) -> Self {
        self.java_failover_time = Some(time);
        self
    }

    /// How long to wait for a table to become ACTIVE. Default: 5 minutes.
    pub fn table_active_timeout(mut self, timeout: Duration) -> Self {
        self.active_timeout = Some(timeout);
        self
    }

    /// A builder from one URL:
    /// `dynamodb://TABLE?region=us-east-1&endpoint=http://127.0.0.1:4566&application=APP&heartbeat_table=NAME&create_tables=true&table_active_timeout=5m`.
    ///
    /// `TABLE` is the lease table; the application defaults to it (Java
    /// KCL names the table after the application) and the table to the
    /// application, so `dynamodb://?application=orders` works too. Every
    /// option is optional; `endpoint` (percent-encoded or not, as long as
    /// it has no `&`) is for a local emulator, and credentials always come
    /// from aws-config's default chain, never from the URL. An unknown
    /// option is an [`Error::Config`].
    ///
    /// ```
    /// use kcl_store_dynamo::DynamoStoreBuilder;
    /// let builder = DynamoStoreBuilder::from_url(
    ///     "dynamodb://orders-consumer?region=eu-west-1&endpoint=http%3A%2F%2F127.0.0.1%3A4566",
    /// )?;
    /// # Ok::<(), kcl_core::Error>(())
    /// ```
    pub fn from_url(url: &str) -> Result<Self> {
        Self::from_map([("url", url)])
    }

    /// A builder from key/value settings: `url` (a `dynamodb://` URL, whose
    /// table and options are read as below), `table`, `application`,
    /// `region`, `endpoint`, `heartbeat_table`, `create_tables`,
    /// `table_active_timeout`, `attempt_timeout`, `operation_timeout` and
    /// `java_failover_time`. See [`from_url`](Self::from_url). Unknown
    /// keys are an [`Error::Config`].
    pub fn from_map<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Result<Self>
    where
        K: Into<String>,
        V: Into<String>,
    {
        let mut options = StoreOptions::new("DynamoDB store", pairs);
        if let Some(url) = options.take("url") {
            let mut url = StoreUrl::parse(&url)?;
            if url.scheme() != "dynamodb" || !url.path().is_empty() {
                return Err(Error::Config(format!(
                    "{} is not a dynamodb://TABLE?options URL",
                    url.redacted()
                )));
            }
            let table = url.host()?;
            if !table.is_empty() {
                options.insert("table", table);
            }
            url.drain_into(&mut options);
        }
        let mut builder = DynamoStoreBuilder::default();
        builder.table_name = options.take("table");
        builder.application = options.take("application").or(builder.table_name.clone());
        builder.region = options.take("region");
        builder.endpoint_url = options.take("endpoint");
        builder.heartbeat_table_name = options.take("heartbeat_table");
        builder.create_tables = options.take_bool("create_tables")?;
        builder.active_timeout = options.take_duration("table_active_timeout")?;
        builder.attempt_timeout = options.take_duration("attempt_timeout")?;
        builder.operation_timeout = options.take_duration("operation_timeout")?;
        builder.java_failover_time = options.take_duration("java_failover_time")?;
        options.finish(&KNOWN)?;
        Ok(builder)
    }

    /// Validate the settings, make sure both tables exist with the right
    /// key schema and are ACTIVE (creating them if allowed), and build the
    /// store.
    ///
    /// Fails with [`Error::Config`] on bad settings or a table whose key
    /// schema is not a single string hash key, and with
    /// [`Error::NotInitialized`] on a missing table when creation is off.
    pub async fn build(self) -> Result<DynamoStore> {
        let application = ApplicationName::new(
            self.application
                .ok_or_else(|| Error::Config("DynamoStore needs an application name".into()))?,
        )?;
        let table = table_name(
            "table name",
            self.table_name
                .unwrap_or_else(|| application.as_str().to_string()),
        )?;
        let heartbeat_table = table_name(
            "heartbeat table name",
            self.heartbeat_table_name
                .unwrap_or_else(|| format!("{table}{HEARTBEAT_TABLE_SUFFIX}")),
        )?;
        if heartbeat_table == table {
            return Err(Error::Config(
                "the heartbeat table must not be the lease table (Java workers would read heartbeats as leases)"
                    .into(),
            ));
        }
        if let TableCapacity::Provisioned {
            read_capacity_units,
            write_capacity_units,
        } = self.capacity
            && (read_capacity_units < 1 || write_capacity_units < 1)
        {
            return Err(Error::Config(format!(
                "provisioned capacity must be at least 1 read and 1 write unit, got {read_capacity_units} / {write_capacity_units}"
            )));
        }
        for (name, timeout) in [
            ("attempt_timeout", self.attempt_timeout),
            ("operation_timeout", self.operation_timeout),
        ] {
            if timeout.is_some_and(|t| t.is_zero()) {
                return Err(Error::Config(format!(
                    "DynamoStore {name} must not be zero"
                )));
            }
        }
        let client = match self.client {
            Some(client) => client,
            None => default_client(self.endpoint_url, self.region).await,
        };
        let client = with_timeouts(client, self.attempt_timeout, self.operation_timeout);
        let java_failover_time = self.java_failover_time;
        if java_failover_time.is_some_and(|t| t.is_zero()) {
            return Err(Error::Config(
                "DynamoStore java_failover_time must not be zero".into(),
            ));
        }
        let create_if_absent = self.create_tables.unwrap_or(true);
        let active_timeout = self.active_timeout.unwrap_or(Duration::from_secs(300));
        for (name, hash_key) in [
            (&table, crate::item::LEASE_KEY),
            (&heartbeat_table, crate::store::WORKER_ID),
        ] {
            ensure_table(
                &client,
                &TableSpec {
                    name,
                    hash_key,
                    capacity: &self.capacity,
                    create_if_absent,
                    active_timeout,
                },
            )
            .await?;
        }
        Ok(DynamoStore::from_parts(
            client,
            application,
            table,
            heartbeat_table,
            java_failover_time,
        ))
    }
}

/// `client` with a per-attempt and a per-operation timeout: the ones asked
/// for, else the client's own, else the defaults.
fn with_timeouts(client: Client, attempt: Option<Duration>, operation: Option<Duration>) -> Client {
    let own = client.config().timeout_config().cloned();
    let attempt = attempt
        .or_else(|| own.as_ref().and_then(|t| t.operation_attempt_timeout()))
        .unwrap_or(DEFAULT_ATTEMPT_TIMEOUT);
    let operation = operation
        .or_else(|| own.as_ref().and_then(|t| t.operation_timeout()))
        .unwrap_or(DEFAULT_OPERATION_TIMEOUT);
    let mut timeouts = TimeoutConfig::builder()
        .operation_attempt_timeout(attempt)
        .operation_timeout(operation);
    if let Some(connect) = own.as_ref().and_then(|t| t.connect_timeout()) {
        timeouts = timeouts.connect_timeout(connect);
    }
    if let Some(read) = own.as_ref().and_then(|t| t.read_timeout()) {
        timeouts = timeouts.read_timeout(read);
    }
    let config = client
        .config()
        .to_builder()
        .timeout_config(timeouts.build())
        .build();
    Client::from_conf(config)
}

/// DynamoDB's table-name rules are the application name's.
fn table_name(what: &str, name: String) -> Result<String> {
    ApplicationName::new(&name)
        .map(|n| n.as_str().to_string())
        .map_err(|e| Error::Config(format!("{what} {name:?}: {e}")))
}

async fn default_client(endpoint_url: Option<String>, region: Option<String>) -> Client {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if let Some(region) = region {
        loader = loader.region(aws_config::Region::new(region));
    }
    Client::new(&loader.load().await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_url_reads_table_and_options() {
        let b = DynamoStoreBuilder::from_url(
            "dynamodb://Orders-1?region=eu-west-1&endpoint=http%3A%2F%2F127.0.0.1%3A4566&heartbeat_table=hb&create_tables=false&table_active_timeout=30s",
        )
        .unwrap();
        assert_eq!(b.table_name.as_deref(), Some("Orders-1"));
        assert_eq!(b.application.as_deref(), Some("Orders-1"));
        assert_eq!(b.region.as_deref(), Some("eu-west-1"));
        assert_eq!(b.endpoint_url.as_deref(), Some("http://127.0.0.1:4566"));
        assert_eq!(b.heartbeat_table_name.as_deref(), Some("hb"));
        assert_eq!(b.create_tables, Some(false));
        assert_eq!(b.active_timeout, Some(Duration::from_secs(30)));
        let b = DynamoStoreBuilder::from_url("dynamodb://?application=app").unwrap();
        assert_eq!(b.table_name, None);
        assert_eq!(b.application.as_deref(), Some("app"));
        let b = DynamoStoreBuilder::from_map([("table", "t"), ("application", "a")]).unwrap();
        assert_eq!(b.table_name.as_deref(), Some("t"));
        assert_eq!(b.application.as_deref(), Some("a"));
        for bad in [
            "redis://t",
            "dynamodb://t/path",
            "dynamodb://t?regoin=x",
            "dynamodb://t?create_tables=perhaps",
        ] {
            assert!(
                matches!(DynamoStoreBuilder::from_url(bad), Err(Error::Config(_))),
                "{bad}"
            );
        }
    }
}
