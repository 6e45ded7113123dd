//! [`FanOutReader`]: one shard read through `SubscribeToShard`, with the
//! subscription renewed, watched and retried.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::operation::subscribe_to_shard::SubscribeToShardError;
use aws_sdk_kinesis::primitives::event_stream::EventReceiver;
use aws_sdk_kinesis::types::error::SubscribeToShardEventStreamError;
use aws_sdk_kinesis::types::{
    ShardIteratorType, SubscribeToShardEvent, SubscribeToShardEventStream,
};

use super::super::error::{Failure, classify, map_error};
use super::super::reader::convert;
use super::super::source::child_shard;
use super::{FanOutInner, metric};
use crate::error::{Error, Result};
use crate::ids::ShardId;
use crate::kpl::is_aggregate_framing;
use crate::retrieval::{Record, RecordBatch, ShardReader, StartingPosition};
use crate::sequence::SequenceNumber;

type Events = EventReceiver<SubscribeToShardEventStream, SubscribeToShardEventStreamError>;

/// Reads one shard through an enhanced fan-out subscription. Made by
/// [`FanOutSource::open_reader`](crate::retrieval::ShardSource::open_reader).
///
/// - Each `SubscribeToShardEvent` is one batch, in order; an idle shard's
///   empty events come through as empty batches.
/// - Renewal: when a subscription ends (Kinesis ends each after 5 minutes)
///   or breaks mid-stream (reset, GOAWAY, an exception event), the reader
///   subscribes again `AT_SEQUENCE_NUMBER` of the last continuation
///   sequence number and drops any record at or below the last one it
///   delivered, so there is no gap and no repeat whichever way a service
///   reads "continuation" (the last record's number, or the next one's).
/// - No silent stall: `send()` is bounded by
///   [`subscribe_timeout`](super::FanOutSettings::subscribe_timeout), and
///   the watchdog — each wait for an event is bounded by
///   [`event_timeout`](super::FanOutSettings::event_timeout) — replaces a
///   subscription that went quiet, with a warning and
///   `kcl_fanout_stalls_total`.
/// - `ResourceInUseException` (the previous owner's subscription still
///   open after a failover), `LimitExceededException` and throttling are
///   retried with exponential backoff and jitter, up to `max_retries`
///   consecutive failures; then a retryable error goes to the caller.
/// - Back-pressure: the reader holds no buffer of its own. Events are read
///   off the connection only when the caller asks for the next batch, so a
///   slow processor leaves them in the HTTP flow-control window and the
///   service slows down; memory does not grow.
/// - Shard end: an event with no continuation, or with `ChildShards` and
///   no records, ends the shard; the children come from the event, or from
///   `ListShards` lineage when it has none. A service that never ends a
///   closed shard's subscription (kinesis-mock) is caught by the listing:
///   once caught up (an empty event, nothing behind), the reader asks
///   `ListShards` at most every
///   [`closed_check_interval`](super::FanOutSettings::closed_check_interval)
///   whether the shard has closed.
pub struct FanOutReader {
    source: Arc<FanOutInner>,
    shard_id: ShardId,
    /// The metrics' `stream` label (the polling source's
    /// `metric_stream`).
    stream_label: String,
    opened_at: StartingPosition,
    last_delivered: Option<SequenceNumber>,
    continuation: Option<SequenceNumber>,
    events: Option<Events>,
    /// Consecutive failed subscribes, stalls, broken streams, and
    /// subscriptions that ended before their first event.
    failures: u32,
    /// Whether the current subscription has delivered an event.
    evented: bool,
    /// When a caught-up reader may next ask `ListShards` if the shard closed.
    next_closed_check: tokio::time::Instant,
    finished: bool,
}

impl std::fmt::Debug for FanOutReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FanOutReader")
            .field("shard_id", &self.shard_id)
            .field("opened_at", &self.opened_at)
            .field("last_delivered", &self.last_delivered)
            .field("continuation", &self.continuation)
            .field("subscribed", &self.events.is_some())
            .field("failures", &self.failures)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

/// Why a subscription is being replaced.
#[derive(Clone, Copy, Debug)]
enum Renewal {
    /// The service ended it (every 5 minutes).
    Ended,
    /// No event within `event_timeout`.
    Stalled,
    /// The stream broke or carried an exception.
    Broken,
}

impl Renewal {
    fn as_str(self) -> &'static str {
        match self {
            Renewal::Ended => "ended",
            Renewal::Stalled => "stalled",
            Renewal::Broken => "broken",
        }
    }
}

impl FanOutReader {
    /// Subscribe now, so `LATEST` means "latest at open".
    pub(crate) async fn open(
        source: Arc<FanOutInner>,
        shard_id: ShardId,
        from: StartingPosition,
    ) -> Result<Self> {
        let first_closed_check =
            tokio::time::Instant::now() + source.settings.closed_check_interval;
        let mut reader = FanOutReader {
            stream_label: source.polling.metric_stream(),
            source,
            shard_id,
            opened_at: from,
            last_delivered: None,
            continuation: None,
            events: None,
            failures: 0,
            evented: false,
            next_closed_check: first_closed_check,
            finished: false,
        };
        reader.subscribe().await?;
        Ok(reader)
    }

    /// Where the next subscription starts: the continuation if any event
    /// came, else just after the last record, else where the reader opened.
    fn resume_position(&self) -> StartingPosition {
        match (&self.continuation, &self.last_delivered) {
            (Some(c), _) => StartingPosition::AtSequenceNumber(c.clone()),
            (None, Some(last)) => StartingPosition::AfterSequenceNumber(last.clone()),
            (None, None) => self.opened_at.clone(),
        }
    }

    /// Count a failure; wait out its backoff, or give up past `max_retries`.
    async fn failed(&mut self, give_up: impl FnOnce() -> Error) -> Result<()> {
        self.failures += 1;
        let settings = &self.source.settings;
        if self.failures as usize > settings.max_retries {
            self.failures = 0;
            return Err(give_up());
        }
        // A first stall or break resubscribes at once; repeats back off.
        if self.failures > 1 {
            tokio::time::sleep(settings.backoff(self.failures - 1)).await;
        }
        Ok(())
    }

    async fn subscribe(&mut self) -> Result<()> {
        loop {
            let from = self.resume_position();
            let source = self.source.clone();
            let settings = &source.settings;
            let request = source
                .polling
                .client
                .subscribe_to_shard()
                .consumer_arn(&source.consumer_arn)
                .shard_id(self.shard_id.as_str())
                .starting_position(sdk_position(&from)?)
                .send();
            let what = format!(
                "shard {} of stream {}",
                self.shard_id, source.polling.stream
            );
            match tokio::time::timeout(settings.subscribe_timeout, request).await {
                Ok(Ok(out)) => {
                    metrics::counter!(metric::SUBSCRIPTIONS, "shard" => self.shard_id.to_string(), "stream" => self.stream_label.clone())
                        .increment(1);
                    tracing::debug!(shard_id = %self.shard_id, ?from, "subscribed");
                    self.events = Some(out.event_stream);
                    self.evented = false;
                    return Ok(());
                }
                Ok(Err(e)) => {
                    let failure = classify(&e);
                    if !failure.is_retryable() {
                        return Err(map_error(e, &what));
                    }
                    log_subscribe_failure(&self.shard_id, failure, &e);
                    self.failed(|| map_error(e, &what)).await?;
                }
                Err(_) => {
                    tracing::warn!(
                        shard_id = %self.shard_id,
                        timeout = ?settings.subscribe_timeout,
                        "SubscribeToShard did not answer in time; retrying"
                    );
                    metrics::counter!(metric::STALLS, "shard" => self.shard_id.to_string(), "stream" => self.stream_label.clone(), "phase" => "subscribe")
                        .increment(1);
                    let timeout = settings.subscribe_timeout;
                    self.failed(|| Error::Unavailable {
                        service: "kinesis",
                        source: Some(
                            format!("SubscribeToShard on {what} did not answer within {timeout:?}")
                                .into(),
                        ),
                    })
                    .await?;
                }
            }
        }
    }

    /// Drop the subscription and note why; the next loop resubscribes.
    fn renew(&mut self, why: Renewal) {
        self.events = None;
        metrics::counter!(metric::RESUBSCRIPTIONS, "shard" => self.shard_id.to_string(), "stream" => self.stream_label.clone(), "reason" => why.as_str())
            .increment(1);
    }

    /// Whether `ListShards` says the shard is closed, asked at most every
    /// `closed_check_interval` (a failed listing counts as "not closed").
    async fn closed_per_listing(&mut self) -> bool {
        let now = tokio::time::Instant::now();
        if now < self.next_closed_check {
            return false;
        }
        self.next_closed_check = now + self.source.settings.closed_check_interval;
        match self.source.polling.list_shards().await {
            Ok(shards) => shards
                .iter()
                .any(|s| s.shard_id == self.shard_id && s.is_closed()),
            Err(e) => {
                tracing::debug!(shard_id = %self.shard_id, error = %e, "ListShards failed; shard end check skipped");
                false
            }
        }
    }

    async fn on_event(
        &mut self,
        event: SubscribeToShardEvent,
        mut records: Vec<Record>,
    ) -> Result<RecordBatch> {
        records.clear();
        records.reserve(event.records().len());
        // Checked as each payload is copied, while it is in cache.
        let mut has_aggregates = false;
        for r in event.records() {
            let record = convert(r)?;
            has_aggregates |= is_aggregate_framing(&record.data);
            // After a resubscription AT the continuation, a service whose
            // continuation is the last record's own number sends it again.
            if self
                .last_delivered
                .as_ref()
                .is_none_or(|last| record.sequence_number > *last)
            {
                records.push(record);
            }
        }
        if let Some(last) = records.last() {
            self.last_delivered = Some(last.sequence_number.clone());
        }
        let continuation = event.continuation_sequence_number();
        if !continuation.is_empty() {
            self.continuation = Some(continuation.parse().map_err(|e| {
                Error::generic(
                    "kinesis",
                    format!("bad continuation sequence number {continuation:?}: {e}"),
                )
            })?);
        }
        let millis_behind_latest = Some(event.millis_behind_latest().max(0) as u64);

        let ended = continuation.is_empty()
            || (!event.child_shards().is_empty() && event.records().is_empty())
            || (event.records().is_empty()
                && event.millis_behind_latest() <= 0
                && self.closed_per_listing().await);
        let shard_end = if ended {
            self.finished = true;
            self.events = None;
            let children = if event.child_shards().is_empty() {
                match self
                    .source
                    .polling
                    .children_from_lineage(&self.shard_id)
                    .await
                {
                    Ok(children) => children,
                    Err(e) => {
                        tracing::warn!(shard_id = %self.shard_id, error = %e, "shard ended; children unknown");
                        Vec::new()
                    }
                }
            } else {
                event
                    .child_shards()
                    .iter()
                    .map(child_shard)
                    .collect::<Result<Vec<_>>>()?
            };
            tracing::debug!(shard_id = %self.shard_id, children = children.len(), "shard end");
            Some(children)
        } else {
            None
        };
        Ok(RecordBatch {
            records,
            millis_behind_latest,
            shard_end,
            has_aggregates: Some(has_aggregates),
        })
    }
}

#[async_trait]
impl ShardReader for FanOutReader {
    async fn next_batch(&mut self) -> Result<RecordBatch> {
        self.next_batch_into(Vec::new()).await
    }

    async fn next_batch_into(&mut self, records: Vec<Record>) -> Result<RecordBatch> {
        if self.finished {
            return Err(Error::generic(
                "kinesis",
                format!(
                    "reader on {} already returned the shard's end",
                    self.shard_id
                ),
            ));
        }
        loop {
            let Some(events) = self.events.as_mut() else {
                self.subscribe().await?;
                continue;
            };
            let timeout = self.source.settings.event_timeout;
            match tokio::time::timeout(timeout, events.recv()).await {
                Ok(Ok(Some(SubscribeToShardEventStream::SubscribeToShardEvent(event)))) => {
                    self.failures = 0;
                    self.evented = true;
                    return self.on_event(event, records).await;
                }
                // An event type newer than this SDK: nothing to deliver.
                Ok(Ok(Some(_))) => {}
                Ok(Ok(None)) => {
                    tracing::debug!(shard_id = %self.shard_id, "subscription ended; resubscribing");
                    self.renew(Renewal::Ended);
                    // One that ends before any event must not become a
                    // tight subscribe loop: count it and back off.
                    if !self.evented {
                        let shard_id = self.shard_id.clone();
                        self.failed(|| Error::Unavailable {
                            service: "kinesis",
                            source: Some(
                                format!("subscriptions to {shard_id} end before any event").into(),
                            ),
                        })
                        .await?;
                    }
                }
                Ok(Err(e)) => {
                    if is_not_found(&e) {
                        return Err(Error::NotFound {
                            what: format!("shard {} ({})", self.shard_id, e.code().unwrap_or("-")),
                        });
                    }
                    if is_in_use(&e) {
                        tracing::info!(shard_id = %self.shard_id, "shard still subscribed elsewhere (failover?); backing off");
                    } else {
                        tracing::warn!(
                            shard_id = %self.shard_id,
                            code = e.code().unwrap_or("-"),
                            error = %aws_sdk_kinesis::error::DisplayErrorContext(&e),
                            "subscription broke; resubscribing from the continuation"
                        );
                    }
                    self.renew(Renewal::Broken);
                    let shard_id = self.shard_id.clone();
                    self.failed(|| Error::Unavailable {
                        service: "kinesis",
                        source: Some(format!("subscription to {shard_id} keeps breaking").into()),
                    })
                    .await?;
                }
                Err(_) => {
                    tracing::warn!(
                        shard_id = %self.shard_id,
                        ?timeout,
                        continuation = ?self.continuation,
                        "no event on the subscription within the watchdog bound; resubscribing"
                    );
                    metrics::counter!(metric::STALLS, "shard" => self.shard_id.to_string(), "stream" => self.stream_label.clone(), "phase" => "stream")
                        .increment(1);
                    self.renew(Renewal::Stalled);
                    let shard_id = self.shard_id.clone();
                    self.failed(|| Error::Unavailable {
                        service: "kinesis",
                        source: Some(format!("subscription to {shard_id} keeps stalling").into()),
                    })
                    .await?;
                }
            }
        }
    }
}

fn is_not_found<R>(e: &SdkError<SubscribeToShardEventStreamError, R>) -> bool {
    matches!(
        e.as_service_error(),
        Some(SubscribeToShardEventStreamError::ResourceNotFoundException(
            _
        ))
    )
}

fn is_in_use<R>(e: &SdkError<SubscribeToShardEventStreamError, R>) -> bool {
    matches!(
        e.as_service_error(),
        Some(SubscribeToShardEventStreamError::ResourceInUseException(_))
    )
}

fn log_subscribe_failure<R>(
    shard_id: &ShardId,
    failure: Failure,
    e: &SdkError<SubscribeToShardError, R>,
) {
    let code = e.code().unwrap_or("-");
    match failure {
        Failure::InUse => {
            tracing::info!(%shard_id, code, "shard still subscribed elsewhere (failover?); backing off")
        }
        _ => tracing::debug!(%shard_id, code, ?failure, "SubscribeToShard failed; backing off"),
    }
    metrics::counter!(crate::engine::metric::KINESIS_RETRIES, "operation" => "SubscribeToShard")
        .increment(1);
}

fn sdk_position(from: &StartingPosition) -> Result<aws_sdk_kinesis::types::StartingPosition> {
    use aws_sdk_kinesis::types::StartingPosition as Sdk;
    let builder = match from {
        StartingPosition::TrimHorizon => Sdk::builder().r#type(ShardIteratorType::TrimHorizon),
        StartingPosition::Latest => Sdk::builder().r#type(ShardIteratorType::Latest),
        StartingPosition::AtSequenceNumber(s) => Sdk::builder()
            .r#type(ShardIteratorType::AtSequenceNumber)
            .sequence_number(s.as_str()),
        StartingPosition::AfterSequenceNumber(s) => Sdk::builder()
            .r#type(ShardIteratorType::AfterSequenceNumber)
            .sequence_number(s.as_str()),
        StartingPosition::AtTimestamp(t) => Sdk::builder()
            .r#type(ShardIteratorType::AtTimestamp)
            .timestamp(aws_smithy_types::DateTime::from(*t)),
    };
    builder
        .build()
        .map_err(|e| Error::generic("kinesis", format!("starting position: {e}")))
}
