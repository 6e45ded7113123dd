//! Building a [`PostgresStore`]: where the server is, which application
//! namespace, and which schema and tables.
//!
//! Schema and table names cannot be bound as query parameters, so they are
//! spliced into the SQL text; that is safe only because every name is
//! validated against [`IDENTIFIER_RULE`] here, before anything is sent, and
//! is then double-quoted.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use kcl_core::store_url::{StoreOptions, StoreUrl, redact_url};
use kcl_core::{ApplicationName, Error, Result};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::store::PostgresStore;

/// The rule every schema and table name must match: a lower-case letter or
/// underscore, then up to 62 lower-case letters, digits or underscores
/// (`^[a-z_][a-z0-9_]{0,62}$`, which fits PostgreSQL's 63-byte limit and
/// needs no case folding).
pub const IDENTIFIER_RULE: &str = "^[a-z_][a-z0-9_]{0,62}$";

/// The query options sqlx reads itself; any other option is refused by
/// `from_url` (sqlx would only log and ignore it).
const CLIENT_OPTIONS: [&str; 19] = [
    "sslmode",
    "ssl-mode",
    "sslrootcert",
    "ssl-root-cert",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "statement-cache-capacity",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
    "options",
    "options[*",
];
/// The options [`PostgresStoreBuilder::from_url`] reads from a URL's query.
const KNOWN_OPTIONS: [&str; 11] = [
    "application",
    "lease_connections",
    "schema",
    "leases_table",
    "workers_table",
    "checkpoints_table",
    "max_connections",
    "acquire_timeout",
    "migrate",
    "lock_timeout",
    "statement_timeout",
];

/// A schema or table name that matched [`IDENTIFIER_RULE`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Identifier(String);

impl Identifier {
    pub(crate) fn new(what: &str, name: &str) -> Result<Self> {
        let bytes = name.as_bytes();
        let valid = !bytes.is_empty()
            && bytes.len() <= 63
            && (bytes[0].is_ascii_lowercase() || bytes[0] == b'_')
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_');
        if !valid {
            return Err(Error::Config(format!(
                "{what} name {name:?} must match {IDENTIFIER_RULE}"
            )));
        }
        Ok(Identifier(name.to_owned()))
    }

    /// The name as written.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// The name double-quoted for SQL. The rule admits no quote, so no
    /// escaping is needed.
    pub(crate) fn quoted(&self) -> String {
        format!("\"{}\"", self.0)
    }
}

/// The validated schema and table names a store uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Tables {
    pub(crate) schema: Identifier,
    pub(crate) leases: Identifier,
    pub(crate) workers: Identifier,
    pub(crate) checkpoints: Identifier,
}

impl Tables {
    /// `"schema"."table"`.
    pub(crate) fn qualified(&self, table: &Identifier) -> String {
        format!("{}.{}", self.schema.quoted(), table.quoted())
    }
}

/// Where the connection pool comes from.
#[derive(Clone, Default)]
enum Source {
    #[default]
    Unset,
    Url(String),
    Options(Box<PgConnectOptions>),
    Pool(PgPool),
}

/// Builder for [`PostgresStore`].
///
/// | setting | default |
/// | --- | --- |
/// | [`url`](Self::url) / [`connect_options`](Self::connect_options) / [`pool`](Self::pool) | required (one of them) |
/// | [`application`](Self::application) | required |
/// | [`schema`](Self::schema) | `"kcl"` |
/// | [`leases_table`](Self::leases_table) | `"leases"` |
/// | [`workers_table`](Self::workers_table) | `"workers"` |
/// | [`checkpoints_table`](Self::checkpoints_table) | `"checkpoints"` |
/// | [`max_connections`](Self::max_connections) | 10 (ignored with `pool`) |
/// | [`lease_connections`](Self::lease_connections) | 4 |
/// | [`acquire_timeout`](Self::acquire_timeout) | 5 s (ignored with `pool`) |
/// | [`migrate`](Self::migrate) | `true` |
/// | [`lock_timeout`](Self::lock_timeout) | 2 s |
/// | [`statement_timeout`](Self::statement_timeout) | 5 s |
///
/// Two pools: the application's ([`PostgresStore::pool`]: yours, or one
/// of `max_connections` built from the URL) for your own queries and
/// transactional checkpoints, and the store's own pool of
/// `lease_connections`, built from the same connect options, for every
/// statement the store runs itself. Your transactions can therefore never
/// take the connection a renew needs.
///
/// TLS (feature `tls`: rustls, aws-lc-rs) is configured through sqlx's
/// settings: `sslmode=verify-full&sslrootcert=/path/ca.pem` in the URL, or
/// [`PgConnectOptions::ssl_mode`] and friends with
/// [`connect_options`](Self::connect_options). Use `verify-full` (the
/// certificate must chain to a trusted root, the platform's webpki roots
/// or `sslrootcert`, and name the host); `require` encrypts but does not
/// check who answers. Without the feature, `sslmode=require`, `verify-ca`
/// or `verify-full` is an [`Error::Config`] that names it: asking for TLS
/// never connects in plaintext. (sqlx's default, `prefer`, tries TLS when
/// it is available and otherwise connects in plaintext, as libpq does.)
///
/// `Debug` never shows a password: the URL is printed with its password
/// replaced by `***`, and connect options and pools are not printed at all.
#[derive(Clone, Default)]
pub struct PostgresStoreBuilder {
    source: Source,
    application: Option<String>,
    schema: Option<String>,
    leases_table: Option<String>,
    workers_table: Option<String>,
    checkpoints_table: Option<String>,
    max_connections: Option<u32>,
    lease_connections: Option<u32>,
    acquire_timeout: Option<Duration>,
    migrate: Option<bool>,
    lock_timeout: Option<Duration>,
    statement_timeout: Option<Duration>,
}

/// Default [`PostgresStoreBuilder::lease_connections`].
pub const DEFAULT_LEASE_CONNECTIONS: u32 = 4;
/// Default [`PostgresStoreBuilder::lock_timeout`].
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(2);
/// Default [`PostgresStoreBuilder::statement_timeout`].
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);

/// Session settings of every connection in a pool the builder makes.
struct Session {
    lock_timeout: Duration,
    statement_timeout: Duration,
}

impl Session {
    /// The options with the store's session settings appended: PostgreSQL
    /// applies startup `-c` settings in order, so these win over the
    /// URL's, the role's and the database's defaults.
    fn apply(&self, options: PgConnectOptions) -> PgConnectOptions {
        options.options([
            (
                "lock_timeout",
                format!("{}ms", self.lock_timeout.as_millis()),
            ),
            (
                "statement_timeout",
                format!("{}ms", self.statement_timeout.as_millis()),
            ),
            // The store's statements are written for READ COMMITTED: under
            // REPEATABLE READ or SERIALIZABLE a lost race would surface
            // as a serialization failure instead of a Conflict.
            // (A backslash escapes the space inside the startup options.)
            (
                "default_transaction_isolation",
                r"read\ committed".to_string(),
            ),
        ])
    }
}

impl fmt::Debug for PostgresStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            Source::Unset => "unset".to_owned(),
            Source::Url(url) => redact_url(url),
            Source::Options(_) => "connect options".to_owned(),
            Source::Pool(_) => "existing pool".to_owned(),
        };
        f.debug_struct("PostgresStoreBuilder")
            .field("source", &source)
            .field("application", &self.application)
            .field("schema", &self.schema)
            .field("leases_table", &self.leases_table)
            .field("workers_table", &self.workers_table)
            .field("checkpoints_table", &self.checkpoints_table)
            .field("max_connections", &self.max_connections)
            .field("lease_connections", &self.lease_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("migrate", &self.migrate)
            .field("lock_timeout", &self.lock_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .finish()
    }
}

impl PostgresStoreBuilder {
    /// Connect with a URL (`postgres://user:password@host:port/db?sslmode=…`).
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.source = Source::Url(url.into());
        self
    }

    /// Connect with sqlx connect options (TLS, certificates, socket path…).
    pub fn connect_options(mut self, options: PgConnectOptions) -> Self {
        self.source = Source::Options(Box::new(options));
        self
    }

    /// Use an existing pool (shared with the application's own queries).
    pub fn pool(mut self, pool: PgPool) -> Self {
        self.source = Source::Pool(pool);
        self
    }

    /// The application namespace. Required; see [`ApplicationName`].
    pub fn application(mut self, name: impl Into<String>) -> Self {
        self.application = Some(name.into());
        self
    }

    /// The schema holding the tables (created if absent). Default `"kcl"`.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// The lease table's name. Default `"leases"`.
    pub fn leases_table(mut self, name: impl Into<String>) -> Self {
        self.leases_table = Some(name.into());
        self
    }

    /// The worker heartbeat table's name. Default `"workers"`.
    pub fn workers_table(mut self, name: impl Into<String>) -> Self {
        self.workers_table = Some(name.into());
        self
    }

    /// The [`CheckpointStore`](kcl_core::CheckpointStore) table's name.
    /// Default `"checkpoints"`.
    pub fn checkpoints_table(mut self, name: impl Into<String>) -> Self {
        self.checkpoints_table = Some(name.into());
        self
    }

    /// Largest number of connections in the pool this builder makes.
    /// Default 10. Not used with [`pool`](Self::pool).
    pub fn max_connections(mut self, max: u32) -> Self {
        self.max_connections = Some(max);
        self
    }

    /// Largest number of connections in the store's own pool, which runs
    /// every lease, heartbeat and checkpoint statement of the store (each a
    /// single short statement). Default 4. It is built from the same
    /// connect options as the application's pool (with `pool`, from that
    /// pool's connect options; hooks such as `after_connect` are not
    /// copied), so size the server's `max_connections` for both.
    pub fn lease_connections(mut self, max: u32) -> Self {
        self.lease_connections = Some(max);
        self
    }

    /// How long a call waits for a connection before failing with a
    /// retryable [`Error::Unavailable`]. Default 5 s. With
    /// [`pool`](Self::pool), it bounds the store's own pool only.
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = Some(timeout);
        self
    }

    /// How long a store statement waits for a row lock before failing
    /// with the retryable [`Error::Unavailable`]. Default 2 s. A
    /// [`checkpoint_in_transaction`](PostgresStore::checkpoint_in_transaction)
    /// holds its lease's row lock until the caller's transaction ends; this
    /// bounds how long a peer's take or the holder's renew can be stuck
    /// behind a hung transaction. Set (with the statement timeout and READ
    /// COMMITTED as the session's default isolation) on every connection of
    /// the store's own pool, whatever the source (with [`pool`](Self::pool),
    /// your pool's connections keep their own settings), and on a pool this
    /// builder makes from a URL or connect options.
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = Some(timeout);
        self
    }

    /// Bound on any one statement of the store. Default 5 s. Set as
    /// [`lock_timeout`](Self::lock_timeout) is.
    pub fn statement_timeout(mut self, timeout: Duration) -> Self {
        self.statement_timeout = Some(timeout);
        self
    }

    /// Whether `build` creates or upgrades the schema (default `true`).
    /// With `false`, run [`PostgresStore::migrate`] yourself first.
    pub fn migrate(mut self, migrate: bool) -> Self {
        self.migrate = Some(migrate);
        self
    }

    /// A builder from one URL: the server's URL (see [`url`](Self::url))
    /// with kcl's settings as query options, which are removed before the
    /// URL reaches sqlx (its own options, `sslmode=…`, stay):
    ///
    /// `postgres://user:password@host:port/db?application=APP&schema=kcl&leases_table=leases&workers_table=workers&checkpoints_table=checkpoints&max_connections=10&acquire_timeout=5s&migrate=true`
    /// (or `postgresql://`). Every option is optional; set the application
    /// afterwards with [`application`](Self::application) if the URL does
    /// not. Durations are `500ms`, `5s`, `2m` or seconds. A password must
    /// be percent-encoded (`/` as `%2F`, `?` as `%3F`, `#` as `%23`, `@` as
    /// `%40`); an option neither kcl nor sqlx reads, another scheme or a
    /// URL that does not parse is an [`Error::Config`] that never shows the
    /// password.
    ///
    /// ```
    /// use kcl_store_postgres::PostgresStoreBuilder;
    /// let builder = PostgresStoreBuilder::from_url(
    ///     "postgres://kcl:s%2Fcr%3Ft@db:5432/app?sslmode=require&schema=orders&application=orders",
    /// )?;
    /// assert!(!format!("{builder:?}").contains("s%2Fcr"));
    /// # Ok::<(), kcl_core::Error>(())
    /// ```
    pub fn from_url(url: &str) -> Result<Self> {
        Self::from_map([("url", url)])
    }

    /// A builder from key/value settings: `url` (required; its kcl options
    /// are read as below), `application`, `schema`, `leases_table`,
    /// `workers_table`, `checkpoints_table`, `max_connections`,
    /// `lease_connections`, `acquire_timeout`, `migrate`, `lock_timeout` and `statement_timeout`. See [`from_url`](Self::from_url).
    /// Unknown keys are an [`Error::Config`].
    pub fn from_map<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Result<Self>
    where
        K: Into<String>,
        V: Into<String>,
    {
        let mut options = StoreOptions::new("Postgres store", pairs);
        let url = options
            .take("url")
            .ok_or_else(|| Error::Config("a Postgres store's settings need a url".into()))?;
        let mut url = StoreUrl::parse(&url)?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(Error::Config(format!(
                "{} is not a postgres:// or postgresql:// URL",
                url.redacted()
            )));
        }
        for key in KNOWN_OPTIONS {
            if let Some(value) = url.take(key) {
                options.insert(key, value);
            }
        }
        url.refuse_unknown_options(&CLIENT_OPTIONS, &KNOWN_OPTIONS)?;
        let mut builder = PostgresStoreBuilder::default().url(url.client_url());
        builder.application = options.take("application");
        builder.schema = options.take("schema");
        builder.leases_table = options.take("leases_table");
        builder.workers_table = options.take("workers_table");
        builder.checkpoints_table = options.take("checkpoints_table");
        builder.max_connections = options.take_number("max_connections")?;
        builder.lease_connections = options.take_number("lease_connections")?;
        builder.acquire_timeout = options.take_duration("acquire_timeout")?;
        builder.migrate = options.take_bool("migrate")?;
        builder.lock_timeout = options.take_duration("lock_timeout")?;
        builder.statement_timeout = options.take_duration("statement_timeout")?;
        let mut known = vec!["url"];
        known.extend(KNOWN_OPTIONS);
        options.finish(&known)?;
        Ok(builder)
    }

    /// Validate everything, make the pool (lazily: no connection is opened
    /// until needed), and run the migrations unless turned off. A server
    /// that cannot be reached is a retryable [`Error::Unavailable`]; any
    /// invalid setting is [`Error::Config`] and nothing is sent.
    pub async fn build(self) -> Result<PostgresStore> {
        let application = ApplicationName::new(
            self.application
                .ok_or_else(|| Error::Config("PostgresStore needs an application name".into()))?,
        )?;
        let tables = Tables {
            schema: Identifier::new("schema", self.schema.as_deref().unwrap_or("kcl"))?,
            leases: Identifier::new(
                "leases table",
                self.leases_table.as_deref().unwrap_or("leases"),
            )?,
            workers: Identifier::new(
                "workers table",
                self.workers_table.as_deref().unwrap_or("workers"),
            )?,
            checkpoints: Identifier::new(
                "checkpoints table",
                self.checkpoints_table.as_deref().unwrap_or("checkpoints"),
            )?,
        };
        let distinct = [&tables.leases, &tables.workers, &tables.checkpoints];
        if distinct[0] == distinct[1] || distinct[0] == distinct[2] || distinct[1] == distinct[2] {
            return Err(Error::Config(
                "the leases, workers and checkpoints tables need three different names".into(),
            ));
        }
        if distinct
            .iter()
            .any(|t| t.as_str() == crate::migrate::VERSION_TABLE)
        {
            return Err(Error::Config(format!(
                "{:?} is the migrations' own table; choose another table name",
                crate::migrate::VERSION_TABLE
            )));
        }
        let session = Session {
            lock_timeout: self.lock_timeout.unwrap_or(DEFAULT_LOCK_TIMEOUT),
            statement_timeout: self.statement_timeout.unwrap_or(DEFAULT_STATEMENT_TIMEOUT),
        };
        for (name, timeout) in [
            ("lock_timeout", session.lock_timeout),
            ("statement_timeout", session.statement_timeout),
        ] {
            if timeout < Duration::from_millis(1) {
                return Err(Error::Config(format!(
                    "PostgresStore {name} must be at least 1 ms"
                )));
            }
        }
        let acquire_timeout = self.acquire_timeout.unwrap_or(Duration::from_secs(5));
        let pool_options = || {
            PgPoolOptions::new()
                .max_connections(self.max_connections.unwrap_or(10).max(1))
                .acquire_timeout(acquire_timeout)
        };
        let lease_pool_options = PgPoolOptions::new()
            .max_connections(
                self.lease_connections
                    .unwrap_or(DEFAULT_LEASE_CONNECTIONS)
                    .max(1),
            )
            .acquire_timeout(acquire_timeout);
        let (pool, lease_options) = match self.source {
            Source::Unset => {
                return Err(Error::Config(
                    "PostgresStore needs a url, connect options or a pool".into(),
                ));
            }
            Source::Url(url) => {
                if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                    return Err(Error::Config(format!(
                        "postgres url {} must start with postgres:// or postgresql://",
                        redact_url(&url)
                    )));
                }
                // sqlx's parse errors do not echo the URL, so no password
                // can leak through them; say which setting was wrong.
                let options = PgConnectOptions::from_str(&url).map_err(|e| {
                    Error::Config(format!("invalid postgres url {}: {e}", redact_url(&url)))
                })?;
                tls_available(&options, &redact_url(&url))?;
                let options = session.apply(options);
                (pool_options().connect_lazy_with(options.clone()), options)
            }
            Source::Options(options) => {
                tls_available(&options, "the connect options")?;
                let options = session.apply(*options);
                (pool_options().connect_lazy_with(options.clone()), options)
            }
            Source::Pool(pool) => {
                let options = session.apply((*pool.connect_options()).clone());
                (pool, options)
            }
        };
        let lease_pool = lease_pool_options.connect_lazy_with(lease_options);
        let store = PostgresStore::new(pool, lease_pool, application, tables);
        if self.migrate.unwrap_or(true) {
            store.migrate().await?;
        }
        Ok(store)
    }
}

/// Refuse a connection that asks for TLS (`require`, `verify-ca`,
/// `verify-full`) when this crate was built without its `tls` feature, so
/// it fails here, clearly, before anything is sent.
fn tls_available(options: &PgConnectOptions, shown: &str) -> Result<()> {
    use sqlx::postgres::PgSslMode;
    let mode = options.get_ssl_mode();
    let asks = matches!(
        mode,
        PgSslMode::Require | PgSslMode::VerifyCa | PgSslMode::VerifyFull
    );
    if asks && !cfg!(feature = "tls") {
        return Err(Error::Config(format!(
            "{shown} asks for TLS (sslmode {mode:?}): enable the `tls` feature of kcl-store-postgres"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_that_could_inject_sql_are_refused() {
        for bad in [
            "",
            "Kcl",
            "kcl;drop table x",
            "kcl\"",
            "k cl",
            "1kcl",
            "kcl-prod",
            "kcl.leases",
            "ünïcode",
            &"a".repeat(64),
        ] {
            let err = Identifier::new("schema", bad).expect_err(bad);
            assert!(matches!(err, Error::Config(_)), "{bad:?}: {err:?}");
        }
        for good in ["kcl", "_x", "leases_2", &"a".repeat(63)] {
            assert_eq!(Identifier::new("schema", good).unwrap().as_str(), good);
        }
        assert_eq!(
            Identifier::new("schema", "kcl").unwrap().quoted(),
            "\"kcl\""
        );
    }

    #[tokio::test]
    async fn build_refuses_bad_settings_before_connecting() {
        // Port 1 refuses connections: a Config error proves nothing was sent.
        let base = || {
            PostgresStore::builder()
                .url("postgres://u:pw@127.0.0.1:1/db")
                .application("app")
        };
        for builder in [
            base().schema("x; DROP SCHEMA public"),
            base().leases_table("Leases"),
            base().workers_table("w\"; --"),
            base().checkpoints_table(""),
            base().workers_table("kcl_migrations"),
            base().leases_table("same").workers_table("same"),
            PostgresStore::builder().application("app"),
            PostgresStore::builder().url("postgres://127.0.0.1:1/db"),
            base().application("a b"),
            PostgresStore::builder()
                .url("mysql://u:pw@127.0.0.1:1/db")
                .application("app"),
        ] {
            let shown = format!("{builder:?}");
            match builder.build().await {
                Err(Error::Config(msg)) => assert!(!msg.contains("pw@"), "{msg}"),
                other => panic!("{shown}: expected Config, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn an_unreachable_server_is_a_retryable_error_within_the_acquire_timeout() {
        let started = std::time::Instant::now();
        let result = PostgresStore::builder()
            .url("postgres://kcl:pw@127.0.0.1:1/db")
            .application("app")
            .acquire_timeout(Duration::from_millis(500))
            .build()
            .await;
        match result {
            Err(e) => {
                assert!(e.is_retryable(), "{e:?}");
                assert!(!format!("{e:?}").contains("pw@"), "{e:?}");
            }
            Ok(store) => panic!("built against a closed port: {store:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn from_url_takes_kcl_options_and_leaves_sqlx_its_own() {
        let builder = PostgresStoreBuilder::from_url(
            "postgres://kcl:a%2Fb%3Fc%23d@db:5432/app?sslmode=require&schema=orders&application=o&leases_table=l&workers_table=w&checkpoints_table=c&max_connections=3&lease_connections=2&acquire_timeout=250ms&migrate=no",
        )
        .unwrap();
        match &builder.source {
            Source::Url(url) => {
                assert_eq!(
                    url,
                    "postgres://kcl:a%2Fb%3Fc%23d@db:5432/app?sslmode=require"
                )
            }
            _ => panic!("no url"),
        }
        assert_eq!(builder.schema.as_deref(), Some("orders"));
        assert_eq!(builder.application.as_deref(), Some("o"));
        assert_eq!(builder.leases_table.as_deref(), Some("l"));
        assert_eq!(builder.workers_table.as_deref(), Some("w"));
        assert_eq!(builder.checkpoints_table.as_deref(), Some("c"));
        assert_eq!(builder.max_connections, Some(3));
        assert_eq!(builder.lease_connections, Some(2));
        assert_eq!(builder.acquire_timeout, Some(Duration::from_millis(250)));
        assert_eq!(builder.migrate, Some(false));
        assert!(!format!("{builder:?}").contains("a%2Fb"));
        let from_map =
            PostgresStoreBuilder::from_map([("url", "postgresql://db/app"), ("schema", "s")])
                .unwrap();
        assert_eq!(from_map.schema.as_deref(), Some("s"));
    }

    #[tokio::test]
    async fn passwords_with_url_delimiters_never_leak() {
        for secret in ["ab/cd", "ab?cd", "ab#cd", "a/b?c#d"] {
            let url = format!("postgres://kcl:{secret}@127.0.0.1:1/db");
            let err = PostgresStoreBuilder::from_url(&url).unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{err:?}");
            let msg = format!("{err} {err:?}");
            assert!(!msg.contains(secret), "{msg}");
            let builder = PostgresStore::builder().url(&url).application("app");
            let debug = format!("{builder:?}");
            assert!(!debug.contains(secret), "{debug}");
            let result = builder
                .acquire_timeout(Duration::from_millis(200))
                .build()
                .await;
            let msg = format!("{:?}", result.expect_err("port 1 is closed"));
            assert!(!msg.contains(secret), "{msg}");
        }
        for bad in [
            "redis://h/db",
            "postgres://h/db?max_connections=many",
            "postgres://h/db?shema=typo",
        ] {
            assert!(matches!(
                PostgresStoreBuilder::from_url(bad),
                Err(Error::Config(_))
            ));
        }
    }

    #[cfg(not(feature = "tls"))]
    #[tokio::test]
    async fn asking_for_tls_without_the_feature_is_a_config_error() {
        for mode in ["require", "verify-ca", "verify-full"] {
            let url = format!("postgres://kcl:hunter2@127.0.0.1:1/db?sslmode={mode}");
            let err = PostgresStore::builder()
                .url(&url)
                .application("app")
                .build()
                .await
                .expect_err(mode);
            let msg = err.to_string();
            assert!(matches!(err, Error::Config(_)), "{mode}: {msg}");
            assert!(msg.contains("`tls` feature"), "{mode}: {msg}");
            assert!(!msg.contains("hunter2"), "{msg}");
        }
        let options = PgConnectOptions::new()
            .host("127.0.0.1")
            .port(1)
            .ssl_mode(sqlx::postgres::PgSslMode::VerifyFull);
        let err = PostgresStore::builder()
            .connect_options(options)
            .application("app")
            .build()
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err:?}");
        // Not asking for TLS is not refused (port 1: unreachable, retryable).
        for mode in ["disable", "prefer", "allow"] {
            let err = PostgresStore::builder()
                .url(format!("postgres://kcl@127.0.0.1:1/db?sslmode={mode}"))
                .application("app")
                .acquire_timeout(Duration::from_millis(200))
                .build()
                .await
                .unwrap_err();
            assert!(err.is_retryable(), "{mode}: {err:?}");
        }
    }

    #[test]
    fn debug_and_errors_hide_the_password() {
        let builder = PostgresStore::builder()
            .url("postgres://kcl:s3cret@db.example:5432/app?sslmode=require&password=s3cret")
            .application("app");
        let shown = format!("{builder:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("kcl:***@db.example:5432"), "{shown}");
        assert!(shown.contains("password=***"), "{shown}");
        assert_eq!(
            redact_url("postgres://u:p@ss@host/db"),
            "postgres://u:***@host/db"
        );
    }
}
