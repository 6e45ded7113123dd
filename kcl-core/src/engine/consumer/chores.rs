//! The consumer's lease chores: waiting on parents, the shard's end
//! (SHARD_END, children, release) and giving the lease up.

use std::sync::Arc;

use crate::error::Result;
use crate::ids::{ShardId, WorkerId};
use crate::lease::Lease;
use crate::processor::{Checkpointer, ProcessorFactory};
use crate::retrieval::ChildShard;
use crate::sequence::ExtendedSequenceNumber;
use crate::store::LeaseStore;

use super::super::{retry_store, shard_sync};
use super::{Call, Consumer, Coordination, Outcome, Step};

impl<F: ProcessorFactory> Consumer<F> {
    pub(super) async fn shard_end(
        &mut self,
        processor: &mut F::Processor,
        cp: &mut Checkpointer,
        children: Vec<ChildShard>,
    ) -> Outcome {
        cp.on_shard_ended();
        // `shard_ended` is this processor's one ending: nothing else (not
        // `lease_lost`, not `shutdown_requested`) follows it.
        match self.with_policy(processor, cp, Call::ShardEnded).await {
            Step::Done => {}
            Step::Lost => return Outcome::LeaseLost,
            Step::Control => {
                self.release(None).await;
                return Outcome::Released;
            }
            Step::Panic => return self.panicked().await,
            Step::Stop(e) => {
                self.release(None).await;
                return Outcome::Stopped(e);
            }
        }
        if *cp.last_checkpoint() != ExtendedSequenceNumber::ShardEnd {
            // Skip policy: the engine checkpoints the end itself, since
            // children can only start after it.
            if let Err(e) = cp.checkpoint_shard_end().await {
                tracing::warn!(error = %e, "checkpointing SHARD_END failed");
                return Outcome::LeaseLost;
            }
        }
        tracing::info!("shard ended");
        if let Coordination::Lease(store) = &self.ctx.coordination {
            let store = Arc::clone(store);
            let children = if children.is_empty() {
                self.children_from_listing().await
            } else {
                children
            };
            if let Err(e) = self.record_children(&store, &children).await {
                tracing::warn!(error = %e, "recording the children failed; shard sync will create them");
            }
            self.release(None).await;
        }
        Outcome::ShardEnded
    }

    async fn children_from_listing(&self) -> Vec<ChildShard> {
        match self.ctx.source.list_shards().await {
            Ok(shards) => shards
                .into_iter()
                .filter(|s| s.parents().any(|p| p == self.shard()))
                .map(|s| ChildShard {
                    parent_shard_ids: s.parents().cloned().collect(),
                    shard_id: s.shard_id,
                    hash_key_range: s.hash_key_range,
                })
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "listing shards for the children failed");
                Vec::new()
            }
        }
    }

    async fn record_children(
        &self,
        store: &Arc<dyn LeaseStore>,
        children: &[ChildShard],
    ) -> Result<()> {
        let ids: Vec<ShardId> = children.iter().map(|c| c.shard_id.clone()).collect();
        retry_store(|| store.update_child_shard_ids(&self.lease, &ids)).await?;
        for child in children {
            // A merge child whose other parent has no lease yet (a lagging
            // split parent) waits: shard sync creates it once that parent
            // is leased, so its records never come before that parent's.
            let mut others_leased = true;
            for parent in child.parent_shard_ids.iter().filter(|p| *p != self.shard()) {
                if retry_store(|| store.get_lease(parent)).await?.is_none() {
                    others_leased = false;
                }
            }
            if !others_leased {
                tracing::info!(child = %child.shard_id, "deferring a merge child until its other parent has a lease");
                continue;
            }
            let start = shard_sync::descendant_start(self.ctx.initial_position(self.shard()));
            let lease = Lease::new(child.shard_id.clone(), start)
                .with_parents(child.parent_shard_ids.iter().cloned())
                .with_hash_key_range(child.hash_key_range);
            retry_store(|| store.create_lease_if_absent(&lease)).await?;
        }
        Ok(())
    }

    /// Whether every parent lease is at SHARD_END or gone.
    pub(super) async fn parents_done(&self) -> Result<bool> {
        let Coordination::Lease(store) = &self.ctx.coordination else {
            // The single-process consumer starts a shard only once its
            // parents are done.
            return Ok(true);
        };
        for parent in &self.lease.parent_shard_ids {
            if let Some(lease) = store.get_lease(parent).await?
                && !lease.is_finished()
            {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Give the lease up (leased mode); a conflict means it is gone anyway.
    pub(super) async fn release(&self, to: Option<WorkerId>) {
        let Coordination::Lease(store) = &self.ctx.coordination else {
            return;
        };
        let result = retry_store(|| store.release_lease(&self.lease, to.as_ref())).await;
        match result {
            Ok(()) => tracing::info!(to = ?to, "lease released"),
            Err(e) => tracing::warn!(error = %e, "releasing the lease failed; it will expire"),
        }
    }
}
