//! [`Worker`]: the public face of a fleet member. Its `run` hands over to
//! the [`Coordinator`] loop, the one owner of the leases
//! this worker holds.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::error::Result;
use crate::ids::WorkerId;
use crate::processor::ProcessorFactory;
use crate::retrieval::ShardSource;
use crate::store::LeaseStore;

use super::config::{WorkerBuilder, WorkerConfig};
use super::consumer::{ConsumerContext, Coordination};
use super::coordinator::Coordinator;

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
        let ctx = Arc::new(ConsumerContext {
            config: Arc::clone(&self.config),
            source: Arc::clone(&self.source),
            coordination: Coordination::Lease(Arc::clone(&self.store)),
            factory: Arc::clone(&self.factory),
        });
        Coordinator::new(ctx, self.store, me)
            .run(cancel)
            .instrument(span)
            .await
    }
}
