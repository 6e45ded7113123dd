//! The lease taker, as a pure planner: from a listing of leases and
//! heartbeats (and what it remembers of earlier listings) it decides what
//! to take, whom to ask for a hand-off, which overdue hand-off to force and
//! which finished leases to delete. [`execute`](super::executor::execute) does the
//! store calls; [`Worker::run`](super::Worker::run) starts the consumers.
//!
//! Balancing is by lease count, or with
//! [`BalanceMode::Throughput`] by the leases' recorded throughput
//! (`by_throughput`, with its dampening here).
//!
//! Expiry never compares clocks across hosts. A lease is expired once
//! either
//! - its `(counter, generation)` pair has not changed for a lease duration
//!   on this worker's own monotonic clock, or
//! - its owner's heartbeat counter has not changed for a lease duration
//!   the same way (the owner is *dead*). An owner whose heartbeat is not
//!   listed at all (it removed it on a graceful shutdown, or it never
//!   wrote one, as a Java worker sharing the table) is never dead by this
//!   rule: only the lease's own counter can expire its leases.
//!
//! The second rule is what lets the worker read every lease only rarely
//! (see [`cadence`](super::cadence)): heartbeats, one small item per
//! worker, are read every scan interval, so a crash is seen within a
//! lease duration plus a scan interval without listing the leases. It is
//! safe because the owner fences itself on its heartbeat as it does on
//! its renewals: every consumer's deadline is at most the *send* time of
//! the owner's last successful heartbeat plus nine tenths of a lease
//! duration (see the coordinator). Say this worker first saw the owner's
//! counter at `c` when it processed a listing at `since` (after `c` was
//! written), and at `c` again in a listing it *sent* at `read ≥ since +
//! lease`. No heartbeat of the owner took effect between the two reads,
//! so every heartbeat the owner knew as successful at any time up to
//! `read` was sent before `since`: its consumers' deadlines had passed by
//! `since + 0.9 lease`, a tenth of a lease duration before this worker
//! even decides to take. A heartbeat that lands after `read` comes too late
//! to revive them (a consumer past its deadline has stopped for good),
//! and the owner takes nothing while its own heartbeat is stale.
//! Heartbeat counters, like lease counters, must not repeat a value: a
//! heartbeat removed and written again restarts at 1, which is only a
//! hazard if an observer misses the removal and had last seen 1.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use tokio::time::Instant;

use crate::ids::{HashKeyRange, ShardId, WorkerId};
use crate::lease::{Lease, WorkerHeartbeat};
use crate::sequence::ExtendedSequenceNumber;

use super::throughput::{BalanceMode, ThroughputBalance};

mod by_throughput;

/// A `(counter, generation)` pair and when this worker first saw it.
#[derive(Debug)]
struct Seen {
    counter: u64,
    generation: u64,
    since: Instant,
}

/// A hand-off this worker asked for.
#[derive(Debug)]
pub(crate) struct Pending {
    owner: Option<WorkerId>,
    generation: u64,
    since: Instant,
}

/// What the taker remembers between rounds. Owned by the worker's loop.
/// Worker heartbeats are observed on every scan tick
/// ([`observe_workers`](Memory::observe_workers)), leases only when all of
/// them are listed.
#[derive(Debug, Default)]
pub(crate) struct Memory {
    leases: HashMap<ShardId, Seen>,
    workers: HashMap<WorkerId, (u64, Instant)>,
    available_since: HashMap<ShardId, Instant>,
    pending: HashMap<ShardId, Pending>,
    last_balance: Option<Instant>,
    /// Balancing rounds in a row in which a throughput move was worth
    /// making ([`BalanceMode::Throughput`]'s dampening).
    imbalanced_rounds: u32,
}

impl Memory {
    /// Remember a hand-off request that the store accepted.
    pub(crate) fn requested(&mut self, lease: &Lease, now: Instant) {
        self.pending.insert(
            lease.shard_id.clone(),
            Pending {
                owner: lease.owner.clone(),
                generation: lease.generation,
                since: now,
            },
        );
    }

    /// Forget a lease's waiting time after this worker took it.
    pub(crate) fn taken(&mut self, shard_id: &ShardId) {
        self.available_since.remove(shard_id);
        self.pending.remove(shard_id);
    }

    /// Remember a heartbeat listing processed at `now`: a counter seen
    /// for the first time (or changed) is dated `now`; workers no longer
    /// listed are forgotten.
    pub(crate) fn observe_workers(&mut self, workers: &[WorkerHeartbeat], now: Instant) {
        for worker in workers {
            let seen = self
                .workers
                .entry(worker.worker_id.clone())
                .or_insert((worker.counter, now));
            if seen.0 != worker.counter {
                *seen = (worker.counter, now);
            }
        }
        let listed: HashSet<&WorkerId> = workers.iter().map(|w| &w.worker_id).collect();
        self.workers.retain(|id, _| listed.contains(id));
    }

    /// The live workers (`me` included) as of a heartbeat listing sent at
    /// `read`: those whose counter moved less than a lease duration before.
    pub(crate) fn live(
        &self,
        settings: &Settings,
        me: &WorkerId,
        read: Instant,
    ) -> BTreeSet<WorkerId> {
        let mut live: BTreeSet<WorkerId> = self
            .workers
            .iter()
            .filter(|(_, (_, since))| {
                read.saturating_duration_since(*since) < settings.lease_duration
            })
            .map(|(id, _)| id.clone())
            .collect();
        live.insert(me.clone());
        live
    }

    /// The earliest instant after `read` (a heartbeat read's send time) at
    /// which a read would find a worker other than `me` dead: its
    /// counter's first sighting plus a lease duration. Workers already
    /// dead as of `read` are not counted.
    pub(crate) fn next_death(
        &self,
        settings: &Settings,
        me: &WorkerId,
        read: Instant,
    ) -> Option<Instant> {
        self.workers
            .iter()
            .filter(|(id, _)| *id != me)
            .map(|(_, (_, since))| *since + settings.lease_duration)
            .filter(|at| *at > read)
            .min()
    }

    /// Whether `worker` is listed with a heartbeat that has not moved for
    /// a lease duration as of a listing sent at `read`.
    fn dead(&self, settings: &Settings, worker: &WorkerId, read: Instant) -> bool {
        self.workers.get(worker).is_some_and(|(_, since)| {
            read.saturating_duration_since(*since) >= settings.lease_duration
        })
    }

    /// Forget every hand-off this worker is waiting for (it is shutting
    /// down), returning each as the snapshot to withdraw it from: shard,
    /// owner and generation as they were when it was asked.
    pub(crate) fn drain_pending(&mut self) -> Vec<Lease> {
        let mut out: Vec<Lease> = self
            .pending
            .drain()
            .map(|(shard_id, p)| {
                let mut lease = Lease::new(shard_id, ExtendedSequenceNumber::TrimHorizon);
                lease.owner = p.owner;
                lease.generation = p.generation;
                lease
            })
            .collect();
        out.sort_by(|a, b| a.shard_id.cmp(&b.shard_id));
        out
    }

    /// Hand-offs this worker is waiting for.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.pending.len()
    }
}

/// The taker's settings (from the worker's configuration).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Settings {
    pub(crate) lease_duration: Duration,
    pub(crate) renew_interval: Duration,
    pub(crate) scan_interval: Duration,
    pub(crate) take_interval: Duration,
    pub(crate) handoff_timeout: Duration,
    /// Most leases this worker holds (Java's `maxLeasesForWorker`):
    /// nothing is taken, forced or asked for beyond it. `usize::MAX` for
    /// no cap.
    pub(crate) max_leases: usize,
    /// By count or by throughput.
    pub(crate) balance: BalanceMode,
}

/// One listing, as the planner sees it.
#[derive(Debug)]
pub(crate) struct View<'a> {
    pub(crate) me: &'a WorkerId,
    pub(crate) leases: &'a [Lease],
    pub(crate) workers: &'a [WorkerHeartbeat],
    /// Shards this worker has a consumer for (running or still ending):
    /// never taken again until that consumer is gone, so one shard never
    /// has two consumers here.
    pub(crate) busy: &'a HashSet<ShardId>,
    /// Shards backing off after a failure on this worker: not taken yet.
    pub(crate) cooling: &'a HashSet<ShardId>,
    /// When the lease listing was processed.
    pub(crate) now: Instant,
    /// When the heartbeat listing in `workers` was *sent* (at or before
    /// `now`): liveness is judged as of then (see the module docs).
    pub(crate) workers_read: Instant,
}

/// What to do this round.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Leases to take with `take_lease` (the snapshot is the CAS's
    /// `observed`): free ones, expired ones, and ones listed as this
    /// worker's with no consumer here (re-taken so the generation moves
    /// and a second process with the same id is fenced out).
    pub(crate) take: Vec<Lease>,
    /// Leases to ask their live owner for (`request_handoff`).
    pub(crate) request_handoff: Vec<Lease>,
    /// Hand-offs asked for and not done within the hand-off timeout: take
    /// them anyway.
    pub(crate) force: Vec<Lease>,
    /// Finished leases no longer needed.
    pub(crate) delete: Vec<ShardId>,
    /// Heartbeats of workers dead for three lease durations.
    pub(crate) remove_workers: Vec<WorkerId>,
    /// Nothing to do and nothing to wait for: no free, expired, orphaned
    /// (owner not live) or stale lease, no hand-off under way (ours or a
    /// peer's), no shard
    /// backing off here, and the fleet balanced as far as this worker can
    /// tell. While a worker is settled it lists every lease only at the
    /// slow cadence (see [`cadence`](super::cadence)).
    pub(crate) settled: bool,
}

/// Plan one round. Deterministic: the same memory and view give the same
/// plan.
pub(crate) fn plan(memory: &mut Memory, settings: &Settings, view: &View<'_>) -> Plan {
    let now = view.now;
    let me = view.me;
    let mut out = Plan::default();
    remember_leases(memory, view.leases, now);
    memory.observe_workers(view.workers, now);
    let live = memory.live(settings, me, view.workers_read);
    out.remove_workers = long_dead(memory, settings, view);

    out.delete = finished_and_unneeded(view.leases);
    let unfinished: Vec<&Lease> = view.leases.iter().filter(|l| !l.is_finished()).collect();
    let startable =
        |l: &Lease| !view.busy.contains(&l.shard_id) && !view.cooling.contains(&l.shard_id);

    // Leases listed as ours with no consumer here: handed to us, or left
    // over from an earlier consumer (or another process with our id).
    let mut planned: HashSet<&ShardId> = HashSet::new();
    for lease in &unfinished {
        if lease.is_owned_by(me) && startable(lease) {
            out.take.push((*lease).clone());
            planned.insert(&lease.shard_id);
        }
    }

    // Hand-offs asked for: done, moot, or overdue (then forced).
    let by_id: HashMap<&ShardId, &Lease> = view.leases.iter().map(|l| (&l.shard_id, l)).collect();
    let mut overdue = Vec::new();
    memory.pending.retain(|id, p| match by_id.get(id) {
        Some(l) if l.owner == p.owner && l.generation == p.generation && !l.is_finished() => {
            if now.duration_since(p.since) >= settings.handoff_timeout {
                overdue.push(*l);
                false
            } else {
                true
            }
        }
        _ => false,
    });
    let mut mine = unfinished.iter().filter(|l| l.is_owned_by(me)).count();
    for lease in overdue {
        if mine < settings.max_leases && startable(lease) && planned.insert(&lease.shard_id) {
            out.force.push(lease.clone());
            mine += 1;
        }
    }

    let target = unfinished
        .len()
        .div_ceil(live.len().max(1))
        .min(settings.max_leases);
    let unchanged_for = |l: &Lease| {
        memory
            .leases
            .get(&l.shard_id)
            .map_or(Duration::ZERO, |s| now.saturating_duration_since(s.since))
    };
    let expired = |l: &Lease| {
        unchanged_for(l) >= settings.lease_duration
            || l.owner
                .as_ref()
                .is_some_and(|o| memory.dead(settings, o, view.workers_read))
    };
    let mut available: Vec<&Lease> = unfinished
        .iter()
        .copied()
        .filter(|l| l.owner.is_none() || (!l.is_owned_by(me) && expired(l)))
        .filter(|l| startable(l) && !planned.contains(&l.shard_id))
        .collect();
    available
        .sort_by(|a, b| (a.owner.is_some(), &a.shard_id).cmp(&(b.owner.is_some(), &b.shard_id)));
    let available_any = !available.is_empty();
    let available_ids: HashSet<&ShardId> = available.iter().map(|l| &l.shard_id).collect();
    memory
        .available_since
        .retain(|id, _| available_ids.contains(id));
    for lease in available {
        let since = *memory
            .available_since
            .entry(lease.shard_id.clone())
            .or_insert(now);
        // Nobody took it for two scans (peers' view of the fleet may
        // differ from ours): take it even above target; balancing evens it
        // out later.
        let starving = now.duration_since(since) >= settings.scan_interval * 2;
        if mine < target || (starving && mine < settings.max_leases) {
            out.take.push(lease.clone());
            planned.insert(&lease.shard_id);
            mine += 1;
        }
    }

    let balance_due = memory
        .last_balance
        .is_none_or(|t| now.duration_since(t) >= settings.take_interval);
    let (requests, balanced) = match settings.balance {
        BalanceMode::Count => {
            let requests: Vec<Lease> = balance(memory, view, &unfinished, &live, &planned, mine)
                .into_iter()
                .take(
                    settings
                        .max_leases
                        .saturating_sub(mine + memory.pending.len()),
                )
                .collect();
            let balanced = requests.is_empty();
            (requests, balanced)
        }
        BalanceMode::Throughput(tb) => {
            let pending = !memory.pending.is_empty();
            let rounds = &mut memory.imbalanced_rounds;
            let round = Round {
                pending,
                due: balance_due,
                rounds,
            };
            balance_throughput(
                view,
                &unfinished,
                &live,
                &planned,
                mine,
                settings,
                tb,
                round,
            )
        }
    };
    if balance_due {
        memory.last_balance = Some(now);
        out.request_handoff = requests;
    }

    // A healthy lease's counter moves every renew interval; one that did
    // not for longer is on its way to expiring: keep listing until it does.
    let stale = settings.renew_interval + settings.scan_interval;
    let waiting = unfinished.iter().any(|l| match &l.owner {
        None => true,
        Some(owner) => !live.contains(owner) || unchanged_for(l) > stale || l.handoff_to.is_some(),
    });
    out.settled = balanced
        && !waiting
        && !available_any
        && out.take.is_empty()
        && out.force.is_empty()
        && out.delete.is_empty()
        && memory.pending.is_empty()
        && view.cooling.is_empty();
    out
}

fn remember_leases(memory: &mut Memory, leases: &[Lease], now: Instant) {
    for lease in leases {
        let seen = memory.leases.entry(lease.shard_id.clone()).or_insert(Seen {
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
    memory.leases.retain(|id, _| ids.contains(id));
}

/// Heartbeats of workers (not this one) dead for three lease durations,
/// to remove. They stay in memory, dead, until the listing drops them.
fn long_dead(memory: &Memory, settings: &Settings, view: &View<'_>) -> Vec<WorkerId> {
    let mut dead: Vec<WorkerId> = memory
        .workers
        .iter()
        .filter(|(id, (_, since))| {
            *id != view.me
                && view.workers_read.saturating_duration_since(*since)
                    >= settings.lease_duration * 3
        })
        .map(|(id, _)| id.clone())
        .collect();
    dead.sort();
    dead
}

/// Throughput balancing: at most one pull per round, once a move has been
/// worth making for `rounds` balancing rounds in a row; none while a
/// hand-off of ours is under way (the next move is judged on the loads
/// after it). Returns the requests and whether the fleet is balanced.
#[allow(clippy::too_many_arguments)]
fn balance_throughput(
    view: &View<'_>,
    unfinished: &[&Lease],
    live: &BTreeSet<WorkerId>,
    planned: &HashSet<&ShardId>,
    mine: usize,
    settings: &Settings,
    tb: ThroughputBalance,
    round: Round<'_>,
) -> (Vec<Lease>, bool) {
    if round.pending {
        return (Vec::new(), false);
    }
    let candidate = |l: &Lease| !planned.contains(&l.shard_id);
    let pull = (mine < settings.max_leases)
        .then(|| by_throughput::pull(view.me, unfinished, live, candidate, tb.threshold))
        .flatten();
    if round.due {
        *round.rounds = match pull {
            Some(_) => round.rounds.saturating_add(1),
            None => 0,
        };
    }
    let ripe = *round.rounds >= tb.rounds;
    let requests = pull.filter(|_| ripe).into_iter().cloned().collect();
    (requests, pull.is_none())
}

/// A balancing round's dampening state, for [`balance_throughput`].
struct Round<'a> {
    /// A hand-off of ours is under way.
    pending: bool,
    /// A balancing round is due (`take_interval` since the last).
    due: bool,
    /// Rounds in a row with a move worth making.
    rounds: &'a mut u32,
}

/// Ask the most loaded live workers to hand leases over, several at once,
/// until no donor holds two more than this worker will.
fn balance(
    memory: &Memory,
    view: &View<'_>,
    unfinished: &[&Lease],
    live: &BTreeSet<WorkerId>,
    planned: &HashSet<&ShardId>,
    mine: usize,
) -> Vec<Lease> {
    let me = view.me;
    // A lease is a candidate unless a hand-off of it is already under way:
    // ours (pending), or a peer's request. A stale request of ours that we
    // forgot (a forced take that lost its race) may be asked again.
    let candidate = |l: &Lease| {
        !memory.pending.contains_key(&l.shard_id)
            && !planned.contains(&l.shard_id)
            && l.handoff_to.as_ref().is_none_or(|to| to == me)
    };
    // Each live peer's load as it will be once the hand-offs under way are
    // done: a lease being handed to a live peer counts for that peer.
    let mut loads: HashMap<&WorkerId, (Vec<&Lease>, usize)> = HashMap::new();
    for lease in unfinished {
        let Some(owner) = lease
            .owner
            .as_ref()
            .filter(|o| *o != me && live.contains(*o))
        else {
            continue;
        };
        if candidate(lease) {
            loads.entry(owner).or_default().0.push(lease);
            continue;
        }
        match lease.handoff_to.as_ref() {
            // Ours, pending: already in `projected`.
            Some(to) if to == me => {}
            Some(to) if live.contains(to) => loads.entry(to).or_default().1 += 1,
            _ => loads.entry(owner).or_default().1 += 1,
        }
    }
    for (leases, _) in loads.values_mut() {
        leases.sort_by(|a, b| a.shard_id.cmp(&b.shard_id));
    }
    let mut out = Vec::new();
    let mut projected = mine + memory.pending.len();
    // The most loaded worker that still has leases to give: one whose load
    // is all hand-offs under way to it gives nothing, but the next may.
    while let Some((_, (leases, extra))) = loads
        .iter_mut()
        .filter(|(_, (l, _))| !l.is_empty())
        .max_by(|a, b| {
            (a.1.0.len() + a.1.1)
                .cmp(&(b.1.0.len() + b.1.1))
                .then_with(|| b.0.cmp(a.0))
        })
    {
        if leases.len() + *extra < projected + 2 {
            break;
        }
        let Some(lease) = leases.pop() else {
            break;
        };
        out.push(lease.clone());
        projected += 1;
    }
    out
}

/// Finished leases whose children all have leases that checkpointed
/// something, so the parent will never be needed again: shard sync will
/// not re-create it (a leased descendant), and no child waits on it. Java
/// waits minutes for the same reason.
///
/// A finished lease whose children were never recorded (a Java-written
/// lease, a vanished shard, a failed `update_child_shard_ids`) takes its
/// children from the leases that name it as a parent, but only once they
/// cover its whole hash key range (so no child whose lease is still to be
/// created is missed); without a known range it is kept.
fn finished_and_unneeded(leases: &[Lease]) -> Vec<ShardId> {
    let by_id: HashMap<&ShardId, &Lease> = leases.iter().map(|l| (&l.shard_id, l)).collect();
    let checkpointed = |child: &Lease| {
        matches!(
            child.checkpoint,
            ExtendedSequenceNumber::Sequence { .. } | ExtendedSequenceNumber::ShardEnd
        )
    };
    let mut out: Vec<ShardId> = leases
        .iter()
        .filter(|l| l.is_finished())
        .filter(|l| {
            if !l.child_shard_ids.is_empty() {
                return l
                    .child_shard_ids
                    .iter()
                    .all(|c| by_id.get(c).is_some_and(|child| checkpointed(child)));
            }
            let children: Vec<&Lease> = leases
                .iter()
                .filter(|c| c.parent_shard_ids.contains(&l.shard_id))
                .collect();
            !children.is_empty()
                && children.iter().all(|c| checkpointed(c))
                && l.hash_key_range.is_some_and(|range| {
                    covers(range, children.iter().filter_map(|c| c.hash_key_range))
                })
        })
        .map(|l| l.shard_id.clone())
        .collect();
    out.sort();
    out
}

/// Whether `parts` together cover every hash key of `whole`.
fn covers(whole: HashKeyRange, parts: impl Iterator<Item = HashKeyRange>) -> bool {
    let mut parts: Vec<HashKeyRange> = parts.collect();
    parts.sort_by_key(|r| r.starting_hash_key);
    // The lowest key not yet covered (None once past u128::MAX).
    let mut next = Some(whole.starting_hash_key);
    for part in parts {
        let Some(from) = next else { break };
        if part.starting_hash_key > from {
            break;
        }
        if part.ending_hash_key >= from {
            next = part.ending_hash_key.checked_add(1);
        }
    }
    next.is_none_or(|from| from > whole.ending_hash_key)
}

#[cfg(test)]
mod tests;
