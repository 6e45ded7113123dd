//! How leases and positions are laid out in rows.
//!
//! A position is three columns, `(rank, seq, sub)`, that sort in the KCL
//! order as one SQL row value (see `migrations/0001_*.sql`): the rank
//! orders the sentinels around the sequence numbers, the sequence number is
//! an exact `NUMERIC` bound as text (real ones are 56 digits, wider than
//! any integer type), and the sub-sequence number is a `BIGINT`.

use kcl_core::{
    Error, ExtendedSequenceNumber as Esn, HashKeyRange, Lease, PendingCheckpoint, Result, ShardId,
    WorkerId,
};
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::error::corrupt;

/// The columns a lease is read from, in `SELECT` and `RETURNING` lists.
pub(crate) const LEASE_COLUMNS: &str = "shard_id, owner, counter, generation, \
     checkpoint_rank, checkpoint_seq::text AS checkpoint_seq, checkpoint_sub, \
     pending_rank, pending_seq::text AS pending_seq, pending_sub, pending_state, \
     owner_switches, parent_shard_ids, child_shard_ids, \
     hash_key_start::text AS hash_key_start, hash_key_end::text AS hash_key_end, handoff_to, pinned_start_ms, \
     throughput_bytes_per_sec";

/// A position as bound to a statement: rank, sequence digits, sub-sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Position {
    pub(crate) rank: i16,
    pub(crate) seq: String,
    pub(crate) sub: i64,
}

impl Position {
    pub(crate) fn encode(esn: &Esn) -> Result<Self> {
        let sentinel = |rank| Position {
            rank,
            seq: "0".into(),
            sub: 0,
        };
        Ok(match esn {
            Esn::AtTimestamp => sentinel(0),
            Esn::TrimHorizon => sentinel(1),
            Esn::Latest => sentinel(2),
            Esn::ShardEnd => sentinel(4),
            Esn::Sequence {
                sequence,
                sub_sequence,
            } => Position {
                rank: 3,
                seq: sequence.as_str().to_owned(),
                sub: i64::try_from(*sub_sequence).map_err(|_| {
                    Error::InvalidCheckpoint(format!(
                        "sub-sequence number {sub_sequence} is above {} (the largest PostgreSQL keeps)",
                        i64::MAX
                    ))
                })?,
            },
        })
    }

    pub(crate) fn decode(rank: i16, seq: &str, sub: i64) -> Result<Esn> {
        Ok(match rank {
            0 => Esn::AtTimestamp,
            1 => Esn::TrimHorizon,
            2 => Esn::Latest,
            4 => Esn::ShardEnd,
            3 => Esn::at(
                seq.parse()
                    .map_err(|_| corrupt(format!("stored sequence number {seq:?}")))?,
                u64::try_from(sub).map_err(|_| corrupt(format!("stored sub-sequence {sub}")))?,
            ),
            other => return Err(corrupt(format!("stored checkpoint rank {other}"))),
        })
    }
}

fn unsigned(value: i64, what: &str) -> Result<u64> {
    u64::try_from(value).map_err(|_| corrupt(format!("negative {what} {value}")))
}

pub(crate) fn signed(value: u64, what: &str) -> Result<i64> {
    i64::try_from(value).map_err(|_| Error::Config(format!("{what} {value} is above {}", i64::MAX)))
}

fn get<'r, T>(row: &'r PgRow, column: &str) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(column).map_err(crate::error::map_sqlx)
}

fn hash_key(text: &str) -> Result<u128> {
    text.parse()
        .map_err(|_| corrupt(format!("stored hash key {text:?}")))
}

/// Decode a row selected with [`LEASE_COLUMNS`].
pub(crate) fn lease_from_row(row: &PgRow) -> Result<Lease> {
    // A stored id that is no longer a valid one is corrupt data (Generic),
    // not a configuration error.
    let stored = |e: Error| corrupt(format!("stored lease: {e}"));
    let shard_id = ShardId::new(get::<String>(row, "shard_id")?).map_err(stored)?;
    let owner = get::<Option<String>>(row, "owner")?
        .map(WorkerId::new)
        .transpose()
        .map_err(stored)?;
    let checkpoint = Position::decode(
        get(row, "checkpoint_rank")?,
        &get::<String>(row, "checkpoint_seq")?,
        get(row, "checkpoint_sub")?,
    )?;
    let pending_checkpoint = match get::<Option<i16>>(row, "pending_rank")? {
        None => None,
        Some(rank) => Some(PendingCheckpoint {
            sequence: Position::decode(
                rank,
                &get::<Option<String>>(row, "pending_seq")?.unwrap_or_default(),
                get::<Option<i64>>(row, "pending_sub")?.unwrap_or_default(),
            )?,
            state: get(row, "pending_state")?,
        }),
    };
    let ids = |column: &str| -> Result<Vec<ShardId>> {
        get::<Vec<String>>(row, column)?
            .into_iter()
            .map(|id| ShardId::new(id).map_err(stored))
            .collect()
    };
    let hash_key_range = match (
        get::<Option<String>>(row, "hash_key_start")?,
        get::<Option<String>>(row, "hash_key_end")?,
    ) {
        (Some(start), Some(end)) => {
            Some(HashKeyRange::new(hash_key(&start)?, hash_key(&end)?).map_err(stored)?)
        }
        _ => None,
    };
    Ok(Lease {
        shard_id,
        owner,
        counter: unsigned(get(row, "counter")?, "counter")?,
        generation: unsigned(get(row, "generation")?, "generation")?,
        checkpoint,
        pending_checkpoint,
        owner_switches_since_checkpoint: unsigned(get(row, "owner_switches")?, "owner switches")?,
        parent_shard_ids: ids("parent_shard_ids")?,
        child_shard_ids: ids("child_shard_ids")?,
        hash_key_range,
        handoff_to: get::<Option<String>>(row, "handoff_to")?
            .map(WorkerId::new)
            .transpose()
            .map_err(stored)?,
        pinned_start: get::<Option<i64>>(row, "pinned_start_ms")?
            .map(|ms| {
                u64::try_from(ms)
                    .ok()
                    .and_then(Lease::instant_from_millis)
                    .ok_or_else(|| corrupt(format!("stored pinned start {ms}")))
            })
            .transpose()?,
        throughput_bytes_per_sec: get::<Option<i64>>(row, "throughput_bytes_per_sec")?
            .map(|rate| {
                u64::try_from(rate).map_err(|_| corrupt(format!("stored throughput {rate}")))
            })
            .transpose()?,
    })
}

/// Shard ids as the `text[]` bound to a statement.
pub(crate) fn id_strings(ids: &[ShardId]) -> Vec<String> {
    ids.iter().map(|id| id.as_str().to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_and_ranks_keep_the_kcl_order() {
        let real = "49590338271490256608559692538361571095921575989136588898";
        let order = [
            Esn::AtTimestamp,
            Esn::TrimHorizon,
            Esn::Latest,
            Esn::at("0".parse().unwrap(), 0),
            Esn::at(real.parse().unwrap(), 7),
            Esn::ShardEnd,
        ];
        for esn in &order {
            let p = Position::encode(esn).unwrap();
            assert_eq!(&Position::decode(p.rank, &p.seq, p.sub).unwrap(), esn);
        }
        for w in order.windows(2) {
            let (a, b) = (
                Position::encode(&w[0]).unwrap(),
                Position::encode(&w[1]).unwrap(),
            );
            assert!(a.rank <= b.rank, "{:?} then {:?}", w[0], w[1]);
        }
        let huge = Esn::at("1".parse().unwrap(), u64::MAX);
        assert!(matches!(
            Position::encode(&huge),
            Err(Error::InvalidCheckpoint(_))
        ));
        assert!(Position::decode(9, "0", 0).is_err());
        assert!(Position::decode(3, "abc", 0).is_err());
    }
}
