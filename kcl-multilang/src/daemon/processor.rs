//! [`ChildProcessor`]: a [`ShardProcessor`] whose work is done by a
//! MultiLang child process, one per shard.

use std::sync::Arc;

use kcl_core::{
    BoxError, Checkpointer, ExtendedSequenceNumber, InitializeInput, ProcessRecordsInput,
    ProcessorFactory, SequenceNumber, ShardId, ShardProcessor,
};

use super::ChildConfig;
use super::process::{ChildFailure, ChildProcess};
use crate::error::CheckpointError;
use crate::protocol::{
    CheckpointReply, ChildMessage, DaemonMessage, ShutdownReason, encode_daemon,
    encode_process_records,
};

/// Creates a [`ChildProcessor`] per shard.
#[derive(Debug, Clone)]
pub struct ChildProcessorFactory {
    config: Arc<ChildConfig>,
}

impl ChildProcessorFactory {
    /// Children run as `config` says.
    pub fn new(config: ChildConfig) -> Self {
        ChildProcessorFactory {
            config: Arc::new(config),
        }
    }
}

impl ProcessorFactory for ChildProcessorFactory {
    type Processor = ChildProcessor;

    fn create_processor(&self, shard_id: &ShardId) -> ChildProcessor {
        ChildProcessor {
            config: Arc::clone(&self.config),
            shard: shard_id.clone(),
            child: None,
        }
    }
}

/// Drives one child through the protocol for one shard.
///
/// The child is spawned at `initialize`. Any failure of the child (crash,
/// EOF, broken pipe, wrong `status`, no answer within the action timeout)
/// kills that child only and fails the call; under the engine's default
/// retry policy the same call is made again after a backoff, and a new
/// child is spawned and initialized at the shard's last checkpoint before
/// the batch is delivered again.
#[derive(Debug)]
pub struct ChildProcessor {
    config: Arc<ChildConfig>,
    shard: ShardId,
    child: Option<ChildProcess>,
}

/// Which checkpoints the child may make during an action.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Checkpoints {
    /// None (`initialize`, `leaseLost`): `InvalidStateException`.
    Refused,
    /// 1.x `ZOMBIE`: `ShutdownException`, as that daemon answered.
    LeaseGone,
    /// Up to the largest delivered record.
    Allowed,
    /// Up to `SHARD_END` (a null sequence or the last delivered one).
    ShardEnd,
}

impl ChildProcessor {
    async fn start_child(&mut self, checkpoint: &ExtendedSequenceNumber) -> Result<(), BoxError> {
        let mut child = ChildProcess::spawn(&self.config, self.shard.as_str())?;
        let (sequence, sub) = checkpoint.to_parts();
        let mut line = Vec::new();
        encode_daemon(
            &DaemonMessage::Initialize {
                shard_id: self.shard.to_string(),
                sequence_number: Some(sequence),
                sub_sequence_number: Some(i64::try_from(sub).unwrap_or(i64::MAX)),
            },
            &mut line,
        );
        let result = async {
            child.send(line).await?;
            converse(
                &mut child,
                &self.config,
                "initialize",
                Checkpoints::Refused,
                None,
            )
            .await
        }
        .await;
        match result {
            Ok(()) => {
                self.child = Some(child);
                Ok(())
            }
            Err(e) => {
                child.kill().await;
                Err(self.failed(e))
            }
        }
    }

    /// Send one action and hold the conversation until its status; on any
    /// failure the child is killed.
    async fn act(
        &mut self,
        line: Vec<u8>,
        action: &str,
        mode: Checkpoints,
        cp: Option<&mut Checkpointer>,
    ) -> Result<(), BoxError> {
        let Some(child) = self.child.as_mut() else {
            return Err(format!("no child for {}", self.shard).into());
        };
        let result = async {
            child.send(line).await?;
            converse(child, &self.config, action, mode, cp).await
        }
        .await;
        if let Err(e) = result {
            if let Some(mut child) = self.child.take() {
                child.kill().await;
            }
            return Err(self.failed(e));
        }
        Ok(())
    }

    fn failed(&self, e: ChildFailure) -> BoxError {
        tracing::warn!(shard = %self.shard, error = %e, "MultiLang child failed; it is stopped");
        Box::new(e)
    }

    async fn ensure_child(&mut self, cp: &Checkpointer) -> Result<(), BoxError> {
        if self.child.is_none() {
            tracing::info!(shard = %self.shard, checkpoint = %cp.last_checkpoint(), "starting a new MultiLang child");
            let last = cp.last_checkpoint().clone();
            self.start_child(&last).await?;
        }
        Ok(())
    }

    async fn stop_child(&mut self) {
        if let Some(child) = self.child.take() {
            child
                .stop(
                    self.config.exit_wait,
                    self.config.term_wait,
                    self.shard.as_str(),
                )
                .await;
        }
    }

    fn line(message: &DaemonMessage) -> Vec<u8> {
        let mut out = Vec::new();
        encode_daemon(message, &mut out);
        out
    }
}

impl ShardProcessor for ChildProcessor {
    async fn initialize(&mut self, input: InitializeInput) -> Result<(), BoxError> {
        if let Some(mut old) = self.child.take() {
            old.kill().await;
        }
        self.start_child(&input.checkpoint).await
    }

    async fn process_records(
        &mut self,
        input: ProcessRecordsInput,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), BoxError> {
        self.ensure_child(checkpointer).await?;
        let mut line = Vec::new();
        encode_process_records(
            input.records(),
            input.millis_behind_latest,
            self.config.legacy,
            &mut line,
        );
        self.act(
            line,
            "processRecords",
            Checkpoints::Allowed,
            Some(checkpointer),
        )
        .await
    }

    async fn lease_lost(&mut self) {
        if self.child.is_none() {
            return;
        }
        let (message, mode) = if self.config.legacy {
            (
                DaemonMessage::Shutdown {
                    reason: ShutdownReason::Zombie,
                },
                Checkpoints::LeaseGone,
            )
        } else {
            (DaemonMessage::LeaseLost, Checkpoints::Refused)
        };
        let action = message.action().to_string();
        if self
            .act(Self::line(&message), &action, mode, None)
            .await
            .is_ok()
        {
            self.stop_child().await;
        }
    }

    async fn shard_ended(&mut self, checkpointer: &mut Checkpointer) -> Result<(), BoxError> {
        self.ensure_child(checkpointer).await?;
        let message = if self.config.legacy {
            DaemonMessage::Shutdown {
                reason: ShutdownReason::Terminate,
            }
        } else {
            DaemonMessage::ShardEnded
        };
        let action = message.action().to_string();
        self.act(
            Self::line(&message),
            &action,
            Checkpoints::ShardEnd,
            Some(checkpointer),
        )
        .await?;
        // Whatever it did, this child's life is over; a child that did not
        // checkpoint is retried by the engine with a fresh one (Java leaves
        // the shard stuck, KCL issue #211).
        self.stop_child().await;
        Ok(())
    }

    async fn shutdown_requested(
        &mut self,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), BoxError> {
        if self.child.is_none() {
            return Ok(());
        }
        if self.config.legacy {
            // KCL 1.x children know no shutdownRequested.
            self.lease_lost().await;
            return Ok(());
        }
        let result = self
            .act(
                Self::line(&DaemonMessage::ShutdownRequested),
                "shutdownRequested",
                Checkpoints::Allowed,
                Some(checkpointer),
            )
            .await;
        // As Java: after shutdownRequested the child gets leaseLost.
        self.lease_lost().await;
        result
    }
}

/// Read the child's messages until the status for `action`, answering its
/// checkpoint requests.
async fn converse(
    child: &mut ChildProcess,
    config: &ChildConfig,
    action: &str,
    mode: Checkpoints,
    mut cp: Option<&mut Checkpointer>,
) -> Result<(), ChildFailure> {
    loop {
        // The timeout runs from the last message: a child that keeps
        // checkpointing through a long batch is alive.
        match child.recv(config.action_timeout, action).await? {
            ChildMessage::Status { response_for } if response_for == action => return Ok(()),
            ChildMessage::Status { response_for } => {
                return Err(ChildFailure::WrongStatus {
                    expected: action.to_string(),
                    got: response_for,
                });
            }
            ChildMessage::Checkpoint {
                sequence_number,
                sub_sequence_number,
            } => {
                let error = checkpoint(
                    mode,
                    cp.as_deref_mut(),
                    sequence_number.as_deref(),
                    sub_sequence_number,
                )
                .await;
                if let Some(e) = &error {
                    tracing::info!(action, error = e.java_name(), "child checkpoint refused");
                }
                let mut line = Vec::new();
                encode_daemon(
                    &DaemonMessage::Checkpoint(CheckpointReply {
                        sequence_number,
                        sub_sequence_number,
                        error: error.map(|e| e.java_name().to_string()),
                    }),
                    &mut line,
                );
                child.send(line).await?;
            }
        }
    }
}

/// Carry out one checkpoint request; `None` on success.
async fn checkpoint(
    mode: Checkpoints,
    cp: Option<&mut Checkpointer>,
    sequence: Option<&str>,
    sub: Option<i64>,
) -> Option<CheckpointError> {
    let cp = match (mode, cp) {
        (Checkpoints::LeaseGone, _) => return Some(CheckpointError::Shutdown),
        (Checkpoints::Refused, _) | (_, None) => return Some(CheckpointError::InvalidState),
        (_, Some(cp)) => cp,
    };
    let result = match sequence {
        // Null: the largest delivered record (SHARD_END once ended).
        None => cp.checkpoint().await,
        Some(s) => {
            let Ok(sequence) = s.parse::<SequenceNumber>() else {
                return Some(CheckpointError::IllegalArgument);
            };
            let Ok(sub) = u64::try_from(sub.unwrap_or(0)) else {
                return Some(CheckpointError::IllegalArgument);
            };
            let last_delivered = cp
                .largest_delivered()
                .and_then(ExtendedSequenceNumber::sequence_number)
                == Some(&sequence);
            if mode == Checkpoints::ShardEnd && last_delivered {
                cp.checkpoint_shard_end().await
            } else {
                cp.checkpoint_at_sequence(sequence, sub).await
            }
        }
    };
    result.err().map(|e| CheckpointError::from_core(&e))
}
