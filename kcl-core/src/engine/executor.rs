//! Carries out a taker [`Plan`]: the store calls, nothing else. Returns
//! what happened so the worker's loop (the one owner of the held leases)
//! starts consumers and updates the taker's memory.

use std::sync::Arc;

use tokio::time::Instant;

use crate::ids::WorkerId;
use crate::lease::Lease;
use crate::store::LeaseStore;

use super::taker::Plan;

/// What came of a plan.
#[derive(Debug, Default)]
pub(crate) struct Executed {
    /// Leases now held, with when their take was sent (the start of their
    /// deadline).
    pub(crate) taken: Vec<(Lease, Instant)>,
    /// Hand-off requests the store accepted.
    pub(crate) requested: Vec<Lease>,
}

/// Run `plan`'s store calls for `me`. A lost race (`Conflict`) is normal
/// and only logged; the next round plans again from a fresh listing.
pub(crate) async fn execute(store: Arc<dyn LeaseStore>, me: WorkerId, plan: Plan) -> Executed {
    let mut out = Executed::default();
    for worker in &plan.remove_workers {
        tracing::info!(worker = %worker, "removing the heartbeat of a dead worker");
        if let Err(e) = store.remove_worker(worker).await {
            tracing::debug!(error = %e, "removing a dead worker's heartbeat failed");
        }
    }
    for shard_id in &plan.delete {
        tracing::info!(shard = %shard_id, "deleting the finished lease");
        if let Err(e) = store.delete_lease(shard_id).await {
            tracing::warn!(shard = %shard_id, error = %e, "deleting a finished lease failed");
        }
    }
    for lease in &plan.force {
        tracing::warn!(shard = %lease.shard_id, owner = ?lease.owner, "hand-off not done in time; taking the lease");
    }
    for lease in plan.force.iter().chain(&plan.take) {
        let sent = Instant::now();
        match store.take_lease(lease, &me).await {
            Ok(taken) => {
                tracing::info!(shard = %lease.shard_id, from = ?lease.owner, "took lease");
                out.taken.push((taken, sent));
            }
            Err(e) if e.is_conflict() => {
                tracing::debug!(shard = %lease.shard_id, "lost the race to take a lease");
            }
            Err(e) => {
                tracing::warn!(shard = %lease.shard_id, error = %e, "taking a lease failed");
            }
        }
    }
    for lease in plan.request_handoff {
        match store.request_handoff(&lease, &me).await {
            Ok(()) => {
                tracing::info!(shard = %lease.shard_id, from = ?lease.owner, "asked for a hand-off");
                out.requested.push(lease);
            }
            Err(e) => {
                tracing::debug!(shard = %lease.shard_id, error = %e, "hand-off request refused");
            }
        }
    }
    out
}
