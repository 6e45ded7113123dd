//! [`CheckpointError`]: the checkpoint errors of the protocol, by the Java
//! exception names the daemon sends.

/// A checkpoint the daemon refused, by the Java exception's simple class
/// name in the reply's `error` field.
///
/// In a child, a [`kcl_core::Checkpointer`] call that the daemon refused
/// fails with the [`kcl_core::Error`] this maps to (see
/// [`into_core`](Self::into_core)); the `CheckpointError` is kept as the
/// error's source where the variant has one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// `InvalidStateException`: no checkpointer for this action
    /// (`initialize`, `leaseLost`), or the store is in a bad state.
    #[error("InvalidStateException: checkpointing is not allowed now")]
    InvalidState,
    /// `ShutdownException`: the lease is no longer held.
    #[error("ShutdownException: the lease is no longer held")]
    Shutdown,
    /// `ThrottlingException`: the lease store throttled; retryable.
    #[error("ThrottlingException: the lease store throttled the checkpoint")]
    Throttling,
    /// `KinesisClientLibDependencyException`: another store failure;
    /// retryable.
    #[error("KinesisClientLibDependencyException: the lease store failed")]
    Dependency,
    /// `IllegalArgumentException`: not a number, a negative sub-sequence
    /// number, or outside [last checkpoint, largest delivered].
    #[error("IllegalArgumentException: not a valid checkpoint position")]
    IllegalArgument,
    /// Any other name a daemon sent.
    #[error("{0}")]
    Other(String),
}

impl CheckpointError {
    /// Parse the reply's `error` string.
    pub fn from_java_name(name: &str) -> Self {
        match name {
            "InvalidStateException" => CheckpointError::InvalidState,
            "ShutdownException" => CheckpointError::Shutdown,
            "ThrottlingException" => CheckpointError::Throttling,
            "KinesisClientLibDependencyException" => CheckpointError::Dependency,
            "IllegalArgumentException" => CheckpointError::IllegalArgument,
            other => CheckpointError::Other(other.to_string()),
        }
    }

    /// The name on the wire.
    pub fn java_name(&self) -> &str {
        match self {
            CheckpointError::InvalidState => "InvalidStateException",
            CheckpointError::Shutdown => "ShutdownException",
            CheckpointError::Throttling => "ThrottlingException",
            CheckpointError::Dependency => "KinesisClientLibDependencyException",
            CheckpointError::IllegalArgument => "IllegalArgumentException",
            CheckpointError::Other(name) => name,
        }
    }

    /// Whether the same checkpoint may succeed if tried again later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            CheckpointError::Throttling | CheckpointError::Dependency
        )
    }

    /// What the engine's error type calls this: `Shutdown` is a
    /// [`Conflict`](kcl_core::Error::Conflict) (the lease was lost),
    /// `Throttling` is [`Throttled`](kcl_core::Error::Throttled),
    /// `Dependency` is [`Unavailable`](kcl_core::Error::Unavailable),
    /// `IllegalArgument` is
    /// [`InvalidCheckpoint`](kcl_core::Error::InvalidCheckpoint), the rest
    /// [`Generic`](kcl_core::Error::Generic).
    pub fn into_core(self, shard: &str) -> kcl_core::Error {
        match self {
            CheckpointError::Shutdown => kcl_core::Error::conflict(
                shard,
                "the MultiLang daemon answered ShutdownException: the lease is no longer held",
            ),
            CheckpointError::Throttling => kcl_core::Error::Throttled {
                service: "multilang daemon",
                source: Some(Box::new(self)),
            },
            CheckpointError::Dependency => kcl_core::Error::Unavailable {
                service: "multilang daemon",
                source: Some(Box::new(self)),
            },
            CheckpointError::IllegalArgument => kcl_core::Error::InvalidCheckpoint(format!(
                "the MultiLang daemon refused it: {self}"
            )),
            other => kcl_core::Error::Generic {
                store: "multilang daemon",
                source: Box::new(other),
            },
        }
    }

    /// The name a daemon answers for an engine checkpoint error.
    pub fn from_core(error: &kcl_core::Error) -> Self {
        match error {
            kcl_core::Error::Conflict { .. } | kcl_core::Error::NotFound { .. } => {
                CheckpointError::Shutdown
            }
            kcl_core::Error::Throttled { .. } => CheckpointError::Throttling,
            kcl_core::Error::InvalidCheckpoint(_) => CheckpointError::IllegalArgument,
            kcl_core::Error::NotInitialized(_) => CheckpointError::InvalidState,
            _ => CheckpointError::Dependency,
        }
    }
}
