//! The writer produces the Java daemon's exact bytes (MULTILANG.md), and
//! the reader reads them back, plus the children's own forms.

use kcl_core::retrieval::Record;
use kcl_multilang::protocol::{
    CheckpointReply, ChildMessage, DaemonMessage, ShutdownReason, WireRecord, encode_child,
    encode_daemon, encode_process_records, parse_child_line, parse_daemon_line,
};
use std::time::{Duration, UNIX_EPOCH};

const SEQ0: &str = "49590338271490256608559692538361571095921575989136588898";
const SEQ1: &str = "49590338271490256608559692540925702759324208523137515618";

fn daemon_bytes(m: &DaemonMessage) -> String {
    let mut out = Vec::new();
    encode_daemon(m, &mut out);
    String::from_utf8(out).unwrap()
}

/// Every daemon line of MULTILANG.md, byte for byte, and back.
#[test]
fn daemon_lines_match_the_reference() {
    let cases = [
        (
            DaemonMessage::Initialize {
                shard_id: "shardId-000000000000".into(),
                sequence_number: Some("TRIM_HORIZON".into()),
                sub_sequence_number: Some(0),
            },
            r#"{"action":"initialize","shardId":"shardId-000000000000","sequenceNumber":"TRIM_HORIZON","subSequenceNumber":0}"#,
        ),
        (
            DaemonMessage::Initialize {
                shard_id: "shardId-000000000001".into(),
                sequence_number: Some(SEQ0.into()),
                sub_sequence_number: Some(0),
            },
            r#"{"action":"initialize","shardId":"shardId-000000000001","sequenceNumber":"49590338271490256608559692538361571095921575989136588898","subSequenceNumber":0}"#,
        ),
        (
            DaemonMessage::ProcessRecords {
                records: vec![WireRecord {
                    data: b"hello world".to_vec(),
                    partition_key: "pk-1".into(),
                    sequence_number: SEQ0.into(),
                    approximate_arrival_timestamp: Some(1_700_000_000_000),
                    sub_sequence_number: Some(0),
                }],
                millis_behind_latest: Some(0),
            },
            r#"{"action":"processRecords","records":[{"data":"aGVsbG8gd29ybGQ=","partitionKey":"pk-1","sequenceNumber":"49590338271490256608559692538361571095921575989136588898","approximateArrivalTimestamp":1700000000000,"subSequenceNumber":0,"action":"record"}],"millisBehindLatest":0}"#,
        ),
        (DaemonMessage::LeaseLost, r#"{"action":"leaseLost"}"#),
        (DaemonMessage::ShardEnded, r#"{"action":"shardEnded"}"#),
        (
            DaemonMessage::ShutdownRequested,
            r#"{"action":"shutdownRequested"}"#,
        ),
        (
            DaemonMessage::Checkpoint(CheckpointReply {
                sequence_number: Some(SEQ1.into()),
                sub_sequence_number: Some(0),
                error: None,
            }),
            r#"{"action":"checkpoint","sequenceNumber":"49590338271490256608559692540925702759324208523137515618","subSequenceNumber":0,"error":null}"#,
        ),
        (
            DaemonMessage::Checkpoint(CheckpointReply {
                sequence_number: None,
                sub_sequence_number: None,
                error: Some("ShutdownException".into()),
            }),
            r#"{"action":"checkpoint","sequenceNumber":null,"subSequenceNumber":null,"error":"ShutdownException"}"#,
        ),
        (
            DaemonMessage::Shutdown {
                reason: ShutdownReason::Terminate,
            },
            r#"{"action":"shutdown","reason":"TERMINATE"}"#,
        ),
        (
            DaemonMessage::Shutdown {
                reason: ShutdownReason::Zombie,
            },
            r#"{"action":"shutdown","reason":"ZOMBIE"}"#,
        ),
    ];
    for (message, expected) in cases {
        assert_eq!(daemon_bytes(&message), format!("{expected}\n"));
        assert_eq!(parse_daemon_line(expected).unwrap(), message);
    }
}

/// Jackson: named escapes, other control characters as uppercase
/// `\u00XX`, `/` and non-ASCII raw.
#[test]
fn strings_are_escaped_as_jackson_does() {
    let key = "a\"b\\c\nd\te\rf\u{8}g\u{c}h\u{1}i\u{1f}j/k\u{e9}\u{1F600}\u{7f}";
    let line = daemon_bytes(&DaemonMessage::Initialize {
        shard_id: key.into(),
        sequence_number: None,
        sub_sequence_number: None,
    });
    assert_eq!(
        line,
        "{\"action\":\"initialize\",\"shardId\":\"a\\\"b\\\\c\\nd\\te\\rf\\bg\\fh\\u0001i\\u001Fj/k\u{e9}\u{1F600}\u{7f}\",\"sequenceNumber\":null,\"subSequenceNumber\":null}\n"
    );
    match parse_daemon_line(&line).unwrap() {
        DaemonMessage::Initialize { shard_id, .. } => assert_eq!(shard_id, key),
        other => panic!("{other:?}"),
    }
}

/// Engine records encode like the wire records (empty data is `""`), and
/// the legacy form writes a null sub-sequence for plain records only.
#[test]
fn engine_records_encode_like_java() {
    let mut plain = Record::new(SEQ0.parse().unwrap(), "pk-1", &b"hello world"[..]);
    plain.approximate_arrival_timestamp =
        Some(UNIX_EPOCH + Duration::from_millis(1_700_000_000_000));
    let mut sub = Record::new(SEQ1.parse().unwrap(), "pk-2", &b""[..]);
    sub.sub_sequence_number = 3;
    sub.aggregated = true;
    let records = [plain, sub];
    let mut out = Vec::new();
    encode_process_records(&records, Some(25), false, &mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        format!(
            "{{\"action\":\"processRecords\",\"records\":[{{\"data\":\"aGVsbG8gd29ybGQ=\",\"partitionKey\":\"pk-1\",\"sequenceNumber\":\"{SEQ0}\",\"approximateArrivalTimestamp\":1700000000000,\"subSequenceNumber\":0,\"action\":\"record\"}},{{\"data\":\"\",\"partitionKey\":\"pk-2\",\"sequenceNumber\":\"{SEQ1}\",\"approximateArrivalTimestamp\":null,\"subSequenceNumber\":3,\"action\":\"record\"}}],\"millisBehindLatest\":25}}\n"
        )
    );
    let mut legacy = Vec::new();
    encode_process_records(&records, None, true, &mut legacy);
    let legacy = String::from_utf8(legacy).unwrap();
    assert!(legacy.contains(r#""approximateArrivalTimestamp":1700000000000,"subSequenceNumber":null,"action":"record""#), "{legacy}");
    assert!(legacy.contains(r#""subSequenceNumber":3,"#), "{legacy}");
    assert!(
        legacy.ends_with("\"millisBehindLatest\":null}\n"),
        "{legacy}"
    );
}

/// What children write: our compact form, kclpy's spaced form, Node's,
/// Jackson's coercions, unknown fields and trailing content.
#[test]
fn child_lines_are_read_leniently() {
    let mut out = Vec::new();
    encode_child(
        &ChildMessage::Status {
            response_for: "processRecords".into(),
        },
        &mut out,
    );
    encode_child(
        &ChildMessage::Checkpoint {
            sequence_number: None,
            sub_sequence_number: None,
        },
        &mut out,
    );
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "{\"action\":\"status\",\"responseFor\":\"processRecords\"}\n{\"action\":\"checkpoint\",\"sequenceNumber\":null,\"subSequenceNumber\":null}\n"
    );
    let status = ChildMessage::Status {
        response_for: "initialize".into(),
    };
    for line in [
        r#"{"action": "status", "responseFor": "initialize"}"#,
        r#"{"action":"status","responseFor":"initialize"}"#,
        r#"{"action":"status","responseFor":"initialize","extra":[1,2]}"#,
        r#"{"action":"status","responseFor":"initialize"} trailing garbage"#,
        r#"  {"responseFor":"initialize","action":"status"}{"x":1}"#,
    ] {
        assert_eq!(parse_child_line(line).unwrap(), status, "{line}");
    }
    assert_eq!(
        parse_child_line(
            r#"{"action": "checkpoint", "sequenceNumber": 12345, "subSequenceNumber": "7"}"#
        )
        .unwrap(),
        ChildMessage::Checkpoint {
            sequence_number: Some("12345".into()),
            sub_sequence_number: Some(7),
        }
    );
    assert_eq!(
        parse_child_line(r#"{"action": "checkpoint"}"#).unwrap(),
        ChildMessage::Checkpoint {
            sequence_number: None,
            sub_sequence_number: None,
        }
    );
    for bad in [
        "",
        "Traceback (most recent call last):",
        "[1,2]",
        r#"{"responseFor":"initialize"}"#,
        r#"{"action":5}"#,
        r#"{"action":"status"}"#,
        r#"{"action":"dance"}"#,
        r#"{"action":"checkpoint","subSequenceNumber":"x"}"#,
        r#"{"action":"checkpoint","subSequenceNumber":1e400}"#,
    ] {
        assert!(parse_child_line(bad).is_err(), "{bad:?}");
    }
}

/// A future daemon's action is not an error: the child must answer it.
#[test]
fn unknown_daemon_actions_are_kept() {
    assert_eq!(
        parse_daemon_line(r#"{"action":"rebalance","hint":1}"#).unwrap(),
        DaemonMessage::Unknown {
            action: "rebalance".into()
        }
    );
    // KCL 2.0.x reasons, and a record from a 1.x daemon (null sub-sequence).
    assert_eq!(
        parse_daemon_line(r#"{"action":"shutdown","reason":"LEASE_LOST"}"#).unwrap(),
        DaemonMessage::Shutdown {
            reason: ShutdownReason::LeaseLost
        }
    );
    let line = r#"{"action":"processRecords","records":[{"data":"","partitionKey":"k","sequenceNumber":"1","approximateArrivalTimestamp":null,"subSequenceNumber":null,"action":"record"}]}"#;
    match parse_daemon_line(line).unwrap() {
        DaemonMessage::ProcessRecords {
            records,
            millis_behind_latest,
        } => {
            assert_eq!(records.len(), 1);
            assert_eq!(records[0].sub_sequence_number, None);
            assert!(records[0].data.is_empty());
            assert_eq!(millis_behind_latest, None);
        }
        other => panic!("{other:?}"),
    }
}
