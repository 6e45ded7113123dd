//! The lease taker: picks up free, expired and handed-over leases every
//! scan, balances the fleet by hand-offs at most every take interval, and
//! deletes finished leases whose children have started.

use std::collections::{HashMap, HashSet};

use rand::seq::SliceRandom;
use tokio::time::Instant;

use crate::error::Result;
use crate::ids::{ShardId, WorkerId};
use crate::lease::Lease;
use crate::processor::ProcessorFactory;

use super::metric;
use super::worker::Engine;

/// A `(counter, generation)` pair and when this worker first saw it.
struct Seen {
    counter: u64,
    generation: u64,
    since: Instant,
}

/// A hand-off this worker asked for.
struct Pending {
    owner: Option<WorkerId>,
    generation: u64,
    since: Instant,
}

#[derive(Default)]
struct Taker {
    leases: HashMap<ShardId, Seen>,
    workers: HashMap<WorkerId, (u64, Instant)>,
    available_since: HashMap<ShardId, Instant>,
    pending: HashMap<ShardId, Pending>,
    last_balance: Option<Instant>,
}

pub(crate) async fn run<F: ProcessorFactory>(engine: &Engine<F>) {
    let mut taker = Taker::default();
    let mut tick = tokio::time::interval(engine.config().scan_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = taker.scan(engine).await {
            tracing::warn!(error = %e, "lease scan failed");
        }
    }
}

impl Taker {
    async fn scan<F: ProcessorFactory>(&mut self, engine: &Engine<F>) -> Result<()> {
        // Reap first: a consumer that ended released its lease before it
        // ended, so the listing below cannot show it as ours any more.
        engine.reap();
        let config = engine.config();
        let me = &engine.me;
        let leases = engine.store.list_leases().await?;
        let workers = engine.store.list_workers().await?;
        let now = Instant::now();
        let lease_duration = config.lease_duration;

        for lease in &leases {
            let seen = self.leases.entry(lease.shard_id.clone()).or_insert(Seen {
                counter: lease.counter,
                generation: lease.generation,
                since: now,
            });
            if seen.counter != lease.counter || seen.generation != lease.generation {
                *seen = Seen {
                    counter: lease.counter,
                    generation: lease.generation,
                    since: now,
                };
            }
        }
        let ids: HashSet<&ShardId> = leases.iter().map(|l| &l.shard_id).collect();
        self.leases.retain(|id, _| ids.contains(id));

        for worker in &workers {
            let seen = self
                .workers
                .entry(worker.worker_id.clone())
                .or_insert((worker.counter, now));
            if seen.0 != worker.counter {
                *seen = (worker.counter, now);
            }
        }
        let worker_ids: HashSet<&WorkerId> = workers.iter().map(|w| &w.worker_id).collect();
        self.workers.retain(|id, _| worker_ids.contains(id));
        let mut live: HashSet<WorkerId> = self
            .workers
            .iter()
            .filter(|(_, (_, since))| now.duration_since(*since) < lease_duration)
            .map(|(id, _)| id.clone())
            .collect();
        live.insert(me.clone());
        let dead: Vec<WorkerId> = self
            .workers
            .iter()
            .filter(|(id, (_, since))| {
                *id != me && now.duration_since(*since) >= lease_duration * 3
            })
            .map(|(id, _)| id.clone())
            .collect();
        for worker in dead {
            tracing::info!(worker = %worker, "removing the heartbeat of a dead worker");
            if let Err(e) = engine.store.remove_worker(&worker).await {
                tracing::debug!(error = %e, "removing a dead worker's heartbeat failed");
            }
            self.workers.remove(&worker);
        }

        self.clean_up(engine, &leases).await;

        let unfinished: Vec<&Lease> = leases.iter().filter(|l| !l.is_finished()).collect();
        let running = engine.running();

        // Leases handed to this worker (or still ours after a consumer
        // stopped on an unreachable store): start them.
        for lease in &unfinished {
            if lease.is_owned_by(me) && !running.contains(&lease.shard_id) {
                tracing::info!(shard = %lease.shard_id, "starting a lease this worker owns");
                if self.pending.remove(&lease.shard_id).is_some() {
                    metrics::counter!(metric::LEASES_TAKEN, "worker" => me.to_string())
                        .increment(1);
                }
                engine.start_consumer((*lease).clone());
            }
        }

        // Hand-offs asked for: done, moot, or overdue (then forced).
        let by_id: HashMap<&ShardId, &Lease> = leases.iter().map(|l| (&l.shard_id, l)).collect();
        let mut overdue = Vec::new();
        self.pending.retain(|id, p| match by_id.get(id) {
            Some(l) if l.owner == p.owner && l.generation == p.generation => {
                if now.duration_since(p.since) >= config.handoff_timeout {
                    overdue.push((*l).clone());
                    false
                } else {
                    true
                }
            }
            _ => false,
        });
        for lease in overdue {
            tracing::warn!(shard = %lease.shard_id, owner = ?lease.owner, "hand-off not done in time; taking the lease");
            self.take(engine, &lease).await;
        }

        let target = unfinished.len().div_ceil(live.len().max(1));
        let mut mine = unfinished.iter().filter(|l| l.is_owned_by(me)).count();

        let expired: HashSet<&ShardId> = self
            .leases
            .iter()
            .filter(|(_, s)| now.duration_since(s.since) >= lease_duration)
            .map(|(id, _)| id)
            .collect();
        let mut available: Vec<&Lease> = unfinished
            .iter()
            .copied()
            .filter(|l| l.owner.is_none() || (!l.is_owned_by(me) && expired.contains(&l.shard_id)))
            .collect();
        available.sort_by(|a, b| {
            (a.owner.is_some(), &a.shard_id).cmp(&(b.owner.is_some(), &b.shard_id))
        });
        let available_ids: HashSet<&ShardId> = available.iter().map(|l| &l.shard_id).collect();
        self.available_since
            .retain(|id, _| available_ids.contains(id));
        for lease in &available {
            let since = *self
                .available_since
                .entry(lease.shard_id.clone())
                .or_insert(now);
            // Nobody took it for two scans (peers' view of the fleet may
            // differ from ours): take it even above target; balancing
            // evens it out later.
            let starving = now.duration_since(since) >= config.scan_interval * 2;
            if (mine < target || starving) && self.take(engine, lease).await {
                mine += 1;
            }
        }

        let balance_due = self
            .last_balance
            .is_none_or(|t| now.duration_since(t) >= config.take_interval);
        if balance_due {
            self.last_balance = Some(now);
            self.balance(engine, &unfinished, &live, mine, now).await;
        }
        Ok(())
    }

    /// Take `lease` (free, expired or overdue) and start it.
    async fn take<F: ProcessorFactory>(&mut self, engine: &Engine<F>, lease: &Lease) -> bool {
        match engine.store.take_lease(lease, &engine.me).await {
            Ok(taken) => {
                tracing::info!(shard = %lease.shard_id, from = ?lease.owner, "took lease");
                metrics::counter!(metric::LEASES_TAKEN, "worker" => engine.me.to_string())
                    .increment(1);
                self.available_since.remove(&lease.shard_id);
                engine.start_consumer(taken);
                true
            }
            Err(e) if e.is_conflict() => {
                tracing::debug!(shard = %lease.shard_id, "lost the race to take a lease");
                false
            }
            Err(e) => {
                tracing::warn!(shard = %lease.shard_id, error = %e, "taking a lease failed");
                false
            }
        }
    }

    /// Ask the most loaded live workers to hand leases over, several at
    /// once, until no donor holds two more than this worker will.
    async fn balance<F: ProcessorFactory>(
        &mut self,
        engine: &Engine<F>,
        unfinished: &[&Lease],
        live: &HashSet<WorkerId>,
        mine: usize,
        now: Instant,
    ) {
        let me = &engine.me;
        let mut loads: HashMap<&WorkerId, Vec<&Lease>> = HashMap::new();
        for lease in unfinished {
            if let Some(owner) = &lease.owner
                && owner != me
                && live.contains(owner)
            {
                loads.entry(owner).or_default().push(lease);
            }
        }
        for leases in loads.values_mut() {
            leases.shuffle(&mut rand::rng());
            // Leases already being handed somewhere are not candidates.
            leases
                .sort_by_key(|l| l.handoff_to.is_some() || self.pending.contains_key(&l.shard_id));
        }
        let mut projected = mine + self.pending.len();
        while let Some((donor, leases)) = loads
            .iter_mut()
            .max_by(|a, b| a.1.len().cmp(&b.1.len()).then_with(|| b.0.cmp(a.0)))
        {
            if leases.len() < projected + 2 {
                break;
            }
            let candidate = leases
                .iter()
                .position(|l| l.handoff_to.is_none() && !self.pending.contains_key(&l.shard_id));
            let Some(index) = candidate else {
                break;
            };
            let lease = leases.swap_remove(index);
            let donor = (*donor).clone();
            match engine.store.request_handoff(lease, me).await {
                Ok(()) => {
                    tracing::info!(shard = %lease.shard_id, from = %donor, "asked for a hand-off");
                    metrics::counter!(metric::HANDOFFS_REQUESTED, "worker" => me.to_string())
                        .increment(1);
                    self.pending.insert(
                        lease.shard_id.clone(),
                        Pending {
                            owner: lease.owner.clone(),
                            generation: lease.generation,
                            since: now,
                        },
                    );
                    projected += 1;
                }
                Err(e) => {
                    tracing::debug!(shard = %lease.shard_id, error = %e, "hand-off request refused");
                    // The donor's count stays lower by one: its lease moved.
                }
            }
        }
    }

    /// Delete finished leases whose children all have leases that were
    /// taken at least once (so the parent will never be needed again: shard
    /// sync will not re-create it, and children no longer wait on it).
    async fn clean_up<F: ProcessorFactory>(&self, engine: &Engine<F>, leases: &[Lease]) {
        let by_id: HashMap<&ShardId, &Lease> = leases.iter().map(|l| (&l.shard_id, l)).collect();
        for lease in leases.iter().filter(|l| l.is_finished()) {
            if lease.child_shard_ids.is_empty() {
                continue;
            }
            let children_started = lease.child_shard_ids.iter().all(|c| {
                by_id
                    .get(c)
                    .is_some_and(|child| child.generation > 0 || child.owner.is_some())
            });
            if children_started {
                tracing::info!(shard = %lease.shard_id, "deleting the finished lease");
                if let Err(e) = engine.store.delete_lease(&lease.shard_id).await {
                    tracing::warn!(shard = %lease.shard_id, error = %e, "deleting a finished lease failed");
                }
            }
        }
    }
}
