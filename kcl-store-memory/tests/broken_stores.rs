//! Proof that the conformance suite is strict: each store here breaks the
//! contract in one way that real backends have got wrong, and the check
//! aimed at that mistake fails on it (while `tests/conformance.rs` shows
//! the correct memory store passes every check).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use async_trait::async_trait;
use kcl_core::testkit::conformance::{self, random_application};
use kcl_core::{
    CheckpointStore, Error, ExtendedSequenceNumber as Esn, Lease, LeaseStore, PendingCheckpoint,
    Result, ShardId, WorkerHeartbeat, WorkerId,
};
use kcl_store_memory::MemoryStore;

/// The one mistake a [`Broken`] store makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flaw {
    /// Counts a re-take by the current owner as an owner switch.
    SwitchOnRetake,
    /// Leaves `handoff_to` in place on take, release and reset.
    KeepsHandoff,
    /// Answers `Conflict` for a take of a missing lease.
    ConflictForMissing,
    /// Fences by generation only: any owner with the current generation
    /// may write.
    GenerationOnly,
    /// Judges a checkpoint's order before its fencing.
    OrderingFirst,
    /// Reads the lease, checks the fence on what it read, then writes the
    /// whole lease back unconditionally (after a yield, where a concurrent
    /// take slips in).
    ReadThenWrite,
    /// The same mistake in release only (every other write is atomic).
    ReleaseReadThenWrite,
    /// Compares lease checkpoints as doubles.
    FloatLeaseCheckpoints,
}

/// A memory store with one [`Flaw`].
#[derive(Debug)]
struct Broken {
    inner: MemoryStore,
    flaw: Flaw,
}

impl Broken {
    fn new(flaw: Flaw) -> Self {
        Broken {
            inner: MemoryStore::new(random_application()),
            flaw,
        }
    }

    async fn current(&self, shard_id: &ShardId) -> Result<Lease> {
        self.inner
            .get_lease(shard_id)
            .await?
            .ok_or_else(|| Error::lease_not_found(shard_id))
    }

    /// What a fenced write is made under, given the flaw.
    async fn as_held(&self, held: &Lease) -> Result<Lease> {
        match self.flaw {
            Flaw::GenerationOnly => {
                let current = self.current(&held.shard_id).await?;
                let mut held = held.clone();
                if current.generation == held.generation {
                    held.owner = current.owner;
                }
                Ok(held)
            }
            _ => Ok(held.clone()),
        }
    }

    /// The read-check-write mistake: `change` applied to what was read,
    /// written back whole after a yield.
    async fn read_then_write(
        &self,
        held: &Lease,
        change: impl FnOnce(&mut Lease),
    ) -> Result<Lease> {
        let mut read = self.current(&held.shard_id).await?;
        if read.owner != held.owner || read.generation != held.generation {
            return Err(Error::lease_fenced(&held.shard_id));
        }
        tokio::task::yield_now().await;
        change(&mut read);
        let written = read.clone();
        self.inner
            .edit_lease(&held.shard_id, |stored| *stored = read);
        Ok(written)
    }

    /// Keep the hand-off request across `op` when the flaw says so.
    async fn keeping_handoff<T>(
        &self,
        shard_id: &ShardId,
        op: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let before = match self.flaw {
            Flaw::KeepsHandoff => self.current(shard_id).await.ok().and_then(|l| l.handoff_to),
            _ => None,
        };
        let out = op.await?;
        if before.is_some() {
            self.inner.edit_lease(shard_id, |l| l.handoff_to = before);
        }
        Ok(out)
    }
}

fn key(esn: &Esn) -> (u8, f64, u64) {
    match esn {
        Esn::AtTimestamp => (0, 0.0, 0),
        Esn::TrimHorizon => (1, 0.0, 0),
        Esn::Latest => (2, 0.0, 0),
        Esn::Sequence {
            sequence,
            sub_sequence,
        } => (3, sequence.as_str().parse().unwrap_or(0.0), *sub_sequence),
        Esn::ShardEnd => (4, 0.0, 0),
    }
}

#[async_trait]
impl LeaseStore for Broken {
    async fn create_lease_if_absent(&self, lease: &Lease) -> Result<bool> {
        self.inner.create_lease_if_absent(lease).await
    }
    async fn get_lease(&self, shard_id: &ShardId) -> Result<Option<Lease>> {
        self.inner.get_lease(shard_id).await
    }
    async fn list_leases(&self) -> Result<Vec<Lease>> {
        self.inner.list_leases().await
    }
    async fn take_lease(&self, observed: &Lease, new_owner: &WorkerId) -> Result<Lease> {
        if self.flaw == Flaw::ConflictForMissing
            && self.inner.get_lease(&observed.shard_id).await?.is_none()
        {
            return Err(Error::conflict(observed.shard_id.as_str(), "no such lease"));
        }
        let mut taken = self
            .keeping_handoff(
                &observed.shard_id,
                self.inner.take_lease(observed, new_owner),
            )
            .await?;
        if self.flaw == Flaw::SwitchOnRetake && observed.owner.as_ref() == Some(new_owner) {
            self.inner.edit_lease(&observed.shard_id, |l| {
                l.owner_switches_since_checkpoint += 1
            });
            taken.owner_switches_since_checkpoint += 1;
        }
        if self.flaw == Flaw::KeepsHandoff {
            taken = self.current(&observed.shard_id).await?;
        }
        Ok(taken)
    }
    async fn renew_lease(&self, held: &Lease) -> Result<Lease> {
        if self.flaw == Flaw::ReadThenWrite {
            return self.read_then_write(held, |l| l.counter += 1).await;
        }
        self.inner.renew_lease(&self.as_held(held).await?).await
    }
    async fn release_lease(&self, held: &Lease, to: Option<&WorkerId>) -> Result<()> {
        if matches!(self.flaw, Flaw::ReadThenWrite | Flaw::ReleaseReadThenWrite) {
            let to = to.cloned();
            return self
                .read_then_write(held, |l| {
                    l.owner = to;
                    l.counter += 1;
                    l.generation += 1;
                    l.handoff_to = None;
                })
                .await
                .map(drop);
        }
        let held = self.as_held(held).await?;
        self.keeping_handoff(&held.shard_id, self.inner.release_lease(&held, to))
            .await
    }
    async fn request_handoff(&self, observed: &Lease, to: &WorkerId) -> Result<()> {
        self.inner.request_handoff(observed, to).await
    }
    async fn update_checkpoint(&self, held: &Lease, checkpoint: &Esn) -> Result<()> {
        match self.flaw {
            Flaw::ReadThenWrite => {
                let cp = checkpoint.clone();
                return self
                    .read_then_write(held, |l| l.checkpoint = cp)
                    .await
                    .map(drop);
            }
            Flaw::OrderingFirst => {
                let stored = self.current(&held.shard_id).await?.checkpoint;
                if checkpoint < &stored {
                    return Err(Error::checkpoint_backwards(
                        &held.shard_id,
                        &stored,
                        checkpoint,
                    ));
                }
            }
            Flaw::FloatLeaseCheckpoints => {
                let stored = self.current(&held.shard_id).await?;
                if stored.owner != held.owner || stored.generation != held.generation {
                    return Err(Error::lease_fenced(&held.shard_id));
                }
                if key(checkpoint) < key(&stored.checkpoint) {
                    return Err(Error::checkpoint_backwards(
                        &held.shard_id,
                        &stored.checkpoint,
                        checkpoint,
                    ));
                }
                let cp = checkpoint.clone();
                self.inner.edit_lease(&held.shard_id, |l| l.checkpoint = cp);
                return Ok(());
            }
            _ => {}
        }
        self.inner
            .update_checkpoint(&self.as_held(held).await?, checkpoint)
            .await
    }
    async fn prepare_checkpoint(&self, held: &Lease, pending: &PendingCheckpoint) -> Result<()> {
        match self.flaw {
            Flaw::ReadThenWrite => {
                let p = pending.clone();
                return self
                    .read_then_write(held, |l| l.pending_checkpoint = Some(p))
                    .await
                    .map(drop);
            }
            Flaw::OrderingFirst => {
                let stored = self.current(&held.shard_id).await?.checkpoint;
                if pending.sequence < stored {
                    return Err(Error::checkpoint_backwards(
                        &held.shard_id,
                        &stored,
                        &pending.sequence,
                    ));
                }
            }
            _ => {}
        }
        self.inner
            .prepare_checkpoint(&self.as_held(held).await?, pending)
            .await
    }
    async fn update_child_shard_ids(&self, held: &Lease, children: &[ShardId]) -> Result<()> {
        if self.flaw == Flaw::ReadThenWrite {
            let c = children.to_vec();
            return self
                .read_then_write(held, |l| l.child_shard_ids = c)
                .await
                .map(drop);
        }
        self.inner
            .update_child_shard_ids(&self.as_held(held).await?, children)
            .await
    }
    async fn pin_start(&self, held: &Lease, at: std::time::SystemTime) -> Result<()> {
        self.inner.pin_start(&self.as_held(held).await?, at).await
    }
    async fn withdraw_handoff(&self, observed: &Lease, requester: &WorkerId) -> Result<()> {
        self.inner.withdraw_handoff(observed, requester).await
    }
    async fn delete_lease(&self, shard_id: &ShardId) -> Result<()> {
        self.inner.delete_lease(shard_id).await
    }
    async fn reset_checkpoint(&self, shard_id: &ShardId, checkpoint: &Esn) -> Result<()> {
        self.keeping_handoff(shard_id, self.inner.reset_checkpoint(shard_id, checkpoint))
            .await
    }
    async fn heartbeat(&self, worker: &WorkerId) -> Result<()> {
        self.inner.heartbeat(worker).await
    }
    async fn list_workers(&self) -> Result<Vec<WorkerHeartbeat>> {
        self.inner.list_workers().await
    }
    async fn remove_worker(&self, worker: &WorkerId) -> Result<()> {
        self.inner.remove_worker(worker).await
    }
}

/// How a [`LossyCheckpoints`] store compares sequence numbers.
#[derive(Debug, Clone, Copy)]
enum Lossy {
    /// As doubles (17 significant digits).
    Float,
    /// As decimals of 38 significant digits (DynamoDB's `N`, SQL
    /// `NUMERIC(38)`): digits past the 38th are ignored.
    Digits38,
}

/// A checkpoint store that compares positions lossily.
#[derive(Debug)]
struct LossyCheckpoints {
    how: Lossy,
    stored: Mutex<HashMap<ShardId, Esn>>,
}

impl LossyCheckpoints {
    fn new(how: Lossy) -> Self {
        LossyCheckpoints {
            how,
            stored: Mutex::default(),
        }
    }

    fn below(&self, a: &Esn, b: &Esn) -> bool {
        match self.how {
            Lossy::Float => key(a) < key(b),
            Lossy::Digits38 => {
                let truncated = |e: &Esn| match e {
                    Esn::Sequence {
                        sequence,
                        sub_sequence,
                    } => {
                        let s = sequence.as_str();
                        (3, s.len(), s[..s.len().min(38)].to_string(), *sub_sequence)
                    }
                    other => (key(other).0, 0, String::new(), 0),
                };
                truncated(a) < truncated(b)
            }
        }
    }
}

#[async_trait]
impl CheckpointStore for LossyCheckpoints {
    async fn get_checkpoint(&self, shard_id: &ShardId) -> Result<Option<Esn>> {
        Ok(self.stored.lock().unwrap().get(shard_id).cloned())
    }
    async fn set_checkpoint(&self, shard_id: &ShardId, checkpoint: &Esn) -> Result<()> {
        let mut stored = self.stored.lock().unwrap();
        if let Some(old) = stored.get(shard_id)
            && self.below(checkpoint, old)
        {
            return Err(Error::checkpoint_backwards(shard_id, old, checkpoint));
        }
        stored.insert(shard_id.clone(), checkpoint.clone());
        Ok(())
    }
}

/// Runs `check` and asserts that it panicked (the check caught the flaw).
async fn must_catch(what: &str, check: impl Future<Output = ()> + Send + 'static) {
    match tokio::spawn(check).await {
        Err(e) if e.is_panic() => {
            let panic = e.into_panic();
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("?");
            eprintln!("caught a store that {what}: {message}");
        }
        other => panic!("the suite let a store that {what} pass: {other:?}"),
    }
}

#[tokio::test]
async fn a_retake_counted_as_a_switch_is_caught() {
    must_catch("counts a re-take as a switch", async {
        conformance::retake_by_the_same_owner_is_not_a_switch(&Broken::new(Flaw::SwitchOnRetake))
            .await
    })
    .await;
}

#[tokio::test]
async fn a_handoff_request_that_survives_a_change_of_owner_is_caught() {
    must_catch("keeps handoff_to on take, release and reset", async {
        conformance::ownership_changes_clear_the_handoff_request(&Broken::new(Flaw::KeepsHandoff))
            .await
    })
    .await;
}

#[tokio::test]
async fn conflict_for_a_missing_lease_is_caught() {
    must_catch("answers Conflict for a missing lease", async {
        conformance::take_of_a_missing_lease_is_not_found(&Broken::new(Flaw::ConflictForMissing))
            .await
    })
    .await;
}

#[tokio::test]
async fn fencing_by_generation_alone_is_caught() {
    must_catch("fences by generation but not owner", async {
        conformance::fencing_checks_the_owner_as_well_as_the_generation(&Broken::new(
            Flaw::GenerationOnly,
        ))
        .await
    })
    .await;
}

#[tokio::test]
async fn ordering_judged_before_fencing_is_caught() {
    must_catch("checks ordering before fencing", async {
        conformance::fencing_comes_before_ordering(&Broken::new(Flaw::OrderingFirst)).await
    })
    .await;
}

#[tokio::test]
async fn a_read_then_unconditional_write_is_caught() {
    must_catch("reads, checks, then writes unconditionally", async {
        conformance::fenced_writes_never_undo_a_take(&Broken::new(Flaw::ReadThenWrite)).await
    })
    .await;
}

#[tokio::test]
async fn a_read_then_unconditional_write_racing_fenced_writes_is_caught() {
    must_catch(
        "reads, checks, then writes unconditionally (two writes of one holder)",
        async {
            conformance::fenced_writes_race_each_other(&Broken::new(Flaw::ReadThenWrite)).await
        },
    )
    .await;
}

/// The take race catches a read-then-write release alone too.
#[tokio::test]
async fn a_read_then_unconditional_write_release_is_caught() {
    must_catch("releases by reading, checking, then writing", async {
        conformance::fenced_writes_never_undo_a_take(&Broken::new(Flaw::ReleaseReadThenWrite)).await
    })
    .await;
}

#[tokio::test]
async fn lease_checkpoints_compared_as_doubles_are_caught() {
    must_catch("compares lease checkpoints as doubles", async {
        conformance::lease_checkpoints_compare_every_digit(&Broken::new(
            Flaw::FloatLeaseCheckpoints,
        ))
        .await
    })
    .await;
}

#[tokio::test]
async fn checkpoints_compared_as_doubles_are_caught() {
    must_catch("compares checkpoint-store positions as doubles", async {
        conformance::checkpoint_store_compares_every_digit(&LossyCheckpoints::new(Lossy::Float))
            .await
    })
    .await;
}

#[tokio::test]
async fn checkpoints_compared_as_38_digit_numbers_are_caught() {
    must_catch("compares checkpoint-store positions to 38 digits", async {
        conformance::checkpoint_store_compares_every_digit(&LossyCheckpoints::new(Lossy::Digits38))
            .await
    })
    .await;
}
