//! [`InlineStr`]: an immutable string held inline up to `N` bytes, shared
//! beyond: the storage of [`SequenceNumber`](crate::SequenceNumber) and
//! [`PartitionKey`](crate::retrieval::PartitionKey), which every record
//! carries, so that a clone of the common short value is a copy with no
//! allocation and no reference count.

use std::sync::Arc;

use arrayvec::ArrayString;

#[derive(Clone)]
pub(crate) enum InlineStr<const N: usize> {
    Inline(ArrayString<N>),
    Shared(Arc<str>),
}

impl<const N: usize> InlineStr<N> {
    /// `s` inline, or `None` when it is longer than `N` bytes.
    #[inline]
    pub(crate) fn try_inline(s: &str) -> Option<Self> {
        ArrayString::from(s).ok().map(InlineStr::Inline)
    }

    /// `s` inline when it fits, else one new shared allocation.
    #[inline]
    pub(crate) fn new(s: &str) -> Self {
        Self::try_inline(s).unwrap_or_else(|| InlineStr::Shared(Arc::from(s)))
    }

    /// `s` inline when it fits, else `s`'s own allocation.
    pub(crate) fn from_shared(s: Arc<str>) -> Self {
        Self::try_inline(&s).unwrap_or(InlineStr::Shared(s))
    }

    #[inline]
    pub(crate) fn as_str(&self) -> &str {
        match self {
            InlineStr::Inline(s) => s,
            InlineStr::Shared(s) => s,
        }
    }

    #[cfg(test)]
    pub(crate) fn is_inline(&self) -> bool {
        matches!(self, InlineStr::Inline(_))
    }
}
