//! Balancing by throughput: which lease, if any, the least loaded live
//! worker pulls this round. The rule and why it cannot churn are in
//! [`ThroughputBalance`](crate::ThroughputBalance)'s docs; the dampening
//! (rounds in a row) is the caller's.

use std::collections::{BTreeMap, BTreeSet};

use crate::ids::WorkerId;
use crate::lease::Lease;

/// A live worker's projected load.
#[derive(Debug, Default)]
struct Load<'a> {
    rate: f64,
    /// Leases it holds or is being handed.
    count: usize,
    /// Leases it holds that it could give (no hand-off under way).
    giveable: Vec<&'a Lease>,
}

/// The lease `me` should ask for, if `me` is the least loaded live worker
/// and a move clears `threshold` (or, with nothing held, the count bound
/// applies). `candidate` says which leases may be asked for at all.
pub(super) fn pull<'a>(
    me: &WorkerId,
    unfinished: &[&'a Lease],
    live: &BTreeSet<WorkerId>,
    candidate: impl Fn(&Lease) -> bool,
    threshold: f64,
) -> Option<&'a Lease> {
    let known: Vec<u64> = unfinished
        .iter()
        .filter_map(|l| l.throughput_bytes_per_sec)
        .collect();
    #[allow(clippy::cast_precision_loss)]
    let unknown_rate = if known.is_empty() {
        0.0
    } else {
        known.iter().map(|r| *r as f64).sum::<f64>() / known.len() as f64
    };
    #[allow(clippy::cast_precision_loss)]
    let rate = |l: &Lease| {
        l.throughput_bytes_per_sec
            .map_or(unknown_rate, |r| r as f64)
    };

    let mut loads: BTreeMap<&WorkerId, Load<'a>> =
        live.iter().map(|w| (w, Load::default())).collect();
    for lease in unfinished {
        // A lease being handed to a live worker counts for that worker.
        let holder = lease
            .handoff_to
            .as_ref()
            .filter(|to| live.contains(*to))
            .or(lease.owner.as_ref().filter(|o| live.contains(*o)));
        let Some(load) = holder.and_then(|h| loads.get_mut(h)) else {
            continue;
        };
        load.rate += rate(lease);
        load.count += 1;
        if lease.handoff_to.is_none() && candidate(lease) {
            load.giveable.push(lease);
        }
    }
    for load in loads.values_mut() {
        load.giveable.sort_by(|a, b| a.shard_id.cmp(&b.shard_id));
    }
    // Only the least loaded worker pulls (ties go to the one holding
    // fewer leases, then to the smaller id), so
    // peers reading one listing never pull from one donor at once.
    let least = loads
        .iter()
        .min_by(|a, b| {
            (a.1.rate.total_cmp(&b.1.rate))
                .then_with(|| a.1.count.cmp(&b.1.count))
                .then_with(|| a.0.cmp(b.0))
        })
        .map(|(w, _)| *w)?;
    if least != me {
        return None;
    }
    let mine = &loads[me];
    #[allow(clippy::cast_precision_loss)]
    let mean = loads.values().map(|l| l.rate).sum::<f64>() / loads.len() as f64;
    let margin = threshold * mean;

    // The move that lowers the sum of squared loads the most: r (D - L - r).
    let mut best: Option<(f64, &'a Lease)> = None;
    for (donor, load) in &loads {
        if *donor == me || load.count < 2 {
            continue;
        }
        for lease in &load.giveable {
            let r = rate(lease);
            if r <= 0.0 || mine.rate + r + margin > load.rate {
                continue;
            }
            let gain = r * (load.rate - mine.rate - r);
            if best.is_none_or(|(g, _)| gain > g) {
                best = Some((gain, lease));
            }
        }
    }
    if let Some((_, lease)) = best {
        return Some(lease);
    }
    // Count bound: holding nothing while a peer holds two or more, ask the
    // peer with the most for its lightest lease.
    if mine.count > 0 {
        return None;
    }
    loads
        .iter()
        .filter(|(w, l)| **w != me && l.count >= 2 && !l.giveable.is_empty())
        .max_by(|a, b| a.1.count.cmp(&b.1.count).then_with(|| b.0.cmp(a.0)))
        .and_then(|(_, l)| {
            l.giveable.iter().copied().min_by(|a, b| {
                rate(a)
                    .total_cmp(&rate(b))
                    .then_with(|| a.shard_id.cmp(&b.shard_id))
            })
        })
}
