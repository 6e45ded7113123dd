//! [`Worker`]: runs the shard sync, renewer, taker and consumer loops.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::error::{BoxError, Error, Result};
use crate::ids::{ShardId, WorkerId};
use crate::lease::Lease;
use crate::processor::ProcessorFactory;
use crate::retrieval::ShardSource;
use crate::store::LeaseStore;

use super::config::{WorkerBuilder, WorkerConfig};
use super::consumer::{Consumer, ConsumerContext, Control, Coordination, Outcome};
use super::{metric, renewer, shard_sync, taker};

/// A worker of a fleet consuming one stream; see the [module docs](super).
///
/// ```
/// # #[cfg(feature = "testkit")] {
/// use std::sync::Arc;
/// use kcl_core::engine::Worker;
/// use kcl_core::testkit::FakeStream;
/// use kcl_store_memory::MemoryStore;
/// use tokio_util::sync::CancellationToken;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let stream = FakeStream::new(2);
/// stream.put_record("key", "hello")?;
/// let store = MemoryStore::builder().application("demo-app").build()?;
/// let worker = Worker::builder()
///     .lease_store(Arc::new(store))
///     .source(Arc::new(stream))
///     .process_with(|batch| async move {
///         for record in batch.records() {
///             println!("{:?}", record.data);
///         }
///         Ok(())
///     })
///     .build()?;
/// let cancel = CancellationToken::new();
/// let run = tokio::spawn(worker.run(cancel.clone()));
/// # tokio::time::sleep(std::time::Duration::from_millis(200)).await;
/// cancel.cancel(); // graceful: checkpoint, release every lease
/// run.await.unwrap()?;
/// # Ok::<(), kcl_core::Error>(()) }).unwrap();
/// # }
/// ```
pub struct Worker<F> {
    config: Arc<WorkerConfig>,
    store: Arc<dyn LeaseStore>,
    source: Arc<dyn ShardSource>,
    factory: Arc<F>,
}

impl<F> std::fmt::Debug for Worker<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("config", &self.config)
            .field("store", &self.store)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Worker<()> {
    /// Start building a worker.
    pub fn builder() -> WorkerBuilder<()> {
        WorkerBuilder::new()
    }
}

impl<F: ProcessorFactory> Worker<F> {
    pub(crate) fn new(
        config: WorkerConfig,
        store: Arc<dyn LeaseStore>,
        source: Arc<dyn ShardSource>,
        factory: F,
    ) -> Self {
        Worker {
            config: Arc::new(config),
            store,
            source,
            factory: Arc::new(factory),
        }
    }

    /// This worker's id.
    pub fn id(&self) -> &WorkerId {
        &self.config.worker_id
    }

    /// The validated configuration.
    pub fn config(&self) -> &WorkerConfig {
        &self.config
    }

    /// Run until `cancel` is cancelled, then shut down gracefully (see the
    /// [module docs](super)). Returns an error only if a processor failed
    /// under [`ProcessorErrorPolicy::Stop`](crate::processor::ProcessorErrorPolicy::Stop).
    /// Dropping the future instead stops everything at once, like a crash:
    /// the leases then expire after a lease duration.
    pub async fn run(self, cancel: CancellationToken) -> Result<()> {
        let me = self.config.worker_id.clone();
        let span = tracing::info_span!("worker", worker = %me);
        let engine = Engine {
            ctx: Arc::new(ConsumerContext {
                config: Arc::clone(&self.config),
                source: Arc::clone(&self.source),
                coordination: Coordination::Lease(Arc::clone(&self.store)),
                factory: Arc::clone(&self.factory),
            }),
            store: self.store,
            me,
            held: Mutex::default(),
            consumers: Mutex::new(JoinSet::new()),
            tasks: Mutex::default(),
            fatal: Mutex::default(),
            stop: cancel.child_token(),
        };
        engine.run().instrument(span).await
    }
}

/// A held lease and its consumer.
pub(crate) struct Handle {
    pub(crate) held: Lease,
    pub(crate) lost: CancellationToken,
    pub(crate) control: watch::Sender<Control>,
    pub(crate) last_renewed: Instant,
}

/// The state the loops of one `run` share (borrowed, never `'static`, so
/// dropping the `run` future drops every consumer task with it).
pub(crate) struct Engine<F: ProcessorFactory> {
    pub(crate) ctx: Arc<ConsumerContext<F>>,
    pub(crate) store: Arc<dyn LeaseStore>,
    pub(crate) me: WorkerId,
    pub(crate) held: Mutex<HashMap<ShardId, Handle>>,
    consumers: Mutex<JoinSet<(ShardId, Outcome)>>,
    tasks: Mutex<HashMap<tokio::task::Id, ShardId>>,
    fatal: Mutex<Option<BoxError>>,
    pub(crate) stop: CancellationToken,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn lock_held<F: ProcessorFactory>(
    engine: &Engine<F>,
) -> MutexGuard<'_, HashMap<ShardId, Handle>> {
    lock(&engine.held)
}

impl<F: ProcessorFactory> Engine<F> {
    pub(crate) fn config(&self) -> &WorkerConfig {
        &self.ctx.config
    }

    async fn run(&self) -> Result<()> {
        tracing::info!("worker starting");
        if let Err(e) = self.store.heartbeat(&self.me).await {
            tracing::warn!(error = %e, "first heartbeat failed");
        }
        let synced = match self.sync().await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %e, "initial shard sync failed; retrying soon");
                false
            }
        };
        let renew_stop = CancellationToken::new();
        let main = async {
            tokio::select! {
                _ = self.stop.cancelled() => {}
                _ = taker::run(self) => {}
                _ = self.sync_loop(synced) => {}
            }
            self.shut_down().await;
            renew_stop.cancel();
        };
        tokio::join!(main, renewer::run(self, &renew_stop));
        if let Err(e) = self.store.remove_worker(&self.me).await {
            tracing::warn!(error = %e, "removing the heartbeat failed");
        }
        metrics::gauge!(metric::CURRENT_LEASES, "worker" => self.me.to_string()).set(0.0);
        tracing::info!("worker stopped");
        match lock(&self.fatal).take() {
            Some(e) => Err(Error::Generic {
                store: "processor",
                source: e,
            }),
            None => Ok(()),
        }
    }

    async fn sync(&self) -> Result<usize> {
        shard_sync::sync_shards(
            &self.store,
            &self.ctx.source,
            self.config().initial_position,
        )
        .await
    }

    /// Sync every `shard_sync_interval`; after a failure (the initial sync
    /// included), retry sooner with a doubling delay.
    async fn sync_loop(&self, mut healthy: bool) {
        let interval = self.config().shard_sync_interval;
        let mut retry = self.config().retry_min_delay;
        loop {
            let wait = if healthy {
                interval
            } else {
                retry.min(interval)
            };
            tokio::time::sleep(wait).await;
            match self.sync().await {
                Ok(_) => {
                    healthy = true;
                    retry = self.config().retry_min_delay;
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?retry.min(interval), "shard sync failed");
                    healthy = false;
                    retry = (retry * 2).min(self.config().retry_max_delay);
                }
            }
        }
    }

    /// Shard ids with a consumer running.
    pub(crate) fn running(&self) -> HashSet<ShardId> {
        lock(&self.held).keys().cloned().collect()
    }

    /// Start a consumer on a lease this worker now holds.
    pub(crate) fn start_consumer(&self, lease: Lease) {
        let shard_id = lease.shard_id.clone();
        let lost = CancellationToken::new();
        let (control, control_rx) = watch::channel(Control::Run);
        let consumer = Consumer::new(
            Arc::clone(&self.ctx),
            lease.clone(),
            lost.clone(),
            control_rx,
        );
        let span = tracing::info_span!("shard", shard = %shard_id, worker = %self.me);
        let id = shard_id.clone();
        let abort =
            lock(&self.consumers).spawn(async move { (id, consumer.run().await) }.instrument(span));
        lock(&self.tasks).insert(abort.id(), shard_id.clone());
        let mut held = lock(&self.held);
        held.insert(
            shard_id,
            Handle {
                held: lease,
                lost,
                control,
                last_renewed: Instant::now(),
            },
        );
        metrics::gauge!(metric::CURRENT_LEASES, "worker" => self.me.to_string())
            .set(held.len() as f64);
    }

    /// Collect consumers that ended.
    pub(crate) fn reap(&self) {
        loop {
            let next = lock(&self.consumers).try_join_next_with_id();
            let Some(joined) = next else { break };
            let (task_id, shard_id, outcome) = match joined {
                Ok((task_id, (shard_id, outcome))) => (task_id, shard_id, Some(outcome)),
                Err(e) => {
                    let task_id = e.id();
                    let Some(shard_id) = lock(&self.tasks).get(&task_id).cloned() else {
                        continue;
                    };
                    tracing::error!(shard = %shard_id, error = %e, "shard consumer task failed");
                    (task_id, shard_id, None)
                }
            };
            lock(&self.tasks).remove(&task_id);
            let remaining = {
                let mut held = lock(&self.held);
                held.remove(&shard_id);
                held.len()
            };
            metrics::gauge!(metric::CURRENT_LEASES, "worker" => self.me.to_string())
                .set(remaining as f64);
            match outcome {
                Some(Outcome::LeaseLost) => {
                    metrics::counter!(metric::LEASES_LOST, "worker" => self.me.to_string())
                        .increment(1);
                }
                Some(Outcome::Stopped(e)) => {
                    tracing::error!(shard = %shard_id, error = %e, "processor failed; stopping the worker");
                    lock(&self.fatal).get_or_insert(e);
                    self.stop.cancel();
                }
                _ => {}
            }
        }
    }

    /// Graceful shutdown: every consumer gets `shutdown_requested` and
    /// releases its lease; waits up to the grace period.
    async fn shut_down(&self) {
        tracing::info!("shutting down");
        for handle in lock(&self.held).values() {
            handle.control.send_if_modified(|c| {
                let run = *c == Control::Run;
                if run {
                    *c = Control::Shutdown;
                }
                run
            });
        }
        let deadline = Instant::now() + self.config().shutdown_grace;
        loop {
            self.reap();
            if lock(&self.consumers).is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                tracing::warn!("shutdown grace period over; abandoning the remaining leases");
                lock(&self.consumers).abort_all();
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        self.reap();
        // A lease handed to this worker while it was stopping has no
        // consumer: give it back so a peer need not wait for it to expire.
        if let Ok(leases) = self.store.list_leases().await {
            for lease in leases.iter().filter(|l| l.is_owned_by(&self.me)) {
                if let Err(e) = self.store.release_lease(lease, None).await {
                    tracing::debug!(shard = %lease.shard_id, error = %e, "releasing a leftover lease failed");
                }
            }
        }
    }
}
