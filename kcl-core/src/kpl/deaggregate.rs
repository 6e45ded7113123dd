//! De-aggregation: one Kinesis record in, its user records out.

use super::{DIGEST_LEN, MAGIC, effective_hash_key, parse_hash_key};
use crate::ids::HashKeyRange;
use crate::retrieval::{PartitionKey, Record};
use md5::{Digest, Md5};

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

/// Whether the trailer of `data` is the MD5 of the body between the magic
/// bytes and the trailer. `data` must have the aggregate framing.
fn trailer_matches(data: &[u8]) -> bool {
    let body_end = data.len() - DIGEST_LEN;
    let digest = Md5::digest(&data[MAGIC.len()..body_end]);
    digest.as_slice() == &data[body_end..]
}

/// One user record as the wire holds it: table indices and where its data
/// lies in the outer record's bytes.
struct UserRef {
    partition_key_index: Option<u64>,
    explicit_hash_key_index: Option<u64>,
    data: Option<(usize, usize)>,
}

/// An `AggregatedRecord` read in place: the tables and the user records
/// as offsets into the outer record's bytes. Nothing is decoded into owned
/// strings or messages that would be copied again.
struct Body<'a> {
    partition_keys: Vec<&'a str>,
    explicit_hash_keys: Vec<(usize, usize)>,
    records: Vec<UserRef>,
}

/// A cursor over protobuf wire bytes. Offsets are into `buf`, which is the
/// whole outer record; `end` bounds the current message.
struct Wire<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
}

/// Protobuf wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
const FIXED32: u8 = 5;

impl Wire<'_> {
    fn done(&self) -> bool {
        self.pos >= self.end
    }

    #[inline(always)]
    fn varint(&mut self) -> Result<u64, Invalid> {
        // One byte is the common case: a field key, an index, a length.
        if let Some(&byte) = self.buf.get(self.pos).filter(|_| self.pos < self.end)
            && byte < 0x80
        {
            self.pos += 1;
            return Ok(u64::from(byte));
        }
        self.varint_slow()
    }

    fn varint_slow(&mut self) -> Result<u64, Invalid> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let byte = *self
                .buf
                .get(self.pos)
                .filter(|_| self.pos < self.end)
                .ok_or(Invalid::Protobuf)?;
            self.pos += 1;
            // The tenth byte may only carry the top bit of a u64.
            if i == 9 && byte > 1 {
                return Err(Invalid::Protobuf);
            }
            value |= u64::from(byte & 0x7F) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Invalid::Protobuf)
    }

    /// A field key: (field number, wire type).
    #[inline(always)]
    fn key(&mut self) -> Result<(u64, u8), Invalid> {
        let key = self.varint()?;
        if key > u64::from(u32::MAX) {
            return Err(Invalid::Protobuf);
        }
        let field = key >> 3;
        if field == 0 {
            return Err(Invalid::Protobuf);
        }
        Ok((field, (key & 7) as u8))
    }

    /// A length-delimited field's bytes, as `(start, end)` offsets.
    #[inline(always)]
    fn len_delimited(&mut self) -> Result<(usize, usize), Invalid> {
        let len = self.varint()?;
        let start = self.pos;
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| start.checked_add(len))
            .filter(|&end| end <= self.end)
            .ok_or(Invalid::Protobuf)?;
        self.pos = end;
        Ok((start, end))
    }

    fn advance(&mut self, n: usize) -> Result<(), Invalid> {
        if self.end - self.pos < n {
            return Err(Invalid::Protobuf);
        }
        self.pos += n;
        Ok(())
    }

    /// Skip an unknown field's value (as prost does), groups included.
    fn skip(&mut self, field: u64, wire_type: u8) -> Result<(), Invalid> {
        match wire_type {
            VARINT => self.varint().map(drop),
            FIXED64 => self.advance(8),
            LEN => self.len_delimited().map(drop),
            FIXED32 => self.advance(4),
            START_GROUP => {
                // Nested groups, bounded by the input's length.
                let mut open = vec![field];
                while let Some(&top) = open.last() {
                    let (inner, inner_type) = self.key()?;
                    match inner_type {
                        START_GROUP => open.push(inner),
                        END_GROUP if inner == top => {
                            open.pop();
                        }
                        END_GROUP => return Err(Invalid::Protobuf),
                        other => self.skip(inner, other)?,
                    }
                }
                Ok(())
            }
            _ => Err(Invalid::Protobuf),
        }
    }

    /// A `string` field: its offsets, once checked to be UTF-8.
    fn string(&mut self) -> Result<(usize, usize), Invalid> {
        let (start, end) = self.len_delimited()?;
        std::str::from_utf8(&self.buf[start..end]).map_err(|_| Invalid::Protobuf)?;
        Ok((start, end))
    }

    /// A nested message's cursor; `self` moves past it.
    fn message(&mut self) -> Result<Wire<'_>, Invalid> {
        let (start, end) = self.len_delimited()?;
        Ok(Wire {
            buf: self.buf,
            pos: start,
            end,
        })
    }
}

/// Expect `wire_type` for a known field, as prost does.
fn expect(actual: u8, wanted: u8) -> Result<(), Invalid> {
    if actual == wanted {
        Ok(())
    } else {
        Err(Invalid::Protobuf)
    }
}

/// Read one `Record` message (tags are checked, then dropped).
fn read_user(mut wire: Wire<'_>) -> Result<UserRef, Invalid> {
    let mut user = UserRef {
        partition_key_index: None,
        explicit_hash_key_index: None,
        data: None,
    };
    let mut tags_ok = true;
    while !wire.done() {
        let (field, wire_type) = wire.key()?;
        match field {
            1 => {
                expect(wire_type, VARINT)?;
                user.partition_key_index = Some(wire.varint()?);
            }
            2 => {
                expect(wire_type, VARINT)?;
                user.explicit_hash_key_index = Some(wire.varint()?);
            }
            3 => {
                expect(wire_type, LEN)?;
                user.data = Some(wire.len_delimited()?);
            }
            4 => {
                expect(wire_type, LEN)?;
                let mut tag = wire.message()?;
                let mut has_key = false;
                while !tag.done() {
                    let (field, wire_type) = tag.key()?;
                    match field {
                        1 | 2 => {
                            expect(wire_type, LEN)?;
                            tag.string()?;
                            has_key |= field == 1;
                        }
                        _ => tag.skip(field, wire_type)?,
                    }
                }
                tags_ok &= has_key;
            }
            _ => wire.skip(field, wire_type)?,
        }
    }
    if !tags_ok {
        // A tag without its required key: reported with the other
        // missing fields.
        user.partition_key_index = None;
    }
    Ok(user)
}

/// Wire bytes per user record assumed when sizing the tables: a 100-byte
/// record with a UUID key takes about 143 on the wire.
const GUESS_WIRE_BYTES_PER_RECORD: usize = 128;
/// At most this many entries are reserved up front.
const GUESS_RECORDS_MAX: usize = 1024;

/// Walk the body (`data[start..end]` of the outer record) and validate it:
/// well-formed wire, every required field present, every index inside its
/// table, every explicit hash key a 128-bit decimal. Returns the body and
/// the parsed explicit hash key table.
fn read_body(data: &[u8], start: usize, end: usize) -> Result<(Body<'_>, Vec<u128>), Invalid> {
    let mut wire = Wire {
        buf: data,
        pos: start,
        end,
    };
    // Sized from the body's length, so a KPL aggregate of ~100-byte
    // records fills its tables without growing them; bounded, so a large
    // aggregate of large records does not reserve for records it lacks.
    let guess = ((end - start) / GUESS_WIRE_BYTES_PER_RECORD).min(GUESS_RECORDS_MAX);
    let mut body = Body {
        partition_keys: Vec::with_capacity(guess),
        explicit_hash_keys: Vec::new(),
        records: Vec::with_capacity(guess),
    };
    while !wire.done() {
        let (field, wire_type) = wire.key()?;
        match field {
            1 => {
                expect(wire_type, LEN)?;
                let (s, e) = wire.len_delimited()?;
                let key = std::str::from_utf8(&data[s..e]).map_err(|_| Invalid::Protobuf)?;
                body.partition_keys.push(key);
            }
            2 => {
                expect(wire_type, LEN)?;
                body.explicit_hash_keys.push(wire.string()?);
            }
            3 => {
                expect(wire_type, LEN)?;
                let user = wire.message()?;
                body.records.push(read_user(user)?);
            }
            _ => wire.skip(field, wire_type)?,
        }
    }
    if body.records.is_empty() {
        return Err(Invalid::Empty);
    }
    let hash_keys = body
        .explicit_hash_keys
        .iter()
        .map(|&(s, e)| {
            // Checked UTF-8 by `string`; a key that is not is not a number.
            std::str::from_utf8(&data[s..e])
                .ok()
                .and_then(parse_hash_key)
                .ok_or(Invalid::BadExplicitHashKey)
        })
        .collect::<Result<Vec<u128>, Invalid>>()?;
    let pk_count = body.partition_keys.len() as u64;
    let ehk_count = hash_keys.len() as u64;
    for user in &body.records {
        if user.partition_key_index.is_none() || user.data.is_none() {
            return Err(Invalid::MissingField);
        }
        let pk_ok = user.partition_key_index.is_some_and(|i| i < pk_count);
        let ehk_ok = user.explicit_hash_key_index.is_none_or(|i| i < ehk_count);
        if !pk_ok || !ehk_ok {
            return Err(Invalid::IndexOutOfRange);
        }
    }
    Ok((body, hash_keys))
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
    let decoded = if trailer_matches(&record.data) {
        read_body(&record.data, MAGIC.len(), record.data.len() - DIGEST_LEN)
    } else {
        Err(Invalid::Digest)
    };
    let (body, hash_keys) = match decoded {
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
    let Body {
        partition_keys,
        explicit_hash_keys,
        records,
    } = body;
    // Partition key hashes for the filter, each computed once, on first use.
    let mut pk_hashes: Vec<Option<u128>> = match filter {
        Some(_) => vec![None; partition_keys.len()],
        None => Vec::new(),
    };
    if let Some(range) = filter {
        // Check every record before building any: an aggregate with one
        // record outside the shard is skipped whole.
        for (i, user) in records.iter().enumerate() {
            let pk_index = index(user.partition_key_index);
            let hash_key = match user.explicit_hash_key_index {
                Some(e) => hash_keys[e as usize],
                None => *pk_hashes[pk_index]
                    .get_or_insert_with(|| effective_hash_key(partition_keys[pk_index], None)),
            };
            if !range.contains(hash_key) {
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
    }
    // A long key gets one shared allocation per table entry, which every
    // sub-record naming it points at (the KPL shares one entry between a
    // key's records), so a crafted aggregate of many tiny records cannot
    // multiply a long key. Short keys are copied inline: no allocation.
    let mut long_keys: Vec<Option<PartitionKey>> = Vec::new();
    out.reserve(records.len());
    for (i, user) in records.into_iter().enumerate() {
        let pk_index = index(user.partition_key_index);
        let key = partition_keys[pk_index];
        let partition_key = PartitionKey::try_inline(key).unwrap_or_else(|| {
            if long_keys.is_empty() {
                long_keys = vec![None; partition_keys.len()];
            }
            long_keys[pk_index]
                .get_or_insert_with(|| PartitionKey::from(key))
                .clone()
        });
        let explicit_hash_key = user.explicit_hash_key_index.map(|e| {
            let (s, e) = explicit_hash_keys[e as usize];
            // Checked UTF-8 (and digits) by `read_body`.
            String::from_utf8_lossy(&record.data[s..e]).into_owned()
        });
        let (s, e) = user.data.unwrap_or_default();
        out.push(Record {
            sequence_number: record.sequence_number.clone(),
            sub_sequence_number: i as u64,
            aggregated: true,
            partition_key,
            explicit_hash_key,
            data: record.data.slice(s..e),
            approximate_arrival_timestamp: record.approximate_arrival_timestamp,
        });
    }
    Outcome::Deaggregated(out.len() - start)
}

/// A table index already checked by [`read_body`].
fn index(checked: Option<u64>) -> usize {
    checked.unwrap_or_default() as usize
}
