//! The reader a [`FakeStream`] hands out.

use std::time::UNIX_EPOCH;

use async_trait::async_trait;

use super::FakeStream;
use crate::error::Result;
use crate::ids::ShardId;
use crate::retrieval::{Record, RecordBatch, ShardReader, StartingPosition};
use crate::sequence::SequenceNumber;

/// Reads one shard of a fake stream. Like a polling reader it keeps an
/// "iterator" (here: an index and the epoch it was made in); when
/// [`FakeStream::expire_iterators`] bumps the epoch, the next call re-seeks
/// just after the last record delivered, as a real reader must after
/// `ExpiredIteratorException`.
pub(super) struct FakeReader {
    stream: FakeStream,
    shard_id: ShardId,
    position: usize,
    epoch: u64,
    last_delivered: Option<SequenceNumber>,
    finished: bool,
}

impl std::fmt::Debug for FakeReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeReader")
            .field("shard_id", &self.shard_id)
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

impl FakeReader {
    pub(super) fn new(stream: FakeStream, shard_id: ShardId, position: usize) -> Self {
        let epoch = stream.lock().iterator_epoch;
        FakeReader {
            stream,
            shard_id,
            position,
            epoch,
            last_delivered: None,
            finished: false,
        }
    }

    /// One attempt: `Some(batch)`, its records pushed into `buffer`, if
    /// there is something to return now (else `buffer` is left as it was).
    fn poll(&mut self, buffer: &mut Vec<Record>) -> Result<Option<RecordBatch>> {
        let mut state = self.stream.lock();
        state.stats.get_records_calls += 1;
        if let Some(faults) = state.read_faults.get_mut(&self.shard_id)
            && !faults.is_empty()
        {
            return Err(faults.remove(0).to_error());
        }
        if self.epoch != state.iterator_epoch {
            // The iterator expired: seek again from what we know, the last
            // record delivered, never from where the reader started.
            self.epoch = state.iterator_epoch;
            state.stats.reseeks += 1;
            if let Some(last) = &self.last_delivered {
                let shard = state.shard(&self.shard_id)?;
                self.position =
                    shard.position_of(&StartingPosition::AfterSequenceNumber(last.clone()));
            }
        }
        let max_records = self.stream.config.max_records;
        let shard = state.shard(&self.shard_id)?;
        let end = shard.records.len().min(self.position + max_records);
        let stored = &shard.records[self.position..end];
        let at_end = end == shard.records.len();
        let shard_end = (at_end && !shard.is_open()).then(|| shard.children.clone());
        if stored.is_empty() && shard_end.is_none() {
            return Ok(None);
        }
        let mut records = std::mem::take(buffer);
        records.clear();
        let mut has_aggregates = false;
        records.extend(stored.iter().map(|r| {
            has_aggregates |= r.is_aggregate;
            r.record.clone()
        }));
        let millis_behind_latest = match (records.last(), shard.records.last()) {
            (Some(last), Some(newest)) if !at_end => {
                let ms = |r: &Record| {
                    r.approximate_arrival_timestamp
                        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                        .map_or(0, |d| d.as_millis() as u64)
                };
                Some(ms(&newest.record).saturating_sub(ms(last)))
            }
            _ => Some(0),
        };
        self.position = end;
        state.stats.records_delivered += records.len() as u64;
        if let Some(last) = records.last() {
            self.last_delivered = Some(last.sequence_number.clone());
        }
        Ok(Some(RecordBatch {
            records,
            millis_behind_latest,
            shard_end,
            has_aggregates: Some(has_aggregates),
        }))
    }
}

#[async_trait]
impl ShardReader for FakeReader {
    async fn next_batch(&mut self) -> Result<RecordBatch> {
        self.next_batch_into(Vec::new()).await
    }

    async fn next_batch_into(&mut self, mut records: Vec<Record>) -> Result<RecordBatch> {
        if self.finished {
            return Err(crate::Error::NotFound {
                what: format!("more records in {}: the shard has ended", self.shard_id),
            });
        }
        // Register for the wake-up before looking, so a record put between
        // the look and the wait is not missed.
        let notify = self.stream.new_records.clone();
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if let Some(batch) = self.poll(&mut records)? {
            self.finished = batch.shard_end.is_some();
            return Ok(batch);
        }
        let _ = tokio::time::timeout(self.stream.config.empty_wait, notified).await;
        let batch = self.poll(&mut records)?.unwrap_or_default();
        self.finished = batch.shard_end.is_some();
        Ok(RecordBatch {
            millis_behind_latest: batch.millis_behind_latest.or(Some(0)),
            ..batch
        })
    }
}
