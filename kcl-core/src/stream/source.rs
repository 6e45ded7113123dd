//! [`MultiStreamSource`]: one [`ShardSource`] over every tracked stream,
//! so the engine, which balances and fences leases by opaque keys, reads
//! many streams without knowing it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use tokio::time::Instant;

use crate::engine::InitialPosition;
use crate::error::{Error, Result};
use crate::ids::ShardId;
use crate::retrieval::{
    ChildShard, Record, RecordBatch, ShardDescription, ShardReader, ShardSource, StartingPosition,
};

use super::StreamIdentifier;
use super::tracker::{StreamConfig, StreamTracker, Streams};

/// Every stream of a [`StreamTracker`] as one [`ShardSource`].
///
/// Shards are listed with lease keys for ids (`account:name:epoch:shardId`,
/// the parents too), and a reader opened on such a key reads the raw shard
/// from its stream's own source, its `ChildShards` keyed the same way. A
/// stream whose listing fails is left out of that listing (its leases stay,
/// its new shards wait for the next sync); only when every stream fails is
/// the listing an error. The shard sync asks it each stream's initial
/// position ([`ShardSource::initial_position`]) and which leases of removed
/// streams to delete ([`ShardSource::retired_leases`]).
///
/// ```
/// # #[cfg(feature = "testkit")] {
/// use std::sync::Arc;
/// use kcl_core::engine::{InitialPosition, Worker};
/// use kcl_core::stream::{MultiStreamSource, StreamConfig, StreamIdentifier, StreamTracker};
/// use kcl_core::testkit::FakeStream;
/// use kcl_store_memory::MemoryStore;
///
/// let orders = StreamConfig::new("123456789012:orders:1700000000".parse()?, Arc::new(FakeStream::new(2)));
/// let clicks = StreamConfig::new("123456789012:clicks:1700000000".parse()?, Arc::new(FakeStream::new(4)))
///     .initial_position(InitialPosition::Latest);
/// let tracker = StreamTracker::fixed([orders, clicks])
///     .delete_removed_after(std::time::Duration::from_secs(3600));
/// let worker = Worker::builder()
///     .lease_store(Arc::new(MemoryStore::builder().application("many-streams").build()?))
///     .source(Arc::new(MultiStreamSource::new(tracker)))
///     .process_with(|batch| async move {
///         // batch.shard_id() is the lease key: account:name:epoch:shardId
///         Ok(())
///     })
///     .build()?;
/// # drop(worker);
/// # }
/// # Ok::<(), kcl_core::Error>(())
/// ```
#[derive(Debug)]
pub struct MultiStreamSource {
    tracker: StreamTracker,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The streams tracked now.
    tracked: BTreeMap<StreamIdentifier, StreamConfig>,
    /// Streams no longer tracked, kept (so their held leases are still
    /// read) until their leases are gone.
    removed: BTreeMap<StreamIdentifier, StreamConfig>,
    /// When the tracker's callback was last asked.
    polled_at: Option<Instant>,
    /// When this worker first saw leases of an untracked stream.
    untracked_since: HashMap<StreamIdentifier, Instant>,
}

impl MultiStreamSource {
    /// A source over the streams of `tracker`.
    pub fn new(tracker: StreamTracker) -> Self {
        let mut state = State::default();
        if let Streams::Fixed(streams) = &tracker.streams {
            for stream in streams {
                state
                    .tracked
                    .insert(stream.identifier.clone(), stream.clone());
            }
        }
        MultiStreamSource {
            tracker,
            state: Mutex::new(state),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The streams tracked now (after the last poll of the tracker).
    pub fn streams(&self) -> Vec<StreamIdentifier> {
        self.lock().tracked.keys().cloned().collect()
    }

    /// Ask the tracker's callback for the current streams, if it is due.
    async fn refresh(&self) {
        let Streams::Polled { interval, poll } = &self.tracker.streams else {
            return;
        };
        let due = self
            .lock()
            .polled_at
            .is_none_or(|at| at.elapsed() >= *interval);
        if !due {
            return;
        }
        let polled = poll().await;
        let mut state = self.lock();
        state.polled_at = Some(Instant::now());
        match polled {
            Ok(streams) => state.track(streams),
            Err(e) => {
                tracing::warn!(error = %e, "stream tracker failed; keeping the streams tracked")
            }
        }
    }

    fn config_of(&self, stream: &StreamIdentifier) -> Option<StreamConfig> {
        let state = self.lock();
        state
            .tracked
            .get(stream)
            .or_else(|| state.removed.get(stream))
            .cloned()
    }
}

impl State {
    /// Make `streams` the tracked set; a stream already known keeps its
    /// source.
    fn track(&mut self, streams: Vec<StreamConfig>) {
        let mut next = BTreeMap::new();
        for stream in streams {
            let id = stream.identifier.clone();
            let known = self
                .tracked
                .remove(&id)
                .or_else(|| self.removed.remove(&id));
            if known.is_none() {
                tracing::info!(stream = %id, "tracking a new stream");
            }
            next.entry(id).or_insert(known.unwrap_or(stream));
        }
        for (id, config) in std::mem::replace(&mut self.tracked, next) {
            tracing::info!(stream = %id, "stream no longer tracked");
            self.removed.insert(id, config);
        }
    }
}

fn prefixed(stream: &StreamIdentifier, shard: ShardDescription) -> Result<ShardDescription> {
    let key = |id: &ShardId| stream.lease_key(id);
    Ok(ShardDescription {
        shard_id: key(&shard.shard_id)?,
        parent_shard_id: shard.parent_shard_id.as_ref().map(key).transpose()?,
        adjacent_parent_shard_id: shard
            .adjacent_parent_shard_id
            .as_ref()
            .map(key)
            .transpose()?,
        ..shard
    })
}

#[async_trait]
impl ShardSource for MultiStreamSource {
    async fn list_shards(&self) -> Result<Vec<ShardDescription>> {
        self.refresh().await;
        let streams: Vec<StreamConfig> = self.lock().tracked.values().cloned().collect();
        let listings = futures::future::join_all(streams.iter().map(|s| async move {
            let shards = s.source.list_shards().await?;
            shards
                .into_iter()
                .map(|shard| prefixed(&s.identifier, shard))
                .collect::<Result<Vec<_>>>()
        }))
        .await;
        let mut out = Vec::new();
        let mut first_error = None;
        let mut listed = 0;
        for (stream, listing) in streams.iter().zip(listings) {
            match listing {
                Ok(shards) => {
                    listed += 1;
                    out.extend(shards);
                }
                Err(e) => {
                    tracing::warn!(stream = %stream.identifier, error = %e, "listing a stream's shards failed; its new shards wait for the next sync");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) if listed == 0 => Err(e),
            _ => Ok(out),
        }
    }

    async fn open_reader(
        &self,
        shard_id: &ShardId,
        from: StartingPosition,
    ) -> Result<Box<dyn ShardReader>> {
        let Some((stream, raw)) = StreamIdentifier::split_lease_key(shard_id) else {
            return Err(Error::NotFound {
                what: format!("shard {shard_id}: not a multi-stream lease key"),
            });
        };
        let Some(config) = self.config_of(&stream) else {
            return Err(Error::NotFound {
                what: format!("stream {stream} of shard {shard_id}: not tracked by this worker"),
            });
        };
        let inner = config.source.open_reader(&raw, from).await?;
        Ok(Box::new(PrefixedReader { stream, inner }))
    }

    fn initial_position(&self, shard_id: &ShardId) -> Option<InitialPosition> {
        let (stream, _) = StreamIdentifier::split_lease_key(shard_id)?;
        self.config_of(&stream).map(|c| c.initial_position)
    }

    fn retired_leases(&self, leased: &HashSet<ShardId>) -> Vec<ShardId> {
        let mut state = self.lock();
        let mut untracked: BTreeMap<StreamIdentifier, Vec<ShardId>> = BTreeMap::new();
        for key in leased {
            if let Some((stream, _)) = StreamIdentifier::split_lease_key(key)
                && !state.tracked.contains_key(&stream)
            {
                untracked.entry(stream).or_default().push(key.clone());
            }
        }
        // Streams whose leases are all gone need no source any more, nor
        // a clock.
        state.removed.retain(|id, _| untracked.contains_key(id));
        state
            .untracked_since
            .retain(|id, _| untracked.contains_key(id));
        if untracked.is_empty() {
            return Vec::new();
        }
        let listed = self.tracker.deletion.listed();
        let now = Instant::now();
        let mut out = Vec::new();
        for (stream, keys) in untracked {
            let Some(delay) = self.tracker.deletion.delay_for(&listed, &stream) else {
                // Kept: a stream named later counts its delay from then.
                state.untracked_since.remove(&stream);
                continue;
            };
            let since = *state.untracked_since.entry(stream.clone()).or_insert(now);
            if now.duration_since(since) >= delay {
                tracing::info!(stream = %stream, leases = keys.len(), "deleting the leases of a stream no longer tracked");
                out.extend(keys);
            }
        }
        out
    }
}

/// A stream's reader whose `ChildShards` carry lease keys.
#[derive(Debug)]
struct PrefixedReader {
    stream: StreamIdentifier,
    inner: Box<dyn ShardReader>,
}

#[async_trait]
impl ShardReader for PrefixedReader {
    async fn next_batch(&mut self) -> Result<RecordBatch> {
        self.next_batch_into(Vec::new()).await
    }

    async fn next_batch_into(&mut self, records: Vec<Record>) -> Result<RecordBatch> {
        let mut batch = self.inner.next_batch_into(records).await?;
        if let Some(children) = batch.shard_end.take() {
            let key = |id: &ShardId| self.stream.lease_key(id);
            let children = children
                .into_iter()
                .map(|c| {
                    Ok(ChildShard {
                        shard_id: key(&c.shard_id)?,
                        parent_shard_ids: c
                            .parent_shard_ids
                            .iter()
                            .map(key)
                            .collect::<Result<_>>()?,
                        hash_key_range: c.hash_key_range,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            batch.shard_end = Some(children);
        }
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    /// A stream with no shards: `retired_leases` never reads one.
    #[derive(Debug)]
    struct NoShards;

    #[async_trait]
    impl ShardSource for NoShards {
        async fn list_shards(&self) -> Result<Vec<ShardDescription>> {
            Ok(Vec::new())
        }
        async fn open_reader(
            &self,
            _: &ShardId,
            _: StartingPosition,
        ) -> Result<Box<dyn ShardReader>> {
            Err(Error::NotFound {
                what: "no shards".into(),
            })
        }
    }

    fn stream(name: &str) -> StreamIdentifier {
        format!("123456789012:{name}:1700000000").parse().unwrap()
    }

    /// Two lease keys of each of `tracked`, `kept` and `retired`.
    fn leases() -> HashSet<ShardId> {
        ["tracked", "kept", "retired"]
            .iter()
            .flat_map(|name| {
                (0..2).map(move |n| {
                    stream(name)
                        .lease_key(&ShardId::new(format!("shardId-00000000000{n}")).unwrap())
                        .unwrap()
                })
            })
            .collect()
    }

    fn source(tracker: impl FnOnce(StreamTracker) -> StreamTracker) -> MultiStreamSource {
        let tracked = StreamConfig::new(stream("tracked"), Arc::new(NoShards));
        MultiStreamSource::new(tracker(StreamTracker::fixed([tracked])))
    }

    fn streams_of(keys: Vec<ShardId>) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for key in keys {
            let (stream, _) = StreamIdentifier::split_lease_key(&key).unwrap();
            *out.entry(stream.to_string()).or_default() += 1;
        }
        out
    }

    #[tokio::test(start_paused = true)]
    async fn listed_deletion_takes_only_the_named_untracked_streams_after_the_delay() {
        let named = vec![stream("retired"), stream("tracked")];
        let source =
            source(|t| t.delete_listed_after(Duration::from_secs(60), move || named.clone()));
        assert!(
            source.retired_leases(&leases()).is_empty(),
            "before the delay"
        );
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(
            source.retired_leases(&leases()).is_empty(),
            "before the delay"
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        // "tracked" is named but still tracked; "kept" is untracked but not named.
        let got = streams_of(source.retired_leases(&leases()));
        assert_eq!(got, BTreeMap::from([(stream("retired").to_string(), 2)]));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_named_late_counts_its_delay_from_when_it_was_named() {
        let named = Arc::new(Mutex::new(Vec::new()));
        let list = Arc::clone(&named);
        let source = source(|t| {
            t.delete_listed_after(Duration::from_secs(60), move || {
                list.lock().unwrap().clone()
            })
        });
        assert!(source.retired_leases(&leases()).is_empty());
        tokio::time::advance(Duration::from_secs(120)).await;
        assert!(
            source.retired_leases(&leases()).is_empty(),
            "named by nobody"
        );
        named.lock().unwrap().push(stream("kept"));
        assert!(
            source.retired_leases(&leases()).is_empty(),
            "named just now"
        );
        tokio::time::advance(Duration::from_secs(60)).await;
        let got = streams_of(source.retired_leases(&leases()));
        assert_eq!(got, BTreeMap::from([(stream("kept").to_string(), 2)]));
    }

    #[tokio::test(start_paused = true)]
    async fn untracked_deletion_takes_every_untracked_stream_and_never_keeps_all() {
        let auto = source(|t| t.delete_removed_after(Duration::ZERO));
        let got = streams_of(auto.retired_leases(&leases()));
        assert_eq!(
            got,
            BTreeMap::from([
                (stream("kept").to_string(), 2),
                (stream("retired").to_string(), 2)
            ])
        );
        let never = source(|t| t);
        tokio::time::advance(Duration::from_secs(86_400)).await;
        assert!(never.retired_leases(&leases()).is_empty());
    }
}
