//! The writer: the exact bytes the Java daemon (Jackson) produces.
//!
//! Written by hand rather than through serde so that the field order, the
//! `null`s and Jackson's escaping are fixed here and tested byte for byte:
//! compact JSON, `"action"` first, control characters as `\n \t \r \b \f`
//! or `\u00XX` with uppercase hex, `/` and non-ASCII written raw.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use kcl_core::retrieval::Record;

use super::message::{CheckpointReply, ChildMessage, DaemonMessage, WireRecord};

/// Append `message` as one line (with its `\n`) to `out`.
pub fn encode_daemon(message: &DaemonMessage, out: &mut Vec<u8>) {
    match message {
        DaemonMessage::Initialize {
            shard_id,
            sequence_number,
            sub_sequence_number,
        } => {
            out.extend_from_slice(br#"{"action":"initialize","shardId":"#);
            string(out, shard_id);
            out.extend_from_slice(br#","sequenceNumber":"#);
            opt_string(out, sequence_number.as_deref());
            out.extend_from_slice(br#","subSequenceNumber":"#);
            opt_number(out, *sub_sequence_number);
            out.push(b'}');
        }
        DaemonMessage::ProcessRecords {
            records,
            millis_behind_latest,
        } => {
            out.extend_from_slice(br#"{"action":"processRecords","records":["#);
            for (i, r) in records.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                wire_record(out, r);
            }
            out.extend_from_slice(br#"],"millisBehindLatest":"#);
            opt_number(out, *millis_behind_latest);
            out.push(b'}');
        }
        DaemonMessage::LeaseLost => out.extend_from_slice(br#"{"action":"leaseLost"}"#),
        DaemonMessage::ShardEnded => out.extend_from_slice(br#"{"action":"shardEnded"}"#),
        DaemonMessage::ShutdownRequested => {
            out.extend_from_slice(br#"{"action":"shutdownRequested"}"#)
        }
        DaemonMessage::Shutdown { reason } => {
            out.extend_from_slice(br#"{"action":"shutdown","reason":"#);
            string(out, reason.as_str());
            out.push(b'}');
        }
        DaemonMessage::Checkpoint(reply) => checkpoint_reply(out, reply),
        DaemonMessage::Unknown { action } => {
            out.extend_from_slice(br#"{"action":"#);
            string(out, action);
            out.push(b'}');
        }
    }
    out.push(b'\n');
}

/// Append a `processRecords` line for engine records, without copying
/// them into [`WireRecord`]s first. `legacy` writes a null
/// `subSequenceNumber` for records that were not aggregated, as KCL 1.x.
pub fn encode_process_records(
    records: &[Record],
    millis_behind_latest: Option<u64>,
    legacy: bool,
    out: &mut Vec<u8>,
) {
    let payload: usize = records
        .iter()
        .map(|r| r.data.len() * 4 / 3 + r.partition_key.len() + 200)
        .sum();
    out.reserve(payload + 80);
    out.extend_from_slice(br#"{"action":"processRecords","records":["#);
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let sub = if legacy && !r.aggregated {
            None
        } else {
            Some(i64::try_from(r.sub_sequence_number).unwrap_or(i64::MAX))
        };
        record_fields(
            out,
            &r.data,
            r.partition_key.as_ref(),
            r.sequence_number.as_str(),
            r.approximate_arrival_timestamp.map(epoch_millis),
            sub,
        );
    }
    out.extend_from_slice(br#"],"millisBehindLatest":"#);
    opt_number(
        out,
        millis_behind_latest.map(|m| i64::try_from(m).unwrap_or(i64::MAX)),
    );
    out.extend_from_slice(b"}\n");
}

/// Append `message` as one compact line (with its `\n`) to `out`, with no
/// field the Java daemon does not know (it skips lines with unknown
/// fields).
pub fn encode_child(message: &ChildMessage, out: &mut Vec<u8>) {
    match message {
        ChildMessage::Status { response_for } => {
            out.extend_from_slice(br#"{"action":"status","responseFor":"#);
            string(out, response_for);
            out.push(b'}');
        }
        ChildMessage::Checkpoint {
            sequence_number,
            sub_sequence_number,
        } => {
            out.extend_from_slice(br#"{"action":"checkpoint","sequenceNumber":"#);
            opt_string(out, sequence_number.as_deref());
            out.extend_from_slice(br#","subSequenceNumber":"#);
            opt_number(out, *sub_sequence_number);
            out.push(b'}');
        }
    }
    out.push(b'\n');
}

fn checkpoint_reply(out: &mut Vec<u8>, reply: &CheckpointReply) {
    out.extend_from_slice(br#"{"action":"checkpoint","sequenceNumber":"#);
    opt_string(out, reply.sequence_number.as_deref());
    out.extend_from_slice(br#","subSequenceNumber":"#);
    opt_number(out, reply.sub_sequence_number);
    out.extend_from_slice(br#","error":"#);
    opt_string(out, reply.error.as_deref());
    out.push(b'}');
}

fn wire_record(out: &mut Vec<u8>, r: &WireRecord) {
    record_fields(
        out,
        &r.data,
        &r.partition_key,
        &r.sequence_number,
        r.approximate_arrival_timestamp,
        r.sub_sequence_number,
    );
}

fn record_fields(
    out: &mut Vec<u8>,
    data: &[u8],
    partition_key: &str,
    sequence_number: &str,
    arrival: Option<i64>,
    sub: Option<i64>,
) {
    out.extend_from_slice(br#"{"data":""#);
    // Standard base64 with padding never needs escaping.
    let start = out.len();
    out.resize(
        start + base64::encoded_len(data.len(), true).unwrap_or(0),
        0,
    );
    let written = STANDARD
        .encode_slice(data, &mut out[start..])
        .unwrap_or_default();
    out.truncate(start + written);
    out.extend_from_slice(br#"","partitionKey":"#);
    string(out, partition_key);
    out.extend_from_slice(br#","sequenceNumber":"#);
    string(out, sequence_number);
    out.extend_from_slice(br#","approximateArrivalTimestamp":"#);
    opt_number(out, arrival);
    out.extend_from_slice(br#","subSequenceNumber":"#);
    opt_number(out, sub);
    out.extend_from_slice(br#","action":"record"}"#);
}

fn epoch_millis(t: std::time::SystemTime) -> i64 {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

fn opt_number(out: &mut Vec<u8>, n: Option<i64>) {
    match n {
        Some(n) => out.extend_from_slice(n.to_string().as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
}

fn opt_string(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => string(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// A JSON string with Jackson's escaping.
pub(crate) fn string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut plain_from = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\t' => b"\\t",
            b'\r' => b"\\r",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => &[],
            _ => continue,
        };
        out.extend_from_slice(&bytes[plain_from..i]);
        plain_from = i + 1;
        if escape.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
    }
    out.extend_from_slice(&bytes[plain_from..]);
    out.push(b'"');
}
