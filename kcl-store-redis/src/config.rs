//! Building a [`RedisStore`].

use std::time::Duration;

use kcl_core::store_url::{StoreOptions, StoreUrl, redact_url};
use kcl_core::{ApplicationName, Error, Result};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::connection::{Connection, Link};
use crate::error::from_redis;
use crate::store::RedisStore;

/// Default prefix of every key (see [`RedisStoreBuilder::key_prefix`]).
pub const DEFAULT_KEY_PREFIX: &str = "kcl";
/// Default bound on one connection attempt.
pub const DEFAULT_CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);
/// Default bound on waiting for one reply.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How many times the connection manager retries a lost connection before
/// a waiting call fails (it tries again on the next call).
const RECONNECT_RETRIES: usize = 2;
/// The query options the redis crate itself reads (`db`, `user` and `pass`
/// for `redis+unix://`); any other option is refused by `from_url`.
const CLIENT_OPTIONS: [&str; 4] = ["protocol", "db", "user", "pass"];
/// The options [`RedisStoreBuilder::from_url`] reads from a URL's query.
const KNOWN_OPTIONS: [&str; 6] = [
    "application",
    "cluster",
    "prefix",
    "connection_timeout",
    "response_timeout",
    "tls_ca_file",
];

/// Builder for [`RedisStore`]: where the server is, and which application
/// namespace the store acts in.
///
/// ```no_run
/// # async fn demo() -> kcl_core::Result<()> {
/// use kcl_store_redis::RedisStore;
/// let store = RedisStore::builder()
///     .url("redis://:secret@127.0.0.1:6379/0")
///     .application("orders-consumer")
///     .build()
///     .await?;
/// // The password never shows in `Debug`.
/// assert!(!format!("{store:?}").contains("secret"));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStoreBuilder {
    url: Option<String>,
    connection: Option<ConnectionManager>,
    application: Option<String>,
    key_prefix: String,
    connection_timeout: Duration,
    response_timeout: Duration,
    cluster: bool,
    #[cfg(feature = "cluster")]
    cluster_connection: Option<redis::cluster_async::ClusterConnection>,
    #[cfg(feature = "tls")]
    tls_root_certificate: Option<Vec<u8>>,
}

impl Default for RedisStoreBuilder {
    fn default() -> Self {
        RedisStoreBuilder {
            url: None,
            connection: None,
            application: None,
            key_prefix: DEFAULT_KEY_PREFIX.to_string(),
            connection_timeout: DEFAULT_CONNECTION_TIMEOUT,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            cluster: false,
            #[cfg(feature = "cluster")]
            cluster_connection: None,
            #[cfg(feature = "tls")]
            tls_root_certificate: None,
        }
    }
}

impl std::fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut f = f.debug_struct("RedisStoreBuilder");
        #[cfg(feature = "tls")]
        f.field(
            "tls_root_certificate",
            &self.tls_root_certificate.as_ref().map(|_| "<set>"),
        );
        #[cfg(feature = "cluster")]
        f.field(
            "cluster_connection",
            &self
                .cluster_connection
                .as_ref()
                .map(|_| "<ClusterConnection>"),
        );
        f.field("url", &self.url.as_deref().map(redact_url))
            .field(
                "connection",
                &self.connection.as_ref().map(|_| "<ConnectionManager>"),
            )
            .field("application", &self.application)
            .field("key_prefix", &self.key_prefix)
            .field("connection_timeout", &self.connection_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("cluster", &self.cluster)
            .finish()
    }
}

impl RedisStoreBuilder {
    /// The server's URL: `redis://[[user]:password@]host[:port][/db]`,
    /// `rediss://…` for TLS (feature `tls`), or `redis+unix:///path`.
    /// With [`cluster`](Self::cluster), any one node of the cluster (the
    /// client learns the others from it). Either this or a connection
    /// ([`connection`](Self::connection), `cluster_connection`) is required.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// Use a connection you already have (for example one shared with the
    /// rest of your application) instead of a URL. Its own timeouts and
    /// reconnection settings apply; [`connection_timeout`](Self::connection_timeout)
    /// and [`response_timeout`](Self::response_timeout) are then unused.
    pub fn connection(mut self, connection: ConnectionManager) -> Self {
        self.connection = Some(connection);
        self
    }

    /// Talk to a Redis Cluster (feature `cluster`): the URL names one node,
    /// the client discovers the rest, follows `MOVED`/`ASK` redirections
    /// and refreshes its slot map when the cluster fails over. All of one
    /// application's keys share one hash tag, so every script stays in one
    /// slot. Default `false`; without the feature, `true` is an
    /// [`Error::Config`] at [`build`](Self::build) that names it.
    pub fn cluster(mut self, cluster: bool) -> Self {
        self.cluster = cluster;
        self
    }

    /// Use a cluster connection you already have instead of a URL (feature
    /// `cluster`); its own timeouts and retries apply.
    #[cfg(feature = "cluster")]
    pub fn cluster_connection(
        mut self,
        connection: redis::cluster_async::ClusterConnection,
    ) -> Self {
        self.cluster_connection = Some(connection);
        self
    }

    /// The application namespace. Required; see [`ApplicationName`] for
    /// the rules.
    pub fn application(mut self, name: impl Into<String>) -> Self {
        self.application = Some(name.into());
        self
    }

    /// The first part of every key's hash tag, `{<prefix>:<application>}`.
    /// Default `"kcl"`. 1 to 128 printable characters, no braces.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Bound on one connection attempt. Default 5 s.
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// Bound on waiting for one reply; a call that passes it fails with
    /// the retryable [`Error::Unavailable`]. Default 5 s.
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// Trust this CA (PEM) for `rediss://` instead of the platform's root
    /// certificates: for a server whose certificate a private CA signed.
    /// Feature `tls`.
    #[cfg(feature = "tls")]
    pub fn tls_root_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_root_certificate = Some(pem.into());
        self
    }

    /// A builder from one URL: the server's URL (see [`url`](Self::url))
    /// with kcl's settings as query options, which are removed before the
    /// URL reaches the Redis client:
    ///
    /// `redis://[[user]:password@]host[:port][/db]?application=APP&prefix=kcl&connection_timeout=5s&response_timeout=5s`
    /// (also `rediss://` and `redis+unix://`; `tls_ca_file=/path/ca.pem`
    /// with the `tls` feature). A Redis Cluster (feature `cluster`) is
    /// `redis+cluster://host:port` or `rediss+cluster://…` (any one node),
    /// or `cluster=true` on a `redis://`/`rediss://` URL. Every option is optional; set the
    /// application afterwards with [`application`](Self::application) if
    /// the URL does not. Durations are `500ms`, `5s`, `2m` or seconds.
    /// A password must be percent-encoded (`/` as `%2F`, `?` as `%3F`, `#`
    /// as `%23`, `@` as `%40`); an unknown option, another scheme or a
    /// URL that does not parse is an [`Error::Config`] that never shows
    /// the password.
    ///
    /// ```
    /// use kcl_store_redis::RedisStoreBuilder;
    /// let builder = RedisStoreBuilder::from_url(
    ///     "redis://:s%2Fcr%3Ft@127.0.0.1:6379/0?application=orders&prefix=prod",
    /// )?;
    /// assert!(!format!("{builder:?}").contains("s%2Fcr"));
    /// # Ok::<(), kcl_core::Error>(())
    /// ```
    pub fn from_url(url: &str) -> Result<Self> {
        Self::from_map([("url", url)])
    }

    /// A builder from key/value settings: `url` (required, a Redis URL
    /// whose kcl options are read as below), `application`, `prefix`,
    /// `cluster` (`true`/`false`),
    /// `connection_timeout`, `response_timeout`, and `tls_ca_file` (feature
    /// `tls`). See [`from_url`](Self::from_url). Unknown keys are an
    /// [`Error::Config`].
    pub fn from_map<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Result<Self>
    where
        K: Into<String>,
        V: Into<String>,
    {
        let mut options = StoreOptions::new("Redis store", pairs);
        let url = options
            .take("url")
            .ok_or_else(|| Error::Config("a Redis store's settings need a url".into()))?;
        let mut url = StoreUrl::parse(&url)?;
        let cluster_scheme = matches!(url.scheme(), "redis+cluster" | "rediss+cluster");
        if !cluster_scheme && !matches!(url.scheme(), "redis" | "rediss" | "redis+unix" | "unix") {
            return Err(Error::Config(format!(
                "{} is not a redis://, rediss://, redis+cluster://, rediss+cluster:// or redis+unix:// URL",
                url.redacted()
            )));
        }
        for key in KNOWN_OPTIONS {
            if let Some(value) = url.take(key) {
                options.insert(key, value);
            }
        }
        url.refuse_unknown_options(&CLIENT_OPTIONS, &KNOWN_OPTIONS)?;
        let mut client_url = url.client_url();
        if cluster_scheme {
            // The client knows only redis:// and rediss://.
            client_url = client_url.replacen("+cluster", "", 1);
        }
        let mut builder = RedisStoreBuilder::default().url(client_url);
        if cluster_scheme {
            builder = builder.cluster(true);
        }
        if let Some(cluster) = options.take_bool("cluster")? {
            if cluster_scheme && !cluster {
                return Err(Error::Config(format!(
                    "{} is a cluster URL but says cluster=false",
                    url.redacted()
                )));
            }
            builder = builder.cluster(cluster);
        }
        if let Some(application) = options.take("application") {
            builder = builder.application(application);
        }
        if let Some(prefix) = options.take("prefix") {
            builder = builder.key_prefix(prefix);
        }
        if let Some(timeout) = options.take_duration("connection_timeout")? {
            builder = builder.connection_timeout(timeout);
        }
        if let Some(timeout) = options.take_duration("response_timeout")? {
            builder = builder.response_timeout(timeout);
        }
        if let Some(path) = options.take("tls_ca_file") {
            builder = builder.tls_ca_file(&path)?;
        }
        let mut known = vec!["url"];
        known.extend(KNOWN_OPTIONS);
        options.finish(&known)?;
        Ok(builder)
    }

    #[cfg(feature = "tls")]
    fn tls_ca_file(self, path: &str) -> Result<Self> {
        let pem = std::fs::read(path)
            .map_err(|e| Error::Config(format!("cannot read tls_ca_file {path:?}: {e}")))?;
        Ok(self.tls_root_certificate_pem(pem))
    }

    #[cfg(not(feature = "tls"))]
    fn tls_ca_file(self, _path: &str) -> Result<Self> {
        Err(Error::Config(
            "tls_ca_file needs the `tls` feature of kcl-store-redis".into(),
        ))
    }

    /// Validate, connect and build. A server that cannot be reached is the
    /// retryable [`Error::Unavailable`]; bad settings are
    /// [`Error::Config`], found before anything is sent.
    pub async fn build(self) -> Result<RedisStore> {
        let application = self
            .application
            .ok_or_else(|| Error::Config("RedisStore needs an application name".into()))?;
        let application = ApplicationName::new(application)?;
        validate_prefix(&self.key_prefix)?;
        for (name, timeout) in [
            ("connection_timeout", self.connection_timeout),
            ("response_timeout", self.response_timeout),
        ] {
            if timeout.is_zero() {
                return Err(Error::Config(format!("RedisStore {name} must not be zero")));
            }
        }
        #[cfg(feature = "cluster")]
        let given_cluster = self.cluster_connection;
        #[cfg(not(feature = "cluster"))]
        let given_cluster: Option<std::convert::Infallible> = None;
        let given = usize::from(self.url.is_some())
            + usize::from(self.connection.is_some())
            + usize::from(given_cluster.is_some());
        if given != 1 {
            return Err(Error::Config(
                "RedisStore needs exactly one of a URL, a connection or a cluster connection"
                    .into(),
            ));
        }
        #[cfg(feature = "tls")]
        let root = self.tls_root_certificate;
        #[cfg(not(feature = "tls"))]
        let root = None;
        let (link, endpoint) = if let Some(connection) = self.connection {
            if self.cluster {
                return Err(Error::Config(
                    "RedisStore: cluster(true) needs a URL or a cluster connection, \
                     not a single-server ConnectionManager"
                        .into(),
                ));
            }
            (Link::single(connection, None), "<connection>".to_string())
        } else if let Some(url) = self.url {
            let shown = redact_url(&url);
            let link = if self.cluster {
                connect_cluster(&url, root, self.connection_timeout, self.response_timeout).await?
            } else {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.connection_timeout))
                    .set_response_timeout(Some(self.response_timeout))
                    .set_number_of_retries(RECONNECT_RETRIES)
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(Duration::from_millis(500));
                connect(&url, root, config).await?
            };
            (link, shown)
        } else {
            #[cfg(feature = "cluster")]
            {
                let connection = given_cluster.expect("counted above");
                (
                    Link::cluster(connection),
                    "<cluster connection>".to_string(),
                )
            }
            #[cfg(not(feature = "cluster"))]
            unreachable!("no cluster connection without the feature")
        };
        warn_if_keys_can_be_evicted(&mut link.connection(), &endpoint).await;
        Ok(RedisStore::new(
            std::sync::Arc::new(link),
            application,
            &self.key_prefix,
            endpoint,
        ))
    }
}

/// Log a warning when the server's `maxmemory-policy` may evict the
/// store's keys (none of which has a TTL): an evicted lease is a lease
/// that silently vanished, an evicted checkpoint a restart from an older
/// position. Servers that refuse `CONFIG GET` (managed services often do)
/// are not checked.
async fn warn_if_keys_can_be_evicted(connection: &mut Connection, endpoint: &str) {
    let reply: redis::RedisResult<Vec<String>> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory-policy")
        .query_async(connection)
        .await;
    if let Ok(reply) = reply
        && let Some(policy) = reply.get(1)
        && can_evict_keys_without_ttl(policy)
    {
        tracing::warn!(
            server = %endpoint,
            policy = %policy,
            "Redis maxmemory-policy can evict kcl's leases and checkpoints (they have no TTL): \
             use noeviction (or a volatile-* policy) on the server that holds them"
        );
    }
}

/// Whether `policy` may evict keys that have no TTL: the `allkeys-*`
/// policies. `noeviction` and `volatile-*` never touch them.
pub(crate) fn can_evict_keys_without_ttl(policy: &str) -> bool {
    policy.starts_with("allkeys")
}

/// Refuse a TLS root certificate for a plain URL, and a TLS URL without
/// the `tls` feature, before anything is sent.
fn check_tls(url: &str, shown: &str, root_certificate: Option<&Vec<u8>>) -> Result<()> {
    if url.starts_with("rediss://") {
        tls_ready(shown)
    } else if root_certificate.is_some() {
        Err(Error::Config(format!(
            "a TLS root certificate was given but {shown} is not a rediss:// URL"
        )))
    } else {
        Ok(())
    }
}

async fn connect(
    url: &str,
    root_certificate: Option<Vec<u8>>,
    config: ConnectionManagerConfig,
) -> Result<Link> {
    let shown = redact_url(url);
    check_tls(url, &shown, root_certificate.as_ref())?;
    // The client's parse error is not shown: it could echo the password.
    let client = open_client(url, root_certificate)
        .map_err(|e| Error::Config(format!("invalid Redis URL {shown} ({})", e.category())))?;
    let connection = ConnectionManager::new_with_config(client.clone(), config.clone())
        .await
        .map_err(from_redis)?;
    Ok(Link::single(connection, Some((client, config))))
}

/// How many times the cluster client retries one request (after `MOVED`,
/// `TRYAGAIN`, a lost node...) within the response timeout.
#[cfg(feature = "cluster")]
const CLUSTER_RETRIES: u32 = 6;

#[cfg(feature = "cluster")]
async fn connect_cluster(
    url: &str,
    root_certificate: Option<Vec<u8>>,
    connection_timeout: Duration,
    response_timeout: Duration,
) -> Result<Link> {
    let shown = redact_url(url);
    check_tls(url, &shown, root_certificate.as_ref())?;
    if url.starts_with("redis+unix://") || url.starts_with("unix://") {
        return Err(Error::Config(format!(
            "{shown}: a Redis Cluster is reached over TCP, not a unix socket"
        )));
    }
    let builder = redis::cluster::ClusterClientBuilder::new(vec![url])
        .connection_timeout(connection_timeout)
        .response_timeout(response_timeout)
        .retries(CLUSTER_RETRIES)
        .min_retry_wait(20)
        .max_retry_wait(500);
    #[cfg(feature = "tls")]
    let builder = match root_certificate {
        Some(root) => builder.certs(redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(root),
        }),
        None => builder,
    };
    #[cfg(not(feature = "tls"))]
    let _ = root_certificate;
    let client = builder
        .build()
        .map_err(|e| Error::Config(format!("invalid Redis URL {shown} ({})", e.category())))?;
    let connection = client.get_async_connection().await.map_err(from_redis)?;
    Ok(Link::cluster(connection))
}

#[cfg(not(feature = "cluster"))]
async fn connect_cluster(
    url: &str,
    _root_certificate: Option<Vec<u8>>,
    _connection_timeout: Duration,
    _response_timeout: Duration,
) -> Result<Link> {
    Err(Error::Config(format!(
        "{} asks for a Redis Cluster: enable the `cluster` feature of kcl-store-redis",
        redact_url(url)
    )))
}

#[cfg(feature = "tls")]
fn open_client(url: &str, root_certificate: Option<Vec<u8>>) -> redis::RedisResult<redis::Client> {
    match root_certificate {
        Some(root) => redis::Client::build_with_tls(
            url,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(root),
            },
        ),
        None => redis::Client::open(url),
    }
}

#[cfg(not(feature = "tls"))]
fn open_client(url: &str, _root_certificate: Option<Vec<u8>>) -> redis::RedisResult<redis::Client> {
    redis::Client::open(url)
}

#[cfg(feature = "tls")]
fn tls_ready(_shown: &str) -> Result<()> {
    // rustls needs one process-wide crypto provider; when the build enables
    // more than one (other crates may), it cannot pick one itself. Another
    // library may have installed one already, which is fine.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    Ok(())
}

#[cfg(not(feature = "tls"))]
fn tls_ready(shown: &str) -> Result<()> {
    Err(Error::Config(format!(
        "{shown} uses TLS: enable the `tls` feature of kcl-store-redis"
    )))
}

fn validate_prefix(prefix: &str) -> Result<()> {
    let bad = |why: &str| Err(Error::Config(format!("key prefix {prefix:?}: {why}")));
    if prefix.is_empty() || prefix.len() > 128 {
        return bad("must be 1 to 128 bytes");
    }
    if prefix.contains(['{', '}']) {
        return bad("must not contain braces (they delimit the cluster hash tag)");
    }
    if prefix.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return bad("must not contain whitespace or control characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        for (url, shown) in [
            (
                "redis://:hunter2@127.0.0.1:6379/0",
                "redis://:***@127.0.0.1:6379/0",
            ),
            (
                "rediss://app:hunter2@cache.example:6380",
                "rediss://app:***@cache.example:6380",
            ),
            ("redis://hunter2@host", "redis://***@host"),
            ("redis://a:b:hunter2@host/1", "redis://a:***@host/1"),
            (
                "redis+unix:///run/redis.sock?db=1&pass=hunter2",
                "redis+unix:///run/redis.sock?db=1&pass=***",
            ),
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            ("hunter2", "<unparsed url>"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
            assert!(!redact_url(url).contains("hunter2"));
        }
        let builder = RedisStoreBuilder::default().url("redis://u:hunter2@h:1");
        let debug = format!("{builder:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("u:***@h:1"), "{debug}");
    }

    #[test]
    fn from_url_takes_kcl_options_and_passes_the_rest() {
        let builder = RedisStoreBuilder::from_url(
            "rediss://app:a%2Fb%3Fc%23d@cache:6380/2?application=orders&prefix=prod&response_timeout=250ms&connection_timeout=2s&protocol=resp3",
        )
        .unwrap();
        assert_eq!(
            builder.url.as_deref(),
            Some("rediss://app:a%2Fb%3Fc%23d@cache:6380/2?protocol=resp3")
        );
        assert_eq!(builder.application.as_deref(), Some("orders"));
        assert_eq!(builder.key_prefix, "prod");
        assert_eq!(builder.response_timeout, Duration::from_millis(250));
        assert_eq!(builder.connection_timeout, Duration::from_secs(2));
        let debug = format!("{builder:?}");
        assert!(!debug.contains("a%2Fb"), "{debug}");
        let from_map = RedisStoreBuilder::from_map([
            ("url", "redis://127.0.0.1:1"),
            ("application", "orders"),
            ("prefix", "p"),
        ])
        .unwrap();
        assert_eq!(from_map.key_prefix, "p");
        assert_eq!(from_map.url.as_deref(), Some("redis://127.0.0.1:1"));
    }

    #[test]
    fn cluster_urls_ask_for_the_cluster_client() {
        for (url, client) in [
            (
                "redis+cluster://:p%2Fw@10.0.0.1:7000",
                "redis://:p%2Fw@10.0.0.1:7000",
            ),
            (
                "rediss+cluster://node:7000/?prefix=x",
                "rediss://node:7000/",
            ),
            ("redis://node:7000?cluster=true", "redis://node:7000"),
        ] {
            let builder = RedisStoreBuilder::from_url(url).unwrap();
            assert!(builder.cluster, "{url}");
            assert_eq!(builder.url.as_deref(), Some(client), "{url}");
            assert!(!format!("{builder:?}").contains("p%2Fw"));
        }
        assert!(
            !RedisStoreBuilder::from_url("redis://h?cluster=false")
                .unwrap()
                .cluster
        );
        assert!(!RedisStoreBuilder::from_url("redis://h").unwrap().cluster);
        for bad in ["redis+cluster://h?cluster=false", "redis://h?cluster=maybe"] {
            assert!(
                matches!(RedisStoreBuilder::from_url(bad), Err(Error::Config(_))),
                "{bad}"
            );
        }
    }

    #[cfg(not(feature = "cluster"))]
    #[tokio::test]
    async fn a_cluster_without_the_feature_names_it() {
        let err =
            RedisStoreBuilder::from_url("redis+cluster://:hunter2@127.0.0.1:1?application=orders")
                .unwrap()
                .build()
                .await
                .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::Config(_)), "{msg}");
        assert!(msg.contains("`cluster` feature"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
    }

    #[cfg(feature = "cluster")]
    #[tokio::test]
    async fn an_unreachable_cluster_is_retryable() {
        let err = RedisStoreBuilder::default()
            .application("app")
            .url("redis://:hunter2@127.0.0.1:1")
            .cluster(true)
            .connection_timeout(Duration::from_millis(300))
            .response_timeout(Duration::from_millis(300))
            .build()
            .await
            .unwrap_err();
        assert!(err.is_retryable(), "{err:?}");
        assert!(!format!("{err} {err:?}").contains("hunter2"), "{err:?}");
    }

    #[test]
    fn from_url_refuses_what_it_cannot_read_without_showing_the_password() {
        for (url, secret) in [
            ("postgres://u:hunter2@h/db", "hunter2"),
            ("redis://u:ab/cd@127.0.0.1:1/0", "ab/cd"),
            ("redis://u:ab?cd@127.0.0.1:1/0", "ab?cd"),
            ("redis://u:ab#cd@127.0.0.1:1/0", "ab#cd"),
            ("redis://u:hunter2@h/0?prefx=typo", "hunter2"),
            ("redis://u:hunter2@h/0?response_timeout=soon", "hunter2"),
        ] {
            let err = RedisStoreBuilder::from_url(url).unwrap_err();
            let msg = format!("{err} {err:?}");
            assert!(matches!(err, Error::Config(_)), "{url}: {msg}");
            assert!(!msg.contains(secret), "{url}: {msg}");
        }
        assert!(matches!(
            RedisStoreBuilder::from_map([("application", "a")]),
            Err(Error::Config(_))
        ));
    }

    #[tokio::test]
    async fn passwords_with_url_delimiters_never_leak_from_build() {
        for secret in ["ab/cd", "ab?cd", "ab#cd", "a/b?c#d"] {
            let err = RedisStoreBuilder::default()
                .application("app")
                .url(format!("redis://u:{secret}@127.0.0.1:1/0"))
                .connection_timeout(Duration::from_millis(200))
                .build()
                .await
                .unwrap_err();
            let msg = format!("{err} {err:?}");
            assert!(!msg.contains(secret), "{secret}: {msg}");
            let builder = RedisStoreBuilder::default().url(format!("redis://u:{secret}@h:1/0"));
            let debug = format!("{builder:?}");
            assert!(!debug.contains(secret), "{debug}");
        }
    }

    #[test]
    fn only_allkeys_policies_can_evict_the_stores_keys() {
        for policy in ["allkeys-lru", "allkeys-lfu", "allkeys-random"] {
            assert!(can_evict_keys_without_ttl(policy), "{policy}");
        }
        for policy in [
            "noeviction",
            "volatile-lru",
            "volatile-ttl",
            "volatile-random",
        ] {
            assert!(!can_evict_keys_without_ttl(policy), "{policy}");
        }
    }

    #[tokio::test]
    async fn bad_settings_are_config_errors() {
        let config = |b: RedisStoreBuilder| async move {
            match b.build().await {
                Err(Error::Config(msg)) => msg,
                other => panic!("expected Error::Config, got {other:?}"),
            }
        };
        let base = || RedisStoreBuilder::default().url("redis://127.0.0.1:1");
        assert!(config(base()).await.contains("application"));
        config(base().application("a b")).await;
        assert!(
            config(base().application("app").key_prefix("a{b}"))
                .await
                .contains("braces")
        );
        config(base().application("app").key_prefix("")).await;
        config(base().application("app").response_timeout(Duration::ZERO)).await;
        assert!(
            config(RedisStoreBuilder::default().application("app"))
                .await
                .contains("URL")
        );
        let msg = config(
            RedisStoreBuilder::default()
                .application("app")
                .url("nonsense://:hunter2@x"),
        )
        .await;
        assert!(!msg.contains("hunter2"), "{msg}");
    }

    #[cfg(not(feature = "tls"))]
    #[tokio::test]
    async fn tls_without_the_feature_names_it() {
        let err = RedisStoreBuilder::default()
            .application("app")
            .url("rediss://:hunter2@127.0.0.1:1")
            .build()
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("`tls` feature"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
    }

    #[tokio::test]
    async fn an_unreachable_server_is_retryable() {
        // Port 1 on loopback: nothing listens, the connection is refused.
        let err = RedisStoreBuilder::default()
            .application("app")
            .url("redis://127.0.0.1:1")
            .connection_timeout(Duration::from_secs(1))
            .build()
            .await
            .unwrap_err();
        assert!(err.is_retryable(), "{err:?}");
    }
}
