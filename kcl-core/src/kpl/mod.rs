//! KPL aggregation: unpacking (and, for tests and benchmarks, packing) the
//! records the Kinesis Producer Library aggregates.
//!
//! A KPL producer packs many user records into one Kinesis record to get
//! past the per-record limits of a shard. Consumers must unpack them
//! transparently: the engine calls [`deaggregate_into`] on every record it
//! reads, so a processor sees user records, each with its own partition
//! key, explicit hash key, data and **sub-sequence number**, and can
//! checkpoint in the middle of an aggregate.
//!
//! # The format
//!
//! ```text
//! F3 89 9A C2 | protobuf AggregatedRecord | MD5(protobuf bytes), 16 bytes
//! ```
//!
//! The protobuf (see the KPL's `aggregation-format.md`) holds a partition
//! key table, an explicit hash key table and the user records, each naming
//! its partition key (and optionally its explicit hash key) by index. The
//! messages are prost-derived structs in a private module; no protoc.
//!
//! # What the de-aggregator does
//!
//! - A record that does not start with the magic bytes, or is not longer
//!   than magic + digest, is pushed unchanged without allocating.
//! - A record that starts like an aggregate but fails a check (MD5 trailer,
//!   protobuf, a missing `required` field, an index past its table, an
//!   explicit hash key that is not a decimal below 2^128, no user records)
//!   is pushed unchanged, as a plain record, with a `warn` log and the
//!   counter `kcl_kpl_invalid_aggregates_total`. Nothing is dropped and
//!   nothing panics, whatever the bytes.
//! - A valid aggregate becomes its user records, in order: the outer
//!   sequence number and arrival time, `sub_sequence_number` 0..n−1,
//!   `aggregated = true`, the partition key and explicit hash key from the
//!   tables, and the data as a [`Bytes`](bytes::Bytes) slice of the input
//!   (no copy).
//!
//! # Records outside the shard after a reshard
//!
//! The effective hash key of a user record is its explicit hash key, else
//! the MD5 of its partition key read as a 128-bit big-endian number
//! ([`effective_hash_key`]). The KPL aggregates user records bound for the
//! same shard according to its cached shard map and checks, after each put,
//! that the aggregate landed on the predicted shard; when the map was stale
//! (a split or merge happened), it puts the user records again ("Wrong
//! Shard" retry). The copy on the wrong shard is therefore a duplicate.
//!
//! The Java KCL (`AggregatorUtil.deaggregate` with the shard's starting and
//! ending hash keys) drops it: as soon as one user record's effective hash
//! key lies outside the shard's range, it removes the user records of that
//! aggregate it had already emitted and skips the rest, so **the whole
//! aggregate is skipped**. This module does exactly that when
//! `shard_range` is given (with a `warn` log and the counter
//! `kcl_kpl_out_of_range_aggregates_total`); with `None` or the full key
//! range nothing is filtered. Plain (non-aggregated) records are never
//! filtered, as in Java.
//!
//! # Where this differs from the Java KCL, on purpose
//!
//! On a malformed aggregate whose trailer matched (an index past a table, a
//! non-numeric explicit hash key), Java logs an error and keeps the user
//! records decoded before the failure, losing the rest; an aggregate with
//! no user records vanishes. Here both are delivered whole as plain
//! records, so no byte is lost and the processor can see what arrived.
//!
//! # Producing aggregates
//!
//! [`Aggregator`] packs user records into KPL aggregates, byte-compatible
//! with the KPL and the `aws-kinesis-agg` libraries (the interop test runs
//! the PyPI package both ways), for tests, benchmarks and demos:
//!
//! ```
//! use bytes::Bytes;
//! use kcl_core::kpl::{Aggregator, deaggregate_into};
//! use kcl_core::retrieval::Record;
//!
//! let mut aggregator = Aggregator::new();
//! for i in 0..3 {
//!     // `add` hands back a finished aggregate when the next record does not fit.
//!     assert!(aggregator.add(format!("key-{i}"), None, format!("event {i}"))?.is_none());
//! }
//! let aggregate = aggregator.flush().expect("three records");
//!
//! // Put `aggregate.data` with `aggregate.partition_key` (and
//! // `aggregate.explicit_hash_key`); a consumer reads it back:
//! let read = Record::new("42".parse()?, aggregate.partition_key, aggregate.data);
//! let mut user_records = Vec::new();
//! deaggregate_into(read, None, &mut user_records);
//! assert_eq!(user_records.len(), 3);
//! assert_eq!(user_records[2].sub_sequence_number, 2);
//! assert_eq!(&*user_records[2].partition_key, "key-2");
//! assert_eq!(user_records[2].data, Bytes::from("event 2"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod aggregate;
mod deaggregate;
mod proto;

use md5::{Digest, Md5};

pub use aggregate::{Aggregate, AggregateError, Aggregator, MAX_RECORD_BYTES};

use crate::ids::HashKeyRange;
use crate::retrieval::Record;

/// The four bytes every KPL aggregate starts with.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

/// Length of the MD5 trailer.
pub const DIGEST_LEN: usize = 16;

/// Append the user records inside `record` to `out`: the sub-records of a
/// KPL aggregate (with sub-sequence numbers 0..n−1), or `record` itself
/// when it is not a valid aggregate. `shard_range` is the hash key range of
/// the shard the record was read from, when known: an aggregate holding a
/// user record outside it is skipped whole, as the Java KCL does (see the
/// [module docs](self)).
///
/// Cheap for plain records: a length and magic-byte check, then the push.
pub fn deaggregate_into(record: Record, shard_range: Option<&HashKeyRange>, out: &mut Vec<Record>) {
    deaggregate::deaggregate(record, shard_range, out);
}

/// Whether `data` is framed like a KPL aggregate (magic bytes, and longer
/// than magic + digest). It may still fail the checksum or the protobuf
/// checks, in which case [`deaggregate_into`] delivers it as a plain record.
pub fn is_aggregate_framing(data: &[u8]) -> bool {
    deaggregate::has_aggregate_framing(data)
}

/// The hash key Kinesis routes a record by: the explicit hash key when
/// there is one, else the MD5 of the partition key's UTF-8 bytes as a
/// 128-bit big-endian number.
///
/// ```
/// use kcl_core::kpl::effective_hash_key;
/// assert_eq!(effective_hash_key("any", Some(7)), 7);
/// // MD5("") = d41d8cd98f00b204e9800998ecf8427e
/// assert_eq!(effective_hash_key("", None), 0xd41d8cd98f00b204e9800998ecf8427e);
/// ```
pub fn effective_hash_key(partition_key: &str, explicit_hash_key: Option<u128>) -> u128 {
    explicit_hash_key
        .unwrap_or_else(|| u128::from_be_bytes(Md5::digest(partition_key.as_bytes()).into()))
}

/// Parse an explicit hash key as Kinesis writes it: 1 to 39 decimal digits,
/// at most 2^128 − 1.
pub(crate) fn parse_hash_key(key: &str) -> Option<u128> {
    if key.is_empty() || key.len() > 39 || !key.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    key.parse().ok()
}

#[cfg(test)]
mod tests;
