//! [`FakeStream`]: an in-memory Kinesis stream for tests.
//!
//! It implements [`ShardSource`], so the engine runs on it exactly as on
//! Kinesis, and it lets a test do what a real stream does at awkward
//! moments: split and merge shards mid-run (closed parents report their
//! children at the end, like `ChildShards`), expire every open iterator
//! (readers must re-seek after the last record they delivered), and fail
//! the next reads or listings with throttling or outages.
//!
//! Records are routed like Kinesis routes them: by the MD5 of the
//! partition key (or the explicit hash key) into the open shard whose hash
//! key range holds it. Sequence numbers are 56 digits long, as real ones
//! are, and increase across the whole stream.
//!
//! ```
//! use kcl_core::retrieval::{ShardSource, StartingPosition};
//! use kcl_core::testkit::FakeStream;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let stream = FakeStream::new(2);
//! for i in 0..10 {
//!     stream.put_record(format!("key-{i}"), format!("record {i}"))?;
//! }
//! let shards = stream.list_shards().await?;
//! assert_eq!(shards.len(), 2);
//!
//! let mut total = 0;
//! for shard in &shards {
//!     let mut reader = stream.open_reader(&shard.shard_id, StartingPosition::TrimHorizon).await?;
//!     total += reader.next_batch().await?.records.len();
//! }
//! assert_eq!(total, 10);
//! # Ok::<(), kcl_core::Error>(()) }).unwrap();
//! ```

mod reader;
mod shard;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use md5::{Digest, Md5};
use tokio::sync::Notify;

use self::reader::FakeReader;
use self::shard::{FakeShard, StoredRecord};
use crate::error::{Error, Result};
use crate::ids::{HashKeyRange, ShardId};
use crate::retrieval::{Record, ShardDescription, ShardReader, ShardSource, StartingPosition};
use crate::sequence::SequenceNumber;

/// The 36 leading digits every fake sequence number shares; 20 more digits
/// count up, so they sort numerically and are 56 digits long like real ones.
const SEQUENCE_PREFIX: &str = "495903382714902566085596925383615710";

/// How a fault injected with [`FakeStream::fail_next_reads`] or
/// [`FakeStream::fail_next_list_shards`] shows itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// [`Error::Throttled`] (retryable), as for ProvisionedThroughputExceeded.
    Throttled,
    /// [`Error::Unavailable`] (retryable), as for a 5xx or a broken connection.
    Unavailable,
    /// [`Error::Generic`] (not retryable), as for an unexpected failure.
    Fatal,
}

impl Fault {
    fn to_error(self) -> Error {
        match self {
            Fault::Throttled => Error::Throttled {
                service: "fake-stream",
                source: None,
            },
            Fault::Unavailable => Error::Unavailable {
                service: "fake-stream",
                source: None,
            },
            Fault::Fatal => Error::generic("fake-stream", "injected fatal fault"),
        }
    }
}

/// Counts of what readers did, for assertions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FakeStreamStats {
    /// `next_batch` calls that reached the stream (faults included).
    pub get_records_calls: u64,
    /// Records handed to readers.
    pub records_delivered: u64,
    /// Times a reader found its iterator expired and re-seeked.
    pub reseeks: u64,
    /// `list_shards` calls (faults included).
    pub list_shards_calls: u64,
}

/// A record to put, with the optional parts of `PutRecord`.
#[derive(Clone, Debug)]
pub struct FakeRecord {
    partition_key: String,
    explicit_hash_key: Option<u128>,
    data: Bytes,
    arrival: Option<SystemTime>,
}

impl FakeRecord {
    /// A record with a partition key and a payload.
    pub fn new(partition_key: impl Into<String>, data: impl Into<Bytes>) -> Self {
        FakeRecord {
            partition_key: partition_key.into(),
            explicit_hash_key: None,
            data: data.into(),
            arrival: None,
        }
    }

    /// Route by this hash key instead of the partition key's MD5.
    pub fn explicit_hash_key(mut self, hash_key: u128) -> Self {
        self.explicit_hash_key = Some(hash_key);
        self
    }

    /// The arrival time to record (default: now), for AT_TIMESTAMP tests.
    pub fn arrival(mut self, at: SystemTime) -> Self {
        self.arrival = Some(at);
        self
    }
}

/// An in-memory stream; see the [module docs](self). Cheap to clone:
/// clones are handles on the same stream.
#[derive(Clone)]
pub struct FakeStream {
    state: Arc<Mutex<State>>,
    new_records: Arc<Notify>,
    config: FakeStreamConfig,
}

/// Settings of a [`FakeStream`].
#[derive(Clone, Debug)]
pub struct FakeStreamConfig {
    /// Most records one `next_batch` returns. Default 10,000 (Kinesis').
    pub max_records: usize,
    /// How long a reader at the tip waits for new records before returning
    /// an empty batch. Default 50 ms.
    pub empty_wait: Duration,
}

impl Default for FakeStreamConfig {
    fn default() -> Self {
        FakeStreamConfig {
            max_records: 10_000,
            empty_wait: Duration::from_millis(50),
        }
    }
}

struct State {
    shards: Vec<FakeShard>,
    /// Where each shard is in `shards` (shards are only ever appended): a
    /// reader's poll finds its shard without scanning 10,000 of them.
    shard_index: HashMap<ShardId, usize>,
    next_shard: usize,
    next_sequence: u128,
    iterator_epoch: u64,
    read_faults: HashMap<ShardId, Vec<Fault>>,
    list_faults: Vec<Fault>,
    stats: FakeStreamStats,
}

impl std::fmt::Debug for FakeStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("FakeStream")
            .field("shards", &state.shards.len())
            .field(
                "records",
                &state.shards.iter().map(|s| s.records.len()).sum::<usize>(),
            )
            .finish_non_exhaustive()
    }
}

impl FakeStream {
    /// A stream of `shard_count` open shards splitting the hash key space
    /// evenly, with the default [`FakeStreamConfig`].
    pub fn new(shard_count: usize) -> Self {
        Self::with_config(shard_count, FakeStreamConfig::default())
    }

    /// A stream of `shard_count` open shards with `config`.
    ///
    /// # Panics
    /// If `shard_count` is 0.
    pub fn with_config(shard_count: usize, config: FakeStreamConfig) -> Self {
        assert!(shard_count > 0, "a stream needs at least one shard");
        let mut state = State {
            shards: Vec::new(),
            shard_index: HashMap::new(),
            next_shard: 0,
            next_sequence: 0,
            iterator_epoch: 0,
            read_faults: HashMap::new(),
            list_faults: Vec::new(),
            stats: FakeStreamStats::default(),
        };
        let width = u128::MAX / shard_count as u128;
        for i in 0..shard_count {
            let start = width * i as u128;
            let end = if i + 1 == shard_count {
                u128::MAX
            } else {
                width * (i as u128 + 1) - 1
            };
            let range = HashKeyRange::new(start, end).expect("ordered range");
            state.add_shard(range, Vec::new());
        }
        FakeStream {
            state: Arc::new(Mutex::new(state)),
            new_records: Arc::new(Notify::new()),
            config,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Put one record, routed by the MD5 of its partition key. Returns the
    /// shard it went to and its sequence number.
    pub fn put_record(
        &self,
        partition_key: impl Into<String>,
        data: impl Into<Bytes>,
    ) -> Result<(ShardId, SequenceNumber)> {
        self.put(FakeRecord::new(partition_key, data))
    }

    /// Put one record with all options.
    pub fn put(&self, record: FakeRecord) -> Result<(ShardId, SequenceNumber)> {
        if record.partition_key.is_empty() || record.partition_key.len() > 256 {
            return Err(Error::Config(
                "a partition key must be 1 to 256 characters".into(),
            ));
        }
        let hash_key = record
            .explicit_hash_key
            .unwrap_or_else(|| hash_key_of(&record.partition_key));
        let put = {
            let mut state = self.lock();
            let sequence_number = state.next_sequence_number();
            let shard = state
                .shards
                .iter_mut()
                .find(|s| s.is_open() && s.range.contains(hash_key))
                .expect("open shards cover the whole hash key space");
            shard.records.push(StoredRecord {
                is_aggregate: crate::kpl::is_aggregate_framing(&record.data),
                record: Record {
                    sequence_number: sequence_number.clone(),
                    sub_sequence_number: 0,
                    aggregated: false,
                    partition_key: record.partition_key.into(),
                    explicit_hash_key: record.explicit_hash_key.map(|k| k.to_string()),
                    data: record.data,
                    approximate_arrival_timestamp: Some(
                        record.arrival.unwrap_or_else(SystemTime::now),
                    ),
                },
            });
            (shard.id.clone(), sequence_number)
        };
        self.new_records.notify_waiters();
        Ok(put)
    }

    /// Split an open shard at `new_starting_hash_key` (the first key of the
    /// upper child). The parent closes; returns the two children, lower
    /// range first.
    pub fn split_shard(
        &self,
        shard_id: &ShardId,
        new_starting_hash_key: u128,
    ) -> Result<(ShardId, ShardId)> {
        let children = {
            let mut state = self.lock();
            let end_sequence = state.last_sequence_number();
            let parent = state.open_shard(shard_id)?;
            let range = parent.range;
            if new_starting_hash_key <= range.starting_hash_key
                || new_starting_hash_key > range.ending_hash_key
            {
                return Err(Error::Config(format!(
                    "split key {new_starting_hash_key} is not inside {shard_id}'s range {}..={}",
                    range.starting_hash_key, range.ending_hash_key
                )));
            }
            parent.close(end_sequence);
            let parents = vec![shard_id.clone()];
            let lower = state.add_shard(
                HashKeyRange::new(range.starting_hash_key, new_starting_hash_key - 1)?,
                parents.clone(),
            );
            let upper = state.add_shard(
                HashKeyRange::new(new_starting_hash_key, range.ending_hash_key)?,
                parents,
            );
            state.set_children(shard_id, vec![lower.clone(), upper.clone()]);
            (lower, upper)
        };
        self.new_records.notify_waiters();
        Ok(children)
    }

    /// Merge two open shards with adjacent hash key ranges. Both close;
    /// returns the child. `shard_id` becomes its parent and
    /// `adjacent_shard_id` its adjacent parent, as in Kinesis.
    pub fn merge_shards(&self, shard_id: &ShardId, adjacent_shard_id: &ShardId) -> Result<ShardId> {
        let child = {
            let mut state = self.lock();
            let end_sequence = state.last_sequence_number();
            let a = state.open_shard(shard_id)?.range;
            let b = state.open_shard(adjacent_shard_id)?.range;
            let (low, high) = if a.starting_hash_key < b.starting_hash_key {
                (a, b)
            } else {
                (b, a)
            };
            if low.ending_hash_key.checked_add(1) != Some(high.starting_hash_key) {
                return Err(Error::Config(format!(
                    "{shard_id} and {adjacent_shard_id} do not have adjacent hash key ranges"
                )));
            }
            state.open_shard(shard_id)?.close(end_sequence.clone());
            state.open_shard(adjacent_shard_id)?.close(end_sequence);
            let child = state.add_shard(
                HashKeyRange::new(low.starting_hash_key, high.ending_hash_key)?,
                vec![shard_id.clone(), adjacent_shard_id.clone()],
            );
            state.set_children(shard_id, vec![child.clone()]);
            state.set_children(adjacent_shard_id, vec![child.clone()]);
            child
        };
        self.new_records.notify_waiters();
        Ok(child)
    }

    /// Expire every open iterator: each reader's next call re-seeks just
    /// after the last record it delivered (counted in
    /// [`FakeStreamStats::reseeks`]).
    pub fn expire_iterators(&self) {
        self.lock().iterator_epoch += 1;
    }

    /// Make the next `count` reads of `shard_id` fail with `fault`.
    pub fn fail_next_reads(&self, shard_id: &ShardId, count: usize, fault: Fault) {
        let mut state = self.lock();
        let queue = state.read_faults.entry(shard_id.clone()).or_default();
        queue.extend(std::iter::repeat_n(fault, count));
    }

    /// Make the next `count` shard listings fail with `fault`.
    pub fn fail_next_list_shards(&self, count: usize, fault: Fault) {
        self.lock()
            .list_faults
            .extend(std::iter::repeat_n(fault, count));
    }

    /// What readers have done so far.
    pub fn stats(&self) -> FakeStreamStats {
        self.lock().stats
    }

    /// Every record of `shard_id`, in order (for assertions).
    pub fn records(&self, shard_id: &ShardId) -> Result<Vec<Record>> {
        let state = self.lock();
        let shard = state.shard(shard_id)?;
        Ok(shard.records.iter().map(|r| r.record.clone()).collect())
    }

    /// How many records the stream holds over all shards.
    pub fn total_records(&self) -> usize {
        self.lock().shards.iter().map(|s| s.records.len()).sum()
    }

    /// The shards, as `list_shards` reports them, without fault injection.
    pub fn shards(&self) -> Vec<ShardDescription> {
        self.lock().shards.iter().map(FakeShard::describe).collect()
    }
}

impl State {
    fn add_shard(&mut self, range: HashKeyRange, parents: Vec<ShardId>) -> ShardId {
        let id = ShardId::new(format!("shardId-{:012}", self.next_shard)).expect("valid shard id");
        self.next_shard += 1;
        let starting_sequence_number = self.peek_sequence_number();
        self.shard_index.insert(id.clone(), self.shards.len());
        self.shards.push(FakeShard::new(
            id.clone(),
            range,
            parents,
            starting_sequence_number,
        ));
        id
    }

    fn shard(&self, shard_id: &ShardId) -> Result<&FakeShard> {
        self.shard_index
            .get(shard_id)
            .and_then(|&i| self.shards.get(i))
            .ok_or_else(|| Error::NotFound {
                what: format!("shard {shard_id}"),
            })
    }

    fn shard_mut(&mut self, shard_id: &ShardId) -> Option<&mut FakeShard> {
        let i = *self.shard_index.get(shard_id)?;
        self.shards.get_mut(i)
    }

    fn open_shard(&mut self, shard_id: &ShardId) -> Result<&mut FakeShard> {
        let shard = self.shard_mut(shard_id).ok_or_else(|| Error::NotFound {
            what: format!("shard {shard_id}"),
        })?;
        if !shard.is_open() {
            return Err(Error::Config(format!("shard {shard_id} is already closed")));
        }
        Ok(shard)
    }

    fn set_children(&mut self, shard_id: &ShardId, children: Vec<ShardId>) {
        let described: Vec<_> = children
            .iter()
            .map(|c| {
                let shard = self.shard(c).expect("child exists");
                shard.as_child()
            })
            .collect();
        if let Some(parent) = self.shard_mut(shard_id) {
            parent.children = described;
        }
    }

    fn sequence_number(n: u128) -> SequenceNumber {
        format!("{SEQUENCE_PREFIX}{n:020}").parse().expect("digits")
    }

    fn next_sequence_number(&mut self) -> SequenceNumber {
        self.next_sequence += 1;
        Self::sequence_number(self.next_sequence)
    }

    fn peek_sequence_number(&self) -> SequenceNumber {
        Self::sequence_number(self.next_sequence + 1)
    }

    fn last_sequence_number(&self) -> SequenceNumber {
        Self::sequence_number(self.next_sequence)
    }
}

/// The 128-bit hash key Kinesis derives from a partition key: its MD5 read
/// as a big-endian number.
pub fn hash_key_of(partition_key: &str) -> u128 {
    u128::from_be_bytes(Md5::digest(partition_key.as_bytes()).into())
}

#[async_trait]
impl ShardSource for FakeStream {
    async fn list_shards(&self) -> Result<Vec<ShardDescription>> {
        let mut state = self.lock();
        state.stats.list_shards_calls += 1;
        if !state.list_faults.is_empty() {
            return Err(state.list_faults.remove(0).to_error());
        }
        Ok(state.shards.iter().map(FakeShard::describe).collect())
    }

    async fn open_reader(
        &self,
        shard_id: &ShardId,
        from: StartingPosition,
    ) -> Result<Box<dyn ShardReader>> {
        let position = {
            let state = self.lock();
            state.shard(shard_id)?.position_of(&from)
        };
        Ok(Box::new(FakeReader::new(
            self.clone(),
            shard_id.clone(),
            position,
        )))
    }
}
