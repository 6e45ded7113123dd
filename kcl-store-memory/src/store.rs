//! [`MemoryStore`]: the trait implementations.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use async_trait::async_trait;
use kcl_core::{
    ApplicationName, CheckpointStore, Error, ExtendedSequenceNumber, Lease, LeaseStore,
    PendingCheckpoint, Result, ShardId, WorkerHeartbeat, WorkerId,
};

use crate::config::MemoryStoreBuilder;

/// Leases, checkpoints and heartbeats in process memory. Cheap to clone;
/// clones share data.
#[derive(Clone)]
pub struct MemoryStore {
    application: ApplicationName,
    data: Arc<Mutex<HashMap<ApplicationName, Namespace>>>,
}

#[derive(Default)]
struct Namespace {
    leases: BTreeMap<ShardId, Lease>,
    checkpoints: HashMap<ShardId, ExtendedSequenceNumber>,
    workers: BTreeMap<WorkerId, u64>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("application", &self.application)
            .finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// An empty store for `application`.
    pub fn new(application: ApplicationName) -> Self {
        MemoryStore {
            application,
            data: Arc::default(),
        }
    }

    /// A builder; see [`MemoryStoreBuilder`].
    pub fn builder() -> MemoryStoreBuilder {
        MemoryStoreBuilder::default()
    }

    /// A view of the same data under another application namespace.
    pub fn with_application(&self, application: ApplicationName) -> Self {
        MemoryStore {
            application,
            data: Arc::clone(&self.data),
        }
    }

    /// The application namespace this store acts in.
    pub fn application(&self) -> &ApplicationName {
        &self.application
    }

    /// Change a stored lease in place, bypassing every rule of the
    /// contract, and return what `f` returns (`None` if there is no such
    /// lease). For tests that need a state the contract cannot reach (a
    /// deliberately broken store, a corrupt lease) and for repair tools;
    /// never needed to use the store.
    pub fn edit_lease<T>(&self, shard_id: &ShardId, f: impl FnOnce(&mut Lease) -> T) -> Option<T> {
        self.with(|ns| Ok(ns.leases.get_mut(shard_id).map(f)))
            .unwrap_or(None)
    }

    /// Run `f` on this application's namespace under the lock. Every trait
    /// method is one call of this, which is what makes each one atomic.
    fn with<T>(&self, f: impl FnOnce(&mut Namespace) -> Result<T>) -> Result<T> {
        let mut all: MutexGuard<'_, _> = self
            .data
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(all.entry(self.application.clone()).or_default())
    }
}

impl Namespace {
    fn lease(&mut self, shard_id: &ShardId) -> Result<&mut Lease> {
        self.leases
            .get_mut(shard_id)
            .ok_or_else(|| Error::lease_not_found(shard_id))
    }

    /// The stored lease, if `held` still holds it (same owner and generation).
    fn held(&mut self, held: &Lease) -> Result<&mut Lease> {
        let lease = self.lease(&held.shard_id)?;
        if held.owner.is_none() || lease.owner != held.owner || lease.generation != held.generation
        {
            return Err(Error::lease_fenced(&held.shard_id));
        }
        Ok(lease)
    }
}

/// `value + 1`, or a `Generic` error when the counter is at `u64::MAX`
/// (never a wrap to 0, never a panic).
fn next(shard_id: &ShardId, what: &str, value: u64) -> Result<u64> {
    value
        .checked_add(1)
        .ok_or_else(|| Error::generic("memory", format!("lease {shard_id}: {what} is at u64::MAX")))
}

fn not_backwards(
    shard_id: &ShardId,
    stored: &ExtendedSequenceNumber,
    requested: &ExtendedSequenceNumber,
) -> Result<()> {
    if requested < stored {
        return Err(Error::checkpoint_backwards(shard_id, stored, requested));
    }
    Ok(())
}

#[async_trait]
impl LeaseStore for MemoryStore {
    async fn create_lease_if_absent(&self, lease: &Lease) -> Result<bool> {
        self.with(|ns| {
            if ns.leases.contains_key(&lease.shard_id) {
                return Ok(false);
            }
            ns.leases.insert(lease.shard_id.clone(), lease.clone());
            Ok(true)
        })
    }

    async fn get_lease(&self, shard_id: &ShardId) -> Result<Option<Lease>> {
        self.with(|ns| Ok(ns.leases.get(shard_id).cloned()))
    }

    async fn list_leases(&self) -> Result<Vec<Lease>> {
        self.with(|ns| Ok(ns.leases.values().cloned().collect()))
    }

    async fn take_lease(&self, observed: &Lease, new_owner: &WorkerId) -> Result<Lease> {
        self.with(|ns| {
            let lease = ns.lease(&observed.shard_id)?;
            if lease.counter != observed.counter || lease.generation != observed.generation {
                return Err(Error::conflict(
                    observed.shard_id.as_str(),
                    "lease changed since it was observed",
                ));
            }
            let counter = next(&observed.shard_id, "counter", lease.counter)?;
            // A lease never taken (new or re-created) starts a random
            // epoch, so its fence never repeats an earlier life's.
            let generation = match lease.generation {
                0 => Lease::random_generation_epoch(),
                g => next(&observed.shard_id, "generation", g)?,
            };
            if lease.owner.as_ref().is_some_and(|o| o != new_owner) {
                lease.owner_switches_since_checkpoint += 1;
            }
            lease.owner = Some(new_owner.clone());
            lease.counter = counter;
            lease.generation = generation;
            lease.handoff_to = None;
            Ok(lease.clone())
        })
    }

    async fn renew_lease(&self, held: &Lease) -> Result<Lease> {
        self.with(|ns| {
            let lease = ns.held(held)?;
            lease.counter = next(&held.shard_id, "counter", lease.counter)?;
            if let Some(rate) = held.throughput_bytes_per_sec {
                lease.throughput_bytes_per_sec = Some(rate);
            }
            Ok(lease.clone())
        })
    }

    async fn release_lease(&self, held: &Lease, to: Option<&WorkerId>) -> Result<()> {
        self.with(|ns| {
            let lease = ns.held(held)?;
            if to.is_some_and(|to| Some(to) != held.owner.as_ref()) {
                lease.owner_switches_since_checkpoint += 1;
            }
            let counter = next(&held.shard_id, "counter", lease.counter)?;
            let generation = next(&held.shard_id, "generation", lease.generation)?;
            lease.owner = to.cloned();
            lease.counter = counter;
            lease.generation = generation;
            lease.handoff_to = None;
            Ok(())
        })
    }

    async fn request_handoff(&self, observed: &Lease, to: &WorkerId) -> Result<()> {
        self.with(|ns| {
            let lease = ns.lease(&observed.shard_id)?;
            if lease.owner.is_none()
                || lease.owner != observed.owner
                || lease.generation != observed.generation
            {
                return Err(Error::conflict(
                    observed.shard_id.as_str(),
                    "owner or generation changed since the lease was observed",
                ));
            }
            lease.handoff_to = Some(to.clone());
            Ok(())
        })
    }

    async fn update_checkpoint(
        &self,
        held: &Lease,
        checkpoint: &ExtendedSequenceNumber,
    ) -> Result<()> {
        self.with(|ns| {
            let lease = ns.held(held)?;
            not_backwards(&held.shard_id, &lease.checkpoint, checkpoint)?;
            lease.checkpoint = checkpoint.clone();
            lease.pending_checkpoint = None;
            lease.owner_switches_since_checkpoint = 0;
            Ok(())
        })
    }

    async fn prepare_checkpoint(&self, held: &Lease, pending: &PendingCheckpoint) -> Result<()> {
        self.with(|ns| {
            let lease = ns.held(held)?;
            not_backwards(&held.shard_id, &lease.checkpoint, &pending.sequence)?;
            lease.pending_checkpoint = Some(pending.clone());
            Ok(())
        })
    }

    async fn update_child_shard_ids(&self, held: &Lease, children: &[ShardId]) -> Result<()> {
        self.with(|ns| {
            ns.held(held)?.child_shard_ids = children.to_vec();
            Ok(())
        })
    }

    async fn pin_start(&self, held: &Lease, at: SystemTime) -> Result<()> {
        // Whole milliseconds, as every store keeps it.
        let at = Lease::instant_from_millis(Lease::millis_since_epoch(at))
            .ok_or_else(|| Error::Config(format!("pinned start {at:?} is out of range")))?;
        self.with(|ns| {
            ns.held(held)?.pinned_start = Some(at);
            Ok(())
        })
    }

    async fn withdraw_handoff(&self, observed: &Lease, requester: &WorkerId) -> Result<()> {
        self.with(|ns| {
            let lease = ns.lease(&observed.shard_id)?;
            if lease.owner.is_none()
                || lease.owner != observed.owner
                || lease.generation != observed.generation
            {
                return Err(Error::conflict(
                    observed.shard_id.as_str(),
                    "owner or generation changed since the lease was observed",
                ));
            }
            if lease.handoff_to.as_ref() == Some(requester) {
                lease.handoff_to = None;
            }
            Ok(())
        })
    }

    async fn delete_lease(&self, shard_id: &ShardId) -> Result<()> {
        self.with(|ns| {
            ns.leases.remove(shard_id);
            Ok(())
        })
    }

    async fn reset_checkpoint(
        &self,
        shard_id: &ShardId,
        checkpoint: &ExtendedSequenceNumber,
    ) -> Result<()> {
        self.with(|ns| {
            let lease = ns.lease(shard_id)?;
            lease.checkpoint = checkpoint.clone();
            lease.pending_checkpoint = None;
            lease.pinned_start = None;
            lease.owner = None;
            lease.handoff_to = None;
            lease.counter = next(shard_id, "counter", lease.counter)?;
            lease.generation = next(shard_id, "generation", lease.generation)?;
            Ok(())
        })
    }

    async fn heartbeat(&self, worker: &WorkerId) -> Result<()> {
        self.with(|ns| {
            *ns.workers.entry(worker.clone()).or_default() += 1;
            Ok(())
        })
    }

    async fn list_workers(&self) -> Result<Vec<WorkerHeartbeat>> {
        self.with(|ns| {
            Ok(ns
                .workers
                .iter()
                .map(|(worker_id, counter)| WorkerHeartbeat {
                    worker_id: worker_id.clone(),
                    counter: *counter,
                })
                .collect())
        })
    }

    async fn remove_worker(&self, worker: &WorkerId) -> Result<()> {
        self.with(|ns| {
            ns.workers.remove(worker);
            Ok(())
        })
    }
}

#[async_trait]
impl CheckpointStore for MemoryStore {
    async fn get_checkpoint(&self, shard_id: &ShardId) -> Result<Option<ExtendedSequenceNumber>> {
        self.with(|ns| Ok(ns.checkpoints.get(shard_id).cloned()))
    }

    async fn set_checkpoint(
        &self,
        shard_id: &ShardId,
        checkpoint: &ExtendedSequenceNumber,
    ) -> Result<()> {
        self.with(|ns| {
            if let Some(stored) = ns.checkpoints.get(shard_id) {
                not_backwards(shard_id, stored, checkpoint)?;
            }
            ns.checkpoints.insert(shard_id.clone(), checkpoint.clone());
            Ok(())
        })
    }
}
