//! The messages of the protocol, as plain data.
//!
//! Field names follow the Java message classes
//! (`software.amazon.kinesis.multilang.messages`); nullable Java fields are
//! `Option`s.

/// `reason` of the legacy `shutdown` action (KCL 1.x and 2.0.x daemons).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShutdownReason {
    /// KCL 1.x: the shard ended; the child must checkpoint.
    Terminate,
    /// KCL 1.x: the lease was lost; checkpoints fail.
    Zombie,
    /// KCL 2.0.x: the shard ended.
    ShardEnd,
    /// KCL 2.0.x: the lease was lost.
    LeaseLost,
    /// Any other reason string (kept as sent).
    Other(String),
}

impl ShutdownReason {
    /// The wire string.
    pub fn as_str(&self) -> &str {
        match self {
            ShutdownReason::Terminate => "TERMINATE",
            ShutdownReason::Zombie => "ZOMBIE",
            ShutdownReason::ShardEnd => "SHARD_END",
            ShutdownReason::LeaseLost => "LEASE_LOST",
            ShutdownReason::Other(s) => s,
        }
    }

    /// Parse a wire string.
    pub fn parse(s: &str) -> Self {
        match s {
            "TERMINATE" => ShutdownReason::Terminate,
            "ZOMBIE" => ShutdownReason::Zombie,
            "SHARD_END" => ShutdownReason::ShardEnd,
            "LEASE_LOST" => ShutdownReason::LeaseLost,
            other => ShutdownReason::Other(other.to_string()),
        }
    }

    /// Whether the shard ended (the child must checkpoint), as opposed to
    /// the lease being lost.
    pub fn is_shard_end(&self) -> bool {
        matches!(self, ShutdownReason::Terminate | ShutdownReason::ShardEnd)
    }
}

/// One record as the daemon sends it (Java's `JsonFriendlyRecord`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireRecord {
    /// The payload (base64 on the wire).
    pub data: Vec<u8>,
    /// The partition key.
    pub partition_key: String,
    /// The sequence number (decimal digits).
    pub sequence_number: String,
    /// Epoch milliseconds, if known.
    pub approximate_arrival_timestamp: Option<i64>,
    /// The index in a KPL aggregate (0 otherwise; null from KCL 1.x daemons
    /// for plain records).
    pub sub_sequence_number: Option<i64>,
}

/// A message from the daemon to the child.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DaemonMessage {
    /// `initialize`: the shard and the checkpoint it resumes from.
    Initialize {
        /// The shard id.
        shard_id: String,
        /// A sequence number or a sentinel (`TRIM_HORIZON`, `LATEST`,
        /// `AT_TIMESTAMP`), or null.
        sequence_number: Option<String>,
        /// The sub-sequence number.
        sub_sequence_number: Option<i64>,
    },
    /// `processRecords`: one batch.
    ProcessRecords {
        /// The records.
        records: Vec<WireRecord>,
        /// How far behind the tip, if known.
        millis_behind_latest: Option<i64>,
    },
    /// `leaseLost`: no checkpointer.
    LeaseLost,
    /// `shardEnded`: checkpoint `SHARD_END`, then answer.
    ShardEnded,
    /// `shutdownRequested`: a last chance to checkpoint.
    ShutdownRequested,
    /// Legacy `shutdown` (KCL 1.x, 2.0.x).
    Shutdown {
        /// Why.
        reason: ShutdownReason,
    },
    /// The answer to a child's checkpoint request.
    Checkpoint(CheckpointReply),
    /// An action this library does not know (a future daemon's); the child
    /// still answers it with a `status`.
    Unknown {
        /// The action string.
        action: String,
    },
}

impl DaemonMessage {
    /// The `action` string on the wire.
    pub fn action(&self) -> &str {
        match self {
            DaemonMessage::Initialize { .. } => "initialize",
            DaemonMessage::ProcessRecords { .. } => "processRecords",
            DaemonMessage::LeaseLost => "leaseLost",
            DaemonMessage::ShardEnded => "shardEnded",
            DaemonMessage::ShutdownRequested => "shutdownRequested",
            DaemonMessage::Shutdown { .. } => "shutdown",
            DaemonMessage::Checkpoint(_) => "checkpoint",
            DaemonMessage::Unknown { action } => action,
        }
    }
}

/// The daemon's answer to a checkpoint request: echoes what the child sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointReply {
    /// The sequence number the child sent.
    pub sequence_number: Option<String>,
    /// The sub-sequence number the child sent.
    pub sub_sequence_number: Option<i64>,
    /// Null on success, else the Java exception's simple class name.
    pub error: Option<String>,
}

/// A message from the child to the daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChildMessage {
    /// `status`: the action is done.
    Status {
        /// The action answered.
        response_for: String,
    },
    /// `checkpoint`: a checkpoint request (null = the largest delivered
    /// record; at `shardEnded`, `SHARD_END`).
    Checkpoint {
        /// The sequence number, as sent.
        sequence_number: Option<String>,
        /// The sub-sequence number (null = 0).
        sub_sequence_number: Option<i64>,
    },
}
