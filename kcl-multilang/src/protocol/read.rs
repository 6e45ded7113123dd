//! The lenient reader: more forgiving than Java, never a panic.
//!
//! One JSON object per line; anything after the first JSON value on a line
//! is ignored; unknown fields are accepted with a warning (Java skips such
//! lines); Jackson's coercions are kept (a numeric `sequenceNumber`, a
//! string `subSequenceNumber`). A line that is not an object with a string
//! `action` is a [`ParseError`], which callers log and skip.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

use super::message::{CheckpointReply, ChildMessage, DaemonMessage, ShutdownReason, WireRecord};

/// Why a line was not a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a MultiLang message: {0}")]
pub struct ParseError(String);

impl ParseError {
    fn new(reason: impl Into<String>) -> Self {
        ParseError(reason.into())
    }
}

/// Parse one line the child wrote.
pub fn parse_child_line(line: &str) -> Result<ChildMessage, ParseError> {
    let (action, mut fields) = object_with_action(line)?;
    let message = match action.as_str() {
        "status" => ChildMessage::Status {
            response_for: take_string(&mut fields, "responseFor")?
                .ok_or_else(|| ParseError::new("status without responseFor"))?,
        },
        "checkpoint" => {
            // A child has no business sending `error`; tolerate it.
            fields.remove("error");
            ChildMessage::Checkpoint {
                sequence_number: take_string(&mut fields, "sequenceNumber")?,
                sub_sequence_number: take_i64(&mut fields, "subSequenceNumber")?,
            }
        }
        other => return Err(ParseError::new(format!("unknown child action {other:?}"))),
    };
    warn_unknown(&action, &fields);
    Ok(message)
}

/// Parse one line the daemon wrote. An action this library does not know
/// is [`DaemonMessage::Unknown`], not an error, so the child can still
/// answer it.
pub fn parse_daemon_line(line: &str) -> Result<DaemonMessage, ParseError> {
    let (action, mut fields) = object_with_action(line)?;
    let message = match action.as_str() {
        "initialize" => DaemonMessage::Initialize {
            shard_id: take_string(&mut fields, "shardId")?
                .ok_or_else(|| ParseError::new("initialize without shardId"))?,
            sequence_number: take_string(&mut fields, "sequenceNumber")?,
            sub_sequence_number: take_i64(&mut fields, "subSequenceNumber")?,
        },
        "processRecords" => {
            let records = match fields.remove("records") {
                Some(Value::Array(items)) => items
                    .into_iter()
                    .map(record)
                    .collect::<Result<Vec<_>, _>>()?,
                Some(Value::Null) | None => Vec::new(),
                Some(_) => return Err(ParseError::new("records is not an array")),
            };
            DaemonMessage::ProcessRecords {
                records,
                millis_behind_latest: take_i64(&mut fields, "millisBehindLatest")?,
            }
        }
        "leaseLost" => DaemonMessage::LeaseLost,
        "shardEnded" => DaemonMessage::ShardEnded,
        "shutdownRequested" => DaemonMessage::ShutdownRequested,
        "shutdown" => DaemonMessage::Shutdown {
            reason: ShutdownReason::parse(
                take_string(&mut fields, "reason")?
                    .as_deref()
                    .unwrap_or("TERMINATE"),
            ),
        },
        "checkpoint" => DaemonMessage::Checkpoint(CheckpointReply {
            sequence_number: take_string(&mut fields, "sequenceNumber")?,
            sub_sequence_number: take_i64(&mut fields, "subSequenceNumber")?,
            error: take_string(&mut fields, "error")?,
        }),
        _ => {
            return Ok(DaemonMessage::Unknown { action });
        }
    };
    warn_unknown(&action, &fields);
    Ok(message)
}

fn record(value: Value) -> Result<WireRecord, ParseError> {
    let Value::Object(mut fields) = value else {
        return Err(ParseError::new("a record is not an object"));
    };
    let data = match take_string(&mut fields, "data")? {
        Some(b64) => STANDARD
            .decode(b64.as_bytes())
            .map_err(|e| ParseError::new(format!("record data is not base64: {e}")))?,
        None => Vec::new(),
    };
    fields.remove("action");
    let record = WireRecord {
        data,
        partition_key: take_string(&mut fields, "partitionKey")?.unwrap_or_default(),
        sequence_number: take_string(&mut fields, "sequenceNumber")?
            .ok_or_else(|| ParseError::new("record without sequenceNumber"))?,
        approximate_arrival_timestamp: take_i64(&mut fields, "approximateArrivalTimestamp")?,
        sub_sequence_number: take_i64(&mut fields, "subSequenceNumber")?,
    };
    warn_unknown("record", &fields);
    Ok(record)
}

/// The first JSON value on the line (trailing content ignored), which must
/// be an object with a string `action`.
fn object_with_action(line: &str) -> Result<(String, Map<String, Value>), ParseError> {
    let mut values = serde_json::Deserializer::from_str(line).into_iter::<Value>();
    let value = match values.next() {
        Some(Ok(value)) => value,
        Some(Err(e)) => return Err(ParseError::new(format!("invalid JSON: {e}"))),
        None => return Err(ParseError::new("empty line")),
    };
    let Value::Object(mut fields) = value else {
        return Err(ParseError::new("not a JSON object"));
    };
    match fields.remove("action") {
        Some(Value::String(action)) => Ok((action, fields)),
        Some(_) => Err(ParseError::new("action is not a string")),
        None => Err(ParseError::new("no action")),
    }
}

/// A string field; a number is coerced to its decimal text (as Jackson).
fn take_string(fields: &mut Map<String, Value>, key: &str) -> Result<Option<String>, ParseError> {
    match fields.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(_) => Err(ParseError::new(format!("{key} is not a string"))),
    }
}

/// An integer field; a string of digits is coerced (as Jackson).
fn take_i64(fields: &mut Map<String, Value>, key: &str) -> Result<Option<i64>, ParseError> {
    match fields.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| ParseError::new(format!("{key} is not a 64-bit integer: {n}"))),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| ParseError::new(format!("{key} is not an integer: {s:?}"))),
        Some(_) => Err(ParseError::new(format!("{key} is not an integer"))),
    }
}

fn warn_unknown(action: &str, fields: &Map<String, Value>) {
    if !fields.is_empty() {
        let names: Vec<&str> = fields.keys().map(String::as_str).collect();
        tracing::warn!(action, fields = ?names, "ignoring unknown fields in a MultiLang message");
    }
}
