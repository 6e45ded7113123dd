//! [`Record`]: one user record as a processor sees it.

use std::time::SystemTime;

use bytes::Bytes;

use super::PartitionKey;
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
    /// The partition key; read it as `&*record.partition_key` or through
    /// any `str` method. Short keys are held inline; the sub-records of a
    /// KPL aggregate that name one long key share one allocation.
    pub partition_key: PartitionKey,
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
        partition_key: impl Into<PartitionKey>,
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
