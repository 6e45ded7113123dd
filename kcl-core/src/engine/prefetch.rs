//! The prefetch task: reads a shard ahead of its processor, bounded by
//! records and bytes, so a slow processor back-pressures the reader
//! instead of growing memory.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Instant;

use crate::ids::{HashKeyRange, ShardId};
use crate::kpl::{deaggregate_into, is_aggregate_framing};
use crate::retrieval::{ChildShard, Record, ShardSource, StartingPosition};
use crate::sequence::{ExtendedSequenceNumber, SequenceNumber};

use super::metric;

/// One batch read ahead, holding its share of the prefetch bounds until
/// dropped.
#[derive(Debug)]
pub(crate) struct Prefetched {
    pub(crate) records: Vec<Record>,
    pub(crate) shard_end: Option<Vec<ChildShard>>,
    pub(crate) millis_behind_latest: Option<u64>,
    _records_permit: Option<OwnedSemaphorePermit>,
    _bytes_permit: Option<OwnedSemaphorePermit>,
}

/// What the prefetch task needs.
#[derive(Debug)]
pub(crate) struct PrefetchSpec {
    pub(crate) source: Arc<dyn ShardSource>,
    pub(crate) shard_id: ShardId,
    pub(crate) start: StartingPosition,
    /// Drop records at or below this position (a restart in the middle of
    /// an aggregate, or the checkpointed record itself).
    pub(crate) skip_through: Option<ExtendedSequenceNumber>,
    pub(crate) hash_key_range: Option<HashKeyRange>,
    pub(crate) max_records: usize,
    pub(crate) max_bytes: usize,
    pub(crate) retry_min_delay: Duration,
    pub(crate) retry_max_delay: Duration,
}

/// Start reading; batches arrive on the returned channel, which closes
/// after the shard's last batch. Abort the returned handle to stop.
pub(crate) fn spawn(
    spec: PrefetchSpec,
) -> (mpsc::Receiver<Prefetched>, tokio::task::JoinHandle<()>) {
    // The semaphores are the real bound; the channel only needs room for
    // the batches they admit.
    let (tx, rx) = mpsc::channel(1024);
    let handle = tokio::spawn(run(spec, tx));
    (rx, handle)
}

async fn run(mut spec: PrefetchSpec, tx: mpsc::Sender<Prefetched>) {
    let records_sem = Arc::new(Semaphore::new(spec.max_records));
    let bytes_sem = Arc::new(Semaphore::new(spec.max_bytes));
    let shard = spec.shard_id.to_string();
    let mut position = spec.start.clone();
    let mut last_read: Option<SequenceNumber> = None;
    let mut delay = spec.retry_min_delay;
    loop {
        let mut reader = match spec
            .source
            .open_reader(&spec.shard_id, position.clone())
            .await
        {
            Ok(reader) => reader,
            Err(e) => {
                tracing::warn!(shard = %spec.shard_id, error = %e, retry_in = ?delay, "opening the shard reader failed");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(spec.retry_max_delay);
                continue;
            }
        };
        loop {
            let started = Instant::now();
            let batch = match reader.next_batch().await {
                Ok(batch) => batch,
                Err(e) => {
                    if e.is_retryable() {
                        tracing::warn!(shard = %spec.shard_id, error = %e, retry_in = ?delay, "reading the shard failed; reopening");
                    } else {
                        tracing::error!(shard = %spec.shard_id, error = %e, retry_in = ?delay, "reading the shard failed (not retryable); reopening");
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(spec.retry_max_delay);
                    if let Some(last) = &last_read {
                        position = StartingPosition::AfterSequenceNumber(last.clone());
                    }
                    break;
                }
            };
            metrics::histogram!(metric::GET_RECORDS_SECONDS, "shard" => shard.clone())
                .record(started.elapsed().as_secs_f64());
            delay = spec.retry_min_delay;
            if let Some(ms) = batch.millis_behind_latest {
                metrics::gauge!(metric::MILLIS_BEHIND_LATEST, "shard" => shard.clone())
                    .set(ms as f64);
            }
            if let Some(last) = batch.records.last() {
                last_read = Some(last.sequence_number.clone());
            }
            // Plain records (the common case) pass through without being
            // moved into a new vector.
            let mut out = if batch.records.iter().any(|r| is_aggregate_framing(&r.data)) {
                let mut out = Vec::with_capacity(batch.records.len());
                for record in batch.records {
                    deaggregate_into(record, spec.hash_key_range.as_ref(), &mut out);
                }
                out
            } else {
                batch.records
            };
            if let Some(through) = &spec.skip_through {
                out.retain(|r| r.extended_sequence_number() > *through);
                // Once past the checkpointed record, nothing more to skip.
                if last_read
                    .as_ref()
                    .zip(through.sequence_number())
                    .is_some_and(|(l, t)| l > t)
                {
                    spec.skip_through = None;
                }
            }
            if out.is_empty() && batch.shard_end.is_none() {
                continue;
            }
            let bytes: usize = out
                .iter()
                .map(|r| r.data.len() + r.partition_key.len())
                .sum();
            let records = out;
            let take_records = records.len().min(spec.max_records) as u32;
            let take_bytes = bytes.min(spec.max_bytes) as u32;
            let (Ok(records_permit), Ok(bytes_permit)) = (
                Arc::clone(&records_sem)
                    .acquire_many_owned(take_records)
                    .await,
                Arc::clone(&bytes_sem).acquire_many_owned(take_bytes).await,
            ) else {
                return;
            };
            let end = batch.shard_end.is_some();
            let item = Prefetched {
                records,
                shard_end: batch.shard_end,
                millis_behind_latest: batch.millis_behind_latest,
                _records_permit: Some(records_permit),
                _bytes_permit: Some(bytes_permit),
            };
            if tx.send(item).await.is_err() || end {
                return;
            }
        }
    }
}
