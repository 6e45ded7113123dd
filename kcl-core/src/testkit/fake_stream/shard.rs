//! One shard of a [`FakeStream`](super::FakeStream).

use crate::ids::{HashKeyRange, ShardId};
use crate::retrieval::{ChildShard, Record, ShardDescription, StartingPosition};
use crate::sequence::SequenceNumber;

pub(super) struct StoredRecord {
    pub(super) record: Record,
    /// Whether the payload has the KPL aggregate framing, found at the put
    /// (as a real reader finds it while decoding), so a read reports
    /// [`RecordBatch::has_aggregates`](crate::retrieval::RecordBatch::has_aggregates)
    /// without touching the payloads.
    pub(super) is_aggregate: bool,
}

pub(super) struct FakeShard {
    pub(super) id: ShardId,
    pub(super) range: HashKeyRange,
    pub(super) parents: Vec<ShardId>,
    pub(super) starting_sequence_number: SequenceNumber,
    pub(super) ending_sequence_number: Option<SequenceNumber>,
    pub(super) records: Vec<StoredRecord>,
    pub(super) children: Vec<ChildShard>,
}

impl FakeShard {
    pub(super) fn new(
        id: ShardId,
        range: HashKeyRange,
        parents: Vec<ShardId>,
        starting_sequence_number: SequenceNumber,
    ) -> Self {
        FakeShard {
            id,
            range,
            parents,
            starting_sequence_number,
            ending_sequence_number: None,
            records: Vec::new(),
            children: Vec::new(),
        }
    }

    pub(super) fn is_open(&self) -> bool {
        self.ending_sequence_number.is_none()
    }

    pub(super) fn close(&mut self, ending_sequence_number: SequenceNumber) {
        self.ending_sequence_number = Some(ending_sequence_number);
    }

    pub(super) fn describe(&self) -> ShardDescription {
        ShardDescription {
            shard_id: self.id.clone(),
            parent_shard_id: self.parents.first().cloned(),
            adjacent_parent_shard_id: self.parents.get(1).cloned(),
            hash_key_range: self.range,
            starting_sequence_number: self.starting_sequence_number.clone(),
            ending_sequence_number: self.ending_sequence_number.clone(),
        }
    }

    pub(super) fn as_child(&self) -> ChildShard {
        ChildShard {
            shard_id: self.id.clone(),
            parent_shard_ids: self.parents.clone(),
            hash_key_range: self.range,
        }
    }

    /// Index of the first record a reader opened at `from` delivers.
    pub(super) fn position_of(&self, from: &StartingPosition) -> usize {
        let first =
            |pred: &dyn Fn(&Record) -> bool| self.records.partition_point(|r| !pred(&r.record));
        match from {
            StartingPosition::TrimHorizon => 0,
            StartingPosition::Latest => self.records.len(),
            StartingPosition::AtSequenceNumber(s) => first(&|r| &r.sequence_number >= s),
            StartingPosition::AfterSequenceNumber(s) => first(&|r| &r.sequence_number > s),
            StartingPosition::AtTimestamp(t) => first(&|r| {
                r.approximate_arrival_timestamp
                    .is_some_and(|arrival| arrival >= *t)
            }),
        }
    }
}
