//! [`PartitionKey`]: a record's partition key, held without an allocation
//! when it is short.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

use crate::inline_str::InlineStr;

/// Keys up to this many bytes are held inline. 40 covers a UUID (36) and
/// costs no more than 36 would: the enum is 48 bytes either way.
const INLINE: usize = 40;

/// A record's partition key: it reads as a `&str` (`&*record.partition_key`,
/// or any `str` method through `Deref`) and compares, hashes and prints as
/// one.
///
/// Keys of up to 40 bytes (a UUID is 36) are held inline, with no
/// allocation and no reference count: a KPL aggregate of small records
/// yields hundreds of keys per call, and one allocation per key was about
/// a tenth of the time to de-aggregate 100-byte records. Longer keys (Kinesis allows 256
/// characters) are shared: the sub-records of one aggregate that name the
/// same long key point at one allocation.
///
/// ```
/// use kcl_core::retrieval::PartitionKey;
/// let key = PartitionKey::from("user-42");
/// assert_eq!(key, "user-42");
/// assert!(key.starts_with("user-"));
/// assert_eq!(key.to_string(), "user-42");
/// let long = PartitionKey::from("k".repeat(200));
/// assert_eq!(long.len(), 200);
/// ```
#[derive(Clone)]
pub struct PartitionKey(InlineStr<INLINE>);

impl PartitionKey {
    /// The key as a string slice.
    #[inline]
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// A key for `key`, inline when short, else one new shared allocation.
    #[inline]
    fn new(key: &str) -> Self {
        PartitionKey(InlineStr::new(key))
    }

    /// `key` held inline, or `None` when it is too long to be.
    #[inline]
    pub(crate) fn try_inline(key: &str) -> Option<Self> {
        InlineStr::try_inline(key).map(PartitionKey)
    }
}

impl Deref for PartitionKey {
    type Target = str;

    #[inline]
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for PartitionKey {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for PartitionKey {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for PartitionKey {
    #[inline]
    fn from(key: &str) -> Self {
        PartitionKey::new(key)
    }
}

impl From<&String> for PartitionKey {
    fn from(key: &String) -> Self {
        PartitionKey::new(key)
    }
}

impl From<String> for PartitionKey {
    fn from(key: String) -> Self {
        PartitionKey::new(&key)
    }
}

impl From<Arc<str>> for PartitionKey {
    /// Short keys are copied inline; long ones keep the given allocation.
    fn from(key: Arc<str>) -> Self {
        PartitionKey(InlineStr::from_shared(key))
    }
}

impl From<PartitionKey> for String {
    fn from(key: PartitionKey) -> Self {
        key.as_str().to_owned()
    }
}

impl PartialEq for PartitionKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for PartitionKey {}

impl PartialEq<str> for PartitionKey {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for PartitionKey {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for PartitionKey {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<PartitionKey> for str {
    fn eq(&self, other: &PartitionKey) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<PartitionKey> for &str {
    fn eq(&self, other: &PartitionKey) -> bool {
        *self == other.as_str()
    }
}

impl Ord for PartitionKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for PartitionKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Hash for PartitionKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As `str` hashes, so `Borrow<str>` lookups find it.
        self.as_str().hash(state);
    }
}

impl fmt::Display for PartitionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for PartitionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn short_keys_are_inline_and_long_keys_are_shared() {
        let uuid = "9f1c2e4a-7b3d-4c5e-8f6a-1b2c3d4e5f60";
        assert!(PartitionKey::from(uuid).0.is_inline());
        assert!(PartitionKey::from("k".repeat(INLINE)).0.is_inline());
        let long = PartitionKey::from("k".repeat(INLINE + 1));
        assert!(!long.0.is_inline());
        // A clone of a long key shares its allocation.
        assert_eq!(long.clone().as_ptr(), long.as_ptr());
        let shared: Arc<str> = Arc::from("k".repeat(256));
        assert_eq!(
            PartitionKey::from(Arc::clone(&shared)).as_ptr(),
            shared.as_ptr()
        );
    }

    #[test]
    fn a_key_compares_hashes_and_prints_as_its_string() {
        let multibyte = "ключ-é-🦀";
        for text in ["", "a", multibyte, &"ü".repeat(100)] {
            let key = PartitionKey::from(text);
            assert_eq!(key, text);
            assert_eq!(&*key, text);
            assert_eq!(key.to_string(), text);
            assert_eq!(format!("{key:?}"), format!("{text:?}"));
            assert_eq!(String::from(key.clone()), text);
        }
        let set: HashSet<PartitionKey> = ["b", "a"].into_iter().map(PartitionKey::from).collect();
        assert!(set.contains("a"));
        let (a, b) = (PartitionKey::from("a"), PartitionKey::from("b".repeat(50)));
        assert!(a < b, "inline and shared keys order as their strings");
        assert_eq!(size_of::<PartitionKey>(), 48);
    }
}
