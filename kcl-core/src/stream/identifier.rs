//! [`StreamIdentifier`] and [`StreamArn`]: how a stream is named in a
//! multi-stream application, and how its leases are keyed.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::ids::ShardId;

/// A stream of a multi-stream application: the account that owns it, its
/// name, and its creation time (seconds since the Unix epoch), so a stream
/// deleted and created again under the same name is a different stream.
///
/// Its serialized form is the Java KCL's `StreamIdentifier.serialize()`,
/// `account:name:epoch`, and a lease key in a multi-stream application is
/// that form, a `:`, and the shard id (Java's `MultiStreamLease` key), so
/// a lease table is shared with Java KCL multi-stream workers.
///
/// ```
/// use kcl_core::ShardId;
/// use kcl_core::stream::StreamIdentifier;
///
/// let orders: StreamIdentifier = "123456789012:orders:1700000000".parse()?;
/// assert_eq!(orders.stream_name(), "orders");
/// let key = orders.lease_key(&ShardId::new("shardId-000000000001")?)?;
/// assert_eq!(key.as_str(), "123456789012:orders:1700000000:shardId-000000000001");
/// let (stream, shard) = StreamIdentifier::split_lease_key(&key).unwrap();
/// assert_eq!((stream, shard.as_str()), (orders, "shardId-000000000001"));
/// # Ok::<(), kcl_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamIdentifier {
    account_id: String,
    stream_name: String,
    creation_epoch: u64,
}

/// Kinesis stream names: 1 to 128 of `A-Z a-z 0-9 _ . -`.
fn check_stream_name(name: &str) -> Result<()> {
    let ok = (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "stream name {name:?}: must be 1 to 128 characters of A-Z a-z 0-9 _ . -"
        )))
    }
}

/// AWS account ids are digits (12 of them on AWS; emulators use others).
fn check_account(account: &str) -> Result<()> {
    if !account.is_empty() && account.len() <= 20 && account.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "account id {account:?}: must be 1 to 20 digits"
        )))
    }
}

impl StreamIdentifier {
    /// A stream of `account_id` named `stream_name`, created at
    /// `creation_epoch` (seconds since the Unix epoch, as
    /// `DescribeStreamSummary`'s `StreamCreationTimestamp`).
    pub fn new(
        account_id: impl Into<String>,
        stream_name: impl Into<String>,
        creation_epoch: u64,
    ) -> Result<Self> {
        let (account_id, stream_name) = (account_id.into(), stream_name.into());
        check_account(&account_id)?;
        check_stream_name(&stream_name)?;
        Ok(StreamIdentifier {
            account_id,
            stream_name,
            creation_epoch,
        })
    }

    /// Parse the serialized form `account:name:epoch`.
    pub fn parse(serialized: &str) -> Result<Self> {
        let bad = || {
            Error::Config(format!(
                "stream identifier {serialized:?}: expected account:name:creationEpoch"
            ))
        };
        let mut parts = serialized.split(':');
        let (Some(account), Some(name), Some(epoch), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        if epoch.is_empty() || !epoch.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let epoch = epoch.parse().map_err(|_| bad())?;
        StreamIdentifier::new(account, name, epoch)
    }

    /// The account that owns the stream.
    pub fn account_id(&self) -> &str {
        &self.account_id
    }

    /// The stream's name.
    pub fn stream_name(&self) -> &str {
        &self.stream_name
    }

    /// When the stream was created, in seconds since the Unix epoch.
    pub fn creation_epoch(&self) -> u64 {
        self.creation_epoch
    }

    /// The serialized form, `account:name:epoch` (also [`Display`](fmt::Display)).
    pub fn serialize(&self) -> String {
        self.to_string()
    }

    /// The key of the lease of `shard_id` of this stream:
    /// `account:name:epoch:shardId`.
    pub fn lease_key(&self, shard_id: &ShardId) -> Result<ShardId> {
        ShardId::new(format!("{self}:{shard_id}"))
    }

    /// Split a multi-stream lease key into its stream and the raw shard
    /// id; `None` for a key that is not one (a single-stream lease).
    pub fn split_lease_key(key: &ShardId) -> Option<(StreamIdentifier, ShardId)> {
        let mut parts = key.as_str().splitn(4, ':');
        let (Some(account), Some(name), Some(epoch), Some(shard)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let stream = StreamIdentifier::parse(&format!("{account}:{name}:{epoch}")).ok()?;
        let shard = ShardId::new(shard).ok()?;
        Some((stream, shard))
    }
}

impl fmt::Display for StreamIdentifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.account_id, self.stream_name, self.creation_epoch
        )
    }
}

impl FromStr for StreamIdentifier {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        StreamIdentifier::parse(s)
    }
}

/// A stream's ARN, `arn:PARTITION:kinesis:REGION:ACCOUNT:stream/NAME`.
///
/// ```
/// use kcl_core::stream::StreamArn;
///
/// let arn: StreamArn = "arn:aws:kinesis:eu-west-1:123456789012:stream/orders".parse()?;
/// assert_eq!((arn.region(), arn.account_id(), arn.stream_name()),
///            ("eu-west-1", "123456789012", "orders"));
/// assert_eq!(arn.identifier(1700000000).to_string(), "123456789012:orders:1700000000");
/// # Ok::<(), kcl_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StreamArn {
    partition: String,
    region: String,
    account_id: String,
    stream_name: String,
}

impl StreamArn {
    /// Parse an ARN.
    pub fn parse(arn: &str) -> Result<Self> {
        let bad = |why: &str| Error::Config(format!("stream ARN {arn:?}: {why}"));
        let mut parts = arn.splitn(6, ':');
        let (
            Some("arn"),
            Some(partition),
            Some("kinesis"),
            Some(region),
            Some(account),
            Some(rest),
        ) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        )
        else {
            return Err(bad(
                "expected arn:PARTITION:kinesis:REGION:ACCOUNT:stream/NAME",
            ));
        };
        let Some(name) = rest.strip_prefix("stream/") else {
            return Err(bad("the resource must be stream/NAME"));
        };
        let region_ok = !region.is_empty()
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if partition.is_empty() || !region_ok {
            return Err(bad("partition or region is malformed"));
        }
        check_account(account)?;
        check_stream_name(name)?;
        Ok(StreamArn {
            partition: partition.to_string(),
            region: region.to_string(),
            account_id: account.to_string(),
            stream_name: name.to_string(),
        })
    }

    /// The partition (`aws`, `aws-cn`, …).
    pub fn partition(&self) -> &str {
        &self.partition
    }

    /// The stream's region.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The account that owns the stream.
    pub fn account_id(&self) -> &str {
        &self.account_id
    }

    /// The stream's name.
    pub fn stream_name(&self) -> &str {
        &self.stream_name
    }

    /// The stream's identifier, given its creation time (seconds since
    /// the Unix epoch; `DescribeStreamSummary` tells it, see
    /// `KinesisSource::stream_identifier`).
    pub fn identifier(&self, creation_epoch: u64) -> StreamIdentifier {
        StreamIdentifier {
            account_id: self.account_id.clone(),
            stream_name: self.stream_name.clone(),
            creation_epoch,
        }
    }
}

impl fmt::Display for StreamArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:kinesis:{}:{}:stream/{}",
            self.partition, self.region, self.account_id, self.stream_name
        )
    }
}

impl FromStr for StreamArn {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        StreamArn::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialized_form_round_trips_and_rejects_malformed_ones() {
        let id = StreamIdentifier::parse("000000000000:a.b-c_d:42").unwrap();
        assert_eq!(id.account_id(), "000000000000");
        assert_eq!(id.creation_epoch(), 42);
        assert_eq!(id.serialize(), "000000000000:a.b-c_d:42");
        for bad in [
            "",
            "orders",
            "1:orders",
            "1:orders:x",
            "1:orders:",
            "x1:orders:5",
            "1::5",
            "1:or/ders:5",
            "1:orders:5:6",
            "1:orders:99999999999999999999999",
        ] {
            assert!(StreamIdentifier::parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn lease_keys_split_only_when_multi_stream() {
        let id = StreamIdentifier::new("123", "s", 7).unwrap();
        let shard = ShardId::new("shardId-000000000003").unwrap();
        let key = id.lease_key(&shard).unwrap();
        assert_eq!(
            StreamIdentifier::split_lease_key(&key),
            Some((id, shard.clone()))
        );
        assert_eq!(StreamIdentifier::split_lease_key(&shard), None);
        let odd = ShardId::new("a:b:c:d").unwrap();
        assert_eq!(StreamIdentifier::split_lease_key(&odd), None);
    }

    #[test]
    fn arns_parse_and_reject_what_is_not_a_stream() {
        let arn = StreamArn::parse("arn:aws-cn:kinesis:cn-north-1:123456789012:stream/s1").unwrap();
        assert_eq!(arn.partition(), "aws-cn");
        assert_eq!(
            arn.to_string(),
            "arn:aws-cn:kinesis:cn-north-1:123456789012:stream/s1"
        );
        for bad in [
            "arn:aws:kinesis:us-east-1:123456789012:stream/",
            "arn:aws:kinesis:us-east-1:123456789012:table/s",
            "arn:aws:dynamodb:us-east-1:123456789012:stream/s",
            "arn:aws:kinesis:US_EAST:123456789012:stream/s",
            "arn:aws:kinesis:us-east-1:acct:stream/s",
            "arn:aws:kinesis:us-east-1:123456789012",
            "orders",
        ] {
            assert!(StreamArn::parse(bad).is_err(), "{bad:?} parsed");
        }
    }
}
