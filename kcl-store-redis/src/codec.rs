//! A lease as the fields of a Redis hash, and back.
//!
//! Absent optional values are absent fields (so `None` and an empty value
//! stay distinct). Numbers are decimal strings; counters are written so
//! `HINCRBY` can move them. Sequence numbers and 128-bit hash keys stay
//! decimal strings and are never parsed into floats. Shard id lists are
//! joined by `\n` (shard ids cannot hold control characters).

use std::collections::HashMap;

use kcl_core::{
    Error, ExtendedSequenceNumber, HashKeyRange, Lease, PendingCheckpoint, Result, ShardId,
    WorkerId,
};
use redis::Value;

use crate::error::malformed;

pub(crate) const SHARD_ID: &str = "shard_id";
pub(crate) const OWNER: &str = "owner";
pub(crate) const COUNTER: &str = "counter";
pub(crate) const GENERATION: &str = "generation";
pub(crate) const CHECKPOINT: &str = "checkpoint";
pub(crate) const CHECKPOINT_SUB: &str = "checkpoint_sub";
pub(crate) const PENDING_CHECKPOINT: &str = "pending_checkpoint";
pub(crate) const PENDING_CHECKPOINT_SUB: &str = "pending_checkpoint_sub";
pub(crate) const PENDING_STATE: &str = "pending_state";
pub(crate) const OWNER_SWITCHES: &str = "owner_switches";
pub(crate) const PARENT_SHARD_IDS: &str = "parent_shard_ids";
pub(crate) const CHILD_SHARD_IDS: &str = "child_shard_ids";
pub(crate) const HASH_KEY_START: &str = "hash_key_start";
pub(crate) const HASH_KEY_END: &str = "hash_key_end";
pub(crate) const HANDOFF_TO: &str = "handoff_to";
/// Milliseconds since the Unix epoch, decimal.
pub(crate) const PINNED_START: &str = "pinned_start";
/// Bytes per second, decimal.
pub(crate) const THROUGHPUT: &str = "throughput_bytes_per_sec";

/// The largest counter `HINCRBY` can hold.
const MAX_COUNTER: u64 = i64::MAX as u64;

/// A hash's fields, by name.
pub(crate) type Fields = HashMap<String, Vec<u8>>;

/// The field/value pairs that store `lease`.
pub(crate) fn lease_to_fields(lease: &Lease) -> Result<Vec<(&'static str, Vec<u8>)>> {
    for (name, value) in [
        ("counter", lease.counter),
        ("generation", lease.generation),
        (
            "owner_switches_since_checkpoint",
            lease.owner_switches_since_checkpoint,
        ),
    ] {
        if value > MAX_COUNTER {
            return Err(Error::Config(format!(
                "lease {}: {name} {value} exceeds what Redis counters hold ({MAX_COUNTER})",
                lease.shard_id
            )));
        }
    }
    let text = |s: &str| s.as_bytes().to_vec();
    // A small hash is a listpack, searched in insertion order: the fields
    // every checkpoint reads come first.
    let (value, sub) = lease.checkpoint.to_parts();
    let mut fields = vec![
        (GENERATION, text(&lease.generation.to_string())),
        (
            OWNER,
            text(lease.owner.as_ref().map_or("", WorkerId::as_str)),
        ),
        (CHECKPOINT, value.into_bytes()),
        (CHECKPOINT_SUB, sub.to_string().into_bytes()),
        (
            OWNER_SWITCHES,
            text(&lease.owner_switches_since_checkpoint.to_string()),
        ),
        (SHARD_ID, text(lease.shard_id.as_str())),
        (COUNTER, text(&lease.counter.to_string())),
    ];
    if lease.owner.is_none() {
        // No owner is an absent field, not an empty one (a take appends it).
        fields.remove(1);
    }
    if let Some(pending) = &lease.pending_checkpoint {
        let (value, sub) = pending.sequence.to_parts();
        fields.push((PENDING_CHECKPOINT, value.into_bytes()));
        fields.push((PENDING_CHECKPOINT_SUB, sub.to_string().into_bytes()));
        if let Some(state) = &pending.state {
            fields.push((PENDING_STATE, state.clone()));
        }
    }
    if !lease.parent_shard_ids.is_empty() {
        fields.push((
            PARENT_SHARD_IDS,
            join_shard_ids(&lease.parent_shard_ids).into_bytes(),
        ));
    }
    if !lease.child_shard_ids.is_empty() {
        fields.push((
            CHILD_SHARD_IDS,
            join_shard_ids(&lease.child_shard_ids).into_bytes(),
        ));
    }
    if let Some(range) = &lease.hash_key_range {
        fields.push((
            HASH_KEY_START,
            range.starting_hash_key.to_string().into_bytes(),
        ));
        fields.push((HASH_KEY_END, range.ending_hash_key.to_string().into_bytes()));
    }
    if let Some(to) = &lease.handoff_to {
        fields.push((HANDOFF_TO, text(to.as_str())));
    }
    if let Some(at) = lease.pinned_start {
        fields.push((
            PINNED_START,
            Lease::millis_since_epoch(at).to_string().into_bytes(),
        ));
    }
    if let Some(rate) = lease.throughput_bytes_per_sec {
        fields.push((THROUGHPUT, rate.to_string().into_bytes()));
    }
    Ok(fields)
}

/// Shard ids as one field value.
pub(crate) fn join_shard_ids(ids: &[ShardId]) -> String {
    ids.iter()
        .map(ShardId::as_str)
        .collect::<Vec<_>>()
        .join("\n")
}

/// A hash reply (a flat array of name/value pairs, or a RESP3 map) as
/// fields. A missing key reads as no fields.
pub(crate) fn fields_from_value(value: Value) -> Result<Fields> {
    let pairs: Vec<(Value, Value)> = match value {
        Value::Nil => Vec::new(),
        Value::Map(pairs) => pairs,
        Value::Array(items) => {
            if items.len() % 2 != 0 {
                return Err(malformed("a hash reply with an odd number of items"));
            }
            let mut items = items.into_iter();
            let mut pairs = Vec::new();
            while let (Some(k), Some(v)) = (items.next(), items.next()) {
                pairs.push((k, v));
            }
            pairs
        }
        other => return Err(malformed(format!("expected a hash reply, got {other:?}"))),
    };
    pairs
        .into_iter()
        .map(|(k, v)| {
            let name = String::from_utf8(bytes(k)?)
                .map_err(|_| malformed("a hash field name that is not UTF-8"))?;
            Ok((name, bytes(v)?))
        })
        .collect()
}

/// A bulk or simple string reply's bytes.
pub(crate) fn bytes(value: Value) -> Result<Vec<u8>> {
    match value {
        Value::BulkString(b) => Ok(b),
        Value::SimpleString(s) => Ok(s.into_bytes()),
        Value::Int(i) => Ok(i.to_string().into_bytes()),
        other => Err(malformed(format!("expected a string, got {other:?}"))),
    }
}

/// The lease stored in `fields`, or `None` if the hash was empty (missing).
pub(crate) fn lease_from_fields(mut fields: Fields) -> Result<Option<Lease>> {
    if fields.is_empty() {
        return Ok(None);
    }
    // A stored id that is no longer a valid one is corrupt data (Generic),
    // not a configuration error.
    let stored = |e: Error| malformed(format!("stored lease: {e}"));
    let shard_id = ShardId::new(required_text(&mut fields, SHARD_ID, "?")?).map_err(stored)?;
    let shard = shard_id.as_str().to_string();
    let mut text = |name: &str| optional_text(&mut fields, name, &shard);
    let owner = text(OWNER)?
        .map(WorkerId::new)
        .transpose()
        .map_err(stored)?;
    let counter = number(&shard, COUNTER, text(COUNTER)?)?;
    let generation = number(&shard, GENERATION, text(GENERATION)?)?;
    let switches = number(&shard, OWNER_SWITCHES, text(OWNER_SWITCHES)?)?;
    let checkpoint = position(&shard, text(CHECKPOINT)?, text(CHECKPOINT_SUB)?)?
        .ok_or_else(|| malformed(format!("lease {shard} has no checkpoint")))?;
    let pending_value = text(PENDING_CHECKPOINT)?;
    let pending_sub = text(PENDING_CHECKPOINT_SUB)?;
    let parents = shard_ids(text(PARENT_SHARD_IDS)?)?;
    let children = shard_ids(text(CHILD_SHARD_IDS)?)?;
    let start = text(HASH_KEY_START)?;
    let end = text(HASH_KEY_END)?;
    let handoff_to = text(HANDOFF_TO)?
        .map(WorkerId::new)
        .transpose()
        .map_err(stored)?;
    let pinned_start = match text(PINNED_START)? {
        None => None,
        Some(ms) => Some(
            ms.parse()
                .ok()
                .and_then(Lease::instant_from_millis)
                .ok_or_else(|| malformed(format!("lease {shard}: pinned start {ms:?}")))?,
        ),
    };
    let throughput_bytes_per_sec = match text(THROUGHPUT)? {
        None => None,
        Some(rate) => Some(
            rate.parse::<u64>()
                .map_err(|_| malformed(format!("lease {shard}: throughput {rate:?}")))?,
        ),
    };
    let pending_checkpoint =
        position(&shard, pending_value, pending_sub)?.map(|sequence| PendingCheckpoint {
            sequence,
            state: fields.remove(PENDING_STATE),
        });
    let hash_key_range = match (start, end) {
        (None, None) => None,
        (Some(start), Some(end)) => Some(
            HashKeyRange::new(hash_key(&shard, &start)?, hash_key(&shard, &end)?)
                .map_err(|e| malformed(format!("lease {shard}: {e}")))?,
        ),
        _ => {
            return Err(malformed(format!(
                "lease {shard} has half a hash key range"
            )));
        }
    };
    Ok(Some(Lease {
        shard_id,
        owner,
        counter,
        generation,
        checkpoint,
        pending_checkpoint,
        owner_switches_since_checkpoint: switches,
        parent_shard_ids: parents,
        child_shard_ids: children,
        hash_key_range,
        handoff_to,
        pinned_start,
        throughput_bytes_per_sec,
    }))
}

/// A stored position (value and sub-sequence fields), if the value is there.
pub(crate) fn position(
    shard: &str,
    value: Option<String>,
    sub: Option<String>,
) -> Result<Option<ExtendedSequenceNumber>> {
    let Some(value) = value else { return Ok(None) };
    let sub = match sub {
        Some(sub) => sub
            .parse::<u64>()
            .map_err(|_| malformed(format!("{shard}: sub-sequence number {sub:?}")))?,
        None => 0,
    };
    ExtendedSequenceNumber::from_parts(&value, sub)
        .map(Some)
        .map_err(|e| malformed(format!("{shard}: {e}")))
}

fn optional_text(fields: &mut Fields, name: &str, shard: &str) -> Result<Option<String>> {
    fields
        .remove(name)
        .map(|v| {
            String::from_utf8(v)
                .map_err(|_| malformed(format!("lease {shard}: field {name} is not UTF-8")))
        })
        .transpose()
}

fn required_text(fields: &mut Fields, name: &str, shard: &str) -> Result<String> {
    optional_text(fields, name, shard)?
        .ok_or_else(|| malformed(format!("lease {shard} has no field {name}")))
}

fn number(shard: &str, name: &str, value: Option<String>) -> Result<u64> {
    match value {
        None => Ok(0),
        Some(v) => v
            .parse()
            .map_err(|_| malformed(format!("lease {shard}: {name} {v:?} is not a counter"))),
    }
}

fn hash_key(shard: &str, value: &str) -> Result<u128> {
    value
        .parse()
        .map_err(|_| malformed(format!("lease {shard}: hash key {value:?}")))
}

fn shard_ids(value: Option<String>) -> Result<Vec<ShardId>> {
    match value {
        None => Ok(Vec::new()),
        Some(v) if v.is_empty() => Ok(Vec::new()),
        Some(v) => v
            .split('\n')
            .map(|id| ShardId::new(id).map_err(|e| malformed(format!("stored lease: {e}"))))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(lease: &Lease) -> Lease {
        let fields: Fields = lease_to_fields(lease)
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        lease_from_fields(fields).unwrap().unwrap()
    }

    #[test]
    fn a_full_lease_round_trips() {
        let shard = |s: &str| ShardId::new(s).unwrap();
        let mut lease = Lease::new(
            shard("shardId-1"),
            ExtendedSequenceNumber::at(
                "49590338271490256608559692538361571095921575989136588898"
                    .parse()
                    .unwrap(),
                u64::MAX,
            ),
        )
        .with_parents([shard("p-1"), shard("p-2")])
        .with_children([shard("c-1")])
        .with_hash_key_range(HashKeyRange::FULL);
        lease.owner = Some(WorkerId::new("w-1").unwrap());
        lease.counter = 7;
        lease.generation = 3;
        lease.owner_switches_since_checkpoint = 2;
        lease.handoff_to = Some(WorkerId::new("w-2").unwrap());
        lease.pinned_start = Lease::instant_from_millis(1_700_000_000_123);
        lease.throughput_bytes_per_sec = Some(u64::MAX);
        lease.pending_checkpoint = Some(PendingCheckpoint {
            sequence: ExtendedSequenceNumber::ShardEnd,
            state: Some(vec![0, 255, b'\n']),
        });
        assert_eq!(round_trip(&lease), lease);

        lease.pending_checkpoint = Some(PendingCheckpoint {
            sequence: ExtendedSequenceNumber::Latest,
            state: Some(Vec::new()),
        });
        assert_eq!(round_trip(&lease), lease, "empty state is not None");
    }

    #[test]
    fn a_bare_lease_round_trips_and_missing_is_none() {
        let lease = Lease::new(
            ShardId::new("s").unwrap(),
            ExtendedSequenceNumber::TrimHorizon,
        );
        assert_eq!(round_trip(&lease), lease);
        assert_eq!(lease_from_fields(Fields::new()).unwrap(), None);
    }

    #[test]
    fn counters_beyond_redis_integers_are_refused() {
        let mut lease = Lease::new(
            ShardId::new("s").unwrap(),
            ExtendedSequenceNumber::TrimHorizon,
        );
        lease.generation = u64::MAX;
        assert!(matches!(lease_to_fields(&lease), Err(Error::Config(_))));
    }

    #[test]
    fn a_corrupt_hash_is_an_error_not_a_panic() {
        let mut fields = Fields::new();
        fields.insert(SHARD_ID.into(), b"s".to_vec());
        fields.insert(CHECKPOINT.into(), b"12x".to_vec());
        assert!(lease_from_fields(fields).is_err());
    }

    #[test]
    fn every_kind_of_corrupt_hash_is_a_generic_error() {
        let good = || {
            let mut fields = Fields::new();
            fields.insert(SHARD_ID.into(), b"shardId-1".to_vec());
            fields.insert(CHECKPOINT.into(), b"TRIM_HORIZON".to_vec());
            fields
        };
        for (field, value) in [
            (SHARD_ID, &b""[..]),
            (OWNER, b""),
            (HANDOFF_TO, b""),
            (PARENT_SHARD_IDS, b"a\n"),
            (CHILD_SHARD_IDS, b"\n"),
            (COUNTER, b"-1"),
            (GENERATION, b"18446744073709551616"),
            (CHECKPOINT, b"12x"),
            (CHECKPOINT_SUB, b"x"),
            (OWNER, b"\xff"),
            (PINNED_START, b"soon"),
            (PINNED_START, b"18446744073709551616"),
            (THROUGHPUT, b"-1"),
            (THROUGHPUT, b"1.5"),
        ] {
            let mut fields = good();
            fields.insert(field.into(), value.to_vec());
            let result = lease_from_fields(fields);
            assert!(
                matches!(result, Err(Error::Generic { .. })),
                "{field} = {value:?}: {result:?}"
            );
        }
        let mut half = good();
        half.insert(HASH_KEY_START.into(), b"5".to_vec());
        half.insert(HASH_KEY_END.into(), b"4".to_vec());
        assert!(matches!(
            lease_from_fields(half),
            Err(Error::Generic { .. })
        ));
    }
}
