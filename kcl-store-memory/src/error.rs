//! The errors the memory store returns; it has no backend errors of its
//! own, only the contract's outcomes.

use kcl_core::{Error, ExtendedSequenceNumber, ShardId};

pub(crate) fn not_found(shard_id: &ShardId) -> Error {
    Error::NotFound {
        what: format!("lease {shard_id}"),
    }
}

pub(crate) fn fenced(shard_id: &ShardId) -> Error {
    Error::conflict(
        shard_id.as_str(),
        "owner or generation changed since the lease was taken",
    )
}

pub(crate) fn backwards(
    shard_id: &ShardId,
    stored: &ExtendedSequenceNumber,
    requested: &ExtendedSequenceNumber,
) -> Error {
    Error::InvalidCheckpoint(format!(
        "{requested} is below the stored checkpoint {stored} of {shard_id}"
    ))
}
