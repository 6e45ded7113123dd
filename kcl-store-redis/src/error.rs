//! Mapping Redis errors and script outcomes into [`kcl_core::Error`].
//!
//! - Connection refused or reset, other I/O errors, timeouts, and the
//!   server's transient replies (`LOADING`, `TRYAGAIN`, `BUSY`,
//!   `MASTERDOWN`, `CLUSTERDOWN`, `READONLY` during a failover) are
//!   [`Error::Unavailable`]: retryable, and the fencing rules make a retry
//!   of a write whose outcome is unknown safe.
//! - A script's refusal is [`Error::Conflict`], [`Error::NotFound`] or
//!   [`Error::InvalidCheckpoint`].
//! - Anything else (a wrong password, a malformed stored lease, a script
//!   error) is [`Error::Generic`] with `store: "redis"`.

use kcl_core::{Error, ShardId};
use redis::{ErrorKind, RedisError, ServerErrorKind};

/// The name every error of this store carries.
pub(crate) const STORE: &str = "redis";

/// A Redis client or server error, by what it means to the caller.
pub(crate) fn from_redis(err: RedisError) -> Error {
    if is_transient(&err) {
        Error::Unavailable {
            service: STORE,
            source: Some(Box::new(err)),
        }
    } else {
        Error::generic(STORE, err)
    }
}

fn is_transient(err: &RedisError) -> bool {
    if err.is_io_error()
        || err.is_connection_refusal()
        || err.is_timeout()
        || err.is_connection_dropped()
    {
        return true;
    }
    match err.kind() {
        ErrorKind::Server(
            ServerErrorKind::BusyLoading
            | ServerErrorKind::TryAgain
            | ServerErrorKind::MasterDown
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::ReadOnly,
        )
        | ErrorKind::ClusterConnectionNotFound => true,
        // `BUSY` (another script runs too long) has no kind of its own;
        // the others are matched by code too, whatever kind parsing gave.
        _ => matches!(
            err.code(),
            Some("BUSY" | "LOADING" | "TRYAGAIN" | "MASTERDOWN" | "CLUSTERDOWN")
        ),
    }
}

/// Stored data that does not decode: not retryable.
pub(crate) fn malformed(what: impl Into<String>) -> Error {
    let what: String = what.into();
    Error::generic(STORE, format!("malformed data in redis: {what}"))
}

pub(crate) fn conflict(shard_id: &ShardId, reason: String) -> Error {
    Error::conflict(shard_id.as_str(), reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_failures_are_retryable() {
        let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(from_redis(refused).is_retryable());
        let reset = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(from_redis(reset).is_retryable());
        for code in ["LOADING", "TRYAGAIN", "BUSY", "MASTERDOWN"] {
            let err = redis::make_extension_error(code.into(), Some("x".into()));
            assert!(from_redis(err).is_retryable(), "{code}");
        }
    }

    #[test]
    fn other_failures_are_generic() {
        let err = RedisError::from((ErrorKind::AuthenticationFailed, "bad password"));
        match from_redis(err) {
            Error::Generic { store, .. } => assert_eq!(store, "redis"),
            other => panic!("expected Generic, got {other:?}"),
        }
    }
}
