//! Retrieval: where records come from.
//!
//! The engine reads shards through two small traits so the same engine
//! runs on polling (`GetRecords`), enhanced fan-out (`SubscribeToShard`)
//! and the testkit's fake in-memory stream:
//!
//! - [`ShardSource`] lists a stream's shards and opens a reader on one;
//! - [`ShardReader`] yields batches of records from one shard, in order.

#[cfg(feature = "kinesis")]
pub mod kinesis;
mod partition_key;
mod record;

use std::collections::HashSet;
use std::fmt::Debug;
use std::time::SystemTime;

use async_trait::async_trait;

pub use partition_key::PartitionKey;
pub use record::Record;

use crate::engine::InitialPosition;
use crate::error::Result;
use crate::ids::{HashKeyRange, ShardId};
use crate::sequence::SequenceNumber;

/// A shard as the stream describes it (`ListShards`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardDescription {
    /// The shard's id.
    pub shard_id: ShardId,
    /// The parent it was split from or merged from, if any.
    pub parent_shard_id: Option<ShardId>,
    /// The second parent of a merge.
    pub adjacent_parent_shard_id: Option<ShardId>,
    /// Hash keys the shard serves.
    pub hash_key_range: HashKeyRange,
    /// First sequence number of the shard.
    pub starting_sequence_number: SequenceNumber,
    /// Last sequence number, once the shard is closed (split or merged).
    pub ending_sequence_number: Option<SequenceNumber>,
}

impl ShardDescription {
    /// The parents (none, one for a split, two for a merge).
    pub fn parents(&self) -> impl Iterator<Item = &ShardId> {
        self.parent_shard_id
            .iter()
            .chain(self.adjacent_parent_shard_id.iter())
    }

    /// Whether the shard is closed: no new records will arrive.
    pub fn is_closed(&self) -> bool {
        self.ending_sequence_number.is_some()
    }
}

/// Where a reader starts: the five Kinesis shard iterator types.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartingPosition {
    /// The oldest record still in the shard.
    TrimHorizon,
    /// Just after the newest record when the reader opens.
    Latest,
    /// At a record (inclusive).
    AtSequenceNumber(SequenceNumber),
    /// Just after a record.
    AfterSequenceNumber(SequenceNumber),
    /// The first record at or after a time.
    AtTimestamp(SystemTime),
}

/// A child of a shard that has ended, as `ChildShards` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildShard {
    /// The child's id.
    pub shard_id: ShardId,
    /// All of the child's parents (two for a merge).
    pub parent_shard_ids: Vec<ShardId>,
    /// Hash keys the child serves.
    pub hash_key_range: HashKeyRange,
}

/// One batch from a [`ShardReader`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordBatch {
    /// The records, in shard order (possibly none).
    pub records: Vec<Record>,
    /// How far behind the tip of the shard the batch ends, if the source
    /// knows.
    pub millis_behind_latest: Option<u64>,
    /// `Some` once the shard is closed and this batch holds its last
    /// records: the shard's children (empty if the source could not tell;
    /// the engine then learns them from `ListShards`). No batch follows.
    pub shard_end: Option<Vec<ChildShard>>,
    /// Whether any record carries the KPL aggregate framing
    /// ([`is_aggregate_framing`](crate::kpl::is_aggregate_framing)), as
    /// the source found when it had each payload in hand: `Some(false)`
    /// lets the engine pass the records on without reading every payload
    /// again (one cold memory read per record once a large batch has left
    /// the cache), `Some(true)` sends them through de-aggregation. `None`
    /// (the default) means the source did not look; the engine then checks
    /// each payload itself. A source that says `Some(false)` of a batch
    /// holding an aggregate delivers the aggregate undecoded.
    pub has_aggregates: Option<bool>,
}

impl RecordBatch {
    /// Whether any of `records` carries the KPL aggregate framing, for a
    /// source to set [`has_aggregates`](Self::has_aggregates) while the
    /// payloads are still in cache (just decoded or copied).
    ///
    /// ```
    /// use kcl_core::SequenceNumber;
    /// use kcl_core::retrieval::{Record, RecordBatch};
    ///
    /// let record = |data: Vec<u8>| Record::new(SequenceNumber::from(1u128), "k", data);
    /// assert!(!RecordBatch::any_aggregate(&[record(b"plain".to_vec())]));
    /// // Magic bytes and more than a digest's length after them.
    /// let framed = [&kcl_core::kpl::MAGIC[..], &[0u8; 17]].concat();
    /// assert!(RecordBatch::any_aggregate(&[record(framed)]));
    /// ```
    pub fn any_aggregate(records: &[Record]) -> bool {
        records
            .iter()
            .any(|r| crate::kpl::is_aggregate_framing(&r.data))
    }
}

/// A stream: lists shards, opens readers.
///
/// Implementations: the polling and enhanced fan-out readers on
/// `aws-sdk-kinesis`, and the fake stream in the testkit.
#[async_trait]
pub trait ShardSource: Send + Sync + Debug {
    /// Every shard of the stream, open and closed, parents included (the
    /// implementation pages through `ListShards`).
    async fn list_shards(&self) -> Result<Vec<ShardDescription>>;

    /// Open a reader on `shard_id` at `from`.
    async fn open_reader(
        &self,
        shard_id: &ShardId,
        from: StartingPosition,
    ) -> Result<Box<dyn ShardReader>>;

    /// Where `shard_id` starts when it has no leased ancestor, if this
    /// source decides (a [`MultiStreamSource`](crate::stream::MultiStreamSource):
    /// its stream's own position); `None`, the default: the worker's
    /// `initial_position`.
    fn initial_position(&self, shard_id: &ShardId) -> Option<InitialPosition> {
        let _ = shard_id;
        None
    }

    /// Of the lease keys `leased` (every lease in the table), those of
    /// shards this source no longer reads whose leases the shard sync
    /// should delete now (a multi-stream source: a stream removed from its
    /// tracker, after its delay). Default: none.
    fn retired_leases(&self, leased: &HashSet<ShardId>) -> Vec<ShardId> {
        let _ = leased;
        Vec::new()
    }
}

/// Reads one shard in order.
///
/// # Contract
///
/// - Records come in shard order, each exactly once per reader, starting
///   at the position the reader was opened with.
/// - `next_batch` paces itself as its service requires (a polling reader
///   waits between `GetRecords` calls and idles when the shard is quiet; a
///   push reader waits for the next event), so the caller may simply call
///   it in a loop. It may return an empty batch.
/// - It handles what it can on its own: throttling (backoff with jitter),
///   an expired iterator (re-seek just after the last record delivered),
///   a subscription to renew. An error it returns means it gave up; if
///   [`Error::is_retryable`](crate::Error::is_retryable), the caller may
///   open a new reader after the last record it processed.
/// - After a batch with `shard_end: Some(..)`, the reader is finished.
#[async_trait]
pub trait ShardReader: Send + Debug {
    /// The next batch of records.
    async fn next_batch(&mut self) -> Result<RecordBatch>;

    /// The next batch, its records pushed into `records` (empty, with
    /// capacity kept from an earlier batch) when the reader can. The
    /// engine hands back the vectors of batches its processors finished,
    /// so a busy shard refills a few allocations instead of allocating
    /// megabytes per read, which the allocator hands back to the system
    /// and faults in again. The default drops `records` and calls
    /// [`next_batch`](Self::next_batch); the readers in this crate
    /// implement it.
    async fn next_batch_into(&mut self, records: Vec<Record>) -> Result<RecordBatch> {
        drop(records);
        self.next_batch().await
    }
}
