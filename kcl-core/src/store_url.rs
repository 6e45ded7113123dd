//! Store URLs and key/value settings, shared by every store's `from_url`
//! and `from_map`, and the one place that hides passwords in URLs.
//!
//! Every store crate builds from one URL (`memory://`, `redis://…`,
//! `rediss://…`, `postgres://…`, `dynamodb://TABLE?…`) or from a key/value
//! map. The parsing and the checks that do not depend on the store live
//! here, so every store reads options, durations and booleans the same way
//! and no store can show a password another would hide.
//!
//! Passwords in a URL must be percent-encoded (`/` as `%2F`, `?` as `%3F`,
//! `#` as `%23`, `@` as `%40`), as RFC 3986 says. A URL whose user info
//! seems to hold an unencoded one is refused by [`StoreUrl::parse`] with an
//! [`Error::Config`] that names the rule, and [`redact_url`] hides the
//! whole user info of such a URL, so the password never shows either way.

use std::time::Duration;

use crate::error::{Error, Result};

/// What replaces a password (or an unparseable URL's user info).
const HIDDEN: &str = "***";

/// Query keys whose values are hidden by [`redact_url`]: any key that
/// contains one of these words, ignoring case.
const SECRET_KEYS: [&str; 5] = ["pass", "secret", "token", "access_key", "credential"];

/// `url` with every password replaced by `***`, for logs, `Debug` and
/// error messages.
///
/// Hidden: the password of the user info (the username stays), the whole
/// user info when it cannot be told apart from the host (a password with
/// an unencoded `/`, `?`, `#` or `@`, a user info with no colon), and the
/// value of every query parameter whose name contains `pass`, `secret`,
/// `token`, `access_key` or `credential`. Text with no `://` is not shown at all. It errs on
/// the side of hiding: an `@` in the query hides the host as well.
///
/// ```
/// use kcl_core::store_url::redact_url;
/// assert_eq!(redact_url("redis://app:s3cret@cache:6379/0"), "redis://app:***@cache:6379/0");
/// assert_eq!(redact_url("postgres://u:a/b?c#d@db/app"), "postgres://u:***@db/app");
/// assert_eq!(redact_url("postgres://db/app?password=s3cret"), "postgres://db/app?password=***");
/// ```
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return "<unparsed url>".to_string();
    };
    let (scheme, rest) = url.split_at(scheme_end + 3);
    // The user info ends at the *last* `@`: a password may hold any
    // character, and hiding too much is better than showing a secret.
    let (user_info, after) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let user_info = user_info.map(|info| match info.split_once(':') {
        // A username never holds `/`, `?` or `#`; if the part before the
        // colon does, the colon belongs to something else.
        Some((user, _)) if !user.contains(['/', '?', '#']) => format!("{user}:{HIDDEN}@"),
        // `redis://secret@host`: read as a username by some clients and a
        // password by others; hide it either way.
        _ => format!("{HIDDEN}@"),
    });
    let (before_query, query) = match after.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (after, None),
    };
    let mut out = format!("{scheme}{}{before_query}", user_info.unwrap_or_default());
    if let Some(query) = query {
        let (query, fragment) = match query.split_once('#') {
            Some((q, f)) => (q, Some(f)),
            None => (query, None),
        };
        out.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if is_secret_key(key) => format!("{key}={HIDDEN}"),
                _ => pair.to_string(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
        if let Some(fragment) = fragment {
            out.push('#');
            out.push_str(fragment);
        }
    }
    out
}

fn is_secret_key(key: &str) -> bool {
    let key = percent_decode(key).unwrap_or_default().to_ascii_lowercase();
    SECRET_KEYS.iter().any(|word| key.contains(word))
}

/// A store URL split into the part the store's client reads and the
/// options kcl reads.
///
/// `scheme://[user[:password]@]host[:port][/path][?key=value&…]`. Options
/// are percent-decoded. A store takes the options it knows with
/// [`take`](Self::take) (they are removed), hands
/// [`client_url`](Self::client_url) — the URL with the remaining options —
/// to its client, or refuses leftovers with [`StoreOptions::finish`].
#[derive(Clone)]
pub struct StoreUrl {
    scheme: String,
    /// Between `://` and the query: user info, host, port, path (raw).
    base: String,
    /// `(raw pair, decoded key, decoded value)`, in order.
    options: Vec<(String, String, String)>,
    redacted: String,
}

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("StoreUrl").field(&self.redacted).finish()
    }
}

impl StoreUrl {
    /// Split `url`. [`Error::Config`] (showing the URL redacted) when it
    /// has no `scheme://`, has a fragment, an option that does not
    /// percent-decode, or user info that seems to hold an unencoded `/`,
    /// `?`, `#` or `@`.
    pub fn parse(url: &str) -> Result<StoreUrl> {
        let redacted = redact_url(url);
        let bad = |why: &str| Error::Config(format!("store URL {redacted}: {why}"));
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("must start with scheme://"))?;
        if scheme.is_empty() {
            return Err(bad("has no scheme"));
        }
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        if authority.matches('@').count() > 1
            || (!authority.contains('@') && rest[authority_end..].contains('@'))
        {
            return Err(bad(
                "its user info holds a character that must be percent-encoded \
                 (`/` as %2F, `?` as %3F, `#` as %23, `@` as %40)",
            ));
        }
        if rest.contains('#') {
            return Err(bad("must not have a #fragment (percent-encode `#` as %23)"));
        }
        let (base, query) = match rest.split_once('?') {
            Some((base, query)) => (base, query),
            None => (rest, ""),
        };
        let mut options = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| {
                percent_decode(s).ok_or_else(|| bad("an option is not valid percent-encoding"))
            };
            options.push((pair.to_string(), decode(key)?, decode(value)?));
        }
        Ok(StoreUrl {
            scheme: scheme.to_ascii_lowercase(),
            base: base.to_string(),
            options,
            redacted,
        })
    }

    /// The scheme, lower-cased (`redis`, `postgres`, …).
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// The host part (between `://` or the user info's `@` and the first
    /// `/` or `:`), percent-decoded; for `dynamodb://TABLE` the table.
    pub fn host(&self) -> Result<String> {
        let authority = self.base.split('/').next().unwrap_or_default();
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let host = host.split(':').next().unwrap_or_default();
        percent_decode(host)
            .ok_or_else(|| Error::Config(format!("store URL {}: bad host", self.redacted)))
    }

    /// The path after the host (`/0` for a Redis database), raw; empty if none.
    pub fn path(&self) -> &str {
        self.base.find('/').map_or("", |i| &self.base[i..])
    }

    /// Remove the option `key` and return its decoded value; the last one
    /// wins if it is given twice.
    pub fn take(&mut self, key: &str) -> Option<String> {
        let mut found = None;
        self.options.retain(|(_, k, v)| {
            let hit = k == key;
            if hit {
                found = Some(v.clone());
            }
            !hit
        });
        found
    }

    /// Move every remaining option into `options` (for a store whose
    /// client takes no options of its own), leaving none in the URL.
    pub fn drain_into(&mut self, options: &mut StoreOptions) {
        for (_, key, value) in self.options.drain(..) {
            options.insert(key, value);
        }
    }

    /// [`Error::Config`] naming every remaining option that is not one of
    /// `client_options` (the options the store's client reads; an entry
    /// ending in `*` matches any key it starts with), so a misspelt option
    /// is not silently ignored. `known` lists kcl's own, for the message.
    pub fn refuse_unknown_options(&self, client_options: &[&str], known: &[&str]) -> Result<()> {
        let matches = |key: &str, pattern: &str| match pattern.strip_suffix('*') {
            Some(prefix) => key.starts_with(prefix),
            None => key == pattern,
        };
        let unknown: Vec<String> = self
            .options
            .iter()
            .filter(|(_, key, _)| !client_options.iter().any(|p| matches(key, p)))
            .map(|(_, key, _)| format!("{:?}", key.chars().take(64).collect::<String>()))
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        Err(Error::Config(format!(
            "store URL {}: unknown option(s) {}; kcl's options: {}; the client's: {}",
            self.redacted,
            unknown.join(", "),
            known.join(", "),
            client_options.join(", ")
        )))
    }

    /// The URL for the store's client: scheme, user info, host, path and
    /// the options not taken, exactly as written.
    pub fn client_url(&self) -> String {
        let mut url = format!("{}://{}", self.scheme, self.base);
        if !self.options.is_empty() {
            url.push('?');
            let raw: Vec<&str> = self
                .options
                .iter()
                .map(|(raw, _, _)| raw.as_str())
                .collect();
            url.push_str(&raw.join("&"));
        }
        url
    }

    /// The whole URL as given, with passwords hidden ([`redact_url`]).
    pub fn redacted(&self) -> &str {
        &self.redacted
    }
}

/// Key/value settings for a store's `from_map`, read the same way by every
/// store: each setting taken once by its name, and anything left over an
/// [`Error::Config`] naming the unknown keys (so a typo is not silently
/// ignored).
#[derive(Clone, Default)]
pub struct StoreOptions {
    store: &'static str,
    entries: Vec<(String, String)>,
}

impl std::fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown: Vec<(&str, String)> = self
            .entries
            .iter()
            .map(|(k, v)| {
                let v = if is_secret_key(k) || k == "url" {
                    redact_url(v)
                } else {
                    v.clone()
                };
                (k.as_str(), v)
            })
            .collect();
        f.debug_struct("StoreOptions")
            .field("store", &self.store)
            .field("entries", &shown)
            .finish()
    }
}

impl StoreOptions {
    /// Settings for `store` (its name, for messages) from `(key, value)` pairs.
    pub fn new<K, V>(store: &'static str, pairs: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        StoreOptions {
            store,
            entries: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// Add a setting (it replaces an earlier one of the same name).
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.entries.push((key.into(), value.into()));
    }

    /// Remove `key` and return its value (the last one given).
    pub fn take(&mut self, key: &str) -> Option<String> {
        let mut found = None;
        self.entries.retain(|(k, v)| {
            let hit = k == key;
            if hit {
                found = Some(v.clone());
            }
            !hit
        });
        found
    }

    /// `key` as a duration: `250ms`, `5s`, `2m`, or a bare number of
    /// seconds. Zero is refused.
    pub fn take_duration(&mut self, key: &str) -> Result<Option<Duration>> {
        self.take(key)
            .map(|v| parse_duration(&v).map_err(|why| self.invalid(key, &v, why)))
            .transpose()
    }

    /// `key` as a boolean: `true`/`false`, `yes`/`no`, `1`/`0`, `on`/`off`.
    pub fn take_bool(&mut self, key: &str) -> Result<Option<bool>> {
        self.take(key)
            .map(|v| match v.to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" | "on" => Ok(true),
                "false" | "no" | "0" | "off" => Ok(false),
                _ => Err(self.invalid(key, &v, "expected true or false")),
            })
            .transpose()
    }

    /// `key` as a whole number.
    pub fn take_number<T: std::str::FromStr>(&mut self, key: &str) -> Result<Option<T>> {
        self.take(key)
            .map(|v| {
                v.parse()
                    .map_err(|_| self.invalid(key, &v, "expected a whole number"))
            })
            .transpose()
    }

    /// [`Error::Config`] if any setting was not taken, naming the unknown
    /// keys (never their values) and the ones the store knows.
    pub fn finish(self, known: &[&str]) -> Result<()> {
        if self.entries.is_empty() {
            return Ok(());
        }
        let unknown: Vec<String> = self
            .entries
            .iter()
            .map(|(k, _)| format!("{:?}", k.chars().take(64).collect::<String>()))
            .collect();
        Err(Error::Config(format!(
            "unknown {} setting(s) {}; known: {}",
            self.store,
            unknown.join(", "),
            known.join(", ")
        )))
    }

    fn invalid(&self, key: &str, value: &str, why: &str) -> Error {
        let value = if is_secret_key(key) { HIDDEN } else { value };
        Error::Config(format!("{} setting {key}={value:?}: {why}", self.store))
    }
}

/// `250ms`, `5s`, `2m` or a bare number of seconds; never zero.
fn parse_duration(text: &str) -> std::result::Result<Duration, &'static str> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let number: u64 = number
        .parse()
        .map_err(|_| "expected a duration like 500ms or 5s")?;
    let duration = match unit {
        "ms" => Duration::from_millis(number),
        "s" => Duration::from_secs(number),
        "m" | "min" => Duration::from_secs(number.saturating_mul(60)),
        _ => return Err("expected a duration like 500ms, 5s or 2m"),
    };
    if duration.is_zero() {
        return Err("must not be zero");
    }
    Ok(duration)
}

/// Decode `%XX` escapes (and `+` as a space, as in query strings); `None`
/// on a bad escape or bytes that are not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Passwords holding the characters that end a URL's parts early, and
    /// the base64 characters secrets are made of.
    const SECRETS: [&str; 6] = [
        "hunter2",
        "ab/cd+ef==",
        "ab?cd",
        "ab#cd",
        "a/b?c#d@e",
        "x:y/z",
    ];

    #[test]
    fn no_password_ever_shows() {
        for secret in SECRETS {
            for url in [
                format!("redis://:{secret}@127.0.0.1:6379/0"),
                format!("rediss://app:{secret}@cache.example:6380/?prefix=p"),
                format!("postgres://kcl:{secret}@db:5432/app?sslmode=require"),
                format!("postgres://db/app?sslmode=require&password={secret}"),
                format!("postgres://db/app?PassWord={secret}&schema=s"),
                format!("redis+unix:///run/redis.sock?db=1&pass={secret}"),
                format!("redis://{secret}@host"),
                format!("dynamodb://t?secret_access_key={secret}"),
            ] {
                let shown = redact_url(&url);
                assert!(!shown.contains(secret), "{url} -> {shown}");
                if let Err(e) = StoreUrl::parse(&url) {
                    let msg = format!("{e} {e:?}");
                    assert!(!msg.contains(secret), "{url} -> {msg}");
                    assert!(matches!(e, Error::Config(_)), "{e:?}");
                }
                let options = StoreOptions::new("redis", [("url", url.as_str())]);
                assert!(!format!("{options:?}").contains(secret), "{options:?}");
            }
        }
    }

    #[test]
    fn what_is_not_secret_stays_readable() {
        for (url, shown) in [
            (
                "redis://:pw@127.0.0.1:6379/0",
                "redis://:***@127.0.0.1:6379/0",
            ),
            ("redis://a:b:pw@host/1", "redis://a:***@host/1"),
            ("postgres://u:a/b?c#d@db/app", "postgres://u:***@db/app"),
            ("postgres://user@host/db", "postgres://***@host/db"),
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            (
                "postgres://h/db?sslmode=require&password=pw",
                "postgres://h/db?sslmode=require&password=***",
            ),
            ("memory://", "memory://"),
            ("pw", "<unparsed url>"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn unencoded_special_characters_in_a_password_are_refused() {
        for secret in ["ab/cd", "ab?cd", "ab#cd", "a@b"] {
            let url = format!("redis://u:{secret}@127.0.0.1:6379/0");
            let err = StoreUrl::parse(&url).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains("percent-encoded"), "{msg}");
            assert!(!msg.contains(secret), "{msg}");
        }
        // Encoded, the same password parses and reaches the client intact.
        let url = StoreUrl::parse("redis://u:a%2Fb%3Fc%23d%40e@h:1/0?prefix=p").unwrap();
        assert_eq!(
            url.client_url(),
            "redis://u:a%2Fb%3Fc%23d%40e@h:1/0?prefix=p"
        );
        assert!(!format!("{url:?}").contains("a%2Fb"), "{url:?}");
    }

    #[test]
    fn options_are_taken_decoded_and_the_rest_passed_through() {
        let mut url = StoreUrl::parse(
            "postgres://u:p@db:5432/app?schema=my%5Fschema&sslmode=verify-full&application=a",
        )
        .unwrap();
        assert_eq!(url.scheme(), "postgres");
        assert_eq!(url.host().unwrap(), "db");
        assert_eq!(url.path(), "/app");
        assert_eq!(url.take("schema").as_deref(), Some("my_schema"));
        assert_eq!(url.take("application").as_deref(), Some("a"));
        assert_eq!(url.take("schema"), None);
        assert_eq!(
            url.client_url(),
            "postgres://u:p@db:5432/app?sslmode=verify-full"
        );
        assert!(url.refuse_unknown_options(&["sslmode"], &[]).is_ok());
        let err = url.refuse_unknown_options(&["ssl*"], &[]);
        assert!(err.is_ok(), "{err:?}");
        let err = url
            .refuse_unknown_options(&["host"], &["schema"])
            .unwrap_err();
        assert!(err.to_string().contains("\"sslmode\""), "{err}");
        let mut options = StoreOptions::new("postgres", [("x", "1")]);
        url.drain_into(&mut options);
        assert_eq!(url.client_url(), "postgres://u:p@db:5432/app");
        let err = options.finish(&["schema"]).unwrap_err().to_string();
        assert!(
            err.contains("\"x\"") && err.contains("\"sslmode\""),
            "{err}"
        );
        assert!(!err.contains("verify-full"), "{err}");
    }

    #[test]
    fn values_parse_or_name_the_setting() {
        let mut o = StoreOptions::new(
            "redis",
            [
                ("a", "250ms"),
                ("b", "5s"),
                ("c", "2m"),
                ("d", "7"),
                ("e", "0s"),
                ("f", "5 parsecs"),
                ("g", "yes"),
                ("h", "maybe"),
                ("i", "12"),
                ("j", "-1"),
            ],
        );
        assert_eq!(
            o.take_duration("a").unwrap(),
            Some(Duration::from_millis(250))
        );
        assert_eq!(o.take_duration("b").unwrap(), Some(Duration::from_secs(5)));
        assert_eq!(
            o.take_duration("c").unwrap(),
            Some(Duration::from_secs(120))
        );
        assert_eq!(o.take_duration("d").unwrap(), Some(Duration::from_secs(7)));
        assert!(
            o.take_duration("e")
                .unwrap_err()
                .to_string()
                .contains("e=\"0s\"")
        );
        assert!(matches!(o.take_duration("f"), Err(Error::Config(_))));
        assert_eq!(o.take_bool("g").unwrap(), Some(true));
        assert!(matches!(o.take_bool("h"), Err(Error::Config(_))));
        assert_eq!(o.take_number::<u32>("i").unwrap(), Some(12));
        assert!(matches!(o.take_number::<u32>("j"), Err(Error::Config(_))));
        assert_eq!(o.take_duration("missing").unwrap(), None);
        o.finish(&[]).unwrap();
    }
}
