//! The KPL's protobuf messages, derived with prost (no protoc, no build
//! script).
//!
//! The schema is the KPL's `messages.proto` (package
//! `aws.kinesis.protobuf`, proto2):
//!
//! ```text
//! message AggregatedRecord {
//!   repeated string partition_key_table     = 1;
//!   repeated string explicit_hash_key_table = 2;
//!   repeated Record records                 = 3;
//! }
//! message Record {
//!   required uint64 partition_key_index     = 1;
//!   optional uint64 explicit_hash_key_index = 2;
//!   required bytes  data                    = 3;
//!   repeated Tag    tags                    = 4;
//! }
//! message Tag {
//!   required string key   = 1;
//!   optional string value = 2;
//! }
//! ```
//!
//! prost does not enforce proto2 `required`, so the required fields are
//! declared `optional` here (prost then tracks their presence) and the
//! de-aggregator rejects a message that lacks one, as the Java protobuf
//! runtime does. Encoding a `Some` writes the field even when it holds the
//! default value, so what the aggregator writes is what `required` demands.
//! `data` is a [`Bytes`]: decoding from a `Bytes` buffer slices it instead
//! of copying.

use bytes::Bytes;

/// The body of a KPL aggregate, between the magic bytes and the MD5 trailer.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct AggregatedRecord {
    /// Partition keys, referenced by index from the records.
    #[prost(string, repeated, tag = "1")]
    pub partition_key_table: Vec<String>,
    /// Explicit hash keys (decimal strings), referenced by index.
    #[prost(string, repeated, tag = "2")]
    pub explicit_hash_key_table: Vec<String>,
    /// The user records, in the order the producer added them.
    #[prost(message, repeated, tag = "3")]
    pub records: Vec<UserRecord>,
}

/// One user record inside an aggregate (the proto's `Record`).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct UserRecord {
    /// Index into the partition key table (`required`).
    #[prost(uint64, optional, tag = "1")]
    pub partition_key_index: Option<u64>,
    /// Index into the explicit hash key table, if the record has one.
    #[prost(uint64, optional, tag = "2")]
    pub explicit_hash_key_index: Option<u64>,
    /// The payload (`required`).
    #[prost(bytes = "bytes", optional, tag = "3")]
    pub data: Option<Bytes>,
    /// Tags; the KPL never writes them and consumers ignore them, but a
    /// tag without its `required` key makes the message invalid.
    #[prost(message, repeated, tag = "4")]
    pub tags: Vec<Tag>,
}

/// A key/value tag on a user record.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Tag {
    /// The key (`required`).
    #[prost(string, optional, tag = "1")]
    pub key: Option<String>,
    /// The value.
    #[prost(string, optional, tag = "2")]
    pub value: Option<String>,
}
