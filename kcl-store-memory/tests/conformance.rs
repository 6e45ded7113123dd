//! The shared conformance suite against `MemoryStore`, directly and
//! through `Arc<dyn …>`, and proof that the suite catches a broken store.

use std::sync::Arc;

use async_trait::async_trait;
use kcl_core::testkit::conformance::{self, StoreFactory, store_factory};
use kcl_core::{
    ApplicationName, CheckpointStore, ExtendedSequenceNumber, Lease, LeaseStore, PendingCheckpoint,
    Result, ShardId, WorkerHeartbeat, WorkerId,
};
use kcl_store_memory::MemoryStore;

fn server() -> MemoryStore {
    MemoryStore::new(ApplicationName::new("conformance").unwrap())
}

async fn factory() -> Option<impl StoreFactory> {
    let server = server();
    Some(store_factory(move || {
        let store = server.with_application(conformance::random_application());
        async move { store }
    }))
}

kcl_core::store_conformance_tests!(factory);

#[tokio::test]
async fn memory_store_passes_called_directly() {
    // Not through Arc<dyn …>: the concrete type coerces to &dyn at the call.
    let store = server().with_application(conformance::random_application());
    conformance::fencing_after_takeover(&store).await;
    conformance::checkpoints_never_go_backwards(
        &store.with_application(conformance::random_application()),
    )
    .await;
    conformance::checkpoint_store_never_goes_backwards(&store).await;
}

/// A store that forgets the fencing rule: it writes under whatever the
/// stored owner and generation are, as a naive backend would.
#[derive(Debug)]
struct Unfenced(MemoryStore);

impl Unfenced {
    async fn current(&self, held: &Lease) -> Result<Lease> {
        Ok(self
            .0
            .get_lease(&held.shard_id)
            .await?
            .unwrap_or_else(|| held.clone()))
    }
}

#[async_trait]
impl LeaseStore for Unfenced {
    async fn create_lease_if_absent(&self, lease: &Lease) -> Result<bool> {
        self.0.create_lease_if_absent(lease).await
    }
    async fn get_lease(&self, shard_id: &ShardId) -> Result<Option<Lease>> {
        self.0.get_lease(shard_id).await
    }
    async fn list_leases(&self) -> Result<Vec<Lease>> {
        self.0.list_leases().await
    }
    async fn take_lease(&self, observed: &Lease, new_owner: &WorkerId) -> Result<Lease> {
        self.0.take_lease(observed, new_owner).await
    }
    async fn renew_lease(&self, held: &Lease) -> Result<Lease> {
        self.0.renew_lease(&self.current(held).await?).await
    }
    async fn release_lease(&self, held: &Lease, to: Option<&WorkerId>) -> Result<()> {
        self.0.release_lease(&self.current(held).await?, to).await
    }
    async fn request_handoff(&self, observed: &Lease, to: &WorkerId) -> Result<()> {
        self.0.request_handoff(observed, to).await
    }
    async fn update_checkpoint(
        &self,
        held: &Lease,
        checkpoint: &ExtendedSequenceNumber,
    ) -> Result<()> {
        self.0
            .update_checkpoint(&self.current(held).await?, checkpoint)
            .await
    }
    async fn prepare_checkpoint(&self, held: &Lease, pending: &PendingCheckpoint) -> Result<()> {
        self.0
            .prepare_checkpoint(&self.current(held).await?, pending)
            .await
    }
    async fn update_child_shard_ids(&self, held: &Lease, children: &[ShardId]) -> Result<()> {
        self.0
            .update_child_shard_ids(&self.current(held).await?, children)
            .await
    }
    async fn pin_start(&self, held: &Lease, at: std::time::SystemTime) -> Result<()> {
        self.0.pin_start(&self.current(held).await?, at).await
    }
    async fn withdraw_handoff(&self, observed: &Lease, requester: &WorkerId) -> Result<()> {
        self.0
            .withdraw_handoff(&self.current(observed).await?, requester)
            .await
    }
    async fn delete_lease(&self, shard_id: &ShardId) -> Result<()> {
        self.0.delete_lease(shard_id).await
    }
    async fn reset_checkpoint(
        &self,
        shard_id: &ShardId,
        checkpoint: &ExtendedSequenceNumber,
    ) -> Result<()> {
        self.0.reset_checkpoint(shard_id, checkpoint).await
    }
    async fn heartbeat(&self, worker: &WorkerId) -> Result<()> {
        self.0.heartbeat(worker).await
    }
    async fn list_workers(&self) -> Result<Vec<WorkerHeartbeat>> {
        self.0.list_workers().await
    }
    async fn remove_worker(&self, worker: &WorkerId) -> Result<()> {
        self.0.remove_worker(worker).await
    }
}

/// Run one check on a store in its own task and report whether it panicked.
async fn check_panics<F, Fut>(store: Arc<dyn LeaseStore>, check: F) -> bool
where
    F: FnOnce(Arc<dyn LeaseStore>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    match tokio::spawn(check(store)).await {
        Ok(()) => false,
        Err(e) => e.is_panic(),
    }
}

#[tokio::test]
async fn the_suite_catches_a_store_without_fencing() {
    let broken: Arc<dyn LeaseStore> = Arc::new(Unfenced(server()));
    assert!(
        check_panics(broken.clone(), |s| async move {
            conformance::fencing_after_takeover(&*s).await
        })
        .await,
        "fencing_after_takeover must fail against a store that drops the fencing check"
    );
    let broken: Arc<dyn LeaseStore> = Arc::new(Unfenced(server()));
    assert!(
        check_panics(broken, |s| async move {
            conformance::fencing_survives_retake_by_same_worker(&*s).await
        })
        .await,
        "the ABA check must fail against a store that drops the fencing check"
    );
    // And the same checks pass on the real thing, so the failure above is
    // the broken fencing, not the harness.
    let sound: Arc<dyn LeaseStore> = Arc::new(server());
    assert!(
        !check_panics(sound, |s| async move {
            conformance::fencing_after_takeover(&*s).await
        })
        .await
    );
}

/// A checkpoint store with the classic bug: it compares checkpoints as
/// strings, so "9" counts as above "10".
#[derive(Debug, Default)]
struct StringOrdered(std::sync::Mutex<std::collections::HashMap<ShardId, ExtendedSequenceNumber>>);

#[async_trait]
impl CheckpointStore for StringOrdered {
    async fn get_checkpoint(&self, shard_id: &ShardId) -> Result<Option<ExtendedSequenceNumber>> {
        Ok(self.0.lock().unwrap().get(shard_id).cloned())
    }
    async fn set_checkpoint(
        &self,
        shard_id: &ShardId,
        checkpoint: &ExtendedSequenceNumber,
    ) -> Result<()> {
        let mut map = self.0.lock().unwrap();
        if map
            .get(shard_id)
            .is_some_and(|stored| checkpoint.to_string() < stored.to_string())
        {
            return Err(kcl_core::Error::InvalidCheckpoint("backwards".into()));
        }
        map.insert(shard_id.clone(), checkpoint.clone());
        Ok(())
    }
}

#[tokio::test]
async fn the_suite_catches_string_ordered_checkpoints() {
    let result = tokio::spawn(async move {
        conformance::checkpoint_store_never_goes_backwards(&StringOrdered::default()).await
    })
    .await;
    assert!(
        result.is_err_and(|e| e.is_panic()),
        "string-ordered checkpoints must fail the suite"
    );
}
