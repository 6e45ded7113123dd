//! The planner on its own: unit cases, and a simulated fleet (a map with
//! the store's compare-and-set rules) for the properties.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use proptest::prelude::*;
use tokio::time::Instant;

use super::*;

const SCAN: Duration = Duration::from_millis(500);

fn settings() -> Settings {
    Settings {
        lease_duration: Duration::from_secs(10),
        renew_interval: Duration::from_millis(3333),
        scan_interval: SCAN,
        take_interval: SCAN,
        handoff_timeout: Duration::from_secs(40),
        max_leases: usize::MAX,
        balance: BalanceMode::Count,
    }
}

fn sid(n: usize) -> ShardId {
    ShardId::new(format!("shardId-{n:012}")).unwrap()
}

fn wid(name: &str) -> WorkerId {
    WorkerId::new(name).unwrap()
}

fn lease(n: usize, owner: Option<&str>) -> Lease {
    let mut l = Lease::new(sid(n), ExtendedSequenceNumber::TrimHorizon);
    l.owner = owner.map(wid);
    l
}

fn heartbeats(names: &[&str]) -> Vec<WorkerHeartbeat> {
    names
        .iter()
        .map(|n| WorkerHeartbeat {
            worker_id: wid(n),
            counter: 1,
        })
        .collect()
}

fn run(
    memory: &mut Memory,
    me: &str,
    leases: &[Lease],
    workers: &[WorkerHeartbeat],
    busy: &[usize],
    now: Instant,
) -> Plan {
    run_with(&settings(), memory, me, leases, workers, busy, now)
}

fn run_with(
    settings: &Settings,
    memory: &mut Memory,
    me: &str,
    leases: &[Lease],
    workers: &[WorkerHeartbeat],
    busy: &[usize],
    now: Instant,
) -> Plan {
    let me = wid(me);
    let busy: HashSet<ShardId> = busy.iter().map(|n| sid(*n)).collect();
    plan(
        memory,
        settings,
        &View {
            me: &me,
            leases,
            workers,
            busy: &busy,
            cooling: &HashSet::new(),
            now,
            workers_read: now,
        },
    )
}

fn ids(leases: &[Lease]) -> Vec<ShardId> {
    leases.iter().map(|l| l.shard_id.clone()).collect()
}

#[test]
fn free_leases_are_taken_up_to_a_fair_share() {
    let leases: Vec<Lease> = (0..6).map(|n| lease(n, None)).collect();
    let plan = run(
        &mut Memory::default(),
        "a",
        &leases,
        &heartbeats(&["a", "b", "c"]),
        &[],
        Instant::now(),
    );
    assert_eq!(ids(&plan.take), vec![sid(0), sid(1)]);
    assert!(plan.force.is_empty() && plan.request_handoff.is_empty());
}

#[test]
fn the_lease_cap_bounds_takes_even_of_starving_leases() {
    let capped = Settings {
        max_leases: 2,
        ..settings()
    };
    let leases: Vec<Lease> = (0..6).map(|n| lease(n, None)).collect();
    let mut memory = Memory::default();
    let t0 = Instant::now();
    // Alone, the fair share would be all six; the cap is two.
    let first = run_with(
        &capped,
        &mut memory,
        "a",
        &leases,
        &heartbeats(&["a"]),
        &[],
        t0,
    );
    assert_eq!(ids(&first.take), vec![sid(0), sid(1)]);
    // Nobody took the other four for two scans (starving): still not
    // beyond the cap.
    let mut now_held = leases.clone();
    now_held[0].owner = Some(wid("a"));
    now_held[1].owner = Some(wid("a"));
    let later = t0 + SCAN * 3;
    let plan = run_with(
        &capped,
        &mut memory,
        "a",
        &now_held,
        &heartbeats(&["a"]),
        &[0, 1],
        later,
    );
    assert!(plan.take.is_empty(), "{plan:?}");
}

#[test]
fn the_lease_cap_bounds_balancing_and_forced_hand_offs() {
    let capped = Settings {
        max_leases: 2,
        ..settings()
    };
    // b holds ten; a (capped at 2) holds one: ceil(11 / 2) = 6 would ask
    // for five, the cap allows one more.
    let mut leases: Vec<Lease> = (0..10).map(|n| lease(n, Some("b"))).collect();
    leases.push(lease(10, Some("a")));
    let workers = heartbeats(&["a", "b"]);
    let mut memory = Memory::default();
    let t0 = Instant::now();
    let plan = run_with(&capped, &mut memory, "a", &leases, &workers, &[10], t0);
    assert_eq!(plan.request_handoff.len(), 1, "{plan:?}");
    // Two overdue requests (made before a restart with a cap, say): only
    // one is forced.
    let mut memory = Memory::default();
    memory.requested(&leases[0], t0);
    memory.requested(&leases[1], t0);
    let due = t0 + Duration::from_secs(40);
    let plan = run_with(&capped, &mut memory, "a", &leases, &workers, &[10], due);
    assert_eq!(plan.force.len(), 1, "{plan:?}");
    assert!(
        plan.take.is_empty() && plan.request_handoff.is_empty(),
        "{plan:?}"
    );
}

#[test]
fn a_live_lease_of_a_peer_is_not_taken_until_expired() {
    let leases = vec![lease(0, Some("b"))];
    let workers = heartbeats(&["a", "b"]);
    let mut memory = Memory::default();
    let t0 = Instant::now();
    assert!(
        run(&mut memory, "a", &leases, &workers, &[], t0)
            .take
            .is_empty()
    );
    // The counter did not move for less than a lease duration: still live.
    let soon = t0 + Duration::from_secs(9);
    assert!(
        run(&mut memory, "a", &leases, &workers, &[], soon)
            .take
            .is_empty()
    );
    let later = t0 + Duration::from_secs(10);
    assert_eq!(
        ids(&run(&mut memory, "a", &leases, &workers, &[], later).take),
        vec![sid(0)]
    );
}

#[test]
fn a_lease_with_a_consumer_here_is_never_taken_again() {
    // Freed by an admin reset while its old consumer is still ending.
    let leases = vec![lease(0, None), lease(1, Some("a"))];
    let plan = run(
        &mut Memory::default(),
        "a",
        &leases,
        &heartbeats(&["a"]),
        &[0, 1],
        Instant::now(),
    );
    assert!(plan.take.is_empty(), "{plan:?}");
}

#[test]
fn a_lease_listed_as_ours_without_a_consumer_is_re_taken() {
    let leases = vec![lease(0, Some("a"))];
    let plan = run(
        &mut Memory::default(),
        "a",
        &leases,
        &heartbeats(&["a"]),
        &[],
        Instant::now(),
    );
    assert_eq!(ids(&plan.take), vec![sid(0)]);
}

#[test]
fn an_overdue_hand_off_is_forced_once_and_then_forgotten() {
    let donor_lease = lease(0, Some("b"));
    let leases = vec![
        donor_lease.clone(),
        lease(1, Some("b")),
        lease(2, Some("b")),
    ];
    let workers = heartbeats(&["a", "b"]);
    let mut memory = Memory::default();
    let t0 = Instant::now();
    memory.requested(&donor_lease, t0);
    let soon = run(
        &mut memory,
        "a",
        &leases,
        &workers,
        &[],
        t0 + Duration::from_secs(39),
    );
    assert!(soon.force.is_empty());
    let due = t0 + Duration::from_secs(40);
    let plan = run(&mut memory, "a", &leases, &workers, &[], due);
    assert_eq!(ids(&plan.force), vec![sid(0)]);
    assert!(
        !plan.take.iter().any(|l| l.shard_id == sid(0)),
        "planned twice"
    );
    assert_eq!(memory.pending(), 0);
}

#[test]
fn a_stale_request_of_ours_may_be_asked_again() {
    let mut asked = lease(0, Some("b"));
    asked.handoff_to = Some(wid("a"));
    let leases = vec![asked, lease(1, Some("b")), lease(2, Some("b"))];
    let plan = run(
        &mut Memory::default(),
        "a",
        &leases,
        &heartbeats(&["a", "b"]),
        &[],
        Instant::now(),
    );
    assert_eq!(plan.request_handoff.len(), 1);
}

#[test]
fn finished_parents_are_deleted_only_once_every_child_checkpointed() {
    let mut parent = lease(0, None).with_children([sid(1), sid(2)]);
    parent.checkpoint = ExtendedSequenceNumber::ShardEnd;
    let mut c1 = lease(1, Some("a"));
    c1.checkpoint = ExtendedSequenceNumber::at(5u128.into(), 0);
    let mut c2 = lease(2, Some("a"));
    c2.generation = 3; // taken, but nothing checkpointed yet
    let leases = vec![parent.clone(), c1.clone(), c2.clone()];
    let plan = run(
        &mut Memory::default(),
        "a",
        &leases,
        &heartbeats(&["a"]),
        &[1, 2],
        Instant::now(),
    );
    assert!(plan.delete.is_empty());
    c2.checkpoint = ExtendedSequenceNumber::ShardEnd;
    let plan = run(
        &mut Memory::default(),
        "a",
        &[parent, c1, c2],
        &heartbeats(&["a"]),
        &[1, 2],
        Instant::now(),
    );
    assert_eq!(plan.delete, vec![sid(0)]);
}

#[test]
fn a_finished_lease_without_recorded_children_is_deleted_once_its_children_cover_it() {
    let range = |a: u128, b: u128| HashKeyRange::new(a, b).unwrap();
    let mut parent = lease(0, None).with_hash_key_range(range(0, 99));
    parent.checkpoint = ExtendedSequenceNumber::ShardEnd;
    let child = |n: usize, from: u128, to: u128| {
        let mut c = lease(n, Some("a"))
            .with_parents([sid(0)])
            .with_hash_key_range(range(from, to));
        c.checkpoint = ExtendedSequenceNumber::at(5u128.into(), 0);
        c
    };
    let delete = |leases: &[Lease]| {
        run(
            &mut Memory::default(),
            "a",
            leases,
            &heartbeats(&["a"]),
            &[1, 2],
            Instant::now(),
        )
        .delete
    };
    // One child of a split so far: its sibling's lease may still come.
    assert!(delete(&[parent.clone(), child(1, 0, 49)]).is_empty());
    assert_eq!(
        delete(&[parent.clone(), child(1, 0, 49), child(2, 50, 99)]),
        vec![sid(0)]
    );
    // A merge child covers more than this parent.
    assert_eq!(delete(&[parent.clone(), child(1, 0, 199)]), vec![sid(0)]);
    // A child that has not checkpointed yet still needs it.
    let mut fresh = child(2, 50, 99);
    fresh.checkpoint = ExtendedSequenceNumber::TrimHorizon;
    assert!(delete(&[parent.clone(), child(1, 0, 49), fresh]).is_empty());
    // No known range: kept.
    parent.hash_key_range = None;
    assert!(delete(&[parent, child(1, 0, 49), child(2, 50, 99)]).is_empty());
}

#[test]
fn a_dead_owner_s_leases_are_taken_even_while_their_counters_move() {
    // b's heartbeat stopped; its leases' counters still move (a process
    // cut off from its heartbeat only): b has fenced itself by now.
    let workers = heartbeats(&["a", "b"]);
    let mut memory = Memory::default();
    let t0 = Instant::now();
    let at = |secs: u64, counter: u64| {
        let mut l = lease(0, Some("b"));
        l.counter = counter;
        let mut other = lease(1, Some("a"));
        other.counter = counter;
        (vec![l, other], t0 + Duration::from_secs(secs))
    };
    let (leases, now) = at(0, 1);
    assert!(
        run(&mut memory, "a", &leases, &workers, &[1], now)
            .take
            .is_empty()
    );
    let (leases, now) = at(9, 2);
    assert!(
        run(&mut memory, "a", &leases, &workers, &[1], now)
            .take
            .is_empty()
    );
    let (leases, now) = at(10, 3);
    let plan = run(&mut memory, "a", &leases, &workers, &[1], now);
    assert_eq!(ids(&plan.take), vec![sid(0)]);
}

#[test]
fn liveness_is_judged_as_of_when_the_heartbeats_were_read() {
    let workers = heartbeats(&["a", "b"]);
    let mut memory = Memory::default();
    let t0 = Instant::now();
    let me = wid("a");
    let view = |leases: &[Lease], now: Instant, read: Instant, memory: &mut Memory| {
        plan(
            memory,
            &settings(),
            &View {
                me: &me,
                leases,
                workers: &workers,
                busy: &HashSet::new(),
                cooling: &HashSet::new(),
                now,
                workers_read: read,
            },
        )
    };
    let mut l = lease(0, Some("b"));
    assert!(view(&[l.clone()], t0, t0, &mut memory).take.is_empty());
    // Listed long after a heartbeat read that was sent too early to tell.
    l.counter += 1;
    let late = t0 + Duration::from_secs(30);
    let early_read = t0 + Duration::from_secs(9);
    assert!(
        view(&[l.clone()], late, early_read, &mut memory)
            .take
            .is_empty()
    );
    l.counter += 1;
    let plan = view(&[l], late, t0 + Duration::from_secs(10), &mut memory);
    assert_eq!(ids(&plan.take), vec![sid(0)]);
}

#[test]
fn an_owner_without_a_heartbeat_is_never_dead_by_the_heartbeat_rule() {
    // Gone from the heartbeats (a graceful shutdown still releasing, or a
    // Java worker): only the lease's own counter can expire its lease.
    let workers = heartbeats(&["a"]);
    let mut memory = Memory::default();
    let t0 = Instant::now();
    for (i, secs) in [0u64, 10, 20].into_iter().enumerate() {
        let mut l = lease(0, Some("b"));
        l.counter = i as u64;
        let plan = run(
            &mut memory,
            "a",
            &[l],
            &workers,
            &[],
            t0 + Duration::from_secs(secs),
        );
        assert!(plan.take.is_empty(), "{plan:?}");
        assert!(!plan.settled, "an orphaned lease keeps the listing going");
    }
}

#[test]
fn a_balanced_fleet_is_settled_and_a_joiner_unsettles_it() {
    let me = "a";
    let leases: Vec<Lease> = (0..4)
        .map(|n| lease(n, Some(if n < 2 { "a" } else { "b" })))
        .collect();
    let mut memory = Memory::default();
    let t0 = Instant::now();
    let plan = run(
        &mut memory,
        me,
        &leases,
        &heartbeats(&["a", "b"]),
        &[0, 1],
        t0,
    );
    assert!(plan.settled, "{plan:?}");
    let mut memory = Memory::default();
    let plan = run(
        &mut memory,
        "c",
        &leases,
        &heartbeats(&["a", "b", "c"]),
        &[],
        t0,
    );
    assert!(
        !plan.settled && !plan.request_handoff.is_empty(),
        "{plan:?}"
    );
}

#[test]
fn a_peer_s_hand_offs_under_way_do_not_hide_a_donor() {
    // b holds six leases, all being handed to c (c's projected load is 6);
    // d holds five of its own. a holds none: it must ask d, not stop at c
    // because c has nothing to give.
    let mut leases: Vec<Lease> = (0..6)
        .map(|n| {
            let mut l = lease(n, Some("b"));
            l.handoff_to = Some(wid("c"));
            l
        })
        .collect();
    leases.extend((6..11).map(|n| lease(n, Some("d"))));
    let plan = run(
        &mut Memory::default(),
        "a",
        &leases,
        &heartbeats(&["a", "b", "c", "d"]),
        &[],
        Instant::now(),
    );
    assert!(!plan.request_handoff.is_empty(), "{plan:?}");
    assert!(
        plan.request_handoff
            .iter()
            .all(|l| l.is_owned_by(&wid("d"))),
        "{plan:?}"
    );
    assert!(!plan.settled);
}

/// A fleet sharing an in-memory table with the store's CAS rules.
struct Fleet {
    settings: Settings,
    /// Each shard's bytes per second, which its owner records on renew.
    rates: BTreeMap<ShardId, u64>,
    /// Hand-offs done (leases that moved between live workers).
    moves: usize,
    table: BTreeMap<ShardId, Lease>,
    workers: Vec<(WorkerId, Memory, HashSet<ShardId>)>,
    /// Crashed workers and the heartbeat counter they stopped at.
    crashed: BTreeMap<WorkerId, u64>,
    /// Whether each worker's last plan was settled.
    settled: Vec<bool>,
    now: Instant,
}

impl Fleet {
    fn new(shards: usize) -> Self {
        Fleet {
            settings: settings(),
            rates: BTreeMap::new(),
            moves: 0,
            table: (0..shards).map(|n| (sid(n), lease(n, None))).collect(),
            workers: Vec::new(),
            crashed: BTreeMap::new(),
            settled: Vec::new(),
            now: Instant::now(),
        }
    }

    fn join(&mut self, name: &str) {
        self.workers
            .push((wid(name), Memory::default(), HashSet::new()));
        self.settled.push(false);
    }

    /// `name` stops: no renewals, no heartbeats, no plans.
    fn crash(&mut self, name: &str, round: u64) {
        self.crashed.insert(wid(name), round);
    }

    fn heartbeats(&self, round: u64) -> Vec<WorkerHeartbeat> {
        self.workers
            .iter()
            .map(|(w, _, _)| WorkerHeartbeat {
                worker_id: w.clone(),
                counter: self.crashed.get(w).copied().unwrap_or(round),
            })
            .collect()
    }

    /// One taker round: each worker in turn renews (honouring hand-off
    /// requests as its renewer would), lists, plans and executes.
    fn round(&mut self, round: u64) -> Result<(), TestCaseError> {
        self.now += SCAN;
        let beats = self.heartbeats(round);
        for i in 0..self.workers.len() {
            let me = self.workers[i].0.clone();
            if self.crashed.contains_key(&me) {
                continue;
            }
            for shard in self.workers[i].2.clone() {
                let l = self.table.get_mut(&shard).unwrap();
                prop_assert!(l.is_owned_by(&me), "a consumer runs on a lease it lost");
                l.counter += 1;
                if let Some(rate) = self.rates.get(&shard) {
                    l.throughput_bytes_per_sec = Some(*rate);
                }
                if let Some(to) = l.handoff_to.take() {
                    l.owner = Some(to);
                    l.generation += 1;
                    self.workers[i].2.remove(&shard);
                    self.moves += 1;
                }
            }
            let leases: Vec<Lease> = self.table.values().cloned().collect();
            let (me, memory, busy) = &mut self.workers[i];
            let plan = plan(
                memory,
                &self.settings,
                &View {
                    me,
                    leases: &leases,
                    workers: &beats,
                    busy,
                    cooling: &HashSet::new(),
                    now: self.now,
                    workers_read: self.now,
                },
            );
            let mut planned = HashSet::new();
            for l in plan.take.iter().chain(&plan.force) {
                prop_assert!(
                    planned.insert(l.shard_id.clone()),
                    "two takes of {}",
                    l.shard_id
                );
            }
            self.settled[i] = plan.settled;
            for l in &plan.take {
                // Every live peer renews each round: only a crashed
                // worker's lease can expire.
                prop_assert!(
                    l.owner.is_none()
                        || l.is_owned_by(me)
                        || l.owner
                            .as_ref()
                            .is_some_and(|o| self.crashed.contains_key(o)),
                    "took a live lease: {l:?}"
                );
            }
            for l in plan.take.iter().chain(&plan.force) {
                let stored = self.table.get_mut(&l.shard_id).unwrap();
                if stored.counter == l.counter && stored.generation == l.generation {
                    stored.owner = Some(me.clone());
                    stored.counter += 1;
                    stored.generation += 1;
                    stored.handoff_to = None;
                    busy.insert(l.shard_id.clone());
                    memory.taken(&l.shard_id);
                }
            }
            for l in &plan.request_handoff {
                let stored = self.table.get_mut(&l.shard_id).unwrap();
                if stored.owner == l.owner && stored.generation == l.generation {
                    stored.handoff_to = Some(me.clone());
                    memory.requested(l, self.now);
                }
            }
        }
        Ok(())
    }

    fn loads(&self) -> Vec<usize> {
        self.workers
            .iter()
            .filter(|(w, _, _)| !self.crashed.contains_key(w))
            .map(|(w, _, _)| self.table.values().filter(|l| l.is_owned_by(w)).count())
            .collect()
    }

    fn balanced(&self) -> bool {
        let loads = self.loads();
        let all_owned = self.table.values().all(|l| l.owner.is_some());
        all_owned && loads.iter().max().unwrap() - loads.iter().min().unwrap() <= 1
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A fleet starting together on free leases is balanced after two
    /// rounds; so is one that a worker joins. No round plans two takes of
    /// one lease or takes a live lease that was not offered.
    #[test]
    fn balanced_within_two_rounds(workers in 1usize..12, shards in 0usize..300) {
        let mut fleet = Fleet::new(shards);
        for w in 0..workers {
            fleet.join(&format!("w{w}"));
        }
        fleet.round(1)?;
        fleet.round(2)?;
        prop_assert!(fleet.balanced(), "after two rounds: {:?}", fleet.loads());
        fleet.join("joiner");
        fleet.round(3)?;
        fleet.round(4)?;
        prop_assert!(fleet.balanced(), "two rounds after a join: {:?}", fleet.loads());
        for round in 5..8 {
            fleet.round(round)?;
            prop_assert!(fleet.balanced(), "stays balanced: {:?}", fleet.loads());
        }
        // Balanced and unchanging: every worker is settled, so it lists the
        // leases only at the slow cadence.
        for round in 8..10 {
            fleet.round(round)?;
        }
        prop_assert!(fleet.settled.iter().all(|s| *s), "settled: {:?}", fleet.settled);
    }

    /// A worker crashes in a settled fleet: its heartbeat stops while the
    /// others keep listing every scan (as they do once its heartbeat went
    /// quiet); its leases are all taken within a lease duration plus two
    /// scans, and the survivors end balanced and settled.
    #[test]
    fn a_crashed_worker_s_leases_move_within_a_lease_duration(workers in 2usize..8, shards in 1usize..200) {
        let mut fleet = Fleet::new(shards);
        for w in 0..workers {
            fleet.join(&format!("w{w}"));
        }
        for round in 1..5 {
            fleet.round(round)?;
        }
        fleet.crash("w0", 4);
        let rounds = (settings().lease_duration.as_millis() / SCAN.as_millis()) as u64 + 2;
        for round in 5..5 + rounds {
            fleet.round(round)?;
        }
        let orphaned = fleet.table.values().filter(|l| l.is_owned_by(&wid("w0"))).count();
        prop_assert_eq!(orphaned, 0, "w0 still owns leases");
        for round in 5 + rounds..5 + rounds + 4 {
            fleet.round(round)?;
        }
        prop_assert!(fleet.balanced(), "survivors: {:?}", fleet.loads());
        let survivors_settled = fleet.settled.iter().skip(1).all(|s| *s);
        prop_assert!(survivors_settled, "{:?}", fleet.settled);
    }
}

#[test]
fn a_joiner_is_balanced_within_two_rounds_for_1024_shards() {
    for workers in [1, 3, 7, 15] {
        let mut fleet = Fleet::new(1024);
        for w in 0..workers {
            fleet.join(&format!("w{w}"));
        }
        fleet.round(1).unwrap();
        fleet.round(2).unwrap();
        fleet.join("joiner");
        fleet.round(3).unwrap();
        fleet.round(4).unwrap();
        assert!(fleet.balanced(), "{workers} + 1: {:?}", fleet.loads());
    }
}

// ---- balancing by throughput ----

const THRESHOLD: f64 = 0.2;
const ROUNDS: u32 = 3;

fn by_throughput() -> Settings {
    Settings {
        balance: BalanceMode::Throughput(
            ThroughputBalance::new().threshold(THRESHOLD).rounds(ROUNDS),
        ),
        ..settings()
    }
}

fn rated(n: usize, owner: &str, rate: u64) -> Lease {
    let mut l = lease(n, Some(owner));
    l.throughput_bytes_per_sec = Some(rate);
    l
}

impl Fleet {
    fn by_throughput(shards: usize, rates: &[u64]) -> Self {
        let mut fleet = Fleet::new(shards);
        fleet.settings = by_throughput();
        fleet.set_rates(rates);
        fleet
    }

    fn set_rates(&mut self, rates: &[u64]) {
        self.rates = rates
            .iter()
            .enumerate()
            .map(|(n, r)| (sid(n), *r))
            .collect();
    }

    /// Each live worker's bytes per second and lease count.
    fn rate_loads(&self) -> Vec<(u64, usize)> {
        self.workers
            .iter()
            .filter(|(w, _, _)| !self.crashed.contains_key(w))
            .map(|(w, _, _)| {
                let held: Vec<&Lease> = self.table.values().filter(|l| l.is_owned_by(w)).collect();
                (
                    held.iter().map(|l| self.rates[&l.shard_id]).sum(),
                    held.len(),
                )
            })
            .collect()
    }

    /// The balance the rule promises once no move is left: every worker
    /// holding two or more leases is within its lightest lease plus the
    /// margin of the least loaded worker, and no worker holds nothing while
    /// another holds two.
    fn balanced_by_throughput(&self) -> Result<(), String> {
        let loads = self.rate_loads();
        let total: u64 = loads.iter().map(|(r, _)| r).sum();
        let mean = total as f64 / loads.len() as f64;
        let least = loads.iter().map(|(r, _)| *r).min().unwrap_or(0) as f64;
        for (w, _, _) in self
            .workers
            .iter()
            .filter(|(w, _, _)| !self.crashed.contains_key(w))
        {
            let held: Vec<u64> = self
                .table
                .values()
                .filter(|l| l.is_owned_by(w))
                .map(|l| self.rates[&l.shard_id])
                .collect();
            let load: u64 = held.iter().sum();
            let lightest = held.iter().copied().filter(|r| *r > 0).min();
            if let (true, Some(lightest)) = (held.len() >= 2, lightest)
                && load as f64 >= least + lightest as f64 + THRESHOLD * mean
            {
                return Err(format!("{w} at {load} could give {lightest}: {loads:?}"));
            }
        }
        let empty = loads.iter().any(|(_, n)| *n == 0);
        if empty && loads.iter().any(|(_, n)| *n >= 2) {
            return Err(format!("a worker holds nothing: {loads:?}"));
        }
        Ok(())
    }

    /// Run rounds until `limit`, returning the first round after which
    /// nothing moved for 10 rounds.
    fn run_until_still(&mut self, from: u64, limit: u64) -> Result<u64, TestCaseError> {
        let mut still_since = from;
        let mut moves = self.moves;
        for round in from..limit {
            self.round(round)?;
            if self.moves != moves {
                moves = self.moves;
                still_since = round + 1;
            } else if round + 1 - still_since >= 10 {
                return Ok(still_since);
            }
        }
        Err(TestCaseError::fail(format!(
            "still moving after {limit} rounds: {:?}",
            self.rate_loads()
        )))
    }
}

/// 12 shards, two of them carrying 80 % of the bytes (the case).
fn two_hot_of_twelve() -> Vec<u64> {
    let mut rates = vec![2_000; 12];
    rates[2] = 40_000;
    rates[3] = 40_000;
    rates
}

#[test]
fn two_hot_shards_end_on_different_workers_and_then_nothing_moves() {
    let mut fleet = Fleet::by_throughput(12, &two_hot_of_twelve());
    for w in ["a", "b", "c"] {
        fleet.join(w);
    }
    // Count mode's first takes put both hot shards on one worker here.
    fleet.round(1).unwrap();
    let owner = |n: usize| fleet.table[&sid(n)].owner.clone();
    assert_eq!(owner(2), owner(3), "set-up: both hot shards start together");
    let still = fleet.run_until_still(2, 200).unwrap();
    assert_ne!(
        fleet.table[&sid(2)].owner,
        fleet.table[&sid(3)].owner,
        "{:?}",
        fleet.rate_loads()
    );
    fleet.balanced_by_throughput().unwrap();
    let mut loads: Vec<u64> = fleet.rate_loads().iter().map(|(r, _)| *r).collect();
    loads.sort_unstable();
    assert_eq!(
        loads,
        vec![20_000, 40_000, 40_000],
        "the best split there is"
    );
    // Steady load: 10 more rounds (run_until_still saw 10), and 50 more.
    let moves = fleet.moves;
    for round in still + 10..still + 60 {
        fleet.round(round).unwrap();
    }
    assert_eq!(fleet.moves, moves, "churn under a steady load");
    assert!(fleet.settled.iter().all(|s| *s), "{:?}", fleet.settled);
}

#[test]
fn a_move_waits_for_rounds_in_a_row() {
    let s = by_throughput();
    let now = Instant::now();
    let leases = vec![
        rated(0, "a", 50_000),
        rated(1, "a", 50_000),
        rated(2, "b", 1_000),
    ];
    let workers = heartbeats(&["a", "b"]);
    let mut memory = Memory::default();
    for round in 0..ROUNDS {
        let at = now + SCAN * round;
        let plan = run_with(&s, &mut memory, "b", &leases, &workers, &[2], at);
        if round + 1 < ROUNDS {
            assert!(plan.request_handoff.is_empty(), "round {round}: {plan:?}");
            assert!(!plan.settled, "a worker counting rounds keeps listing");
        } else {
            assert_eq!(ids(&plan.request_handoff), vec![sid(0)], "round {round}");
        }
    }
}

#[test]
fn a_passing_imbalance_moves_nothing() {
    let s = by_throughput();
    let now = Instant::now();
    let skewed = vec![
        rated(0, "a", 50_000),
        rated(1, "a", 50_000),
        rated(2, "b", 1_000),
    ];
    let even = vec![
        rated(0, "a", 1_000),
        rated(1, "a", 1_000),
        rated(2, "b", 2_000),
    ];
    let workers = heartbeats(&["a", "b"]);
    let mut memory = Memory::default();
    for round in 0..ROUNDS * 4 {
        // Skewed for fewer rounds in a row than needed, then even again.
        let leases = if round % ROUNDS == ROUNDS - 1 {
            &even
        } else {
            &skewed
        };
        let at = now + SCAN * round;
        let plan = run_with(&s, &mut memory, "b", leases, &workers, &[2], at);
        assert!(plan.request_handoff.is_empty(), "round {round}: {plan:?}");
    }
}

#[test]
fn only_a_move_that_clears_the_margin_is_made() {
    let s = by_throughput();
    let now = Instant::now();
    let workers = heartbeats(&["a", "b"]);
    // a 30, b 20: mean 25, margin 5. Moving 10 makes b 30 (+ 5 > a): no.
    // Moving 2 makes b 22 (+ 5 ≤ 30): yes, and it is the best such move.
    let leases = vec![
        rated(0, "a", 10),
        rated(1, "a", 18),
        rated(2, "a", 2),
        rated(3, "b", 20),
    ];
    let mut memory = Memory::default();
    let mut last = Plan::default();
    for round in 0..ROUNDS {
        last = run_with(
            &s,
            &mut memory,
            "b",
            &leases,
            &workers,
            &[3],
            now + SCAN * round,
        );
    }
    assert_eq!(ids(&last.request_handoff), vec![sid(2)]);
    // a 21 + 9, b 20 + 9 … a close split: nothing to move, and settled.
    let close = vec![rated(0, "a", 12), rated(1, "a", 9), rated(2, "b", 20)];
    let mut memory = Memory::default();
    for round in 0..ROUNDS * 2 {
        let plan = run_with(
            &s,
            &mut memory,
            "b",
            &close,
            &workers,
            &[2],
            now + SCAN * round,
        );
        assert!(plan.request_handoff.is_empty(), "{plan:?}");
        assert!(plan.settled, "{plan:?}");
    }
}

#[test]
fn only_the_least_loaded_worker_pulls_and_a_donor_keeps_one_lease() {
    let s = by_throughput();
    let now = Instant::now();
    let workers = heartbeats(&["a", "b", "c"]);
    // a holds one huge lease; b is the least loaded; c is in between.
    let leases = vec![
        rated(0, "a", 100_000),
        rated(1, "b", 1_000),
        rated(2, "c", 10_000),
        rated(3, "c", 10_000),
    ];
    let (mut mb, mut mc) = (Memory::default(), Memory::default());
    for round in 0..ROUNDS * 2 {
        let at = now + SCAN * round;
        let pc = run_with(&s, &mut mc, "c", &leases, &workers, &[2, 3], at);
        assert!(pc.request_handoff.is_empty(), "c is not the least loaded");
        let pb = run_with(&s, &mut mb, "b", &leases, &workers, &[1], at);
        for l in &pb.request_handoff {
            assert_ne!(l.shard_id, sid(0), "a keeps its only lease");
        }
        if round + 1 >= ROUNDS {
            assert_eq!(ids(&pb.request_handoff), vec![sid(2)]);
        }
    }
}

#[test]
fn a_worker_with_nothing_gets_a_lease_even_without_figures() {
    let s = by_throughput();
    let now = Instant::now();
    let workers = heartbeats(&["a", "b"]);
    let leases: Vec<Lease> = (0..4).map(|n| lease(n, Some("a"))).collect();
    let mut memory = Memory::default();
    let mut asked = Vec::new();
    for round in 0..ROUNDS {
        asked = run_with(
            &s,
            &mut memory,
            "b",
            &leases,
            &workers,
            &[],
            now + SCAN * round,
        )
        .request_handoff;
    }
    assert_eq!(asked.len(), 1, "one lease at a time: {asked:?}");
}

#[test]
fn leases_without_a_figure_count_as_the_mean() {
    let s = by_throughput();
    let now = Instant::now();
    let workers = heartbeats(&["a", "b"]);
    // b's one lease has no figure: it counts as the mean of the known
    // ones (20), so b is at 20 and a at 40; the fleet's mean is 30, the
    // margin 6, and moving a 20 would leave b at 40 + 6 > 40: no move.
    let mut unknown = lease(2, Some("b"));
    unknown.throughput_bytes_per_sec = None;
    let leases = vec![rated(0, "a", 20), rated(1, "a", 20), unknown.clone()];
    let mut memory = Memory::default();
    for round in 0..ROUNDS * 2 {
        let plan = run_with(
            &s,
            &mut memory,
            "b",
            &leases,
            &workers,
            &[2],
            now + SCAN * round,
        );
        assert!(plan.request_handoff.is_empty(), "{plan:?}");
    }
    // Counted as zero instead, b would be at 0 and pull a 20.
    let mut zero = unknown;
    zero.throughput_bytes_per_sec = Some(0);
    let leases = vec![rated(0, "a", 20), rated(1, "a", 20), zero];
    let mut memory = Memory::default();
    let mut last = Plan::default();
    for round in 0..ROUNDS {
        last = run_with(
            &s,
            &mut memory,
            "b",
            &leases,
            &workers,
            &[2],
            now + SCAN * round,
        );
    }
    assert_eq!(ids(&last.request_handoff), vec![sid(0)]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any fleet and any load, balanced by throughput: the moves stop
    /// (then nothing moves for 10 rounds and every worker is settled),
    /// the split is as even as the rule promises, and after the load
    /// shifts it settles again.
    #[test]
    fn throughput_balancing_converges_and_never_oscillates(
        workers in 1usize..6,
        rates in prop::collection::vec(prop_oneof![3 => 0u64..5_000, 1 => 20_000u64..200_000], 1..30),
        shifted in prop::collection::vec(0u64..100_000, 30),
    ) {
        let shards = rates.len();
        let mut fleet = Fleet::by_throughput(shards, &rates);
        for w in 0..workers {
            fleet.join(&format!("w{w}"));
        }
        let still = fleet.run_until_still(1, 400)?;
        prop_assert!(fleet.balanced_by_throughput().is_ok(), "{:?}", fleet.balanced_by_throughput());
        prop_assert!(fleet.settled.iter().all(|s| *s), "{:?}", fleet.settled);

        fleet.set_rates(&shifted[..shards]);
        let before = fleet.moves;
        let again = fleet.run_until_still(still + 10, still + 410)?;
        prop_assert!(fleet.balanced_by_throughput().is_ok(), "after the shift: {:?}", fleet.balanced_by_throughput());
        // Each move lowers the sum of squared loads by a margin, so few
        // are needed: never more than one per lease and worker here.
        prop_assert!(fleet.moves - before <= shards * workers, "{} moves", fleet.moves - before);
        let moves = fleet.moves;
        for round in again + 10..again + 30 {
            fleet.round(round)?;
        }
        prop_assert_eq!(fleet.moves, moves, "moved under a steady load");
    }
}
