//! Validated names: shard ids, worker ids and application names.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::Error;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $validate:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(Arc<str>);

        impl $name {
            /// Validate and wrap a name.
            pub fn new(value: impl AsRef<str>) -> Result<Self, Error> {
                let value = value.as_ref();
                let check: fn(&str) -> Result<(), String> = $validate;
                check(value).map_err(|why| {
                    Error::Config(format!("{} {value:?}: {why}", stringify!($name)))
                })?;
                Ok($name(value.into()))
            }

            /// The name as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), &*self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(value: String) -> Result<Self, Error> {
                $name::new(value)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = Error;
            fn try_from(value: &str) -> Result<Self, Error> {
                $name::new(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0.to_string()
            }
        }
    };
}

fn printable(value: &str, max: usize) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.len() > max {
        return Err(format!("longer than {max} bytes"));
    }
    if value.chars().any(char::is_control) {
        return Err("contains control characters".into());
    }
    Ok(())
}

string_id!(
    /// A shard's id (`shardId-000000000000`); also the key of its lease.
    ShardId,
    |v| printable(v, 256)
);

string_id!(
    /// A worker's id, unique in the fleet (host name plus a random suffix
    /// is a good choice). The owner written into leases.
    WorkerId,
    |v| printable(v, 256)
);

string_id!(
    /// The application name: the namespace all of one consumer
    /// application's leases live in, so many applications can share one
    /// store. Java KCL names its DynamoDB lease table after it, so the same
    /// rules apply: 3 to 255 characters of `A-Z a-z 0-9 _ - .`.
    ///
    /// ```
    /// use kcl_core::ApplicationName;
    /// assert!(ApplicationName::new("orders-consumer").is_ok());
    /// assert!(ApplicationName::new("a b").is_err());
    /// ```
    ApplicationName,
    |v| {
        if !(3..=255).contains(&v.len()) {
            return Err("must be 3 to 255 characters".into());
        }
        if !v.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b)) {
            return Err("may contain only A-Z a-z 0-9 _ - .".into());
        }
        Ok(())
    }
);

/// The range of 128-bit hash keys a shard serves, both ends inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HashKeyRange {
    /// Lowest hash key of the shard.
    pub starting_hash_key: u128,
    /// Highest hash key of the shard.
    pub ending_hash_key: u128,
}

impl HashKeyRange {
    /// The whole key space, as a stream with one shard has it.
    pub const FULL: HashKeyRange = HashKeyRange {
        starting_hash_key: 0,
        ending_hash_key: u128::MAX,
    };

    /// A range; fails if `start > end`.
    pub fn new(starting_hash_key: u128, ending_hash_key: u128) -> Result<Self, Error> {
        if starting_hash_key > ending_hash_key {
            return Err(Error::Config(format!(
                "hash key range {starting_hash_key}..={ending_hash_key} is empty"
            )));
        }
        Ok(HashKeyRange {
            starting_hash_key,
            ending_hash_key,
        })
    }

    /// Whether the range holds `hash_key`.
    pub fn contains(&self, hash_key: u128) -> bool {
        (self.starting_hash_key..=self.ending_hash_key).contains(&hash_key)
    }
}
