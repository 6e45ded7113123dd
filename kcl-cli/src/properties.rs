//! The Java MultiLang daemon's `.properties` file, read into
//! [`MultiLangProperties`].
//!
//! The file format is Java's `java.util.Properties`: `key = value`,
//! `key: value` or `key value`; `#` and `!` comments; a trailing `\`
//! continues a line; `\t \n \r \f \uXXXX` escapes. Keys are
//! case-sensitive. Unknown keys are warned about (Java ignores them
//! silently); booleans are read as written (Java cannot set a `true`-by-
//! default boolean to `false`; we can).
//!
//! Every key, its default here and Java's:
//!
//! | key | here | Java 3.x |
//! |---|---|---|
//! | `executableName` | required | required |
//! | `applicationName` | required | required |
//! | `streamName` / `streamArn` | one required | one required |
//! | `AwsCredentialsProvider` | `DefaultCredentialsProvider` | required |
//! | `regionName` | from the environment / profile | same |
//! | `kinesisEndpoint`, `dynamoDBEndpoint` | none | none |
//! | `workerId` | host name + random suffix | random UUID |
//! | `tableName` | `applicationName` | `applicationName` |
//! | `initialPositionInStream` | `LATEST` | `LATEST` |
//! | `initialPositionInStreamExtended` | none (epoch seconds → `AT_TIMESTAMP`) | same |
//! | `failoverTimeMillis` | 10000 (lease duration) | 10000 |
//! | `shardSyncIntervalMillis` | 60000 | 60000 |
//! | `maxRecords` | 10000 | 10000 |
//! | `idleTimeBetweenReadsInMillis` | 1500, at least 200 | 1500, min 200 |
//! | `callProcessRecordsEvenForEmptyRecordList` | false; `true` sends `processRecords` with no records for reads that returned none | false |
//! | `parentShardPollIntervalMillis` | 500 (the engine's) | 10000 |
//! | `cleanupLeasesUponShardCompletion` | true (accepted; ended shards' leases stay until the store's cleanup) | true |
//! | `maxLeasesForWorker` | unlimited; a positive number caps the leases this worker takes (balancing included) | unlimited |
//! | `retrievalMode` | `FANOUT` unless a polling key is set, as Java (see [`Retrieval`]) | same |
//! | `fanoutConfig.consumerName` | `applicationName` | `applicationName` |
//! | `fanoutConfig.consumerArn` | none (register or reuse the named consumer) | same |
//! | `retryGetRecordsInSeconds`, `maxGetRecordsThreadPool` | only choose polling (above) | polling settings |
//! | `shutdownGraceMillis` | 10000 | 0 (graceful shutdown times out at once) |
//! | `timeoutInSeconds` | 300 per action, from the child's last message | none (then halts the JVM) |
//! | `metricsLevel`, `maxActiveThreads`, ... | accepted, no effect | |
//! | `leaseStoreUrl` (ours) | none: DynamoDB as Java | — |
//! | `childExitWaitMillis` (ours) | 10000, then SIGTERM, 5 s, SIGKILL | unbounded |

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use kcl_core::InitialPosition;

/// A problem with the properties, found before anything starts.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PropertiesError(pub String);

fn err(msg: impl Into<String>) -> PropertiesError {
    PropertiesError(msg.into())
}

/// Keys this daemon uses.
const USED: &[&str] = &[
    "executableName",
    "applicationName",
    "streamName",
    "streamArn",
    "AwsCredentialsProvider",
    "AwsCredentialsProviderDynamoDB",
    "regionName",
    "kinesisEndpoint",
    "dynamoDBEndpoint",
    "workerId",
    "tableName",
    "initialPositionInStream",
    "initialPositionInStreamExtended",
    "failoverTimeMillis",
    "shardSyncIntervalMillis",
    "maxRecords",
    "idleTimeBetweenReadsInMillis",
    "callProcessRecordsEvenForEmptyRecordList",
    "parentShardPollIntervalMillis",
    "cleanupLeasesUponShardCompletion",
    "maxLeasesForWorker",
    "retrievalMode",
    "fanoutConfig.consumerName",
    "fanoutConfig.consumerArn",
    "retryGetRecordsInSeconds",
    "maxGetRecordsThreadPool",
    "shutdownGraceMillis",
    "timeoutInSeconds",
    "leaseStoreUrl",
    "childExitWaitMillis",
];

/// Java keys accepted without effect here (told once at start).
const NO_EFFECT: &[&str] = &[
    "AwsCredentialsProviderCloudWatch",
    "cloudWatchEndpoint",
    "metricsLevel",
    "metricsEnabledDimensions",
    "metricsBufferTimeMillis",
    "metricsMaxQueueSize",
    "maxActiveThreads",
    "validateSequenceNumberBeforeCheckpointing",
    "taskBackoffTimeMillis",
    "listShardsBackoffTimeInMillis",
    "maxListShardsRetryAttempts",
    "ignoreUnexpectedChildShards",
    "skipShardSyncAtWorkerInitializationIfLeasesExist",
    "userAgent",
    "maxLeasesToStealAtOneTime",
    "maxLeaseRenewalThreads",
    "billingMode",
    "logWarningForTaskAfterMillis",
    "processingLanguage",
];

/// How records are read: `retrievalMode`.
///
/// Java 3.x's rule when `retrievalMode` is absent (or `DEFAULT`):
/// enhanced fan-out, unless one of its polling keys is set
/// (`maxRecords`, `idleTimeBetweenReadsInMillis`,
/// `retryGetRecordsInSeconds`, `maxGetRecordsThreadPool`), then polling.
/// That is `RetrievalMode.decideForDefault` / `PollingConfigBean
/// .anyPropertiesSet` in amazon-kinesis-client-multilang; we follow it so
/// a properties file reads the same way under both daemons.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Retrieval {
    /// `GetRecords` every `idleTimeBetweenReadsInMillis`.
    Polling,
    /// `SubscribeToShard` through a registered stream consumer.
    FanOut {
        /// `fanoutConfig.consumerName` (default: `applicationName`).
        consumer_name: Option<String>,
        /// `fanoutConfig.consumerArn`: use this consumer, register none.
        consumer_arn: Option<String>,
    },
}

/// Keys whose presence makes Java's default retrieval polling.
const POLLING_KEYS: &[&str] = &[
    "maxRecords",
    "idleTimeBetweenReadsInMillis",
    "retryGetRecordsInSeconds",
    "maxGetRecordsThreadPool",
];

/// The settings of one `kcl multilang` run. Its `Debug` hides the
/// password of `leaseStoreUrl`.
#[derive(Clone)]
#[non_exhaustive]
pub struct MultiLangProperties {
    /// `executableName`, split on runs of spaces (no shell).
    pub command: Vec<String>,
    /// `applicationName`.
    pub application_name: String,
    /// `streamArn` if set, else `streamName`.
    pub stream: String,
    /// `AwsCredentialsProvider` (default `DefaultCredentialsProvider`).
    pub credentials: String,
    /// `AwsCredentialsProviderDynamoDB`, if different.
    pub dynamo_credentials: Option<String>,
    /// `regionName`.
    pub region: Option<String>,
    /// `kinesisEndpoint` (`https://` is added to a bare host, as Java).
    pub kinesis_endpoint: Option<String>,
    /// `dynamoDBEndpoint`.
    pub dynamo_endpoint: Option<String>,
    /// `workerId`.
    pub worker_id: Option<String>,
    /// `tableName` (default `applicationName`).
    pub table_name: String,
    /// `initialPositionInStream` / `initialPositionInStreamExtended`.
    pub initial_position: InitialPosition,
    /// `failoverTimeMillis`: the lease duration.
    pub failover_time: Duration,
    /// `shardSyncIntervalMillis`.
    pub shard_sync_interval: Duration,
    /// `maxRecords`.
    pub max_records: usize,
    /// `idleTimeBetweenReadsInMillis`.
    pub idle_time_between_reads: Duration,
    /// `retrievalMode` with `fanoutConfig.*`.
    pub retrieval: Retrieval,
    /// `parentShardPollIntervalMillis` (default: the engine's 500 ms).
    pub parent_shard_poll_interval: Option<Duration>,
    /// `shutdownGraceMillis`.
    pub shutdown_grace: Duration,
    /// `timeoutInSeconds`: the per-action timeout.
    pub action_timeout: Duration,
    /// `childExitWaitMillis` (ours).
    pub child_exit_wait: Duration,
    /// `leaseStoreUrl` (ours).
    pub lease_store_url: Option<String>,
    /// `cleanupLeasesUponShardCompletion` (read as written, even `false`
    /// over the `true` default; the engine keeps ended shards' leases).
    pub cleanup_leases_upon_shard_completion: bool,
    /// `callProcessRecordsEvenForEmptyRecordList`: reads that returned no
    /// records reach the child as `processRecords` with no records.
    pub call_process_records_even_for_empty_record_list: bool,
    /// `maxLeasesForWorker`: the most leases this worker holds (`None`:
    /// no cap, Java's `Integer.MAX_VALUE`).
    pub max_leases_for_worker: Option<usize>,
}

impl std::fmt::Debug for MultiLangProperties {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Every field but the store URL as it is; the URL with its password hidden.
        f.debug_struct("MultiLangProperties")
            .field("command", &self.command)
            .field("application_name", &self.application_name)
            .field("stream", &self.stream)
            .field("credentials", &self.credentials)
            .field("dynamo_credentials", &self.dynamo_credentials)
            .field("region", &self.region)
            .field("kinesis_endpoint", &self.kinesis_endpoint)
            .field("dynamo_endpoint", &self.dynamo_endpoint)
            .field("worker_id", &self.worker_id)
            .field("table_name", &self.table_name)
            .field("initial_position", &self.initial_position)
            .field("failover_time", &self.failover_time)
            .field("shard_sync_interval", &self.shard_sync_interval)
            .field("max_records", &self.max_records)
            .field("idle_time_between_reads", &self.idle_time_between_reads)
            .field("retrieval", &self.retrieval)
            .field(
                "parent_shard_poll_interval",
                &self.parent_shard_poll_interval,
            )
            .field("shutdown_grace", &self.shutdown_grace)
            .field("action_timeout", &self.action_timeout)
            .field("child_exit_wait", &self.child_exit_wait)
            .field(
                "lease_store_url",
                &self
                    .lease_store_url
                    .as_deref()
                    .map(kcl_core::store_url::redact_url),
            )
            .field(
                "cleanup_leases_upon_shard_completion",
                &self.cleanup_leases_upon_shard_completion,
            )
            .field(
                "call_process_records_even_for_empty_record_list",
                &self.call_process_records_even_for_empty_record_list,
            )
            .field("max_leases_for_worker", &self.max_leases_for_worker)
            .finish()
    }
}

impl MultiLangProperties {
    /// Read and check a properties file's text. Warnings (unknown keys,
    /// keys without effect) go to `tracing`.
    pub fn parse(text: &str) -> Result<Self, PropertiesError> {
        let map = parse_properties(text);
        for key in map.keys() {
            if NO_EFFECT.contains(&key.as_str()) {
                tracing::info!(key, "property accepted but has no effect in kcl multilang");
            } else if !USED.contains(&key.as_str()) {
                tracing::warn!(key, "unknown property (ignored; keys are case-sensitive)");
            }
        }
        let get = |k: &str| map.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let required = |k: &str| get(k).ok_or_else(|| err(format!("the property {k} is required")));
        let command: Vec<String> = required("executableName")?
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        let application_name = required("applicationName")?.to_string();
        let stream = get("streamArn")
            .or_else(|| get("streamName"))
            .ok_or_else(|| err("one of the properties streamName or streamArn is required"))?
            .to_string();
        let millis = |k: &str, default: u64| -> Result<Duration, PropertiesError> {
            match get(k) {
                None => Ok(Duration::from_millis(default)),
                Some(v) => v
                    .parse::<u64>()
                    .map(Duration::from_millis)
                    .map_err(|_| err(format!("{k} = {v:?} is not a number of milliseconds"))),
            }
        };
        let boolean = |k: &str, default: bool| -> Result<bool, PropertiesError> {
            match get(k) {
                None => Ok(default),
                Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
                Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
                Some(v) => Err(err(format!("{k} = {v:?} is neither true nor false"))),
            }
        };
        let empty_batches = boolean("callProcessRecordsEvenForEmptyRecordList", false)?;
        let cleanup = boolean("cleanupLeasesUponShardCompletion", true)?;
        let max_leases = match get("maxLeasesForWorker") {
            None => None,
            Some(v) => match v.parse::<u64>() {
                // Java's "no cap" is Integer.MAX_VALUE; anything larger is
                // no cap too.
                Ok(n) if n >= 1 => Some(usize::try_from(n).unwrap_or(usize::MAX)),
                _ => {
                    return Err(err(format!(
                        "maxLeasesForWorker = {v:?} must be a positive number"
                    )));
                }
            },
        };
        let fan_out = || Retrieval::FanOut {
            consumer_name: get("fanoutConfig.consumerName").map(String::from),
            consumer_arn: get("fanoutConfig.consumerArn").map(String::from),
        };
        let retrieval = match get("retrievalMode") {
            Some(m) if m.eq_ignore_ascii_case("POLLING") => Retrieval::Polling,
            Some(m) if m.eq_ignore_ascii_case("FANOUT") => fan_out(),
            None => default_retrieval(&get, fan_out),
            Some(m) if m.eq_ignore_ascii_case("DEFAULT") => default_retrieval(&get, fan_out),
            Some(m) => {
                return Err(err(format!(
                    "retrievalMode = {m:?} must be FANOUT, POLLING or DEFAULT"
                )));
            }
        };
        let idle = millis("idleTimeBetweenReadsInMillis", 1500)?;
        if idle < Duration::from_millis(200) {
            return Err(err(
                "idleTimeBetweenReadsInMillis must be at least 200 (Kinesis allows 5 GetRecords per second per shard)",
            ));
        }
        let max_records = match get("maxRecords") {
            None => 10_000,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=10_000).contains(&n) => n,
                _ => return Err(err(format!("maxRecords = {v:?} must be 1 to 10000"))),
            },
        };
        let action_timeout = match get("timeoutInSeconds") {
            None => Duration::from_secs(300),
            Some(v) => match v.parse::<u64>() {
                Ok(n) if n > 0 => Duration::from_secs(n),
                _ => {
                    return Err(err(format!(
                        "timeoutInSeconds = {v:?} must be a positive number"
                    )));
                }
            },
        };
        Ok(MultiLangProperties {
            command,
            table_name: get("tableName").unwrap_or(&application_name).to_string(),
            application_name,
            stream,
            credentials: get("AwsCredentialsProvider")
                .unwrap_or("DefaultCredentialsProvider")
                .to_string(),
            dynamo_credentials: get("AwsCredentialsProviderDynamoDB").map(String::from),
            region: get("regionName").map(String::from),
            kinesis_endpoint: get("kinesisEndpoint").map(with_scheme),
            dynamo_endpoint: get("dynamoDBEndpoint").map(with_scheme),
            worker_id: get("workerId").map(String::from),
            initial_position: initial_position(
                get("initialPositionInStream"),
                get("initialPositionInStreamExtended"),
            )?,
            failover_time: millis("failoverTimeMillis", 10_000)?,
            shard_sync_interval: millis("shardSyncIntervalMillis", 60_000)?,
            max_records,
            idle_time_between_reads: idle,
            retrieval,
            parent_shard_poll_interval: match get("parentShardPollIntervalMillis") {
                Some(_) => Some(millis("parentShardPollIntervalMillis", 500)?),
                None => None,
            },
            shutdown_grace: millis("shutdownGraceMillis", 10_000)?,
            action_timeout,
            child_exit_wait: millis("childExitWaitMillis", 10_000)?,
            lease_store_url: get("leaseStoreUrl").map(String::from),
            cleanup_leases_upon_shard_completion: cleanup,
            call_process_records_even_for_empty_record_list: empty_batches,
            max_leases_for_worker: max_leases,
        })
    }
}

/// Java's default: fan-out unless a polling key is set.
fn default_retrieval<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
    fan_out: impl FnOnce() -> Retrieval,
) -> Retrieval {
    match POLLING_KEYS.iter().find(|k| get(k).is_some()) {
        Some(key) => {
            tracing::info!(
                key,
                "a polling property is set and retrievalMode is not: polling, as Java (retrievalMode = FANOUT to read by fan-out)"
            );
            Retrieval::Polling
        }
        None => fan_out(),
    }
}

fn with_scheme(endpoint: &str) -> String {
    if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("https://{endpoint}")
    }
}

fn initial_position(
    position: Option<&str>,
    extended: Option<&str>,
) -> Result<InitialPosition, PropertiesError> {
    if let Some(seconds) = extended {
        let secs: u64 = seconds.parse().map_err(|_| {
            err(format!(
                "initialPositionInStreamExtended = {seconds:?} is not epoch seconds"
            ))
        })?;
        return Ok(InitialPosition::AtTimestamp(
            SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
        ));
    }
    match position {
        None => Ok(InitialPosition::Latest),
        Some(p) if p.eq_ignore_ascii_case("LATEST") => Ok(InitialPosition::Latest),
        Some(p) if p.eq_ignore_ascii_case("TRIM_HORIZON") => Ok(InitialPosition::TrimHorizon),
        Some(p) if p.eq_ignore_ascii_case("AT_TIMESTAMP") => Err(err(
            "initialPositionInStream = AT_TIMESTAMP needs initialPositionInStreamExtended (epoch seconds)",
        )),
        Some(p) => Err(err(format!(
            "initialPositionInStream = {p:?} must be LATEST or TRIM_HORIZON"
        ))),
    }
}

/// `java.util.Properties` text to a map (a later key wins, as in Java).
pub fn parse_properties(text: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let mut logical = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let line = line.trim_start_matches([' ', '\t', '\u{c}']);
        if logical.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with('!'))
        {
            continue;
        }
        // An odd number of trailing backslashes continues the line.
        let trailing = line.chars().rev().take_while(|&c| c == '\\').count();
        if trailing % 2 == 1 {
            logical.push_str(&line[..line.len() - 1]);
            if lines.clone().next().is_some() {
                continue;
            }
        } else {
            logical.push_str(line);
        }
        let (key, value) = split_key_value(&logical);
        map.insert(unescape(key), unescape(value));
        logical.clear();
    }
    map
}

fn split_key_value(line: &str) -> (&str, &str) {
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '=' | ':' => {
                return (
                    &line[..i],
                    line[i + 1..].trim_start_matches([' ', '\t', '\u{c}']),
                );
            }
            ' ' | '\t' | '\u{c}' => {
                let rest = line[i..].trim_start_matches([' ', '\t', '\u{c}']);
                let rest = rest
                    .strip_prefix(['=', ':'])
                    .map(|r| r.trim_start_matches([' ', '\t', '\u{c}']))
                    .unwrap_or(rest);
                return (&line[..i], rest);
            }
            _ => {}
        }
    }
    (line, "")
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(ch) => out.push(ch),
                    None => out.push_str(&hex),
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}
