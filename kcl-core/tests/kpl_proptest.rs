//! Property tests of KPL de-aggregation: arbitrary bytes never panic and
//! never lose the input; aggregate → de-aggregate is the identity.

use bytes::Bytes;
use kcl_core::HashKeyRange;
use kcl_core::SequenceNumber;
use kcl_core::kpl::{Aggregator, DIGEST_LEN, MAGIC, deaggregate_into, effective_hash_key};
use kcl_core::retrieval::Record;
use md5::{Digest, Md5};
use proptest::prelude::*;

fn seq() -> SequenceNumber {
    "49590338271490256608559692538361571095921575989136588898"
        .parse()
        .unwrap()
}

fn outer(data: Vec<u8>) -> Record {
    Record::new(seq(), "outer", data)
}

/// Frame `body` as an aggregate with a correct MD5 trailer, so the
/// protobuf parser (not the checksum) is what gets exercised.
fn frame(body: &[u8]) -> Vec<u8> {
    let mut data = MAGIC.to_vec();
    data.extend_from_slice(body);
    data.extend_from_slice(&Md5::digest(body));
    data
}

/// De-aggregate and check the invariants that hold for any input:
/// either exactly the input comes back as a plain record, or a run of
/// sub-records with the outer sequence number and sub-sequence 0..n-1.
fn check_any(record: Record, range: Option<&HashKeyRange>) -> Result<Vec<Record>, TestCaseError> {
    let mut out = Vec::new();
    deaggregate_into(record.clone(), range, &mut out);
    if out.iter().any(|r| !r.aggregated) {
        prop_assert_eq!(&out, &vec![record]);
    } else {
        for (i, sub) in out.iter().enumerate() {
            prop_assert_eq!(&sub.sequence_number, &record.sequence_number);
            prop_assert_eq!(sub.sub_sequence_number, i as u64);
            if let (Some(range), Some(ehk)) = (range, &sub.explicit_hash_key) {
                prop_assert!(range.contains(ehk.parse::<u128>().unwrap()));
            }
        }
        // Only a valid, framed aggregate can come out as sub-records.
        prop_assert!(kcl_core::kpl::is_aggregate_framing(&record.data));
    }
    Ok(out)
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn field_bytes(tag: u32, bytes: &[u8], out: &mut Vec<u8>) {
    varint(u64::from(tag << 3 | 2), out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

fn field_varint(tag: u32, v: u64, out: &mut Vec<u8>) {
    varint(u64::from(tag << 3), out);
    varint(v, out);
}

/// A protobuf user record with possibly missing or out-of-range fields.
#[derive(Debug, Clone)]
struct RawUser {
    pk_index: Option<u64>,
    ehk_index: Option<u64>,
    data: Option<Vec<u8>>,
}

fn raw_user() -> impl Strategy<Value = RawUser> {
    (
        prop::option::weighted(0.95, 0u64..6),
        prop::option::of(0u64..4),
        prop::option::weighted(0.95, prop::collection::vec(any::<u8>(), 0..20)),
    )
        .prop_map(|(pk_index, ehk_index, data)| RawUser {
            pk_index,
            ehk_index,
            data,
        })
}

/// A hand-encoded `AggregatedRecord` that is sometimes valid and often
/// subtly not (indices past the tables, missing fields, bad hash keys).
fn raw_body() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec("[a-z]{1,5}", 0..5),
        prop::collection::vec(
            prop_oneof![any::<u128>().prop_map(|k| k.to_string()), "[0-9x]{0,3}"],
            0..3,
        ),
        prop::collection::vec(raw_user(), 0..8),
    )
        .prop_map(|(pks, ehks, users)| {
            let mut body = Vec::new();
            for pk in &pks {
                field_bytes(1, pk.as_bytes(), &mut body);
            }
            for ehk in &ehks {
                field_bytes(2, ehk.as_bytes(), &mut body);
            }
            for user in &users {
                let mut inner = Vec::new();
                if let Some(i) = user.pk_index {
                    field_varint(1, i, &mut inner);
                }
                if let Some(i) = user.ehk_index {
                    field_varint(2, i, &mut inner);
                }
                if let Some(data) = &user.data {
                    field_bytes(3, data, &mut inner);
                }
                field_bytes(3, &inner, &mut body);
            }
            body
        })
}

fn range() -> impl Strategy<Value = Option<HashKeyRange>> {
    prop::option::of(
        (any::<u128>(), any::<u128>())
            .prop_map(|(a, b)| HashKeyRange::new(a.min(b), a.max(b)).unwrap()),
    )
}

/// A user record as a producer hands it over.
#[derive(Debug, Clone)]
struct Input {
    partition_key: String,
    explicit_hash_key: Option<u128>,
    data: Vec<u8>,
}

fn input() -> impl Strategy<Value = Input> {
    (
        prop_oneof!["[a-c]{1,2}", "\\PC{1,40}", "[a-z0-9-]{1,256}"],
        prop::option::of(any::<u128>()),
        prop::collection::vec(any::<u8>(), 0..400),
    )
        .prop_map(|(partition_key, explicit_hash_key, data)| Input {
            partition_key,
            explicit_hash_key,
            data,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic_and_come_back_whole(data in prop::collection::vec(any::<u8>(), 0..600), range in range()) {
        check_any(outer(data.clone()), range.as_ref())?;
        // With the magic prefix, so the checksum path runs.
        let mut magic = MAGIC.to_vec();
        magic.extend_from_slice(&data);
        let out = check_any(outer(magic.clone()), range.as_ref())?;
        prop_assert_eq!(out, vec![outer(magic)], "a wrong trailer must not de-aggregate");
    }

    #[test]
    fn framed_garbage_never_panics(body in prop::collection::vec(any::<u8>(), 1..600), range in range()) {
        check_any(outer(frame(&body)), range.as_ref())?;
    }

    #[test]
    fn framed_near_valid_protobuf_never_panics(body in raw_body(), range in range()) {
        let out = check_any(outer(frame(&body)), range.as_ref())?;
        for sub in out.iter().filter(|r| r.aggregated) {
            prop_assert!(!sub.partition_key.is_empty());
            if let Some(range) = &range {
                let ehk = sub.explicit_hash_key.as_ref().map(|k| k.parse::<u128>().unwrap());
                prop_assert!(range.contains(effective_hash_key(&sub.partition_key, ehk)));
            }
        }
    }

    #[test]
    fn aggregate_then_deaggregate_is_the_identity(
        inputs in prop::collection::vec(input(), 1..60),
        // The smallest limit must fit the largest single input alone: a 256-byte
        // partition key (inside the aggregate and outside it), a 39-digit
        // explicit hash key and 400 bytes of data come to about 990 bytes.
        max_bytes in prop_oneof![Just(kcl_core::kpl::MAX_RECORD_BYTES), 1024usize..5000],
    ) {
        let mut aggregator = Aggregator::with_max_bytes(max_bytes).unwrap();
        let mut aggregates = Vec::new();
        for input in &inputs {
            aggregates.extend(aggregator.add(input.partition_key.clone(), input.explicit_hash_key, input.data.clone()).unwrap());
        }
        aggregates.extend(aggregator.flush());
        let mut out = Vec::new();
        for (i, aggregate) in aggregates.iter().enumerate() {
            prop_assert!(aggregate.data.len() + aggregate.partition_key.len() <= max_bytes);
            let sequence_number = SequenceNumber::from(1000 + i as u128);
            let start = out.len();
            deaggregate_into(Record::new(sequence_number.clone(), aggregate.partition_key.clone(), aggregate.data.clone()), None, &mut out);
            prop_assert_eq!(out.len() - start, aggregate.user_records);
            for (sub, record) in out[start..].iter().enumerate() {
                prop_assert!(record.aggregated);
                prop_assert_eq!(&record.sequence_number, &sequence_number);
                prop_assert_eq!(record.sub_sequence_number, sub as u64);
            }
            prop_assert_eq!(&*out[start].partition_key, aggregate.partition_key.as_str());
            prop_assert_eq!(&out[start].explicit_hash_key, &aggregate.explicit_hash_key);
        }
        let got: Vec<(String, Option<String>, Bytes)> = out.into_iter().map(|r| (r.partition_key.to_string(), r.explicit_hash_key, r.data)).collect();
        let want: Vec<(String, Option<String>, Bytes)> = inputs.into_iter().map(|i| (i.partition_key, i.explicit_hash_key.map(|k| k.to_string()), Bytes::from(i.data))).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn any_corruption_of_a_valid_aggregate_delivers_it_whole(
        inputs in prop::collection::vec(input(), 1..10),
        position in any::<prop::sample::Index>(),
        flip in 1u8..=255,
        cut in any::<prop::sample::Index>(),
    ) {
        let mut aggregator = Aggregator::new();
        for input in &inputs {
            prop_assert!(aggregator.add(input.partition_key.clone(), input.explicit_hash_key, input.data.clone()).unwrap().is_none());
        }
        let data = aggregator.flush().unwrap().data.to_vec();
        let mut flipped = data.clone();
        flipped[position.index(data.len())] ^= flip;
        prop_assert_eq!(check_any(outer(flipped.clone()), None)?, vec![outer(flipped)]);
        let truncated = data[..cut.index(data.len())].to_vec();
        prop_assert_eq!(check_any(outer(truncated.clone()), None)?, vec![outer(truncated)]);
        prop_assert!(data.len() > MAGIC.len() + DIGEST_LEN);
    }

    #[test]
    fn reshard_filter_keeps_or_skips_the_whole_aggregate(
        keys in prop::collection::vec(any::<u128>(), 1..20),
        range in range(),
    ) {
        let mut aggregator = Aggregator::new();
        for (i, key) in keys.iter().enumerate() {
            aggregator.add(format!("k{i}"), Some(*key), vec![i as u8]).unwrap();
        }
        let aggregate = aggregator.flush().unwrap();
        let mut out = Vec::new();
        deaggregate_into(Record::new(seq(), aggregate.partition_key, aggregate.data), range.as_ref(), &mut out);
        let all_inside = range.is_none_or(|r| keys.iter().all(|k| r.contains(*k)));
        prop_assert_eq!(out.len(), if all_inside { keys.len() } else { 0 });
    }
}
