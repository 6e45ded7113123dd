//! [`StreamTracker`]: which streams a multi-stream worker reads, a fixed
//! list or a callback polled on an interval, and what happens to the
//! leases of a stream that leaves the set.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::engine::InitialPosition;
use crate::error::Result;
use crate::retrieval::ShardSource;

use super::StreamIdentifier;

/// One stream of a multi-stream application: its identifier, where its
/// shards with no leased ancestor start, and the source that reads it
/// (a `KinesisSource` with the stream's own region, credentials and
/// endpoint, or any other [`ShardSource`]).
#[derive(Clone)]
#[non_exhaustive]
pub struct StreamConfig {
    /// The stream; its serialized form prefixes its lease keys.
    pub identifier: StreamIdentifier,
    /// Initial position of the stream's shards that have no leased
    /// ancestor (Java's per-stream `InitialPositionInStreamExtended`).
    /// Default TRIM_HORIZON.
    pub initial_position: InitialPosition,
    /// Reads the stream, with raw shard ids (`shardId-…`).
    pub source: Arc<dyn ShardSource>,
}

impl StreamConfig {
    /// A stream read through `source`, from TRIM_HORIZON.
    pub fn new(identifier: StreamIdentifier, source: Arc<dyn ShardSource>) -> Self {
        StreamConfig {
            identifier,
            initial_position: InitialPosition::TrimHorizon,
            source,
        }
    }

    /// Builder-style: set the initial position.
    pub fn initial_position(mut self, position: InitialPosition) -> Self {
        self.initial_position = position;
        self
    }
}

impl fmt::Debug for StreamConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamConfig")
            .field("identifier", &self.identifier)
            .field("initial_position", &self.initial_position)
            .field("source", &self.source)
            .finish()
    }
}

type Poll = Arc<dyn Fn() -> BoxFuture<'static, Result<Vec<StreamConfig>>> + Send + Sync>;

pub(super) enum Streams {
    Fixed(Vec<StreamConfig>),
    Polled { interval: Duration, poll: Poll },
}

/// The set of streams a multi-stream worker reads (Java's
/// `MultiStreamTracker`), given to
/// [`MultiStreamSource::new`](super::MultiStreamSource::new).
///
/// - [`fixed`](Self::fixed): a list that never changes;
/// - [`polled`](Self::polled): a callback asked for the current list at a
///   shard sync once `interval` has passed since it was last asked (so a
///   stream added is picked up within `max(interval, shard sync
///   interval)`). A failed poll keeps the previous list.
///
/// A stream added starts at its own [`StreamConfig::initial_position`].
/// A stream removed is no longer listed, so no new lease is created for
/// it; what happens to its leases (the ones being read go on being read)
/// is one of Java's `FormerStreamsLeasesDeletionStrategy`s:
///
/// - by default they are never deleted (Java's `NoLeaseDeletionStrategy`),
///   so a stream tracked again resumes at its checkpoints;
/// - [`delete_removed_after`](Self::delete_removed_after): deleted once
///   this worker has seen them untracked for a delay (Java's
///   `AutoDetectionAndDeferredDeletionStrategy`);
/// - [`delete_listed_after`](Self::delete_listed_after): only the leases of
///   the untracked streams a callback names are deleted, after a delay
///   (Java's `ProvidedStreamsDeferredDeletionStrategy`); other untracked
///   streams keep theirs.
///
/// The delay is counted on this worker's own clock from the first shard
/// sync that saw the stream's leases with the stream untracked (and, for
/// `delete_listed_after`, named), so every worker of the fleet should
/// track the same streams: a peer that still tracks a stream whose leases
/// were deleted creates them again at the stream's initial position.
pub struct StreamTracker {
    pub(super) streams: Streams,
    pub(super) deletion: Deletion,
}

/// The streams [`StreamTracker::delete_listed_after`] may delete.
type Listed = Arc<dyn Fn() -> Vec<StreamIdentifier> + Send + Sync>;

/// What happens to the leases of a stream no longer tracked.
#[derive(Clone)]
pub(super) enum Deletion {
    /// Kept (Java's `NoLeaseDeletionStrategy`).
    Never,
    /// Deleted after the delay (`AutoDetectionAndDeferredDeletionStrategy`).
    Untracked(Duration),
    /// Deleted after the delay if `streams` names the stream
    /// (`ProvidedStreamsDeferredDeletionStrategy`).
    Listed { delay: Duration, streams: Listed },
}

impl Deletion {
    /// The delay after which `stream`'s leases go, if they go at all.
    pub(super) fn delay_for(
        &self,
        listed: &[StreamIdentifier],
        stream: &StreamIdentifier,
    ) -> Option<Duration> {
        match self {
            Deletion::Never => None,
            Deletion::Untracked(delay) => Some(*delay),
            Deletion::Listed { delay, .. } => listed.contains(stream).then_some(*delay),
        }
    }

    /// The streams the user names for deletion now (empty unless listed).
    pub(super) fn listed(&self) -> Vec<StreamIdentifier> {
        match self {
            Deletion::Listed { streams, .. } => streams(),
            _ => Vec::new(),
        }
    }
}

impl fmt::Debug for Deletion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Deletion::Never => f.write_str("Never"),
            Deletion::Untracked(delay) => f.debug_tuple("Untracked").field(delay).finish(),
            Deletion::Listed { delay, .. } => f
                .debug_struct("Listed")
                .field("delay", delay)
                .finish_non_exhaustive(),
        }
    }
}

impl StreamTracker {
    /// A fixed list of streams.
    pub fn fixed(streams: impl IntoIterator<Item = StreamConfig>) -> Self {
        StreamTracker {
            streams: Streams::Fixed(streams.into_iter().collect()),
            deletion: Deletion::Never,
        }
    }

    /// Streams listed by `poll`, asked again once `interval` has passed.
    pub fn polled<F, Fut>(interval: Duration, poll: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<StreamConfig>>> + Send + 'static,
    {
        StreamTracker {
            streams: Streams::Polled {
                interval,
                poll: Arc::new(move || Box::pin(poll())),
            },
            deletion: Deletion::Never,
        }
    }

    /// Delete the leases of a stream no longer tracked once it has been
    /// seen untracked for `delay` (zero: at the first shard sync that
    /// sees it). Default: never.
    pub fn delete_removed_after(mut self, delay: Duration) -> Self {
        self.deletion = Deletion::Untracked(delay);
        self
    }

    /// Delete the leases of a stream no longer tracked only if `streams`
    /// names it, once it has been seen untracked and named for `delay`
    /// (Java's `ProvidedStreamsDeferredDeletionStrategy`). `streams` is
    /// asked at every shard sync that sees leases of an untracked stream;
    /// a stream it names that is still tracked keeps its leases. Replaces
    /// [`delete_removed_after`](Self::delete_removed_after).
    ///
    /// ```
    /// use std::time::Duration;
    /// use kcl_core::stream::{StreamIdentifier, StreamTracker};
    ///
    /// let retired: StreamIdentifier = "123456789012:old-orders:1600000000".parse()?;
    /// let tracker = StreamTracker::fixed([])
    ///     .delete_listed_after(Duration::from_secs(3600), move || vec![retired.clone()]);
    /// # drop(tracker);
    /// # Ok::<(), kcl_core::Error>(())
    /// ```
    pub fn delete_listed_after<F>(mut self, delay: Duration, streams: F) -> Self
    where
        F: Fn() -> Vec<StreamIdentifier> + Send + Sync + 'static,
    {
        self.deletion = Deletion::Listed {
            delay,
            streams: Arc::new(streams),
        };
        self
    }
}

impl fmt::Debug for StreamTracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("StreamTracker");
        match &self.streams {
            Streams::Fixed(streams) => d.field("fixed", streams),
            Streams::Polled { interval, .. } => d.field("polled_every", interval),
        };
        d.field("deletion", &self.deletion).finish()
    }
}
