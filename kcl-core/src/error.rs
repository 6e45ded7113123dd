//! The one error type every store and the engine return.

use std::error::Error as StdError;

use crate::ids::ShardId;
use crate::sequence::ExtendedSequenceNumber;

/// A boxed error from a backend, kept as the `source` of an [`Error`].
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Shorthand for `Result<T, kcl_core::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong, by what it means to the caller.
///
/// Backends keep their detailed errors private and map them into one of
/// these variants, so the engine can decide what to do without knowing
/// which store it runs on. [`Error::is_retryable`] tells whether trying the
/// same call again later may succeed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A compare-and-set lost: the lease changed owner or generation (or the
    /// counter an observer saw moved) since the caller read it. Never retried
    /// blindly: the caller must re-read and decide again.
    #[error("conflict on lease {lease}: {reason}")]
    Conflict {
        /// The lease key (shard id) the write was for.
        lease: String,
        /// What did not match.
        reason: String,
    },

    /// The thing asked for does not exist (a lease, a stream, a table).
    #[error("not found: {what}")]
    NotFound {
        /// What was looked for.
        what: String,
    },

    /// The service asked us to slow down. Retryable with backoff.
    #[error("throttled by {service}{}", fmt_source(.source))]
    Throttled {
        /// Which service (for example `"redis"`, `"kinesis"`).
        service: &'static str,
        /// The backend's own error, if any.
        #[source]
        source: Option<BoxError>,
    },

    /// The service could not be reached or failed transiently (connection
    /// refused, timeout, 5xx). Retryable with backoff.
    #[error("{service} unavailable{}", fmt_source(.source))]
    Unavailable {
        /// Which service.
        service: &'static str,
        /// The backend's own error, if any.
        #[source]
        source: Option<BoxError>,
    },

    /// The store or stream is not set up (no table, no schema, stream not
    /// active) and the caller asked us not to create it.
    #[error("not initialized: {0}")]
    NotInitialized(String),

    /// Invalid configuration, found before anything was started.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// A checkpoint that would move backwards, lies outside what was
    /// delivered, or does not parse.
    #[error("invalid checkpoint: {0}")]
    InvalidCheckpoint(String),

    /// A processor failed under
    /// [`ProcessorErrorPolicy::Stop`](crate::processor::ProcessorErrorPolicy::Stop):
    /// the worker stopped; this is the processor's error.
    #[error("processor failed: {0}")]
    Processor(#[source] BoxError),

    /// Any other backend failure, not retryable as such.
    #[error("{store} error: {source}")]
    Generic {
        /// Which store or service (for example `"postgres"`).
        store: &'static str,
        /// The backend's own error.
        #[source]
        source: BoxError,
    },
}

fn fmt_source(source: &Option<BoxError>) -> String {
    match source {
        Some(e) => format!(": {e}"),
        None => String::new(),
    }
}

impl Error {
    /// Whether the same call may succeed if tried again later, after a
    /// backoff. True for [`Error::Throttled`] and [`Error::Unavailable`].
    ///
    /// ```
    /// use kcl_core::Error;
    /// assert!(Error::Unavailable { service: "redis", source: None }.is_retryable());
    /// assert!(!Error::Conflict { lease: "shardId-0".into(), reason: "owner changed".into() }.is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Throttled { .. } | Error::Unavailable { .. })
    }

    /// Whether this is a lost compare-and-set ([`Error::Conflict`]).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict { .. })
    }

    /// Shorthand for building an [`Error::Conflict`].
    pub fn conflict(lease: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Conflict {
            lease: lease.into(),
            reason: reason.into(),
        }
    }

    /// The contract's outcome for a write to a lease that does not exist
    /// ([`Error::NotFound`]), worded the same by every store.
    pub fn lease_not_found(shard_id: &ShardId) -> Self {
        Error::NotFound {
            what: format!("lease {shard_id}"),
        }
    }

    /// The contract's fencing outcome ([`Error::Conflict`]): the writer no
    /// longer holds the lease (its owner or generation changed).
    pub fn lease_fenced(shard_id: &ShardId) -> Self {
        Error::conflict(
            shard_id.as_str(),
            "owner or generation changed since the lease was taken",
        )
    }

    /// The contract's never-backwards outcome ([`Error::InvalidCheckpoint`]).
    pub fn checkpoint_backwards(
        shard_id: &ShardId,
        stored: &dyn std::fmt::Display,
        requested: &ExtendedSequenceNumber,
    ) -> Self {
        Error::InvalidCheckpoint(format!(
            "{requested} is below the stored checkpoint {stored} of {shard_id}"
        ))
    }

    /// Shorthand for building an [`Error::Generic`].
    pub fn generic(store: &'static str, source: impl Into<BoxError>) -> Self {
        Error::Generic {
            store,
            source: source.into(),
        }
    }
}
