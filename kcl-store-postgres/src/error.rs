//! The store's own failures and how they map into [`kcl_core::Error`].
//!
//! Connection trouble (I/O, pool timeouts, a closed pool, SQLSTATE class
//! 08, the server shutting down: 57P01-57P03, a cancelled statement:
//! 57014) is [`Error::Unavailable`]; lack of resources (class 53, e.g. too
//! many connections) is [`Error::Throttled`]; serialization failures and
//! deadlocks (40001, 40P01) are [`Error::Unavailable`] too, since the same
//! call succeeds when retried. The fencing outcomes of the store's own
//! statements (the `KC00x` SQLSTATEs its `kcl_fail` function raises) are
//! [`Error::Conflict`], [`Error::InvalidCheckpoint`] and
//! [`Error::NotFound`]. Everything else is [`Error::Generic`] with store
//! `"postgres"`.

use kcl_core::{Error, ExtendedSequenceNumber, ShardId};

const SERVICE: &str = "postgres";

/// SQLSTATE raised by `kcl_fail` when the lease changed owner or generation.
pub(crate) const SQLSTATE_FENCED: &str = "KC001";
/// SQLSTATE raised by `kcl_fail` when a checkpoint would move backwards.
pub(crate) const SQLSTATE_BACKWARDS: &str = "KC002";
/// SQLSTATE raised by `kcl_fail` when the lease does not exist.
pub(crate) const SQLSTATE_NOT_FOUND: &str = "KC003";

/// Map a sqlx error that is not one of the store's fencing outcomes.
pub(crate) fn map_sqlx(error: sqlx::Error) -> Error {
    use sqlx::Error as E;
    match &error {
        E::Io(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed | E::Protocol(_) => {
            unavailable(error)
        }
        E::Configuration(e) => Error::Config(format!("postgres: {e}")),
        E::Database(db) => match db.code().as_deref() {
            Some(code) if code.starts_with("08") => unavailable(error),
            Some("57P01" | "57P02" | "57P03" | "57014" | "40001" | "40P01" | "55P03") => {
                unavailable(error)
            }
            Some(code) if code.starts_with("53") => Error::Throttled {
                service: SERVICE,
                source: Some(Box::new(error)),
            },
            _ => Error::generic(SERVICE, error),
        },
        _ => Error::generic(SERVICE, error),
    }
}

/// Map an error from a statement that may raise the store's fencing
/// SQLSTATEs (the transactional checkpoint).
pub(crate) fn map_fenced_sqlx(
    error: sqlx::Error,
    shard_id: &ShardId,
    checkpoint: &ExtendedSequenceNumber,
) -> Error {
    if let sqlx::Error::Database(db) = &error {
        match db.code().as_deref() {
            Some(SQLSTATE_FENCED) => return Error::lease_fenced(shard_id),
            Some(SQLSTATE_BACKWARDS) => {
                return Error::InvalidCheckpoint(format!(
                    "{checkpoint} is below the stored checkpoint of {shard_id}"
                ));
            }
            Some(SQLSTATE_NOT_FOUND) => return Error::lease_not_found(shard_id),
            _ => {}
        }
    }
    map_sqlx(error)
}

fn unavailable(error: sqlx::Error) -> Error {
    Error::Unavailable {
        service: SERVICE,
        source: Some(Box::new(error)),
    }
}

/// A stored value that does not decode (a row written by something else).
pub(crate) fn corrupt(what: impl Into<String>) -> Error {
    Error::generic(SERVICE, what.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_trouble_is_retryable() {
        for e in [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
        ] {
            assert!(map_sqlx(e).is_retryable());
        }
        assert!(!map_sqlx(sqlx::Error::RowNotFound).is_retryable());
        assert!(matches!(
            map_sqlx(sqlx::Error::RowNotFound),
            Error::Generic {
                store: "postgres",
                ..
            }
        ));
    }
}
