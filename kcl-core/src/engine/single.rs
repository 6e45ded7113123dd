//! [`SingleConsumer`]: consume every shard of a stream in one process with
//! only a [`CheckpointStore`] — no leases, no peers (the simple polling
//! consumer).
//!
//! It runs the same shard consumers as the [`Worker`](super::Worker)
//! (bounded prefetch, processor life cycle, error policy, panic isolation),
//! one per shard, children only after every parent's checkpoint is
//! `SHARD_END`. Where a shard starts:
//! - at its stored checkpoint, if any;
//! - else at an explicit position given with
//!   [`SingleConsumerBuilder::start_shard_at`] (any of the five iterator
//!   types, including AT_SEQUENCE_NUMBER and AFTER_SEQUENCE_NUMBER, which
//!   only make sense per shard);
//! - else at `TRIM_HORIZON` if it descends from a shard this consumer reads;
//! - else at the initial position (TRIM_HORIZON, LATEST or AT_TIMESTAMP);
//!   with LATEST, closed shards without a consumed ancestor are skipped.
//!
//! Run only one `SingleConsumer` per application and stream: nothing stops
//! two from reading the same shard.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::error::{BoxError, Error, Result};
use crate::ids::ShardId;
use crate::lease::Lease;
use crate::processor::{FnFactory, ProcessRecordsInput, ProcessorFactory};
use crate::retrieval::{ShardDescription, ShardSource, StartingPosition};
use crate::sequence::ExtendedSequenceNumber;
use crate::store::CheckpointStore;

use super::config::{InitialPosition, WorkerConfig};
use super::consumer::{Consumer, ConsumerContext, Control, Coordination, Outcome};
use super::retry_store;

/// Builds a [`SingleConsumer`].
pub struct SingleConsumerBuilder<F> {
    config: WorkerConfig,
    store: Option<Arc<dyn CheckpointStore>>,
    source: Option<Arc<dyn ShardSource>>,
    positions: HashMap<ShardId, StartingPosition>,
    factory: F,
}

impl<F> std::fmt::Debug for SingleConsumerBuilder<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SingleConsumerBuilder")
            .field("config", &self.config)
            .field("store", &self.store)
            .field("source", &self.source)
            .field("positions", &self.positions)
            .finish_non_exhaustive()
    }
}

impl<F> SingleConsumerBuilder<F> {
    /// Where checkpoints are kept. Required.
    pub fn checkpoint_store(mut self, store: Arc<dyn CheckpointStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The stream to read. Required.
    pub fn source(mut self, source: Arc<dyn ShardSource>) -> Self {
        self.source = Some(source);
        self
    }

    super::config::consumer_setters!();

    /// Start `shard_id` at `position` if it has no checkpoint yet.
    pub fn start_shard_at(mut self, shard_id: ShardId, position: StartingPosition) -> Self {
        self.positions.insert(shard_id, position);
        self
    }

    /// The processor factory: one processor per shard.
    pub fn processor<P: ProcessorFactory>(self, factory: P) -> SingleConsumerBuilder<P> {
        SingleConsumerBuilder {
            config: self.config,
            store: self.store,
            source: self.source,
            positions: self.positions,
            factory,
        }
    }

    /// The closure shortcut, checkpointing after each batch.
    pub fn process_with<C, Fut>(self, f: C) -> SingleConsumerBuilder<FnFactory<C>>
    where
        C: Fn(ProcessRecordsInput) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), BoxError>> + Send,
    {
        self.processor(FnFactory::new(f))
    }
}

impl<F: ProcessorFactory> SingleConsumerBuilder<F> {
    /// Validate and build.
    pub fn build(self) -> Result<SingleConsumer<F>> {
        let store = self
            .store
            .ok_or_else(|| Error::Config("SingleConsumer needs a checkpoint store".into()))?;
        let source = self
            .source
            .ok_or_else(|| Error::Config("SingleConsumer needs a shard source".into()))?;
        self.config.consumer.validate()?;
        Ok(SingleConsumer {
            ctx: Arc::new(ConsumerContext {
                config: Arc::new(self.config),
                source,
                coordination: Coordination::Single(Arc::clone(&store)),
                factory: Arc::new(self.factory),
            }),
            store,
            positions: self.positions,
        })
    }
}

/// Consumes every shard of a stream in one process with only a
/// [`CheckpointStore`]: one consumer per shard, children only after every
/// parent's checkpoint is `SHARD_END`.
///
/// A shard without checkpoint starts at the position given with
/// [`SingleConsumerBuilder::start_shard_at`] (any of the five iterator
/// types), else at TRIM_HORIZON if it descends from a shard this consumer
/// reads, else at the initial position; with LATEST, closed shards without
/// a consumed ancestor are skipped. Run one per application and stream.
///
/// ```
/// # #[cfg(feature = "testkit")] {
/// use std::sync::Arc;
/// use kcl_core::engine::SingleConsumer;
/// use kcl_core::testkit::FakeStream;
/// use kcl_store_memory::MemoryStore;
/// use tokio_util::sync::CancellationToken;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let stream = FakeStream::new(2);
/// stream.put_record("key", "hello")?;
/// let store = MemoryStore::builder().application("demo-app").build()?;
/// let consumer = SingleConsumer::builder()
///     .checkpoint_store(Arc::new(store))
///     .source(Arc::new(stream))
///     .process_with(|batch| async move {
///         println!("{} records", batch.records().len());
///         Ok(())
///     })
///     .build()?;
/// let cancel = CancellationToken::new();
/// let run = tokio::spawn(consumer.run(cancel.clone()));
/// # tokio::time::sleep(std::time::Duration::from_millis(200)).await;
/// cancel.cancel();
/// run.await.unwrap()?;
/// # Ok::<(), kcl_core::Error>(()) }).unwrap();
/// # }
/// ```
pub struct SingleConsumer<F> {
    ctx: Arc<ConsumerContext<F>>,
    store: Arc<dyn CheckpointStore>,
    positions: HashMap<ShardId, StartingPosition>,
}

impl<F> std::fmt::Debug for SingleConsumer<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SingleConsumer")
            .field("store", &self.store)
            .field("positions", &self.positions)
            .finish_non_exhaustive()
    }
}

impl SingleConsumer<()> {
    /// Start building.
    pub fn builder() -> SingleConsumerBuilder<()> {
        SingleConsumerBuilder {
            config: WorkerConfig::new(),
            store: None,
            source: None,
            positions: HashMap::new(),
            factory: (),
        }
    }
}

/// What to do with a listed shard.
enum Plan {
    Done,
    Skip,
    Consume {
        checkpoint: ExtendedSequenceNumber,
        explicit: Option<StartingPosition>,
    },
}

impl<F: ProcessorFactory> SingleConsumer<F> {
    /// Run until `cancel`, then ask every processor to checkpoint and stop.
    /// Returns an error only under [`ProcessorErrorPolicy::Stop`](crate::processor::ProcessorErrorPolicy::Stop).
    pub async fn run(self, cancel: CancellationToken) -> Result<()> {
        let mut running: HashMap<ShardId, watch::Sender<Control>> = HashMap::new();
        // Shards whose processor panicked: (failures, not before).
        let mut backoff: HashMap<ShardId, (u32, tokio::time::Instant)> = HashMap::new();
        let mut tasks: JoinSet<(ShardId, Outcome)> = JoinSet::new();
        let mut fatal: Option<BoxError> = None;
        let mut tick = tokio::time::interval(self.ctx.config.consumer.shard_sync_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let now = tokio::time::Instant::now();
            let next = backoff
                .values()
                .map(|(_, until)| *until)
                .filter(|u| *u > now)
                .min();
            let (has_wake, wake) = (next.is_some(), next.unwrap_or(now));
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tick.tick() => {}
                // A shard whose backoff ends is started without waiting for
                // the next listing tick.
                _ = tokio::time::sleep_until(wake), if has_wake => {}
                Some(joined) = tasks.join_next() => {
                    match joined {
                        Ok((shard_id, outcome)) => {
                            running.remove(&shard_id);
                            super::metric::shard_released(&shard_id);
                            match outcome {
                                Outcome::Stopped(e) => {
                                    fatal = Some(e);
                                    break;
                                }
                                Outcome::Panicked => {
                                    // Not restarted at once: a doubling delay.
                                    let config = &self.ctx.config;
                                    let entry = backoff.entry(shard_id.clone()).or_insert((0, tokio::time::Instant::now()));
                                    entry.0 = entry.0.saturating_add(1);
                                    let delay = config
                                        .consumer
                                        .retry_min_delay
                                        .saturating_mul(1u32 << entry.0.min(16))
                                        .min(config.consumer.retry_max_delay);
                                    entry.1 = tokio::time::Instant::now() + delay;
                                    tracing::warn!(shard = %shard_id, failures = entry.0, retry_in = ?delay, "shard consumer failed; backing off");
                                    metrics::counter!(super::metric::SHARD_BACKOFFS, super::metric::shard_labels(&shard_id)).increment(1);
                                }
                                _ => {
                                    backoff.remove(&shard_id);
                                }
                            }
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "shard consumer task failed");
                            running.retain(|_, tx| !tx.is_closed());
                        }
                    }
                }
            }
            let now = tokio::time::Instant::now();
            let cooling: HashSet<ShardId> = backoff
                .iter()
                .filter(|(_, (_, until))| *until > now)
                .map(|(id, _)| id.clone())
                .collect();
            if let Err(e) = self.schedule(&mut running, &mut tasks, &cooling).await {
                tracing::warn!(error = %e, "listing shards failed");
            }
        }
        for tx in running.values() {
            tx.send_replace(Control::Shutdown);
        }
        let grace = self.ctx.config.consumer.shutdown_grace;
        if tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} })
            .await
            .is_err()
        {
            tracing::warn!("shutdown grace period over; stopping the remaining shards");
            tasks.abort_all();
        }
        match fatal {
            Some(e) => Err(Error::Processor(e)),
            None => Ok(()),
        }
    }

    async fn schedule(
        &self,
        running: &mut HashMap<ShardId, watch::Sender<Control>>,
        tasks: &mut JoinSet<(ShardId, Outcome)>,
        cooling: &HashSet<ShardId>,
    ) -> Result<()> {
        let shards = self.ctx.source.list_shards().await?;
        let ordered = super::shard_sync::parents_first(&shards);
        let listed: HashSet<&ShardId> = shards.iter().map(|s| &s.shard_id).collect();
        let mut checkpoints = HashMap::new();
        for shard in &ordered {
            let id = &shard.shard_id;
            let checkpoint = retry_store(|| self.store.get_checkpoint(id)).await?;
            checkpoints.insert(id.clone(), checkpoint);
        }
        let mut children: HashMap<&ShardId, Vec<&ShardId>> = HashMap::new();
        for shard in &shards {
            for parent in shard.parents() {
                children.entry(parent).or_default().push(&shard.shard_id);
            }
        }
        let mut plans: HashMap<ShardId, Plan> = HashMap::new();
        for shard in &ordered {
            let id = &shard.shard_id;
            let plan = self.plan(shard, &checkpoints, &children, &plans);
            plans.insert(id.clone(), plan);
        }
        for shard in &ordered {
            let id = &shard.shard_id;
            let Some(Plan::Consume {
                checkpoint,
                explicit,
            }) = plans.get(id)
            else {
                continue;
            };
            if running.contains_key(id) || cooling.contains(id) {
                continue;
            }
            let parents_done = shard.parents().all(|p| {
                !listed.contains(p) || matches!(plans.get(p), Some(Plan::Done | Plan::Skip))
            });
            if !parents_done {
                continue;
            }
            let lease = Lease::new(id.clone(), checkpoint.clone())
                .with_parents(shard.parents().cloned())
                .with_hash_key_range(shard.hash_key_range);
            let (tx, rx) = watch::channel(Control::Run);
            let mut consumer =
                Consumer::new(Arc::clone(&self.ctx), lease, CancellationToken::new(), rx);
            if let Some(position) = explicit {
                consumer = consumer.starting_at(position.clone());
            }
            let span = tracing::info_span!("shard", shard = %id);
            let shard_id = id.clone();
            tasks.spawn(async move { (shard_id, consumer.run().await) }.instrument(span));
            running.insert(id.clone(), tx);
        }
        Ok(())
    }

    fn plan(
        &self,
        shard: &ShardDescription,
        checkpoints: &HashMap<ShardId, Option<ExtendedSequenceNumber>>,
        children: &HashMap<&ShardId, Vec<&ShardId>>,
        plans: &HashMap<ShardId, Plan>,
    ) -> Plan {
        let id = &shard.shard_id;
        match checkpoints.get(id).cloned().flatten() {
            Some(ExtendedSequenceNumber::ShardEnd) => return Plan::Done,
            Some(checkpoint) => {
                return Plan::Consume {
                    checkpoint,
                    explicit: None,
                };
            }
            None => {}
        }
        // A child already started: this shard was finished before.
        if children.get(id).is_some_and(|cs| {
            cs.iter()
                .any(|c| checkpoints.get(*c).is_some_and(Option::is_some))
        }) {
            return Plan::Done;
        }
        if let Some(position) = self.positions.get(id) {
            return Plan::Consume {
                checkpoint: ExtendedSequenceNumber::TrimHorizon,
                explicit: Some(position.clone()),
            };
        }
        let descendant = shard
            .parents()
            .any(|p| matches!(plans.get(p), Some(Plan::Consume { .. } | Plan::Done)));
        let checkpoint = match self.ctx.initial_position(id) {
            initial if descendant => super::shard_sync::descendant_start(initial),
            InitialPosition::Latest if shard.is_closed() => return Plan::Skip,
            InitialPosition::Latest => ExtendedSequenceNumber::Latest,
            InitialPosition::TrimHorizon => ExtendedSequenceNumber::TrimHorizon,
            InitialPosition::AtTimestamp(_) => ExtendedSequenceNumber::AtTimestamp,
        };
        Plan::Consume {
            checkpoint,
            explicit: None,
        }
    }
}
