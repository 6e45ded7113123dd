//! Sequence numbers and the extended sequence numbers that checkpoints hold.

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use crate::error::Error;
use crate::inline_str::InlineStr;

/// Longest sequence number Kinesis documents (`0|([1-9]\d{0,128})`).
const MAX_DIGITS: usize = 129;

/// A Kinesis sequence number: a non-negative decimal integer.
///
/// Real sequence numbers are about 56 digits long, wider than any machine
/// integer, so the digits are kept as a normalized string (no leading
/// zeros) and compared as numbers: a shorter string is smaller, equal
/// lengths compare digit by digit. Never compare the raw strings.
///
/// ```
/// use kcl_core::SequenceNumber;
/// let nine: SequenceNumber = "9".parse().unwrap();
/// let ten: SequenceNumber = "10".parse().unwrap();
/// assert!(nine < ten); // "9" > "10" as strings
/// let real: SequenceNumber = "49590338271490256608559692538361571095921575989136588898".parse().unwrap();
/// assert!(real > ten);
/// assert!("12a".parse::<SequenceNumber>().is_err());
/// ```
///
/// Kinesis's 56-digit numbers are held inline: a clone is a copy, with no
/// allocation and no reference count (every user record of a KPL aggregate
/// carries its aggregate's number). Longer ones are shared.
#[derive(Clone)]
pub struct SequenceNumber(InlineStr<INLINE_DIGITS>);

/// Numbers up to this many digits are held inline: Kinesis's are 56, and
/// 56 makes the enum 64 bytes.
const INLINE_DIGITS: usize = 56;

impl SequenceNumber {
    /// The digits, normalized (no leading zeros; `"0"` for zero).
    #[inline]
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// From normalized digits.
    fn from_digits(digits: &str) -> Self {
        SequenceNumber(InlineStr::new(digits))
    }

    /// The value as a `u128`, when it fits (test streams and emulators).
    pub fn to_u128(&self) -> Option<u128> {
        self.as_str().parse().ok()
    }
}

impl PartialEq for SequenceNumber {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for SequenceNumber {}

impl Hash for SequenceNumber {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl From<u128> for SequenceNumber {
    fn from(value: u128) -> Self {
        SequenceNumber::from_digits(&value.to_string())
    }
}

impl FromStr for SequenceNumber {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        if s.is_empty() || s.len() > MAX_DIGITS || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::InvalidCheckpoint(format!(
                "{s:?} is not a sequence number (1 to {MAX_DIGITS} decimal digits)"
            )));
        }
        let trimmed = s.trim_start_matches('0');
        let digits = if trimmed.is_empty() { "0" } else { trimmed };
        Ok(SequenceNumber::from_digits(digits))
    }
}

impl Ord for SequenceNumber {
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (self.as_str(), other.as_str());
        a.len()
            .cmp(&b.len())
            .then_with(|| a.as_bytes().cmp(b.as_bytes()))
    }
}

impl PartialOrd for SequenceNumber {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SequenceNumber({})", self.as_str())
    }
}

impl Serialize for SequenceNumber {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for SequenceNumber {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A position in a shard as a checkpoint holds it: a sequence number with a
/// sub-sequence number (the index of a user record inside a KPL aggregate),
/// or one of the KCL's sentinels.
///
/// The order is the Java KCL's: `AtTimestamp < TrimHorizon < Latest < any
/// sequence number < ShardEnd`, and two positions with the same sequence
/// number compare by sub-sequence number. The variants are declared in that
/// order, so the derived `Ord` is exactly it.
///
/// ```
/// use kcl_core::ExtendedSequenceNumber as Esn;
/// let a = Esn::at("100".parse().unwrap(), 0);
/// let b = Esn::at("100".parse().unwrap(), 3);
/// assert!(Esn::TrimHorizon < a && a < b && b < Esn::ShardEnd);
/// assert_eq!(Esn::from_parts("SHARD_END", 0).unwrap(), Esn::ShardEnd);
/// assert_eq!(b.to_parts(), ("100".to_string(), 3));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ExtendedSequenceNumber {
    /// Start at a timestamp the worker's configuration holds.
    AtTimestamp,
    /// Start at the oldest record in the shard.
    TrimHorizon,
    /// Start after the newest record at the time the shard is opened.
    Latest,
    /// At (after, once checkpointed) a record.
    Sequence {
        /// The Kinesis record's sequence number.
        sequence: SequenceNumber,
        /// The user record's index inside a KPL aggregate; 0 otherwise.
        sub_sequence: u64,
    },
    /// Every record of a closed shard has been processed.
    ShardEnd,
}

impl ExtendedSequenceNumber {
    /// Sentinel string Java KCL writes for [`Self::TrimHorizon`].
    pub const TRIM_HORIZON: &'static str = "TRIM_HORIZON";
    /// Sentinel string Java KCL writes for [`Self::Latest`].
    pub const LATEST: &'static str = "LATEST";
    /// Sentinel string Java KCL writes for [`Self::AtTimestamp`].
    pub const AT_TIMESTAMP: &'static str = "AT_TIMESTAMP";
    /// Sentinel string Java KCL writes for [`Self::ShardEnd`].
    pub const SHARD_END: &'static str = "SHARD_END";

    /// A position at a record (and sub-record).
    pub fn at(sequence: SequenceNumber, sub_sequence: u64) -> Self {
        ExtendedSequenceNumber::Sequence {
            sequence,
            sub_sequence,
        }
    }

    /// Whether this is one of the sentinels rather than a record position.
    pub fn is_sentinel(&self) -> bool {
        !matches!(self, ExtendedSequenceNumber::Sequence { .. })
    }

    /// The record's sequence number, if this is a record position.
    pub fn sequence_number(&self) -> Option<&SequenceNumber> {
        match self {
            ExtendedSequenceNumber::Sequence { sequence, .. } => Some(sequence),
            _ => None,
        }
    }

    /// The two fields a lease table stores, as Java KCL writes them: the
    /// sequence number or sentinel string, and the sub-sequence number
    /// (0 for sentinels).
    pub fn to_parts(&self) -> (String, u64) {
        match self {
            ExtendedSequenceNumber::Sequence {
                sequence,
                sub_sequence,
            } => (sequence.to_string(), *sub_sequence),
            other => (other.sentinel_str().unwrap_or_default().to_string(), 0),
        }
    }

    /// Parse the two stored fields back. Fails with
    /// [`Error::InvalidCheckpoint`] on anything but digits or a sentinel.
    pub fn from_parts(value: &str, sub_sequence: u64) -> Result<Self, Error> {
        Ok(match value {
            Self::TRIM_HORIZON => ExtendedSequenceNumber::TrimHorizon,
            Self::LATEST => ExtendedSequenceNumber::Latest,
            Self::AT_TIMESTAMP => ExtendedSequenceNumber::AtTimestamp,
            Self::SHARD_END => ExtendedSequenceNumber::ShardEnd,
            digits => ExtendedSequenceNumber::at(digits.parse()?, sub_sequence),
        })
    }

    fn sentinel_str(&self) -> Option<&'static str> {
        match self {
            ExtendedSequenceNumber::AtTimestamp => Some(Self::AT_TIMESTAMP),
            ExtendedSequenceNumber::TrimHorizon => Some(Self::TRIM_HORIZON),
            ExtendedSequenceNumber::Latest => Some(Self::LATEST),
            ExtendedSequenceNumber::ShardEnd => Some(Self::SHARD_END),
            ExtendedSequenceNumber::Sequence { .. } => None,
        }
    }
}

impl fmt::Display for ExtendedSequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExtendedSequenceNumber::Sequence {
                sequence,
                sub_sequence: 0,
            } => write!(f, "{sequence}"),
            ExtendedSequenceNumber::Sequence {
                sequence,
                sub_sequence,
            } => write!(f, "{sequence}/{sub_sequence}"),
            other => f.write_str(other.sentinel_str().unwrap_or_default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn kinesis_length_numbers_are_inline_and_longer_ones_shared() {
        use std::collections::hash_map::DefaultHasher;
        let hash = |n: &SequenceNumber| {
            let mut h = DefaultHasher::new();
            n.hash(&mut h);
            h.finish()
        };
        let kinesis = "49590338271490256608559692538361571095921575989136588898";
        assert_eq!(kinesis.len(), INLINE_DIGITS);
        let n: SequenceNumber = kinesis.parse().unwrap();
        assert!(n.0.is_inline());
        let longer: SequenceNumber = format!("{kinesis}7").parse().unwrap();
        assert!(!longer.0.is_inline());
        let longest: SequenceNumber = "9".repeat(MAX_DIGITS).parse().unwrap();
        assert_eq!(longest.as_str().len(), MAX_DIGITS);
        assert!(n < longer && longer < longest);
        // A clone of a shared number shares its digits.
        assert_eq!(longer.clone().as_str().as_ptr(), longer.as_str().as_ptr());
        // Equal numbers hash alike, whatever their leading zeros were.
        let padded: SequenceNumber = format!("000{kinesis}").parse().unwrap();
        assert_eq!(padded, n);
        assert_eq!(hash(&padded), hash(&n));
        assert_eq!(n.to_string(), kinesis);
        assert_eq!(format!("{longer:?}"), format!("SequenceNumber({kinesis}7)"));
        assert_eq!(size_of::<SequenceNumber>(), 64);
    }

    #[test]
    fn leading_zeros_are_normalized() {
        let a: SequenceNumber = "000123".parse().unwrap();
        assert_eq!(a.as_str(), "123");
        assert_eq!(a, "123".parse().unwrap());
        assert_eq!("000".parse::<SequenceNumber>().unwrap().as_str(), "0");
    }

    #[test]
    fn rejects_non_digits_and_overlong() {
        for bad in ["", "-1", "1.5", " 1", "abc", &"9".repeat(130)] {
            assert!(bad.parse::<SequenceNumber>().is_err(), "{bad:?} parsed");
        }
        assert!("9".repeat(129).parse::<SequenceNumber>().is_ok());
    }

    #[test]
    fn sentinel_order_matches_java() {
        use ExtendedSequenceNumber as E;
        let s = E::at(0u128.into(), 0);
        let order = [E::AtTimestamp, E::TrimHorizon, E::Latest, s, E::ShardEnd];
        for w in order.windows(2) {
            assert!(w[0] < w[1], "{:?} < {:?}", w[0], w[1]);
        }
    }

    #[test]
    fn parts_round_trip() {
        use ExtendedSequenceNumber as E;
        for e in [
            E::AtTimestamp,
            E::TrimHorizon,
            E::Latest,
            E::ShardEnd,
            E::at(
                "49590338271490256608559692538361571095921575989136588898"
                    .parse()
                    .unwrap(),
                7,
            ),
        ] {
            let (v, sub) = e.to_parts();
            assert_eq!(E::from_parts(&v, sub).unwrap(), e);
        }
        assert!(E::from_parts("SHARD_ENDX", 0).is_err());
    }

    proptest! {
        #[test]
        fn order_is_numeric(a in any::<u128>(), b in any::<u128>(), za in 0usize..3, zb in 0usize..3) {
            let sa: SequenceNumber = format!("{}{a}", "0".repeat(za)).parse().unwrap();
            let sb: SequenceNumber = format!("{}{b}", "0".repeat(zb)).parse().unwrap();
            prop_assert_eq!(sa.cmp(&sb), a.cmp(&b));
            prop_assert_eq!(sa.to_u128(), Some(a));
        }

        #[test]
        fn order_is_numeric_beyond_u128(a in "[1-9][0-9]{0,60}", b in "[1-9][0-9]{0,60}") {
            let sa: SequenceNumber = a.parse().unwrap();
            let sb: SequenceNumber = b.parse().unwrap();
            let expected = a.len().cmp(&b.len()).then(a.cmp(&b));
            prop_assert_eq!(sa.cmp(&sb), expected);
            // Up to 61 digits: inline (<= 56) and shared numbers meet.
            prop_assert_eq!(sa == sb, a == b);
            prop_assert_eq!(sa.as_str(), a.as_str());
        }
    }
}
