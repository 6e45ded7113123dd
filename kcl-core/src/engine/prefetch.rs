//! The prefetch task: reads a shard ahead of its processor, bounded by
//! records and bytes, so a slow processor back-pressures the reader
//! instead of growing memory.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Instant;

use crate::error::Error;
use crate::ids::{HashKeyRange, ShardId};
use crate::kpl::deaggregate_into;
use crate::retrieval::{ChildShard, Record, RecordBatch, ShardSource, StartingPosition};
use crate::sequence::{ExtendedSequenceNumber, SequenceNumber};

use super::metric;

/// One batch read ahead, holding its share of the prefetch bounds until
/// dropped.
#[derive(Debug)]
pub(crate) struct Prefetched {
    pub(crate) records: Vec<Record>,
    /// The payload bytes of `records` (for the lease's throughput figure,
    /// counted here in the pass that sizes the batch).
    pub(crate) data_bytes: u64,
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

/// The emptied record vector of a finished batch, going back from the
/// consumer to its prefetch task for the reader to fill again
/// ([`ShardReader::next_batch_into`](crate::retrieval::ShardReader::next_batch_into)).
/// A busy shard then reads into the same few allocations: fresh
/// megabyte-sized vectors per read are returned to the system by the
/// allocator and faulted in again, which cost the engine a tenth of its
/// throughput (glibc, 10,000-record batches). One vector is kept, only one
/// at least half full, and a read into it that comes back empty frees it,
/// so an idle shard holds none.
#[derive(Clone, Debug, Default)]
pub(crate) struct Spares(Arc<Mutex<Option<Vec<Record>>>>);

impl Spares {
    /// Give back the records of a finished batch: they are dropped here
    /// (on the caller's thread) and the vector kept if worth it.
    pub(crate) fn give(&self, mut records: Vec<Record>) {
        let worth_keeping = records.len() * 2 >= records.capacity() && records.capacity() > 0;
        records.clear();
        if worth_keeping {
            let mut spare = self.0.lock().unwrap_or_else(|e| e.into_inner());
            spare.get_or_insert(records);
        }
    }

    /// A vector to read into: the spare, else a new empty one.
    fn take(&self) -> Vec<Record> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_default()
    }
}

/// Start reading; batches arrive on the returned channel, which closes
/// after the shard's last batch; give their vectors back through the
/// returned [`Spares`]. Abort the returned handle to stop.
pub(crate) fn spawn(
    spec: PrefetchSpec,
) -> (
    mpsc::Receiver<Prefetched>,
    Spares,
    tokio::task::JoinHandle<()>,
) {
    // The semaphores are the real bound; the channel only needs room for
    // the batches they admit.
    let (tx, rx) = mpsc::channel(1024);
    let spares = Spares::default();
    let handle = tokio::spawn(run(spec, tx, spares.clone()));
    (rx, spares, handle)
}

async fn run(mut spec: PrefetchSpec, tx: mpsc::Sender<Prefetched>, spares: Spares) {
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
            let batch = match reader.next_batch_into(spares.take()).await {
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
            // moved into a new vector, and without reading each payload
            // again when the source already looked.
            let has_aggregates = batch
                .has_aggregates
                .unwrap_or_else(|| RecordBatch::any_aggregate(&batch.records));
            let mut out = if has_aggregates {
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
            for (i, piece) in pieces.into_iter().enumerate() {
                // Each piece fits the bounds, so what is read ahead never
                // exceeds them, however many sub-records an aggregate held.
                let take_records = piece.records.len().min(spec.max_records) as u32;
                let take_bytes = piece.bytes.min(spec.max_bytes) as u32;
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
                    records: piece.records,
                    data_bytes: piece.data_bytes,
                    shard_end,
                    millis_behind_latest: batch.millis_behind_latest,
                    _records_permit: Some(records_permit),
                    _bytes_permit: Some(bytes_permit),
                };
                if tx.send(item).await.is_err() || is_end {
                    return;
                }
                // Let the consumer start on it now: a reader that is
                // always ready (a backlog) would otherwise keep this
                // thread until the read-ahead bound is full.
                tokio::task::yield_now().await;
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
            data_bytes: 0,
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

/// One piece of a read, within the prefetch bounds.
#[derive(Debug, Default)]
struct Piece {
    records: Vec<Record>,
    /// Payload and partition key bytes: what the byte bound counts.
    bytes: usize,
    /// Payload bytes alone.
    data_bytes: u64,
}

impl Piece {
    fn push(&mut self, record: Record) {
        self.bytes += record_bytes(&record);
        self.data_bytes += record.data.len() as u64;
        self.records.push(record);
    }
}

/// Split `records` into pieces of at most `max_records` records and
/// `max_bytes` bytes (a single larger record goes alone), each moved once,
/// with its byte counts. Always at least one piece, possibly empty (a
/// shard's end with no records).
fn pieces(records: Vec<Record>, max_records: usize, max_bytes: usize) -> Vec<Piece> {
    // One pass over the batch for both counts: it may be megabytes of
    // records, more than the cache holds.
    let (bytes, data_bytes) = records.iter().fold((0, 0), |(bytes, data), r| {
        (bytes + record_bytes(r), data + r.data.len())
    });
    if records.len() <= max_records && bytes <= max_bytes {
        // The common case: the batch as read, not copied.
        return vec![Piece {
            records,
            bytes,
            data_bytes: data_bytes as u64,
        }];
    }
    let mut out = Vec::new();
    let mut piece = Piece::default();
    for record in records {
        let size = record_bytes(&record);
        if !piece.records.is_empty()
            && (piece.records.len() >= max_records || piece.bytes + size > max_bytes)
        {
            out.push(std::mem::take(&mut piece));
        }
        piece.push(record);
    }
    out.push(piece);
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
        assert_eq!(got[0].records.len(), 5);
        assert_eq!(got[0].bytes, 50);
        assert_eq!(got[0].data_bytes, 45);
    }

    #[test]
    fn large_batches_split_by_records_and_bytes_in_order() {
        let got = pieces((0..25).map(|n| record(n, 9)).collect(), 10, 1000);
        let sizes: Vec<usize> = got.iter().map(|p| p.records.len()).collect();
        assert_eq!(sizes, [10, 10, 5]);
        assert!(
            got.iter()
                .all(|p| p.data_bytes == 9 * p.records.len() as u64)
        );
        let got = pieces((0..25).map(|n| record(n, 9)).collect(), 100, 35);
        assert!(
            got.iter()
                .all(|p| p.records.len() == 3 && p.bytes == 30 || p.records.len() == 1)
        );
        let order: Vec<_> = got
            .iter()
            .flat_map(|p| p.records.iter().map(|r| r.sequence_number.clone()))
            .collect();
        assert_eq!(order.len(), 25);
        assert!(order.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn an_oversized_record_goes_alone() {
        let got = pieces(vec![record(0, 5), record(1, 500), record(2, 5)], 10, 100);
        let sizes: Vec<usize> = got.iter().map(|p| p.records.len()).collect();
        assert_eq!(sizes, [1, 1, 1]);
    }

    #[test]
    fn spares_keep_one_emptied_vector_at_least_half_full() {
        let spares = Spares::default();
        let full = |n: usize| {
            let mut v = Vec::with_capacity(n);
            v.extend((0..n as u32).map(|i| record(i, 1)));
            v
        };
        let mut sparse = Vec::with_capacity(100);
        sparse.push(record(0, 1));
        spares.give(sparse);
        spares.give(Vec::new());
        assert_eq!(spares.take().capacity(), 0, "neither kept");
        spares.give(full(8));
        spares.give(full(16));
        let kept = spares.take();
        assert!(kept.is_empty(), "emptied");
        assert!(
            (8..16).contains(&kept.capacity()),
            "the first kept, capacity and all"
        );
        assert_eq!(spares.take().capacity(), 0, "only one kept");
    }

    #[test]
    fn a_shard_end_without_records_is_one_empty_piece() {
        let got = pieces(Vec::new(), 10, 100);
        assert_eq!(got.len(), 1);
        assert!(got[0].records.is_empty());
    }
}
