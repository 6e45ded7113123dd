//! KPL de-aggregation.
//!
//! **Not implemented yet** (issue #8): [`deaggregate_into`] passes every
//! record through unchanged. The engine already calls it on every record,
//! so filling it in needs no engine change.

use crate::ids::HashKeyRange;
use crate::retrieval::Record;

/// Append the user records inside `record` to `out`: the sub-records of a
/// KPL aggregate (with sub-sequence numbers 0..n−1), or `record` itself
/// when it is not a valid aggregate. `shard_range` is the hash key range of
/// the shard the record was read from, when known.
pub fn deaggregate_into(record: Record, shard_range: Option<&HashKeyRange>, out: &mut Vec<Record>) {
    let _ = shard_range;
    out.push(record);
}
