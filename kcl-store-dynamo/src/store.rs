//! [`DynamoStore`]: the handle, its tables, and the trait implementations
//! (each one call of the lease writes in `lease.rs`, the checkpoint logic
//! in `checkpoint.rs` or the requests in `requests.rs`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use kcl_core::{
    ApplicationName, CheckpointStore, Error, ExtendedSequenceNumber, Lease, LeaseStore,
    PendingCheckpoint, Result, ShardId, WorkerHeartbeat, WorkerId,
};

use crate::checkpoint::CheckpointWrite;
use crate::config::DynamoStoreBuilder;
use crate::foreign::ForeignOwners;
use crate::item::{Item, RawCheckpoint, Reader, is_lease_item};

/// Hash key of the heartbeat table.
pub const WORKER_ID: &str = "workerId";
/// The heartbeat counter attribute.
pub const HEARTBEAT_COUNTER: &str = "heartbeatCounter";

/// Leases and checkpoints in a DynamoDB lease table Java KCL workers can
/// share, heartbeats in a table of their own. Cheap to clone; clones share
/// the client.
#[derive(Clone)]
pub struct DynamoStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) client: Client,
    pub(crate) application: ApplicationName,
    pub(crate) table: String,
    pub(crate) heartbeat_table: String,
    /// The checkpoint this store last saw for each shard, used as the
    /// expected value of the next checkpoint write so the usual checkpoint
    /// is one round trip. Only ever a guess: a stale entry costs one failed
    /// conditional write, never a wrong one.
    pub(crate) last_checkpoint: Mutex<HashMap<ShardId, RawCheckpoint>>,
    /// Keeps takers off live leases of Java workers (see `foreign.rs`).
    pub(crate) foreign: ForeignOwners,
}

impl std::fmt::Debug for DynamoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoStore")
            .field("application", &self.inner.application)
            .field("table", &self.inner.table)
            .field("heartbeat_table", &self.inner.heartbeat_table)
            .finish_non_exhaustive()
    }
}

/// How a conditional update ended.
pub(crate) enum Outcome {
    /// Written; the item as stored after the write.
    Written(Item),
    /// The condition failed; the item as it was, if it exists (from
    /// `ReturnValuesOnConditionCheckFailure`, or a follow-up read when the
    /// server did not return it).
    ConditionFailed(Option<Item>),
}

impl DynamoStore {
    /// A builder; see [`DynamoStoreBuilder`].
    pub fn builder() -> DynamoStoreBuilder {
        DynamoStoreBuilder::default()
    }

    pub(crate) fn from_parts(
        client: Client,
        application: ApplicationName,
        table: String,
        heartbeat_table: String,
        java_failover_time: Option<std::time::Duration>,
    ) -> Self {
        DynamoStore {
            inner: Arc::new(Inner {
                client,
                application,
                table,
                heartbeat_table,
                last_checkpoint: Mutex::default(),
                foreign: ForeignOwners::new(java_failover_time),
            }),
        }
    }

    /// The application namespace this store acts in.
    pub fn application(&self) -> &ApplicationName {
        &self.inner.application
    }

    /// The lease table's name.
    pub fn table_name(&self) -> &str {
        &self.inner.table
    }

    /// The heartbeat table's name.
    pub fn heartbeat_table_name(&self) -> &str {
        &self.inner.heartbeat_table
    }

    /// The underlying client (for tools and benchmarks).
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    pub(crate) fn table(&self) -> &str {
        &self.inner.table
    }

    pub(crate) fn parse(&self, item: &Item) -> Result<Lease> {
        Reader::new(self.table(), item).lease()
    }

    /// The item as a lease, or `None` for an item that is not one (Java
    /// KCL 3.5 keeps worker metrics, its leader and migration state in
    /// the lease table too).
    pub(crate) fn parse_lease_item(&self, item: &Item) -> Result<Option<Lease>> {
        if !is_lease_item(item) {
            tracing::trace!(table = %self.table(), "skipping an item that is not a lease");
            return Ok(None);
        }
        self.parse(item).map(Some)
    }

    pub(crate) fn remember_checkpoint(&self, shard_id: &ShardId, item: &Item) {
        if let Some(raw) = RawCheckpoint::of(item) {
            self.cache().insert(shard_id.clone(), raw);
        }
    }

    pub(crate) fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<ShardId, RawCheckpoint>> {
        self.inner
            .last_checkpoint
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// `Conflict` naming the lease and what did not match.
pub(crate) fn conflict(shard_id: &ShardId, reason: &str) -> Error {
    Error::conflict(shard_id.as_str(), reason)
}

#[async_trait]
impl LeaseStore for DynamoStore {
    async fn create_lease_if_absent(&self, lease: &Lease) -> Result<bool> {
        self.create(lease).await
    }

    async fn get_lease(&self, shard_id: &ShardId) -> Result<Option<Lease>> {
        let lease = self.get(shard_id).await?;
        self.inner.foreign.saw_leases(&lease, Instant::now());
        Ok(lease)
    }

    async fn list_leases(&self) -> Result<Vec<Lease>> {
        let leases = self.list().await?;
        self.inner.foreign.saw_leases(&leases, Instant::now());
        Ok(leases)
    }

    async fn take_lease(&self, observed: &Lease, new_owner: &WorkerId) -> Result<Lease> {
        if let Err(why) = self.inner.foreign.may_take(observed, Instant::now()) {
            return Err(conflict(&observed.shard_id, &why));
        }
        self.take(observed, new_owner).await
    }

    async fn renew_lease(&self, held: &Lease) -> Result<Lease> {
        self.renew(held).await
    }

    async fn release_lease(&self, held: &Lease, to: Option<&WorkerId>) -> Result<()> {
        self.release(held, to).await
    }

    async fn request_handoff(&self, observed: &Lease, to: &WorkerId) -> Result<()> {
        self.handoff(observed, to).await
    }

    async fn update_checkpoint(
        &self,
        held: &Lease,
        checkpoint: &ExtendedSequenceNumber,
    ) -> Result<()> {
        self.fenced_checkpoint(held, checkpoint, CheckpointWrite::Checkpoint)
            .await
    }

    async fn prepare_checkpoint(&self, held: &Lease, pending: &PendingCheckpoint) -> Result<()> {
        self.fenced_checkpoint(held, &pending.sequence, CheckpointWrite::Prepare(pending))
            .await
    }

    async fn update_child_shard_ids(&self, held: &Lease, children: &[ShardId]) -> Result<()> {
        self.set_children(held, children).await
    }

    async fn pin_start(&self, held: &Lease, at: std::time::SystemTime) -> Result<()> {
        self.pin(held, at).await
    }

    async fn withdraw_handoff(&self, observed: &Lease, requester: &WorkerId) -> Result<()> {
        self.withdraw(observed, requester).await
    }

    async fn delete_lease(&self, shard_id: &ShardId) -> Result<()> {
        self.delete(shard_id).await
    }

    async fn reset_checkpoint(
        &self,
        shard_id: &ShardId,
        checkpoint: &ExtendedSequenceNumber,
    ) -> Result<()> {
        self.reset(shard_id, checkpoint).await
    }

    async fn heartbeat(&self, worker: &WorkerId) -> Result<()> {
        self.inner.foreign.saw_workers([worker]);
        self.beat(worker).await
    }

    async fn list_workers(&self) -> Result<Vec<WorkerHeartbeat>> {
        let workers = self.workers().await?;
        self.inner
            .foreign
            .saw_workers(workers.iter().map(|w| &w.worker_id));
        Ok(workers)
    }

    async fn remove_worker(&self, worker: &WorkerId) -> Result<()> {
        self.remove_heartbeat(worker).await
    }
}

#[async_trait]
impl CheckpointStore for DynamoStore {
    async fn get_checkpoint(&self, shard_id: &ShardId) -> Result<Option<ExtendedSequenceNumber>> {
        self.stored_checkpoint(shard_id).await
    }

    async fn set_checkpoint(
        &self,
        shard_id: &ShardId,
        checkpoint: &ExtendedSequenceNumber,
    ) -> Result<()> {
        self.store_checkpoint(shard_id, checkpoint).await
    }
}
