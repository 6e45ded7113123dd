//! De-aggregation: one Kinesis record in, its user records out.

use std::sync::Arc;

use bytes::Bytes;
use md5::{Digest, Md5};
use prost::Message;

use super::proto::AggregatedRecord;
use super::{DIGEST_LEN, MAGIC, effective_hash_key, parse_hash_key};
use crate::ids::HashKeyRange;
use crate::retrieval::Record;

/// Why a record that starts with the magic bytes is not taken as an
/// aggregate (it is then delivered whole, as a plain record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Invalid {
    /// The MD5 trailer does not match the body.
    Digest,
    /// The body is not a well-formed `AggregatedRecord`.
    Protobuf,
    /// A required field is missing.
    MissingField,
    /// A record refers past the end of a key table.
    IndexOutOfRange,
    /// An explicit hash key is not a decimal number below 2^128.
    BadExplicitHashKey,
    /// The aggregate holds no user record.
    Empty,
}

impl Invalid {
    fn as_str(self) -> &'static str {
        match self {
            Invalid::Digest => "md5 trailer mismatch",
            Invalid::Protobuf => "malformed protobuf",
            Invalid::MissingField => "required field missing",
            Invalid::IndexOutOfRange => "key table index out of range",
            Invalid::BadExplicitHashKey => "explicit hash key is not a 128-bit decimal",
            Invalid::Empty => "no user records",
        }
    }
}

/// What [`deaggregate_into`](super::deaggregate_into) made of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Not aggregated (no magic bytes, or too short): pushed as is.
    Plain,
    /// Starts like an aggregate but fails a check: pushed as is.
    Invalid(Invalid),
    /// A valid aggregate: this many sub-records pushed.
    Deaggregated(usize),
    /// A valid aggregate with a sub-record outside the shard's hash key
    /// range: nothing pushed (the Java KCL's rule, see the module docs).
    OutOfRange,
}

/// Whether `data` looks like an aggregate at all: the magic bytes followed
/// by more than a digest's worth of bytes (the Java KCL's test).
#[inline]
pub(crate) fn has_aggregate_framing(data: &[u8]) -> bool {
    data.len() > MAGIC.len() + DIGEST_LEN && data[..MAGIC.len()] == MAGIC
}

/// The body between the magic bytes and the trailer, if the trailer is its
/// MD5. `data` must have the aggregate framing.
fn checked_body(data: &Bytes) -> Option<Bytes> {
    let body_end = data.len() - DIGEST_LEN;
    let digest = Md5::digest(&data[MAGIC.len()..body_end]);
    (digest.as_slice() == &data[body_end..]).then(|| data.slice(MAGIC.len()..body_end))
}

/// Decode and validate the body: every required field present, every index
/// inside its table, every explicit hash key a 128-bit decimal. Returns the
/// message and the parsed explicit hash key table.
fn decode_body(body: Bytes) -> Result<(AggregatedRecord, Vec<u128>), Invalid> {
    let message = AggregatedRecord::decode(body).map_err(|_| Invalid::Protobuf)?;
    if message.records.is_empty() {
        return Err(Invalid::Empty);
    }
    let hash_keys = message
        .explicit_hash_key_table
        .iter()
        .map(|key| parse_hash_key(key).ok_or(Invalid::BadExplicitHashKey))
        .collect::<Result<Vec<u128>, Invalid>>()?;
    let pk_count = message.partition_key_table.len() as u64;
    let ehk_count = hash_keys.len() as u64;
    for user in &message.records {
        if !user.has_required_fields() {
            return Err(Invalid::MissingField);
        }
        let pk_ok = user.partition_key_index.is_some_and(|i| i < pk_count);
        let ehk_ok = user.explicit_hash_key_index.is_none_or(|i| i < ehk_count);
        if !pk_ok || !ehk_ok {
            return Err(Invalid::IndexOutOfRange);
        }
    }
    Ok((message, hash_keys))
}

/// The engine's entry point, returning what happened for tests and metrics.
pub(crate) fn deaggregate(
    record: Record,
    shard_range: Option<&HashKeyRange>,
    out: &mut Vec<Record>,
) -> Outcome {
    if !has_aggregate_framing(&record.data) {
        out.push(record);
        return Outcome::Plain;
    }
    let decoded = match checked_body(&record.data) {
        Some(body) => decode_body(body),
        None => Err(Invalid::Digest),
    };
    let (message, hash_keys) = match decoded {
        Ok(decoded) => decoded,
        Err(why) => {
            tracing::warn!(
                sequence_number = %record.sequence_number,
                reason = why.as_str(),
                "record starts with the KPL magic bytes but is not a valid aggregate; delivering it as a plain record"
            );
            metrics::counter!(crate::engine::metric::KPL_INVALID_AGGREGATES).increment(1);
            out.push(record);
            return Outcome::Invalid(why);
        }
    };
    // A range that holds every key filters nothing: skip hashing.
    let filter = shard_range.filter(|range| **range != HashKeyRange::FULL);
    let start = out.len();
    let AggregatedRecord {
        partition_key_table,
        explicit_hash_key_table,
        records,
    } = message;
    // One shared allocation per table entry: every sub-record naming a key
    // points at it (the KPL shares one entry between a key's records), so a
    // crafted aggregate of many tiny records cannot multiply a long key.
    let partition_key_table: Vec<Arc<str>> =
        partition_key_table.into_iter().map(Arc::from).collect();
    // Partition key hashes for the filter, each computed once, on first use
    // (the KPL shares one table entry between the records of a key).
    let mut pk_hashes: Vec<Option<u128>> = match filter {
        Some(_) => vec![None; partition_key_table.len()],
        None => Vec::new(),
    };
    out.reserve(records.len());
    for (i, user) in records.into_iter().enumerate() {
        let pk_index = index(user.partition_key_index);
        let ehk_index = user.explicit_hash_key_index.map(|i| i as usize);
        if let Some(range) = filter {
            let hash_key = match ehk_index {
                Some(e) => hash_keys[e],
                None => *pk_hashes[pk_index].get_or_insert_with(|| {
                    effective_hash_key(&partition_key_table[pk_index], None)
                }),
            };
            if !range.contains(hash_key) {
                out.truncate(start);
                tracing::warn!(
                    sequence_number = %record.sequence_number,
                    sub_sequence_number = i,
                    hash_key = %hash_key,
                    starting_hash_key = %range.starting_hash_key,
                    ending_hash_key = %range.ending_hash_key,
                    "KPL aggregate holds a user record outside the shard's hash key range; skipping the aggregate as the Java KCL does"
                );
                metrics::counter!(crate::engine::metric::KPL_OUT_OF_RANGE_AGGREGATES).increment(1);
                return Outcome::OutOfRange;
            }
        }
        let partition_key = Arc::clone(&partition_key_table[pk_index]);
        out.push(Record {
            sequence_number: record.sequence_number.clone(),
            sub_sequence_number: i as u64,
            aggregated: true,
            partition_key,
            explicit_hash_key: ehk_index.map(|e| explicit_hash_key_table[e].clone()),
            data: user.data.unwrap_or_default(),
            approximate_arrival_timestamp: record.approximate_arrival_timestamp,
        });
    }
    Outcome::Deaggregated(out.len() - start)
}

/// A table index already checked by [`decode_body`].
fn index(checked: Option<u64>) -> usize {
    checked.unwrap_or_default() as usize
}
