//! A lease store wrapper that counts what the engine asks of the store:
//! items read and read calls, writes, and lease listings. The store-cost
//! and balance benchmarks wrap each worker's store in one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use kcl_core::{
    ExtendedSequenceNumber as Esn, Lease, LeaseStore, PendingCheckpoint, Result, ShardId,
    WorkerHeartbeat, WorkerId,
};

/// Counts reads and writes of the store it wraps.
#[derive(Debug)]
pub struct Counting {
    inner: Arc<dyn LeaseStore>,
    reads: AtomicU64,
    read_calls: AtomicU64,
    writes: AtomicU64,
    lease_listings: AtomicU64,
}

/// Counts at one instant.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    /// Items read (a listing of n items counts n, an empty one 1).
    pub reads: u64,
    /// Read calls.
    pub read_calls: u64,
    /// Write calls (heartbeats included).
    pub writes: u64,
    /// `list_leases` calls.
    pub lease_listings: u64,
}

impl Counting {
    /// Count the calls made to `inner`.
    pub fn new(inner: Arc<dyn LeaseStore>) -> Self {
        Counting {
            inner,
            reads: AtomicU64::new(0),
            read_calls: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            lease_listings: AtomicU64::new(0),
        }
    }
    fn write(&self) {
        self.writes.fetch_add(1, Ordering::Relaxed);
    }
    fn read(&self, n: usize) {
        self.reads.fetch_add(n as u64, Ordering::Relaxed);
        self.read_calls.fetch_add(1, Ordering::Relaxed);
    }
    /// The wrapped store, for reads the counts must not include.
    pub fn inner(&self) -> &dyn LeaseStore {
        &*self.inner
    }

    /// The counts so far.
    pub fn snapshot(&self) -> Counts {
        Counts {
            reads: self.reads.load(Ordering::Relaxed),
            read_calls: self.read_calls.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            lease_listings: self.lease_listings.load(Ordering::Relaxed),
        }
    }
}

#[async_trait]
impl LeaseStore for Counting {
    async fn create_lease_if_absent(&self, lease: &Lease) -> Result<bool> {
        self.write();
        self.inner.create_lease_if_absent(lease).await
    }
    async fn get_lease(&self, shard_id: &ShardId) -> Result<Option<Lease>> {
        self.read(1);
        self.inner.get_lease(shard_id).await
    }
    async fn list_leases(&self) -> Result<Vec<Lease>> {
        self.lease_listings.fetch_add(1, Ordering::Relaxed);
        let leases = self.inner.list_leases().await?;
        self.read(leases.len().max(1));
        Ok(leases)
    }
    async fn take_lease(&self, observed: &Lease, new_owner: &WorkerId) -> Result<Lease> {
        self.write();
        self.inner.take_lease(observed, new_owner).await
    }
    async fn renew_lease(&self, held: &Lease) -> Result<Lease> {
        self.write();
        self.inner.renew_lease(held).await
    }
    async fn release_lease(&self, held: &Lease, to: Option<&WorkerId>) -> Result<()> {
        self.write();
        self.inner.release_lease(held, to).await
    }
    async fn request_handoff(&self, observed: &Lease, to: &WorkerId) -> Result<()> {
        self.write();
        self.inner.request_handoff(observed, to).await
    }
    async fn update_checkpoint(&self, held: &Lease, checkpoint: &Esn) -> Result<()> {
        self.write();
        self.inner.update_checkpoint(held, checkpoint).await
    }
    async fn prepare_checkpoint(&self, held: &Lease, pending: &PendingCheckpoint) -> Result<()> {
        self.write();
        self.inner.prepare_checkpoint(held, pending).await
    }
    async fn update_child_shard_ids(&self, held: &Lease, children: &[ShardId]) -> Result<()> {
        self.write();
        self.inner.update_child_shard_ids(held, children).await
    }
    async fn pin_start(&self, held: &Lease, at: std::time::SystemTime) -> Result<()> {
        self.write();
        self.inner.pin_start(held, at).await
    }
    async fn withdraw_handoff(&self, observed: &Lease, requester: &WorkerId) -> Result<()> {
        self.write();
        self.inner.withdraw_handoff(observed, requester).await
    }
    async fn delete_lease(&self, shard_id: &ShardId) -> Result<()> {
        self.write();
        self.inner.delete_lease(shard_id).await
    }
    async fn reset_checkpoint(&self, shard_id: &ShardId, checkpoint: &Esn) -> Result<()> {
        self.write();
        self.inner.reset_checkpoint(shard_id, checkpoint).await
    }
    async fn heartbeat(&self, worker: &WorkerId) -> Result<()> {
        self.write();
        self.inner.heartbeat(worker).await
    }
    async fn list_workers(&self) -> Result<Vec<WorkerHeartbeat>> {
        let workers = self.inner.list_workers().await?;
        self.read(workers.len().max(1));
        Ok(workers)
    }
    async fn remove_worker(&self, worker: &WorkerId) -> Result<()> {
        self.write();
        self.inner.remove_worker(worker).await
    }
}
