//! The child's end of the pipe: reads the daemon's messages, writes ours,
//! and answers checkpoints as a [`CheckpointStore`] so the engine's own
//! [`Checkpointer`](kcl_core::Checkpointer) works inside a child.

use std::sync::Arc;

use async_trait::async_trait;
use kcl_core::{CheckpointStore, Error, ExtendedSequenceNumber, ShardId};
use tokio::io::{AsyncBufRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::Mutex;

use crate::error::CheckpointError;
use crate::protocol::{
    ChildMessage, DaemonMessage, Line, LineReader, encode_child, parse_daemon_line,
};

/// A `processRecords` line can be tens of MB; allow far more than that.
const MAX_DAEMON_LINE: usize = 1 << 30;

/// Both directions of the protocol, shared by the session loop and the
/// checkpoint store (only one of them uses it at a time: lock-step).
pub(crate) struct Channel<R, W> {
    input: LineReader<R>,
    output: W,
    /// An action that arrived while a checkpoint reply was awaited (a
    /// daemon breaking lock-step): handled next by the session loop.
    pending: Option<DaemonMessage>,
    buf: Vec<u8>,
}

impl<R: AsyncBufRead + Unpin, W: AsyncWrite + Unpin> Channel<R, W> {
    pub(crate) fn new(input: R, output: W) -> Self {
        Channel {
            input: LineReader::new(input, MAX_DAEMON_LINE),
            output,
            pending: None,
            buf: Vec::new(),
        }
    }

    /// The next message from the daemon; `None` at end of input. Lines
    /// that are not messages are logged and skipped.
    pub(crate) async fn next_message(&mut self) -> std::io::Result<Option<DaemonMessage>> {
        if let Some(message) = self.pending.take() {
            return Ok(Some(message));
        }
        loop {
            match self.input.next_line().await? {
                None => return Ok(None),
                Some(Line::Skipped(why)) => {
                    tracing::warn!(why, "skipping a line from the MultiLang daemon")
                }
                Some(Line::Text(text)) => match parse_daemon_line(&text) {
                    Ok(message) => return Ok(Some(message)),
                    Err(e) => {
                        tracing::warn!(error = %e, "skipping a line from the MultiLang daemon")
                    }
                },
            }
        }
    }

    pub(crate) async fn send(&mut self, message: &ChildMessage) -> std::io::Result<()> {
        self.buf.clear();
        encode_child(message, &mut self.buf);
        self.output.write_all(&self.buf).await?;
        self.output.flush().await
    }

    /// Send a checkpoint request and wait for its reply.
    async fn checkpoint(
        &mut self,
        sequence_number: Option<String>,
        sub_sequence_number: Option<i64>,
    ) -> Result<Result<(), CheckpointError>, ChannelClosed> {
        self.send(&ChildMessage::Checkpoint {
            sequence_number,
            sub_sequence_number,
        })
        .await
        .map_err(|_| ChannelClosed)?;
        match self.next_message().await {
            Ok(Some(DaemonMessage::Checkpoint(reply))) => Ok(match reply.error {
                None => Ok(()),
                Some(name) => Err(CheckpointError::from_java_name(&name)),
            }),
            Ok(Some(other)) => {
                tracing::warn!(
                    action = other.action(),
                    "the daemon sent an action while a checkpoint reply was awaited"
                );
                self.pending = Some(other);
                Err(ChannelClosed)
            }
            Ok(None) | Err(_) => Err(ChannelClosed),
        }
    }
}

/// The daemon went away (or broke lock-step) before replying.
struct ChannelClosed;

/// The [`CheckpointStore`] a child's checkpointer writes into: each write
/// is a `checkpoint` request to the daemon, which checks and stores it.
pub(crate) struct DaemonCheckpoints<R, W> {
    pub(crate) channel: Arc<Mutex<Channel<R, W>>>,
}

impl<R, W> std::fmt::Debug for DaemonCheckpoints<R, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DaemonCheckpoints").finish_non_exhaustive()
    }
}

#[async_trait]
impl<R, W> CheckpointStore for DaemonCheckpoints<R, W>
where
    R: AsyncBufRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    /// The daemon does not tell a child its stored checkpoint except at
    /// `initialize`; the session keeps that one.
    async fn get_checkpoint(
        &self,
        _shard_id: &ShardId,
    ) -> kcl_core::Result<Option<ExtendedSequenceNumber>> {
        Ok(None)
    }

    async fn set_checkpoint(
        &self,
        shard_id: &ShardId,
        position: &ExtendedSequenceNumber,
    ) -> kcl_core::Result<()> {
        let (sequence, sub) = match position {
            // The daemon maps a null sequence at `shardEnded` to SHARD_END;
            // a "SHARD_END" string would not parse as a number in Java.
            ExtendedSequenceNumber::ShardEnd => (None, None),
            ExtendedSequenceNumber::Sequence {
                sequence,
                sub_sequence,
            } => (
                Some(sequence.to_string()),
                Some(i64::try_from(*sub_sequence).unwrap_or(i64::MAX)),
            ),
            other => (Some(other.to_parts().0), Some(0)),
        };
        let mut channel = self.channel.lock().await;
        match channel.checkpoint(sequence, sub).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(refused)) => Err(refused.into_core(shard_id.as_str())),
            Err(ChannelClosed) => Err(Error::Generic {
                store: "multilang daemon",
                source:
                    "the daemon closed the pipe or broke lock-step before replying to a checkpoint"
                        .into(),
            }),
        }
    }
}
