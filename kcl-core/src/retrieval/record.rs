//! [`Record`]: one user record as a processor sees it.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

use crate::sequence::{ExtendedSequenceNumber, SequenceNumber};

/// One record as a processor receives it. For a record a KPL producer
/// aggregated, each user record inside becomes one `Record` with the outer
/// record's sequence number and its own sub-sequence number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The Kinesis record's sequence number.
    pub sequence_number: SequenceNumber,
    /// Index of the user record inside a KPL aggregate; 0 otherwise.
    pub sub_sequence_number: u64,
    /// Whether this came out of a KPL aggregate.
    pub aggregated: bool,
    /// The partition key. Shared: the sub-records of a KPL aggregate that
    /// name the same key point at one allocation (read it as
    /// `&*record.partition_key`).
    pub partition_key: Arc<str>,
    /// The explicit hash key, if the producer set one.
    pub explicit_hash_key: Option<String>,
    /// The payload.
    pub data: Bytes,
    /// When Kinesis accepted the record, if known.
    pub approximate_arrival_timestamp: Option<SystemTime>,
}

impl Record {
    /// A plain (not aggregated) record.
    pub fn new(
        sequence_number: SequenceNumber,
        partition_key: impl Into<Arc<str>>,
        data: impl Into<Bytes>,
    ) -> Self {
        Record {
            sequence_number,
            sub_sequence_number: 0,
            aggregated: false,
            partition_key: partition_key.into(),
            explicit_hash_key: None,
            data: data.into(),
            approximate_arrival_timestamp: None,
        }
    }

    /// The record's position as a checkpoint holds it.
    pub fn extended_sequence_number(&self) -> ExtendedSequenceNumber {
        ExtendedSequenceNumber::at(self.sequence_number.clone(), self.sub_sequence_number)
    }
}
