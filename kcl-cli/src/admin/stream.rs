//! What the admin commands read from the stream itself: how far behind the
//! tip a checkpoint is, and whether a position is in a shard.

use std::time::{Duration, SystemTime};

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::DateTime;
use aws_sdk_kinesis::types::ShardIteratorType;
use kcl_core::{ExtendedSequenceNumber, ShardId};
use serde::Serialize;

use super::AdminError;
use super::aws::kinesis_error;

/// Most records counted behind one checkpoint before the count stops (it
/// is then a lower bound, `capped`).
pub const DEFAULT_COUNT_LIMIT: u64 = 100_000;

/// How far one shard's checkpoint is behind the tip.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ShardLag {
    /// `MillisBehindLatest` of a read from the checkpoint: how old the
    /// next unprocessed record is, next to the newest (0 at the tip).
    pub millis_behind: i64,
    /// Records after the checkpoint (Kinesis records: a KPL aggregate
    /// counts once).
    pub records_behind: u64,
    /// The count stopped at its limit: `records_behind` is a lower bound.
    pub capped: bool,
}

/// The lag of `shard` from `checkpoint`, counting at most `limit` records.
///
/// A finished shard and a `LATEST` checkpoint are 0 behind; `TRIM_HORIZON`
/// and `AT_TIMESTAMP` (whose timestamp is not in the lease) count from the
/// oldest record, as the engine then reads.
pub async fn shard_lag(
    client: &Client,
    stream: &str,
    shard: &ShardId,
    checkpoint: &ExtendedSequenceNumber,
    limit: u64,
) -> Result<ShardLag, AdminError> {
    let request = iterator_request(client, stream, shard);
    let request = match checkpoint {
        ExtendedSequenceNumber::ShardEnd | ExtendedSequenceNumber::Latest => {
            return Ok(ShardLag::default());
        }
        ExtendedSequenceNumber::TrimHorizon | ExtendedSequenceNumber::AtTimestamp => {
            request.shard_iterator_type(ShardIteratorType::TrimHorizon)
        }
        ExtendedSequenceNumber::Sequence { sequence, .. } => request
            .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
            .starting_sequence_number(sequence.as_str()),
    };
    let what = format!("shard {shard} of stream {stream}");
    let mut iterator = request
        .send()
        .await
        .map_err(|e| kinesis_error(&what, e))?
        .shard_iterator;
    let mut lag = ShardLag::default();
    let mut first = true;
    while let Some(it) = iterator {
        // The first read takes one record, so its `MillisBehindLatest` is
        // that record's age next to the newest (a read of many would say
        // how far its *last* record is behind: 0 whenever all fit).
        let batch = if first { 1 } else { 10_000 };
        let out = read(client, it, batch, &what).await?;
        let behind = out.millis_behind_latest.unwrap_or(0);
        if first {
            lag.millis_behind = behind;
            first = false;
        }
        lag.records_behind += out.records.len() as u64;
        if lag.records_behind >= limit {
            lag.capped = true;
            break;
        }
        if out.records.is_empty() && behind == 0 {
            break;
        }
        iterator = out.next_shard_iterator;
    }
    Ok(lag)
}

/// Whether `sequence` is a record of `shard` (still in the stream): a read
/// at it returns that very record first.
pub async fn sequence_in_shard(
    client: &Client,
    stream: &str,
    shard: &ShardId,
    sequence: &str,
) -> Result<bool, AdminError> {
    let what = format!("shard {shard} of stream {stream}");
    let out = iterator_request(client, stream, shard)
        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
        .starting_sequence_number(sequence)
        .send()
        .await;
    let iterator = match out {
        Ok(out) => out.shard_iterator,
        Err(e) => {
            let e = kinesis_error(&what, e);
            // Kinesis answers InvalidArgument for a number of another shard.
            return if e.exit == super::Exit::Refused {
                Ok(false)
            } else {
                Err(e)
            };
        }
    };
    let Some(iterator) = iterator else {
        return Ok(false);
    };
    let out = read(client, iterator, 1, &what).await?;
    Ok(out
        .records
        .first()
        .is_some_and(|r| same_number(r.sequence_number(), sequence)))
}

/// The checkpoint that makes the engine start at the first record at or
/// after `at`: the last record before `at` (found by looking back from
/// `at` in doubling windows), or `TRIM_HORIZON` when there is none. The
/// sub-sequence is 0: should that record be a KPL aggregate, its later
/// user records are read again (at least once, never skipped).
pub async fn checkpoint_before(
    client: &Client,
    stream: &str,
    shard: &ShardId,
    at: SystemTime,
) -> Result<ExtendedSequenceNumber, AdminError> {
    let what = format!("shard {shard} of stream {stream}");
    let mut window = Duration::from_secs(1);
    // A week and a bit: Kinesis keeps records up to 365 days, but a
    // window past the retention starts at the trim horizon anyway.
    let longest = Duration::from_secs(400 * 24 * 3600);
    loop {
        let from = at.checked_sub(window).unwrap_or(SystemTime::UNIX_EPOCH);
        let out = iterator_request(client, stream, shard)
            .shard_iterator_type(ShardIteratorType::AtTimestamp)
            .timestamp(DateTime::from(from))
            .send()
            .await
            .map_err(|e| kinesis_error(&what, e))?;
        let mut iterator = out.shard_iterator;
        let mut last_before: Option<String> = None;
        let mut reached = false;
        while let Some(it) = iterator {
            let out = read(client, it, 10_000, &what).await?;
            for record in &out.records {
                let arrival = record
                    .approximate_arrival_timestamp()
                    .and_then(|t| SystemTime::try_from(*t).ok());
                if arrival.is_some_and(|t| t >= at) {
                    reached = true;
                    break;
                }
                last_before = Some(record.sequence_number().to_string());
            }
            if reached || (out.records.is_empty() && out.millis_behind_latest.unwrap_or(0) == 0) {
                break;
            }
            iterator = out.next_shard_iterator;
        }
        if let Some(sequence) = last_before {
            return Ok(ExtendedSequenceNumber::at(sequence.parse()?, 0));
        }
        if from == SystemTime::UNIX_EPOCH || window >= longest {
            return Ok(ExtendedSequenceNumber::TrimHorizon);
        }
        window *= 2;
    }
}

/// A `GetShardIterator` request for `shard` of `stream` (a name or an ARN).
fn iterator_request(
    client: &Client,
    stream: &str,
    shard: &ShardId,
) -> aws_sdk_kinesis::operation::get_shard_iterator::builders::GetShardIteratorFluentBuilder {
    client
        .get_shard_iterator()
        .set_stream_name(stream_name(stream))
        .set_stream_arn(stream_arn(stream))
        .shard_id(shard.as_str())
}

/// One `GetRecords` call of at most `limit` records; `what` names the
/// shard in an error.
async fn read(
    client: &Client,
    iterator: String,
    limit: i32,
    what: &str,
) -> Result<aws_sdk_kinesis::operation::get_records::GetRecordsOutput, AdminError> {
    client
        .get_records()
        .shard_iterator(iterator)
        .limit(limit)
        .send()
        .await
        .map_err(|e| kinesis_error(what, e))
}

fn same_number(a: &str, b: &str) -> bool {
    a.trim_start_matches('0') == b.trim_start_matches('0')
}

fn stream_name(stream: &str) -> Option<String> {
    (!stream.starts_with("arn:")).then(|| stream.to_string())
}

fn stream_arn(stream: &str) -> Option<String> {
    stream.starts_with("arn:").then(|| stream.to_string())
}

/// Records of `shard` after `from` up to and including `to` (both
/// checkpoints), counting at most `limit`: how many the application
/// processed between two looks at its checkpoint.
pub async fn records_between(
    client: &Client,
    stream: &str,
    shard: &ShardId,
    from: &ExtendedSequenceNumber,
    to: &ExtendedSequenceNumber,
    limit: u64,
) -> Result<u64, AdminError> {
    let Some(to_seq) = to.sequence_number() else {
        return Ok(0);
    };
    if from >= to {
        return Ok(0);
    }
    let request = iterator_request(client, stream, shard);
    let request = match from.sequence_number() {
        Some(seq) => request
            .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
            .starting_sequence_number(seq.as_str()),
        None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
    };
    let what = format!("shard {shard} of stream {stream}");
    let mut iterator = request
        .send()
        .await
        .map_err(|e| kinesis_error(&what, e))?
        .shard_iterator;
    let mut count = 0;
    while let Some(it) = iterator {
        let out = read(client, it, 10_000, &what).await?;
        for record in &out.records {
            let seq: kcl_core::SequenceNumber = record.sequence_number().parse()?;
            if seq > *to_seq {
                return Ok(count);
            }
            count += 1;
            if count >= limit {
                return Ok(count);
            }
        }
        if out.records.is_empty() && out.millis_behind_latest.unwrap_or(0) == 0 {
            break;
        }
        iterator = out.next_shard_iterator;
    }
    Ok(count)
}
