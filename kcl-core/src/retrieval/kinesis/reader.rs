//! [`PollingReader`]: one shard read with `GetRecords`, paced and retried.

use std::sync::Arc;
use std::time::{Instant as StdInstant, SystemTime};

use async_trait::async_trait;
use aws_sdk_kinesis::operation::get_records::GetRecordsOutput;
use tokio::time::Instant;

use super::error::{Failure, classify, map_error};
use super::source::{SourceInner, child_shard};
use crate::error::{Error, Result};
use crate::ids::ShardId;
use crate::kpl::is_aggregate_framing;
use crate::retrieval::{Record, RecordBatch, ShardReader, StartingPosition};
use crate::sequence::SequenceNumber;

/// Consecutive `ExpiredIteratorException`s tolerated before giving up (each
/// is followed by a fresh `GetShardIterator`, so more than a couple means
/// something is wrong with the clock or the service).
const MAX_CONSECUTIVE_EXPIRIES: u32 = 5;

/// Reads one shard by polling. Made by
/// [`KinesisSource::open_reader`](crate::retrieval::ShardSource::open_reader).
///
/// - Pacing: see [`PollingSettings`](super::PollingSettings).
/// - Throttling and transient failures: retried with exponential backoff
///   and jitter; the error is returned only after `max_retries`.
/// - An expired iterator: a new one is fetched `AFTER_SEQUENCE_NUMBER` of
///   the last record this reader delivered, or at the position the reader
///   was opened with if it has delivered nothing yet — never from the start
///   of the shard.
/// - Shard end: `GetRecords` returns no next iterator. The children come
///   from the response's `ChildShards`, or, when the service leaves that
///   out (older APIs, some emulators), from `ListShards` lineage.
pub struct PollingReader {
    source: Arc<SourceInner>,
    shard_id: ShardId,
    /// The metrics' `stream` label (see [`SourceInner::metric_stream`]).
    stream_label: String,
    opened_at: StartingPosition,
    iterator: Option<String>,
    last_delivered: Option<SequenceNumber>,
    next_call_at: Option<Instant>,
    finished: bool,
}

impl std::fmt::Debug for PollingReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PollingReader")
            .field("stream", &self.source.stream)
            .field("shard_id", &self.shard_id)
            .field("opened_at", &self.opened_at)
            .field("last_delivered", &self.last_delivered)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl PollingReader {
    /// Get the first iterator now, so `LATEST` means "latest at open".
    pub(crate) async fn open(
        source: Arc<SourceInner>,
        shard_id: ShardId,
        from: StartingPosition,
    ) -> Result<Self> {
        let iterator = source.shard_iterator(&shard_id, &from).await?;
        Ok(PollingReader {
            stream_label: source.metric_stream(),
            source,
            shard_id,
            opened_at: from,
            iterator: Some(iterator),
            last_delivered: None,
            next_call_at: None,
            finished: false,
        })
    }

    /// Where to re-seek after an expired iterator.
    fn resume_position(&self) -> StartingPosition {
        match &self.last_delivered {
            Some(seq) => StartingPosition::AfterSequenceNumber(seq.clone()),
            None => self.opened_at.clone(),
        }
    }

    async fn get_records(&mut self) -> Result<GetRecordsOutput> {
        let mut expiries = 0;
        loop {
            let iterator = match &self.iterator {
                Some(it) => it.clone(),
                None => {
                    let from = self.resume_position();
                    let it = self.source.shard_iterator(&self.shard_id, &from).await?;
                    self.iterator = Some(it.clone());
                    it
                }
            };
            let started = StdInstant::now();
            let source = &self.source;
            let result = source
                .retrying("GetRecords", || {
                    source
                        .client
                        .get_records()
                        .shard_iterator(iterator.as_str())
                        .limit(source.settings.max_records)
                        .send()
                })
                .await;
            metrics::histogram!(crate::engine::metric::KINESIS_GET_RECORDS_SECONDS, "shard" => self.shard_id.to_string(), "stream" => self.stream_label.clone())
                .record(started.elapsed().as_secs_f64());
            match result {
                Ok(out) => return Ok(out),
                Err(e) if classify(&e) == Failure::ExpiredIterator => {
                    expiries += 1;
                    tracing::debug!(shard_id = %self.shard_id, expiries, "shard iterator expired, re-seeking");
                    metrics::counter!(crate::engine::metric::KINESIS_EXPIRED_ITERATORS, "shard" => self.shard_id.to_string(), "stream" => self.stream_label.clone())
                        .increment(1);
                    if expiries > MAX_CONSECUTIVE_EXPIRIES {
                        return Err(map_error(e, self.shard_id.as_str()));
                    }
                    self.iterator = None;
                }
                Err(e) => {
                    return Err(map_error(
                        e,
                        &format!("shard {} of stream {}", self.shard_id, self.source.stream),
                    ));
                }
            }
        }
    }
}

#[async_trait]
impl ShardReader for PollingReader {
    async fn next_batch(&mut self) -> Result<RecordBatch> {
        self.next_batch_into(Vec::new()).await
    }

    async fn next_batch_into(&mut self, mut records: Vec<Record>) -> Result<RecordBatch> {
        if self.finished {
            return Err(Error::generic(
                "kinesis",
                format!(
                    "reader on {} already returned the shard's end",
                    self.shard_id
                ),
            ));
        }
        if let Some(at) = self.next_call_at {
            tokio::time::sleep_until(at).await;
        }
        let out = self.get_records().await?;
        let called_at = Instant::now();

        records.clear();
        records.reserve(out.records().len());
        // Checked as each payload is copied, while it is in cache.
        let mut has_aggregates = false;
        for r in out.records() {
            let record = convert(r)?;
            has_aggregates |= is_aggregate_framing(&record.data);
            records.push(record);
        }
        if let Some(last) = records.last() {
            self.last_delivered = Some(last.sequence_number.clone());
        }
        // Reported as a gauge by the engine's prefetch (label `shard`), the
        // one place it is recorded.
        let millis_behind_latest = out.millis_behind_latest().map(|m| m.max(0) as u64);

        let settings = &self.source.settings;
        let backlog = !records.is_empty() || millis_behind_latest.unwrap_or(0) > 0;
        let wait = if backlog {
            settings.min_call_interval
        } else {
            settings.idle_time
        };
        self.next_call_at = Some(called_at + wait);

        let shard_end = match out.next_shard_iterator() {
            Some(next) => {
                self.iterator = Some(next.to_owned());
                None
            }
            None => {
                self.finished = true;
                self.iterator = None;
                let children = if out.child_shards().is_empty() {
                    // Not knowing the children must not cost the batch: the
                    // contract lets us say "unknown" (empty) and the engine
                    // then learns them from its own shard sync.
                    match self.source.children_from_lineage(&self.shard_id).await {
                        Ok(children) => children,
                        Err(e) => {
                            tracing::warn!(shard_id = %self.shard_id, error = %e, "shard ended; children unknown");
                            Vec::new()
                        }
                    }
                } else {
                    out.child_shards()
                        .iter()
                        .map(child_shard)
                        .collect::<Result<Vec<_>>>()?
                };
                tracing::debug!(shard_id = %self.shard_id, children = children.len(), "shard end");
                Some(children)
            }
        };
        Ok(RecordBatch {
            records,
            millis_behind_latest,
            shard_end,
            has_aggregates: Some(has_aggregates),
        })
    }
}

pub(crate) fn convert(r: &aws_sdk_kinesis::types::Record) -> Result<Record> {
    let sequence_number: SequenceNumber = r.sequence_number().parse().map_err(|e| {
        Error::generic(
            "kinesis",
            format!(
                "record with bad sequence number {:?}: {e}",
                r.sequence_number()
            ),
        )
    })?;
    let mut record = Record::new(
        sequence_number,
        r.partition_key(),
        bytes::Bytes::copy_from_slice(r.data().as_ref()),
    );
    record.approximate_arrival_timestamp = r
        .approximate_arrival_timestamp()
        .and_then(|t| SystemTime::try_from(*t).ok());
    Ok(record)
}
