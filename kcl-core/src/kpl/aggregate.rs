//! The producer side: packing user records into KPL aggregates.

use std::collections::HashMap;
use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};
use md5::{Digest, Md5};
use prost::Message;
use prost::encoding::encoded_len_varint;

use super::proto::{AggregatedRecord, UserRecord};
use super::{DIGEST_LEN, MAGIC};

/// The largest Kinesis record: data plus partition key, 1 MiB.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

/// Longest partition key Kinesis accepts, in Unicode characters.
const MAX_PARTITION_KEY_CHARS: usize = 256;

/// Why a user record or a setting was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AggregateError {
    /// The partition key is empty or longer than 256 characters.
    #[error("partition key must be 1 to 256 characters, got {chars}")]
    PartitionKey {
        /// Its length in characters.
        chars: usize,
    },
    /// The user record would not fit in an aggregate even alone.
    #[error("user record of {needed} bytes (as aggregated) exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Bytes the aggregate would need for it alone.
        needed: usize,
        /// The aggregator's limit.
        limit: usize,
    },
    /// [`Aggregator::with_max_bytes`] got a limit above 1 MiB.
    #[error("aggregate limit {0} exceeds the Kinesis record limit of {MAX_RECORD_BYTES} bytes")]
    Limit(usize),
}

/// A finished aggregate: put `data` to Kinesis with `partition_key` (and
/// `explicit_hash_key` when set), both taken from the first user record,
/// so the aggregate lands where that record would.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Aggregate {
    /// Partition key to put with: the first user record's.
    pub partition_key: String,
    /// Explicit hash key to put with: the first user record's, if any.
    pub explicit_hash_key: Option<String>,
    /// The aggregate's bytes: magic, protobuf, MD5 trailer.
    pub data: Bytes,
    /// How many user records it holds.
    pub user_records: usize,
}

/// Packs user records into KPL aggregates (the format the Kinesis Producer
/// Library and `aws-kinesis-agg` write), for tests, benchmarks and demos.
///
/// Records are added in order; [`add`](Self::add) returns the current
/// aggregate, finished, when the new record does not fit in it (the new
/// record then starts the next one), and [`flush`](Self::flush) finishes
/// whatever is pending. The size counted is what Kinesis counts against its
/// 1 MiB record limit: the aggregate's bytes plus its partition key.
///
/// It does not group records by shard as the KPL does: the aggregate is
/// routed by its first record, so with several shards, pack records for one
/// shard together (or give them explicit hash keys in one shard's range).
#[derive(Clone)]
pub struct Aggregator {
    max_bytes: usize,
    partition_keys: KeyTable,
    explicit_hash_keys: KeyTable,
    records: Vec<UserRecord>,
    /// Encoded length of the protobuf body so far.
    body_len: usize,
}

impl fmt::Debug for Aggregator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Aggregator")
            .field("max_bytes", &self.max_bytes)
            .field("user_records", &self.records.len())
            .field("size_bytes", &self.size_bytes())
            .finish_non_exhaustive()
    }
}

impl Default for Aggregator {
    fn default() -> Self {
        Self::new()
    }
}

impl Aggregator {
    /// An aggregator filling records up to the Kinesis limit (1 MiB).
    pub fn new() -> Self {
        Aggregator {
            max_bytes: MAX_RECORD_BYTES,
            partition_keys: KeyTable::default(),
            explicit_hash_keys: KeyTable::default(),
            records: Vec::new(),
            body_len: 0,
        }
    }

    /// An aggregator with a smaller limit (the KPL's `AggregationMaxSize`
    /// defaults to 51200 bytes). Fails above 1 MiB.
    pub fn with_max_bytes(max_bytes: usize) -> Result<Self, AggregateError> {
        if max_bytes > MAX_RECORD_BYTES {
            return Err(AggregateError::Limit(max_bytes));
        }
        Ok(Aggregator {
            max_bytes,
            ..Self::new()
        })
    }

    /// User records in the pending aggregate.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no user record is pending.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// What the pending aggregate counts against the limit: its bytes
    /// (magic, protobuf, trailer) plus its partition key; 0 when empty.
    pub fn size_bytes(&self) -> usize {
        match self.partition_keys.keys.first() {
            Some(key) => MAGIC.len() + self.body_len + DIGEST_LEN + key.len(),
            None => 0,
        }
    }

    /// Add a user record. Returns the pending aggregate, finished, if the
    /// record does not fit in it; the record then starts the next one.
    /// Fails, keeping everything pending as it was, if the partition key is
    /// not 1 to 256 characters or the record cannot fit even alone.
    pub fn add(
        &mut self,
        partition_key: impl Into<String>,
        explicit_hash_key: Option<u128>,
        data: impl Into<Bytes>,
    ) -> Result<Option<Aggregate>, AggregateError> {
        let partition_key = partition_key.into();
        let chars = partition_key.chars().count();
        if !(1..=MAX_PARTITION_KEY_CHARS).contains(&chars) {
            return Err(AggregateError::PartitionKey { chars });
        }
        let explicit_hash_key = explicit_hash_key.map(|key| key.to_string());
        let data = data.into();

        let alone = framing(partition_key.len())
            + Self::empty().growth(&partition_key, explicit_hash_key.as_deref(), data.len());
        if alone > self.max_bytes {
            return Err(AggregateError::TooLarge {
                needed: alone,
                limit: self.max_bytes,
            });
        }
        let growth = self.growth(&partition_key, explicit_hash_key.as_deref(), data.len());
        let finished = if !self.is_empty() && self.size_bytes() + growth > self.max_bytes {
            self.flush()
        } else {
            None
        };
        self.push(partition_key, explicit_hash_key, data);
        Ok(finished)
    }

    /// Finish the pending aggregate, if any user record is pending.
    pub fn flush(&mut self) -> Option<Aggregate> {
        if self.is_empty() {
            return None;
        }
        let records = std::mem::take(&mut self.records);
        let user_records = records.len();
        let partition_keys = std::mem::take(&mut self.partition_keys);
        let explicit_hash_keys = std::mem::take(&mut self.explicit_hash_keys);
        let partition_key = partition_keys.keys[0].clone();
        let explicit_hash_key = records[0]
            .explicit_hash_key_index
            .map(|i| explicit_hash_keys.keys[i as usize].clone());
        let message = AggregatedRecord {
            partition_key_table: partition_keys.keys,
            explicit_hash_key_table: explicit_hash_keys.keys,
            records,
        };
        let body_len = std::mem::take(&mut self.body_len);
        debug_assert_eq!(body_len, message.encoded_len());

        let mut data = BytesMut::with_capacity(MAGIC.len() + body_len + DIGEST_LEN);
        data.put_slice(&MAGIC);
        message
            .encode(&mut data)
            .expect("capacity reserved for the whole message");
        let digest = Md5::digest(&data[MAGIC.len()..]);
        data.put_slice(&digest);
        Some(Aggregate {
            partition_key,
            explicit_hash_key,
            data: data.freeze(),
            user_records,
        })
    }

    fn empty() -> Self {
        Self::new()
    }

    /// Bytes the body grows by if this record is added now.
    fn growth(
        &self,
        partition_key: &str,
        explicit_hash_key: Option<&str>,
        data_len: usize,
    ) -> usize {
        let mut growth = self.partition_keys.growth(partition_key);
        let mut record = 1 + encoded_len_varint(self.partition_keys.index_of(partition_key));
        if let Some(key) = explicit_hash_key {
            growth += self.explicit_hash_keys.growth(key);
            record += 1 + encoded_len_varint(self.explicit_hash_keys.index_of(key));
        }
        record += 1 + encoded_len_varint(data_len as u64) + data_len;
        growth + 1 + encoded_len_varint(record as u64) + record
    }

    fn push(&mut self, partition_key: String, explicit_hash_key: Option<String>, data: Bytes) {
        self.body_len += self.growth(&partition_key, explicit_hash_key.as_deref(), data.len());
        let partition_key_index = self.partition_keys.insert(partition_key);
        let explicit_hash_key_index =
            explicit_hash_key.map(|key| self.explicit_hash_keys.insert(key));
        self.records.push(UserRecord {
            partition_key_index: Some(partition_key_index),
            explicit_hash_key_index,
            data: Some(data),
            tags: Vec::new(),
        });
    }
}

/// Magic, trailer and the outer partition key around a body.
fn framing(partition_key_len: usize) -> usize {
    MAGIC.len() + DIGEST_LEN + partition_key_len
}

/// A de-duplicated key table (partition keys or explicit hash keys).
#[derive(Clone, Default)]
struct KeyTable {
    keys: Vec<String>,
    index: HashMap<String, u64>,
}

impl KeyTable {
    /// The index `key` has, or would get.
    fn index_of(&self, key: &str) -> u64 {
        self.index
            .get(key)
            .copied()
            .unwrap_or(self.keys.len() as u64)
    }

    /// Bytes the table's encoding grows by if `key` is added.
    fn growth(&self, key: &str) -> usize {
        if self.index.contains_key(key) {
            0
        } else {
            1 + encoded_len_varint(key.len() as u64) + key.len()
        }
    }

    fn insert(&mut self, key: String) -> u64 {
        if let Some(&i) = self.index.get(&key) {
            return i;
        }
        let i = self.keys.len() as u64;
        self.index.insert(key.clone(), i);
        self.keys.push(key);
        i
    }
}
