//! The prefetch task: reads a shard ahead of its processor, bounded by
//! records and bytes, so a slow processor back-pressures the reader
//! instead of growing memory.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Instant;

use crate::error::Error;
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
    /// Where to reopen when nothing was read yet (the lease's pinned
    /// start, for a shard opened at LATEST): `start` again if `None`.
    pub(crate) reopen_from: Option<StartingPosition>,
    /// Drop records at or below this position (a restart in the middle of
    /// an aggregate, or the checkpointed record itself).
    pub(crate) skip_through: Option<ExtendedSequenceNumber>,
    pub(crate) hash_key_range: Option<HashKeyRange>,
    /// Most records read ahead.
    pub(crate) max_records: usize,
    /// Most bytes (payload plus partition key) read ahead.
    pub(crate) max_bytes: usize,
    /// Most records in one batch handed to the processor.
    pub(crate) batch_records: usize,
    /// Pass reads that returned no records on as empty batches (Java's
    /// `callProcessRecordsEvenForEmptyRecordList`) instead of dropping them.
    pub(crate) deliver_empty: bool,
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
    let shard = metric::shard_labels(&spec.shard_id);
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
                if matches!(e, Error::NotFound { .. }) && shard_is_gone(&spec).await {
                    end_of_vanished_shard(&spec, &tx).await;
                    return;
                }
                tracing::warn!(shard = %spec.shard_id, error = %e, retry_in = ?delay, "opening the shard reader failed");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(spec.retry_max_delay);
                if let (None, Some(pinned)) = (&last_read, &spec.reopen_from) {
                    position = pinned.clone();
                }
                continue;
            }
        };
        loop {
            let started = Instant::now();
            let batch = match reader.next_batch().await {
                Ok(batch) => batch,
                Err(e) => {
                    if matches!(e, Error::NotFound { .. }) && shard_is_gone(&spec).await {
                        end_of_vanished_shard(&spec, &tx).await;
                        return;
                    }
                    if e.is_retryable() {
                        tracing::warn!(shard = %spec.shard_id, error = %e, retry_in = ?delay, "reading the shard failed; reopening");
                    } else {
                        tracing::error!(shard = %spec.shard_id, error = %e, retry_in = ?delay, "reading the shard failed (not retryable); reopening");
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(spec.retry_max_delay);
                    match (&last_read, &spec.reopen_from) {
                        (Some(last), _) => {
                            position = StartingPosition::AfterSequenceNumber(last.clone());
                        }
                        (None, Some(pinned)) => position = pinned.clone(),
                        (None, None) => {}
                    }
                    break;
                }
            };
            metrics::histogram!(metric::GET_RECORDS_SECONDS, shard.clone())
                .record(started.elapsed().as_secs_f64());
            delay = spec.retry_min_delay;
            if let Some(ms) = batch.millis_behind_latest {
                metrics::gauge!(metric::MILLIS_BEHIND_LATEST, shard.clone()).set(ms as f64);
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
            if out.is_empty() && batch.shard_end.is_none() && !spec.deliver_empty {
                continue;
            }
            let mut end = batch.shard_end;
            let pieces = pieces(
                out,
                spec.batch_records.min(spec.max_records),
                spec.max_bytes,
            );
            let count = pieces.len();
            for (i, (records, bytes)) in pieces.into_iter().enumerate() {
                // Each piece fits the bounds, so what is read ahead never
                // exceeds them, however many sub-records an aggregate held.
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
                let shard_end = if i + 1 == count { end.take() } else { None };
                let is_end = shard_end.is_some();
                let item = Prefetched {
                    records,
                    shard_end,
                    millis_behind_latest: batch.millis_behind_latest,
                    _records_permit: Some(records_permit),
                    _bytes_permit: Some(bytes_permit),
                };
                if tx.send(item).await.is_err() || is_end {
                    return;
                }
            }
        }
    }
}

/// Whether a shard the stream reported missing (ResourceNotFound after a
/// long outage or past retention) is really gone: the stream lists, and
/// not this shard, or lists it closed. A stream that cannot be listed (it
/// may be gone itself) is not taken as the shard's end.
async fn shard_is_gone(spec: &PrefetchSpec) -> bool {
    match spec.source.list_shards().await {
        Ok(shards) => shards
            .iter()
            .find(|s| s.shard_id == spec.shard_id)
            .is_none_or(|s| s.is_closed()),
        Err(e) => {
            tracing::warn!(shard = %spec.shard_id, error = %e, "listing shards to check a missing shard failed");
            false
        }
    }
}

/// Report a vanished shard as ended, with no records; the consumer learns
/// its children from the listing.
async fn end_of_vanished_shard(spec: &PrefetchSpec, tx: &mpsc::Sender<Prefetched>) {
    tracing::warn!(shard = %spec.shard_id, "the shard no longer exists; treating it as ended");
    let _ = tx
        .send(Prefetched {
            records: Vec::new(),
            shard_end: Some(Vec::new()),
            millis_behind_latest: None,
            _records_permit: None,
            _bytes_permit: None,
        })
        .await;
}

/// The bytes a record holds against the prefetch bound.
fn record_bytes(record: &Record) -> usize {
    record.data.len() + record.partition_key.len()
}

/// Split `records` into pieces of at most `max_records` records and
/// `max_bytes` bytes (a single larger record goes alone), each moved once,
/// with its byte count. Always at least one piece, possibly empty (a
/// shard's end with no records).
fn pieces(records: Vec<Record>, max_records: usize, max_bytes: usize) -> Vec<(Vec<Record>, usize)> {
    let total: usize = records.iter().map(record_bytes).sum();
    if records.len() <= max_records && total <= max_bytes {
        // The common case: the batch as read, not copied.
        return vec![(records, total)];
    }
    let mut out = Vec::new();
    let mut piece = Vec::new();
    let mut bytes = 0;
    for record in records {
        let size = record_bytes(&record);
        if !piece.is_empty() && (piece.len() >= max_records || bytes + size > max_bytes) {
            out.push((std::mem::take(&mut piece), bytes));
            bytes = 0;
        }
        bytes += size;
        piece.push(record);
    }
    out.push((piece, bytes));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u32, size: usize) -> Record {
        Record::new(SequenceNumber::from(u128::from(n)), "k", vec![0u8; size])
    }

    #[test]
    fn small_batches_pass_whole() {
        let got = pieces((0..5).map(|n| record(n, 9)).collect(), 10, 1000);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0.len(), 5);
        assert_eq!(got[0].1, 50);
    }

    #[test]
    fn large_batches_split_by_records_and_bytes_in_order() {
        let got = pieces((0..25).map(|n| record(n, 9)).collect(), 10, 1000);
        let sizes: Vec<usize> = got.iter().map(|(r, _)| r.len()).collect();
        assert_eq!(sizes, [10, 10, 5]);
        let got = pieces((0..25).map(|n| record(n, 9)).collect(), 100, 35);
        assert!(
            got.iter()
                .all(|(r, b)| r.len() == 3 && *b == 30 || r.len() == 1)
        );
        let order: Vec<_> = got
            .iter()
            .flat_map(|(r, _)| r.iter().map(|r| r.sequence_number.clone()))
            .collect();
        assert_eq!(order.len(), 25);
        assert!(order.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn an_oversized_record_goes_alone() {
        let got = pieces(vec![record(0, 5), record(1, 500), record(2, 5)], 10, 100);
        let sizes: Vec<usize> = got.iter().map(|(r, _)| r.len()).collect();
        assert_eq!(sizes, [1, 1, 1]);
    }

    #[test]
    fn a_shard_end_without_records_is_one_empty_piece() {
        let got = pieces(Vec::new(), 10, 100);
        assert_eq!(got.len(), 1);
        assert!(got[0].0.is_empty());
    }
}
