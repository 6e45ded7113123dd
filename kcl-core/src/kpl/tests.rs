//! Unit tests of the de-aggregator and the aggregator.

use bytes::Bytes;
use md5::{Digest, Md5};
use prost::Message;

use super::deaggregate::{Invalid, Outcome, deaggregate};
use super::proto::{self, AggregatedRecord, UserRecord};
use super::*;
use crate::SequenceNumber;

fn seq() -> SequenceNumber {
    "49590338271490256608559692538361571095921575989136588898"
        .parse()
        .unwrap()
}

fn outer(data: impl Into<Bytes>) -> Record {
    let mut record = Record::new(seq(), "outer-key", data);
    record.approximate_arrival_timestamp = Some(std::time::UNIX_EPOCH);
    record
}

/// Frame a protobuf body as an aggregate with a correct trailer.
fn frame(body: &[u8]) -> Bytes {
    let mut data = MAGIC.to_vec();
    data.extend_from_slice(body);
    data.extend_from_slice(&Md5::digest(body));
    data.into()
}

fn user(pk: u64, ehk: Option<u64>, data: &'static [u8]) -> UserRecord {
    UserRecord {
        partition_key_index: Some(pk),
        explicit_hash_key_index: ehk,
        data: Some(Bytes::from_static(data)),
        tags: Vec::new(),
    }
}

fn message(pks: &[&str], ehks: &[&str], records: Vec<UserRecord>) -> Bytes {
    let message = AggregatedRecord {
        partition_key_table: pks.iter().map(|s| s.to_string()).collect(),
        explicit_hash_key_table: ehks.iter().map(|s| s.to_string()).collect(),
        records,
    };
    frame(&message.encode_to_vec())
}

fn run(record: Record, range: Option<&HashKeyRange>) -> (Outcome, Vec<Record>) {
    let mut out = Vec::new();
    let outcome = deaggregate(record, range, &mut out);
    (outcome, out)
}

/// What `aws_kinesis_agg` 1.2.3 (PyPI) produced for
/// `add_user_record('pk1', b'hello')`, `add_user_record('pk2', b'world', '12345')`.
const PYTHON_AGGREGATE: &[u8] = b"\xf3\x89\x9a\xc2\n\x03pk1\n\x03pk2\x12\x0512345\x1a\t\x08\x00\x1a\x05hello\x1a\x0b\x08\x01\x10\x00\x1a\x05world-KP|\xde\xec\xd4\xc2\xe1r3ES\xfb\xb4 ";

#[test]
fn plain_records_pass_through_unchanged() {
    for data in [
        &b""[..],
        b"hello",
        &MAGIC[..],
        &[0xF3, 0x89, 0x9A, 0xC2, 1, 2, 3][..],
    ] {
        let record = outer(Bytes::copy_from_slice(data));
        let (outcome, out) = run(record.clone(), None);
        assert_eq!(outcome, Outcome::Plain);
        assert_eq!(out, vec![record]);
    }
}

#[test]
fn magic_plus_exactly_a_digest_is_plain() {
    // Java: the remainder after the magic must be longer than the digest.
    let data = frame(&[]);
    assert_eq!(data.len(), 20);
    assert_eq!(run(outer(data), None).0, Outcome::Plain);
}

#[test]
fn decodes_the_python_library_output() {
    let (outcome, out) = run(outer(Bytes::from_static(PYTHON_AGGREGATE)), None);
    assert_eq!(outcome, Outcome::Deaggregated(2));
    assert_eq!(&*out[0].partition_key, "pk1");
    assert_eq!(out[0].explicit_hash_key, None);
    assert_eq!(out[0].data, "hello");
    assert_eq!(&*out[1].partition_key, "pk2");
    assert_eq!(out[1].explicit_hash_key.as_deref(), Some("12345"));
    assert_eq!(out[1].data, "world");
    for (i, record) in out.iter().enumerate() {
        assert!(record.aggregated);
        assert_eq!(record.sub_sequence_number, i as u64);
        assert_eq!(record.sequence_number, seq());
        assert_eq!(
            record.approximate_arrival_timestamp,
            Some(std::time::UNIX_EPOCH)
        );
    }
}

#[test]
fn aggregator_writes_the_python_library_bytes() {
    let mut aggregator = Aggregator::new();
    assert!(aggregator.add("pk1", None, "hello").unwrap().is_none());
    assert!(
        aggregator
            .add("pk2", Some(12345), "world")
            .unwrap()
            .is_none()
    );
    let aggregate = aggregator.flush().unwrap();
    assert_eq!(aggregate.data, PYTHON_AGGREGATE);
    assert_eq!(aggregate.partition_key, "pk1");
    assert_eq!(aggregate.explicit_hash_key, None);
    assert_eq!(aggregate.user_records, 2);
    assert!(aggregator.is_empty());
    assert!(aggregator.flush().is_none());
}

#[test]
fn sub_record_data_is_a_slice_of_the_input() {
    let data = Bytes::from_static(PYTHON_AGGREGATE);
    let range = data.as_ptr_range();
    let (_, out) = run(outer(data.clone()), None);
    for record in &out {
        let p = record.data.as_ptr();
        assert!(range.contains(&p), "sub-record data was copied");
    }
}

#[test]
fn corrupt_trailer_is_delivered_as_a_plain_record() {
    let mut data = PYTHON_AGGREGATE.to_vec();
    *data.last_mut().unwrap() ^= 1;
    let record = outer(data);
    let (outcome, out) = run(record.clone(), None);
    assert_eq!(outcome, Outcome::Invalid(Invalid::Digest));
    assert_eq!(out, vec![record]);
}

#[test]
fn malformed_aggregates_are_delivered_as_plain_records() {
    let no_pk = UserRecord {
        partition_key_index: None,
        ..user(0, None, b"x")
    };
    let no_data = UserRecord {
        data: None,
        ..user(0, None, b"x")
    };
    let keyless_tag = UserRecord {
        tags: vec![proto::Tag {
            key: None,
            value: Some("v".into()),
        }],
        ..user(0, None, b"x")
    };
    let cases = [
        (frame(&[0xFF, 0xFF, 0xFF]), Invalid::Protobuf),
        (message(&["a"], &[], vec![]), Invalid::Empty),
        (message(&["a"], &[], vec![no_pk]), Invalid::MissingField),
        (message(&["a"], &[], vec![no_data]), Invalid::MissingField),
        (
            message(&["a"], &[], vec![keyless_tag]),
            Invalid::MissingField,
        ),
        (
            message(&["a"], &[], vec![user(0, None, b"x"), user(1, None, b"y")]),
            Invalid::IndexOutOfRange,
        ),
        (
            message(&["a"], &["1"], vec![user(0, Some(1), b"x")]),
            Invalid::IndexOutOfRange,
        ),
        (
            message(&["a"], &["12x"], vec![user(0, Some(0), b"x")]),
            Invalid::BadExplicitHashKey,
        ),
        (
            message(&["a"], &["+1"], vec![user(0, Some(0), b"x")]),
            Invalid::BadExplicitHashKey,
        ),
        (
            message(
                &["a"],
                &["340282366920938463463374607431768211456"],
                vec![user(0, Some(0), b"x")],
            ),
            Invalid::BadExplicitHashKey,
        ),
    ];
    for (data, why) in cases {
        let record = outer(data);
        let (outcome, out) = run(record.clone(), None);
        assert_eq!(outcome, Outcome::Invalid(why));
        assert_eq!(out, vec![record], "{why:?}");
    }
}

#[test]
fn invalid_utf8_partition_key_is_a_plain_record() {
    // Field 1 (string) holding 0xFF.
    let record = outer(frame(&[
        0x0A, 0x01, 0xFF, 0x1A, 0x04, 0x08, 0x00, 0x1A, 0x00,
    ]));
    let (outcome, out) = run(record.clone(), None);
    assert_eq!(outcome, Outcome::Invalid(Invalid::Protobuf));
    assert_eq!(out, vec![record]);
}

#[test]
fn shared_partition_keys_are_resolved_per_record() {
    let data = message(
        &["a", "b"],
        &["5"],
        vec![
            user(0, None, b"1"),
            user(1, Some(0), b"2"),
            user(0, Some(0), b"3"),
            user(1, None, b"4"),
        ],
    );
    let (_, out) = run(outer(data), None);
    let got: Vec<_> = out
        .iter()
        .map(|r| {
            (
                &*r.partition_key,
                r.explicit_hash_key.as_deref(),
                r.data.clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("a", None, Bytes::from("1")),
            ("b", Some("5"), Bytes::from("2")),
            ("a", Some("5"), Bytes::from("3")),
            ("b", None, Bytes::from("4")),
        ]
    );
}

#[test]
fn appends_after_what_out_already_holds() {
    let mut out = vec![outer("earlier")];
    deaggregate_into(outer(Bytes::from_static(PYTHON_AGGREGATE)), None, &mut out);
    assert_eq!(out.len(), 3);
    assert_eq!(out[0].data, "earlier");
}

fn hash_range(low: u128, high: u128) -> HashKeyRange {
    HashKeyRange::new(low, high).unwrap()
}

#[test]
fn aggregate_with_a_record_outside_the_shard_is_skipped_whole() {
    // Explicit hash keys 10, 20, 30; the shard holds 0..=25.
    let data = message(
        &["k"],
        &["10", "20", "30"],
        vec![
            user(0, Some(0), b"a"),
            user(0, Some(1), b"b"),
            user(0, Some(2), b"c"),
        ],
    );
    let mut out = vec![outer("earlier")];
    let outcome = deaggregate(outer(data.clone()), Some(&hash_range(0, 25)), &mut out);
    assert_eq!(outcome, Outcome::OutOfRange);
    assert_eq!(out.len(), 1, "only what was there before survives");

    // Inside the range (inclusive ends), everything is delivered.
    let (outcome, out) = run(outer(data.clone()), Some(&hash_range(10, 30)));
    assert_eq!(outcome, Outcome::Deaggregated(3));
    assert_eq!(out.len(), 3);
    // No range, or the full range: no filtering.
    assert_eq!(run(outer(data.clone()), None).0, Outcome::Deaggregated(3));
    assert_eq!(
        run(outer(data), Some(&HashKeyRange::FULL)).0,
        Outcome::Deaggregated(3)
    );
}

#[test]
fn range_filter_uses_the_md5_of_the_partition_key() {
    let key = "some-partition-key";
    let hash = effective_hash_key(key, None);
    let data = message(&[key], &[], vec![user(0, None, b"a")]);
    let (outcome, _) = run(outer(data.clone()), Some(&hash_range(hash, hash)));
    assert_eq!(outcome, Outcome::Deaggregated(1));
    let below = hash_range(0, hash - 1);
    assert_eq!(run(outer(data), Some(&below)).0, Outcome::OutOfRange);
}

#[test]
fn plain_records_are_never_filtered_by_range() {
    let record = outer("not an aggregate");
    let (outcome, out) = run(record.clone(), Some(&hash_range(0, 0)));
    assert_eq!(outcome, Outcome::Plain);
    assert_eq!(out, vec![record]);
}

#[test]
fn effective_hash_key_is_big_endian_md5() {
    // MD5("a") = 0cc175b9c0f1b6a831c399e269772661
    assert_eq!(
        effective_hash_key("a", None),
        0x0cc175b9c0f1b6a831c399e269772661
    );
    assert_eq!(effective_hash_key("a", Some(3)), 3);
}

#[test]
fn aggregates_never_exceed_the_limit_and_count_exactly() {
    let limit = 1000;
    let mut aggregator = Aggregator::with_max_bytes(limit).unwrap();
    let mut aggregates = Vec::new();
    let mut added = 0;
    for i in 0..200u32 {
        let data = vec![b'x'; (i as usize * 7) % 90];
        let ehk = i.is_multiple_of(3).then_some(u128::from(i) << 100);
        let before = aggregator.size_bytes();
        let finished = aggregator
            .add(format!("key-{}", i % 17), ehk, data)
            .unwrap();
        added += 1;
        if let Some(done) = finished {
            assert!(before > 0);
            aggregates.push(done);
        }
        assert!(aggregator.size_bytes() <= limit);
    }
    aggregates.extend(aggregator.flush());
    assert!(aggregates.len() > 10, "the limit forced many aggregates");
    let mut total = 0;
    for aggregate in &aggregates {
        assert!(aggregate.data.len() + aggregate.partition_key.len() <= limit);
        let (outcome, out) = run(outer(aggregate.data.clone()), None);
        assert_eq!(outcome, Outcome::Deaggregated(aggregate.user_records));
        assert_eq!(&*out[0].partition_key, aggregate.partition_key);
        assert_eq!(out[0].explicit_hash_key, aggregate.explicit_hash_key);
        total += out.len();
    }
    assert_eq!(total, added);
}

#[test]
fn size_bytes_matches_the_finished_aggregate() {
    let mut aggregator = Aggregator::new();
    assert_eq!(aggregator.size_bytes(), 0);
    for i in 0..50u32 {
        aggregator
            .add(
                format!("key-{}", i % 5),
                i.is_multiple_of(4).then_some(u128::from(i) * 1_000_003),
                vec![7u8; i as usize * 11],
            )
            .unwrap();
    }
    let expected = aggregator.size_bytes();
    let aggregate = aggregator.flush().unwrap();
    assert_eq!(
        aggregate.data.len() + aggregate.partition_key.len(),
        expected
    );
}

#[test]
fn a_record_that_fits_exactly_is_accepted() {
    // Find the size of one record alone, then use it as the limit.
    let mut probe = Aggregator::new();
    probe.add("k", None, vec![0u8; 100]).unwrap();
    let exact = probe.size_bytes();
    let mut aggregator = Aggregator::with_max_bytes(exact).unwrap();
    assert!(aggregator.add("k", None, vec![0u8; 100]).unwrap().is_none());
    let finished = aggregator.add("k", None, vec![0u8; 100]).unwrap();
    assert_eq!(finished.map(|a| a.user_records), Some(1));
    assert_eq!(
        Aggregator::with_max_bytes(exact)
            .unwrap()
            .add("k", None, vec![0u8; 101]),
        Err(AggregateError::TooLarge {
            needed: exact + 1,
            limit: exact
        })
    );
}

#[test]
fn bad_input_is_refused_and_loses_nothing_pending() {
    let mut aggregator = Aggregator::new();
    aggregator.add("k", None, "kept").unwrap();
    assert_eq!(
        aggregator.add("", None, "x"),
        Err(AggregateError::PartitionKey { chars: 0 })
    );
    assert_eq!(
        aggregator.add("é".repeat(257), None, "x"),
        Err(AggregateError::PartitionKey { chars: 257 })
    );
    assert!(aggregator.add("é".repeat(256), None, "x").is_ok());
    assert!(matches!(
        aggregator.add("k", None, vec![0u8; MAX_RECORD_BYTES]),
        Err(AggregateError::TooLarge { .. })
    ));
    assert_eq!(aggregator.len(), 2);
    assert_eq!(
        Aggregator::with_max_bytes(MAX_RECORD_BYTES + 1).unwrap_err(),
        AggregateError::Limit(MAX_RECORD_BYTES + 1)
    );
}

#[test]
fn a_full_size_aggregate_fits_the_kinesis_limit() {
    let mut aggregator = Aggregator::new();
    let mut finished = None;
    let mut i = 0u32;
    while finished.is_none() {
        finished = aggregator
            .add(format!("pk-{i}"), None, vec![i as u8; 1000])
            .unwrap();
        i += 1;
    }
    let aggregate = finished.unwrap();
    let size = aggregate.data.len() + aggregate.partition_key.len();
    assert!(
        size <= MAX_RECORD_BYTES && size > MAX_RECORD_BYTES - 1100,
        "{size}"
    );
}

/// The in-place wire reader takes what prost's decoder takes and refuses
/// what it refuses: unknown fields (groups included) skipped, a known field
/// with the wrong wire type, a truncated length or an over-long varint
/// refused.
#[test]
fn wire_reader_agrees_with_prost() {
    // A valid record (pk 0, data "x") and a partition key table entry.
    let rec: &[u8] = &[0x1A, 0x05, 0x08, 0x00, 0x1A, 0x01, b'x'];
    let pk: &[u8] = &[0x0A, 0x01, b'a'];
    let cat = |parts: &[&[u8]]| parts.concat();
    let bodies: Vec<Vec<u8>> = vec![
        cat(&[pk, rec]),
        cat(&[rec, pk]),
        // Unknown varint, fixed64, fixed32, length-delimited fields.
        cat(&[pk, &[0x28, 0x05], rec]),
        cat(&[pk, &[0x31, 1, 2, 3, 4, 5, 6, 7, 8], rec]),
        cat(&[pk, &[0x3D, 1, 2, 3, 4], rec]),
        cat(&[pk, &[0x42, 0x02, 0xFF, 0xFF], rec]),
        // An unknown group (field 9), nested group inside, then its end.
        cat(&[pk, &[0x4B, 0x53, 0x08, 0x01, 0x54, 0x4C], rec]),
        // A group end that does not match.
        cat(&[pk, &[0x4B, 0x54], rec]),
        // Unknown fields inside the user record and a tag.
        cat(&[
            pk,
            &[
                0x1A, 0x09, 0x08, 0x00, 0x1A, 0x01, b'x', 0x28, 0x01, 0x30, 0x02,
            ],
        ]),
        cat(&[
            pk,
            &[
                0x1A, 0x0B, 0x08, 0x00, 0x1A, 0x01, b'x', 0x22, 0x04, 0x0A, 0x00, 0x18, 0x07,
            ],
        ]),
        // Wrong wire types for known fields.
        cat(&[&[0x08, 0x01], rec]),
        cat(&[pk, &[0x1A, 0x05, 0x0A, 0x00, 0x1A, 0x01, b'x']]),
        cat(&[pk, &[0x1A, 0x05, 0x08, 0x00, 0x18, 0x01, 0x00]]),
        // Truncated length, field number 0, over-long varint, bad wire type.
        cat(&[pk, &[0x1A, 0x09, 0x08, 0x00]]),
        cat(&[pk, rec, &[0x00, 0x00]]),
        cat(&[
            pk,
            &[
                0x1A, 0x0E, 0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F, 0x1A,
                0x01, b'x',
            ],
        ]),
        cat(&[pk, rec, &[0x4E]]),
        // Repeated optional fields: the last one wins.
        cat(&[
            pk,
            &[0x0A, 0x01, b'b'],
            &[
                0x1A, 0x0A, 0x08, 0x00, 0x1A, 0x01, b'x', 0x08, 0x01, 0x1A, 0x01, b'y',
            ],
        ]),
    ];
    for body in bodies {
        let from_prost = AggregatedRecord::decode(&body[..]).map(|message| {
            let pk_table = message.partition_key_table;
            message
                .records
                .into_iter()
                .map(|user| {
                    let pk = pk_table[user.partition_key_index.unwrap() as usize].clone();
                    (pk, user.data.unwrap())
                })
                .collect::<Vec<_>>()
        });
        let (outcome, out) = run(outer(frame(&body)), None);
        match from_prost {
            Ok(users) => {
                assert_eq!(outcome, Outcome::Deaggregated(users.len()), "{body:02x?}");
                let ours: Vec<_> = out
                    .iter()
                    .map(|r| (r.partition_key.to_string(), r.data.clone()))
                    .collect();
                assert_eq!(ours, users, "{body:02x?}");
            }
            Err(_) => assert_eq!(outcome, Outcome::Invalid(Invalid::Protobuf), "{body:02x?}"),
        }
    }
}
