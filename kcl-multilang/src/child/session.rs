//! The child's session loop: one daemon action in, the processor called,
//! exactly one `status` out.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use kcl_core::processor::DetachedCheckpointer;
use kcl_core::retrieval::Record;
use kcl_core::{
    ExtendedSequenceNumber, InitializeInput, ProcessRecordsInput, SequenceNumber, ShardId,
    ShardProcessor,
};
use tokio::io::{AsyncBufRead, AsyncWrite};
use tokio::sync::Mutex;

use super::channel::{Channel, DaemonCheckpoints};
use crate::protocol::{ChildMessage, DaemonMessage, WireRecord};

/// How long a failed `process_records` waits before it is called again
/// with the same batch, at first and at most.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// Serve one daemon connection until its end of input.
pub(crate) async fn serve<P, R, W>(mut processor: P, input: R, output: W) -> std::io::Result<()>
where
    P: ShardProcessor,
    R: AsyncBufRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let channel = Arc::new(Mutex::new(Channel::new(input, output)));
    let store = Arc::new(DaemonCheckpoints {
        channel: Arc::clone(&channel),
    });
    let mut checkpointer: Option<DetachedCheckpointer> = None;
    let mut shard = unknown_shard();
    loop {
        let Some(message) = channel.lock().await.next_message().await? else {
            tracing::debug!("the daemon closed stdin; exiting");
            return Ok(());
        };
        let action = message.action().to_string();
        match message {
            DaemonMessage::Initialize {
                shard_id,
                sequence_number,
                sub_sequence_number,
            } => {
                shard = ShardId::new(&shard_id).unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "initialize with an unusable shard id");
                    unknown_shard()
                });
                let position = initial_position(sequence_number.as_deref(), sub_sequence_number);
                checkpointer = Some(DetachedCheckpointer::new(
                    store.clone(),
                    shard.clone(),
                    position.clone(),
                ));
                let input = InitializeInput {
                    shard_id: shard.clone(),
                    checkpoint: position,
                    pending_checkpoint: None,
                };
                if let Err(e) = processor.initialize(input).await {
                    tracing::error!(shard = %shard, error = %e, "initialize failed");
                }
            }
            DaemonMessage::ProcessRecords {
                records,
                millis_behind_latest,
            } => {
                let cp = ensure(&mut checkpointer, &store, &shard);
                let records = to_records(records);
                if let Some(last) = records.last() {
                    cp.on_delivered(last.extended_sequence_number());
                }
                let input = ProcessRecordsInput {
                    shard_id: shard.clone(),
                    records: Arc::new(records),
                    millis_behind_latest: millis_behind_latest.and_then(|m| u64::try_from(m).ok()),
                };
                process_with_retry(&mut processor, input, cp).await;
            }
            DaemonMessage::ShardEnded => {
                let cp = ensure(&mut checkpointer, &store, &shard);
                shard_ended(&mut processor, cp, &shard).await;
            }
            DaemonMessage::Shutdown { reason } if reason.is_shard_end() => {
                let cp = ensure(&mut checkpointer, &store, &shard);
                shard_ended(&mut processor, cp, &shard).await;
            }
            DaemonMessage::LeaseLost | DaemonMessage::Shutdown { .. } => {
                // KCL 1.x ZOMBIE: checkpoints must fail, as in that daemon.
                ensure(&mut checkpointer, &store, &shard).on_lease_lost();
                processor.lease_lost().await;
            }
            DaemonMessage::ShutdownRequested => {
                let cp = ensure(&mut checkpointer, &store, &shard);
                if let Err(e) = processor.shutdown_requested(cp.checkpointer()).await {
                    tracing::warn!(shard = %shard, error = %e, "shutdown_requested failed");
                }
            }
            DaemonMessage::Checkpoint(_) => {
                tracing::warn!("ignoring a checkpoint reply no request was waiting for");
                continue;
            }
            DaemonMessage::Unknown { .. } => {
                tracing::warn!(action = %action, "unknown action; answering it without calling the processor");
            }
        }
        channel
            .lock()
            .await
            .send(&ChildMessage::Status {
                response_for: action,
            })
            .await?;
    }
}

fn ensure<'a, R, W>(
    checkpointer: &'a mut Option<DetachedCheckpointer>,
    store: &Arc<DaemonCheckpoints<R, W>>,
    shard: &ShardId,
) -> &'a mut DetachedCheckpointer
where
    R: AsyncBufRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    checkpointer.get_or_insert_with(|| {
        tracing::warn!("the daemon sent an action before initialize");
        DetachedCheckpointer::new(
            store.clone(),
            shard.clone(),
            ExtendedSequenceNumber::TrimHorizon,
        )
    })
}

/// Call `process_records` until it succeeds or the lease is lost; nothing
/// is skipped (the engine's default policy). The daemon's timeout, if it
/// has one, bounds this.
async fn process_with_retry<P: ShardProcessor>(
    processor: &mut P,
    input: ProcessRecordsInput,
    cp: &mut DetachedCheckpointer,
) {
    let mut delay = RETRY_MIN;
    loop {
        match processor
            .process_records(input.clone(), cp.checkpointer())
            .await
        {
            Ok(()) => {
                cp.on_processed();
                return;
            }
            Err(e) if cp.checkpointer().is_lease_lost() => {
                tracing::warn!(shard = %input.shard_id, error = %e, "process_records failed after the lease was lost");
                return;
            }
            Err(e) => {
                tracing::warn!(shard = %input.shard_id, error = %e, retry_in = ?delay, "process_records failed; retrying the same batch");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(RETRY_MAX);
            }
        }
    }
}

async fn shard_ended<P: ShardProcessor>(
    processor: &mut P,
    cp: &mut DetachedCheckpointer,
    shard: &ShardId,
) {
    cp.on_shard_ended();
    if let Err(e) = processor.shard_ended(cp.checkpointer()).await {
        tracing::error!(shard = %shard, error = %e, "shard_ended failed");
    }
}

/// The checkpoint an `initialize` carries; a missing or unparsable one is
/// logged and read as `TRIM_HORIZON` (the daemon's range check still
/// applies to every checkpoint).
fn initial_position(sequence: Option<&str>, sub: Option<i64>) -> ExtendedSequenceNumber {
    let sub = sub.and_then(|s| u64::try_from(s).ok()).unwrap_or(0);
    match sequence {
        None => ExtendedSequenceNumber::TrimHorizon,
        Some(s) => ExtendedSequenceNumber::from_parts(s, sub).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "initialize with an unusable checkpoint");
            ExtendedSequenceNumber::TrimHorizon
        }),
    }
}

/// Wire records to engine records; one whose sequence number does not
/// parse is logged and dropped (it could never be checkpointed).
fn to_records(records: Vec<WireRecord>) -> Vec<Record> {
    records
        .into_iter()
        .filter_map(|r| {
            let sequence: SequenceNumber = match r.sequence_number.parse() {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "dropping a record with an unusable sequence number");
                    return None;
                }
            };
            let sub = r.sub_sequence_number.and_then(|s| u64::try_from(s).ok());
            let mut record = Record::new(sequence, r.partition_key, Bytes::from(r.data));
            record.sub_sequence_number = sub.unwrap_or(0);
            record.aggregated = sub.is_some_and(|s| s > 0);
            record.approximate_arrival_timestamp = r
                .approximate_arrival_timestamp
                .and_then(|ms| u64::try_from(ms).ok())
                .map(|ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms));
            Some(record)
        })
        .collect()
}

fn unknown_shard() -> ShardId {
    // A constant that passes ShardId's check (non-empty, printable).
    ShardId::new("shardId-unknown").expect("a valid constant shard id")
}
