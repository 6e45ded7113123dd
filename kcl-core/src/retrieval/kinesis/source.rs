//! [`KinesisSource`]: `ListShards` and `GetShardIterator` on `aws-sdk-kinesis`.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::types::ShardIteratorType;
use backon::{ExponentialBuilder, Retryable};

use super::config::{KinesisSourceBuilder, PollingSettings, StreamRef};
use super::error::{HasStatus, Modeled, classify, map_error};
use super::reader::PollingReader;
use crate::error::{Error, Result};
use crate::ids::{HashKeyRange, ShardId};
use crate::retrieval::{ChildShard, ShardDescription, ShardReader, ShardSource, StartingPosition};
use crate::sequence::SequenceNumber;
use crate::stream::{StreamArn, StreamIdentifier};

/// A Kinesis data stream read by polling (`GetShardIterator` +
/// `GetRecords`), on `aws-sdk-kinesis`.
///
/// Cheap to clone; readers share its client. See [`PollingSettings`] for
/// how readers pace themselves and retry.
#[derive(Clone, Debug)]
pub struct KinesisSource {
    pub(crate) inner: Arc<SourceInner>,
}

pub(crate) struct SourceInner {
    pub(crate) client: Client,
    pub(crate) stream: StreamRef,
    pub(crate) settings: PollingSettings,
    /// The stream's identifier, once [`KinesisSource::stream_identifier`]
    /// found it: the readers' `stream` metric label.
    identifier: OnceLock<String>,
}

impl std::fmt::Debug for SourceInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KinesisSource")
            .field("stream", &self.stream)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl KinesisSource {
    /// Start building a source.
    pub fn builder() -> KinesisSourceBuilder {
        KinesisSourceBuilder::default()
    }

    pub(crate) fn new(client: Client, stream: StreamRef, settings: PollingSettings) -> Self {
        KinesisSource {
            inner: Arc::new(SourceInner {
                client,
                stream,
                settings,
                identifier: OnceLock::new(),
            }),
        }
    }

    /// The client the source calls Kinesis with.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// The stream name or ARN the source was built with.
    pub fn stream(&self) -> String {
        self.inner.stream.to_string()
    }

    /// The pacing and retry settings.
    pub fn settings(&self) -> &PollingSettings {
        &self.inner.settings
    }

    /// The stream's identifier for a multi-stream application
    /// (`account:name:creationEpoch`, see [`crate::stream`]), from
    /// `DescribeStreamSummary`: the account from the stream's ARN, the
    /// epoch from its creation time, as the Java KCL takes them.
    pub async fn stream_identifier(&self) -> Result<StreamIdentifier> {
        let inner = &self.inner;
        let out = inner
            .retrying("DescribeStreamSummary", || {
                let req = inner.client.describe_stream_summary();
                match &inner.stream {
                    StreamRef::Name(n) => req.stream_name(n),
                    StreamRef::Arn(a) => req.stream_arn(a),
                }
                .send()
            })
            .await
            .map_err(|e| map_error(e, &format!("stream {}", inner.stream)))?;
        let summary = out.stream_description_summary().ok_or_else(|| {
            Error::generic("kinesis", "DescribeStreamSummary returned no summary")
        })?;
        let arn = StreamArn::parse(summary.stream_arn())?;
        let created = summary.stream_creation_timestamp().secs();
        let epoch = u64::try_from(created).map_err(|_| {
            Error::generic(
                "kinesis",
                format!(
                    "stream {} was created before 1970 ({created})",
                    inner.stream
                ),
            )
        })?;
        let id = StreamIdentifier::new(arn.account_id(), summary.stream_name(), epoch)?;
        let _ = inner.identifier.set(id.to_string());
        Ok(id)
    }
}

impl SourceInner {
    /// The `stream` label of the readers' per-shard metrics: the stream's
    /// identifier (`account:name:epoch`, as the engine labels a
    /// multi-stream lease's metrics) once
    /// [`KinesisSource::stream_identifier`] was asked, else the stream's
    /// name (from an ARN, its name part).
    pub(crate) fn metric_stream(&self) -> String {
        if let Some(id) = self.identifier.get() {
            return id.clone();
        }
        match &self.stream {
            StreamRef::Name(name) => name.clone(),
            StreamRef::Arn(arn) => {
                StreamArn::parse(arn).map_or_else(|_| arn.clone(), |a| a.stream_name().to_string())
            }
        }
    }

    /// Run `call` with exponential backoff and jitter while it fails with a
    /// throttle or a transient error, up to `max_retries` retries.
    pub(crate) async fn retrying<T, E, R, F, Fut>(
        &self,
        operation: &'static str,
        call: F,
    ) -> std::result::Result<T, SdkError<E, R>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<T, SdkError<E, R>>>,
        E: Modeled,
        R: HasStatus,
    {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.settings.retry_min_delay)
            .with_max_delay(self.settings.retry_max_delay)
            .with_max_times(self.settings.max_retries)
            .with_jitter();
        call.retry(backoff)
            .when(|e| classify(e).is_retryable())
            .notify(|e, delay| {
                tracing::debug!(
                    operation,
                    code = e.code().unwrap_or("-"),
                    ?delay,
                    "kinesis call failed, backing off"
                );
                metrics::counter!(crate::engine::metric::KINESIS_RETRIES, "operation" => operation)
                    .increment(1);
            })
            .await
    }

    /// Every shard, paged with `ExclusiveStartShardId` (which real Kinesis
    /// and every emulator accept, unlike `NextToken` on some emulators).
    pub(crate) async fn list_shards(&self) -> Result<Vec<ShardDescription>> {
        let mut shards = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .retrying("ListShards", || {
                    let mut req = self.client.list_shards();
                    req = match &self.stream {
                        StreamRef::Name(n) => req.stream_name(n),
                        StreamRef::Arn(a) => req.stream_arn(a),
                    };
                    req = req.max_results(self.settings.list_shards_page_size);
                    if let Some(after) = &after {
                        req = req.exclusive_start_shard_id(after);
                    }
                    req.send()
                })
                .await
                .map_err(|e| map_error(e, &format!("stream {}", self.stream)))?;
            let page_shards = page.shards();
            for shard in page_shards {
                shards.push(describe(shard)?);
            }
            match (page_shards.last(), page.next_token()) {
                (Some(last), Some(_)) => after = Some(last.shard_id().to_owned()),
                _ => break,
            }
        }
        Ok(shards)
    }

    /// The children of `shard_id` as `ListShards` tells them: shards whose
    /// parent or adjacent parent it is.
    pub(crate) async fn children_from_lineage(
        &self,
        shard_id: &ShardId,
    ) -> Result<Vec<ChildShard>> {
        let shards = self.list_shards().await?;
        Ok(shards
            .into_iter()
            .filter(|s| s.parents().any(|p| p == shard_id))
            .map(|s| ChildShard {
                parent_shard_ids: s.parents().cloned().collect(),
                shard_id: s.shard_id,
                hash_key_range: s.hash_key_range,
            })
            .collect())
    }

    /// A new shard iterator at `from`.
    pub(crate) async fn shard_iterator(
        &self,
        shard_id: &ShardId,
        from: &StartingPosition,
    ) -> Result<String> {
        let out = self
            .retrying("GetShardIterator", || {
                let mut req = self.client.get_shard_iterator().shard_id(shard_id.as_str());
                req = match &self.stream {
                    StreamRef::Name(n) => req.stream_name(n),
                    StreamRef::Arn(a) => req.stream_arn(a),
                };
                req = match from {
                    StartingPosition::TrimHorizon => {
                        req.shard_iterator_type(ShardIteratorType::TrimHorizon)
                    }
                    StartingPosition::Latest => req.shard_iterator_type(ShardIteratorType::Latest),
                    StartingPosition::AtSequenceNumber(s) => req
                        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
                        .starting_sequence_number(s.as_str()),
                    StartingPosition::AfterSequenceNumber(s) => req
                        .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                        .starting_sequence_number(s.as_str()),
                    StartingPosition::AtTimestamp(t) => req
                        .shard_iterator_type(ShardIteratorType::AtTimestamp)
                        .timestamp(aws_smithy_types::DateTime::from(*t)),
                };
                req.send()
            })
            .await
            .map_err(|e| map_error(e, &format!("shard {shard_id} of stream {}", self.stream)))?;
        out.shard_iterator.ok_or_else(|| {
            Error::generic(
                "kinesis",
                format!("GetShardIterator for {shard_id} returned no iterator"),
            )
        })
    }
}

#[async_trait]
impl ShardSource for KinesisSource {
    async fn list_shards(&self) -> Result<Vec<ShardDescription>> {
        self.inner.list_shards().await
    }

    async fn open_reader(
        &self,
        shard_id: &ShardId,
        from: StartingPosition,
    ) -> Result<Box<dyn ShardReader>> {
        let reader = PollingReader::open(self.inner.clone(), shard_id.clone(), from).await?;
        Ok(Box::new(reader))
    }
}

fn parse_range(range: Option<&aws_sdk_kinesis::types::HashKeyRange>) -> Result<HashKeyRange> {
    let Some(range) = range else {
        return Ok(HashKeyRange::FULL);
    };
    let parse = |s: &str| {
        s.parse::<u128>()
            .map_err(|e| Error::generic("kinesis", format!("bad hash key {s:?}: {e}")))
    };
    HashKeyRange::new(
        parse(range.starting_hash_key())?,
        parse(range.ending_hash_key())?,
    )
}

pub(crate) fn child_shard(child: &aws_sdk_kinesis::types::ChildShard) -> Result<ChildShard> {
    Ok(ChildShard {
        shard_id: ShardId::new(child.shard_id())?,
        parent_shard_ids: child
            .parent_shards()
            .iter()
            .map(ShardId::new)
            .collect::<Result<_>>()?,
        hash_key_range: parse_range(child.hash_key_range())?,
    })
}

fn describe(shard: &aws_sdk_kinesis::types::Shard) -> Result<ShardDescription> {
    let seq = shard.sequence_number_range();
    let parse_seq = |s: &str| {
        s.parse::<SequenceNumber>()
            .map_err(|e| Error::generic("kinesis", format!("bad sequence number {s:?}: {e}")))
    };
    Ok(ShardDescription {
        shard_id: ShardId::new(shard.shard_id())?,
        parent_shard_id: shard.parent_shard_id().map(ShardId::new).transpose()?,
        adjacent_parent_shard_id: shard
            .adjacent_parent_shard_id()
            .map(ShardId::new)
            .transpose()?,
        hash_key_range: parse_range(shard.hash_key_range())?,
        starting_sequence_number: parse_seq(seq.map_or("0", |r| r.starting_sequence_number()))?,
        ending_sequence_number: seq
            .and_then(|r| r.ending_sequence_number())
            .map(parse_seq)
            .transpose()?,
    })
}
