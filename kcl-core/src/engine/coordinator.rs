//! The coordination loop behind [`Worker::run`](super::Worker::run): the
//! one owner of the leases this worker holds, as plain local state. One
//! `select!` over cancellation, consumers ending (reaped at once), and the
//! renew, scan and sync ticks; each store round trip runs as a future of
//! its own, so a slow scan or sync never delays a renewal.
//!
//! Scan ticks read the heartbeats and list the leases when
//! [`LeaseScans`] says so (see [`cadence`](super::cadence)). Because peers
//! may take this worker's leases once its heartbeat stops moving (see
//! [`taker`]), the worker fences itself on its heartbeat as
//! on its renewals: a consumer's deadline is the earlier of its lease's
//! last successful renew and the last successful heartbeat, each as
//! *sent*, plus nine tenths of a lease duration; and it plans no take
//! while its own heartbeat is older than that.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::error::{BoxError, Error, Result};
use crate::ids::{ShardId, WorkerId};
use crate::lease::{Lease, WorkerHeartbeat};
use crate::processor::ProcessorFactory;
use crate::store::LeaseStore;

use super::cadence::LeaseScans;
use super::config::WorkerConfig;
use super::consumer::{Consumer, ConsumerContext, Control, Outcome};
use super::executor::{Executed, execute};
use super::renewer::{Round, beat, is_lost, renew_all};
use super::taker::{self, Memory, Settings, View};
use super::throughput::{BalanceMode, Meter};
use super::{metric, shard_sync};

/// A held lease and its consumer.
struct Held {
    lease: Lease,
    task: tokio::task::Id,
    lost: CancellationToken,
    control: watch::Sender<Control>,
    deadline: watch::Sender<Instant>,
    /// When the last successful renew (or the take) was sent.
    renewed: Instant,
    /// The lease's throughput, sent with each renew.
    meter: Meter,
}

/// A shard backing off after its consumer failed here.
struct Backoff {
    failures: u32,
    until: Instant,
}

type Listing = Result<Vec<Lease>>;
/// A heartbeat listing and when it was sent.
type Polled = Result<(Vec<WorkerHeartbeat>, Instant)>;

/// The loop's state; see the module docs.
pub(crate) struct Coordinator<F: ProcessorFactory> {
    ctx: Arc<ConsumerContext<F>>,
    store: Arc<dyn LeaseStore>,
    me: WorkerId,
    held: HashMap<ShardId, Held>,
    tasks: HashMap<tokio::task::Id, ShardId>,
    consumers: JoinSet<Outcome>,
    memory: Memory,
    scans: LeaseScans,
    /// The last heartbeat listing and when it was sent.
    workers: (Vec<WorkerHeartbeat>, Instant),
    /// When this worker's last successful heartbeat was sent.
    beat_ok: Option<Instant>,
    backoff: HashMap<ShardId, Backoff>,
    fatal: Option<BoxError>,
    stop: CancellationToken,
}

/// A pending store round trip, or nothing.
async fn maybe<T>(call: &mut Option<BoxFuture<'static, T>>) -> T {
    match call {
        Some(call) => call.await,
        None => std::future::pending().await,
    }
}

impl<F: ProcessorFactory> Coordinator<F> {
    pub(crate) fn new(
        ctx: Arc<ConsumerContext<F>>,
        store: Arc<dyn LeaseStore>,
        me: WorkerId,
    ) -> Self {
        let config = &ctx.config;
        let beats_every = config.renew_interval.max(config.scan_interval);
        let scans = LeaseScans::new(lease_listing_every(config), beats_every);
        Coordinator {
            scans,
            workers: (Vec::new(), Instant::now()),
            beat_ok: None,
            ctx,
            store,
            me,
            held: HashMap::new(),
            tasks: HashMap::new(),
            consumers: JoinSet::new(),
            memory: Memory::default(),
            backoff: HashMap::new(),
            fatal: None,
            stop: CancellationToken::new(),
        }
    }

    fn config(&self) -> &WorkerConfig {
        &self.ctx.config
    }

    /// How long a lease stays ours after its last renew was sent: a peer
    /// cannot take it before a full lease duration from then, so stopping a
    /// margin earlier means the owner always stops first.
    fn hold_for(&self) -> Duration {
        let lease = self.config().lease_duration;
        lease - lease / 10
    }

    /// Whether this worker's own heartbeat is fresh enough to hold leases
    /// (see the module docs): no take is planned otherwise.
    fn beat_fresh(&self) -> bool {
        self.beat_ok
            .is_some_and(|sent| Instant::now() < sent + self.hold_for())
    }

    /// Whether the last successful heartbeat is older than a renew
    /// interval and a scan interval: one failed, so retry it now.
    fn beat_overdue(&self) -> bool {
        let due = self.config().renew_interval + self.config().scan_interval;
        self.beat_ok.is_none_or(|sent| Instant::now() >= sent + due)
    }

    fn beat_call(&self) -> BoxFuture<'static, Option<Instant>> {
        let store = Arc::clone(&self.store);
        let me = self.me.clone();
        let bound = self.config().renew_interval;
        Box::pin(async move { beat(&*store, &me, bound).await })
    }

    /// A heartbeat succeeded: every held lease's deadline moves with it
    /// (up to its own last renew).
    fn refresh_deadlines(&self) {
        for held in self.held.values() {
            let deadline = self.deadline(held.renewed);
            held.deadline.send_if_modified(|d| {
                let later = deadline > *d;
                if later {
                    *d = deadline;
                }
                later
            });
        }
    }

    /// The deadline of a lease renewed (or taken) by a call sent at `sent`.
    fn deadline(&self, sent: Instant) -> Instant {
        let beat = self.beat_ok.unwrap_or(sent);
        sent.min(beat) + self.hold_for()
    }

    pub(crate) async fn run(mut self, cancel: CancellationToken) -> Result<()> {
        tracing::info!("worker starting");
        let bound = self.config().renew_interval;
        self.beat_ok = beat(&*self.store, &self.me, bound).await;
        let mut renew_tick = tokio::time::interval(self.config().renew_interval);
        renew_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut scan_tick = tokio::time::interval(self.config().scan_interval);
        scan_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut renewing: Option<BoxFuture<'static, Round>> = None;
        let mut polling: Option<BoxFuture<'static, Polled>> = None;
        // A heartbeat retried on the scan tick after one failed, so one
        // slow call does not leave the deadlines a renew interval short.
        let mut beating: Option<BoxFuture<'static, Option<Instant>>> = None;
        let mut scanning: Option<BoxFuture<'static, Listing>> = None;
        let mut executing: Option<BoxFuture<'static, Executed>> = None;
        // The first sync runs before the first scan, so a fresh table has
        // leases to take.
        let mut syncing: Option<BoxFuture<'static, Result<usize>>> = Some(self.sync_call());
        let mut sync_at = Instant::now();
        let mut sync_retry = self.config().consumer.retry_min_delay;
        let mut first_sync_done = false;
        // Later syncs ride on the taker's next listing (no listing of
        // their own): set when one is due.
        let mut sync_wanted = false;
        let stop = self.stop.clone();
        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                _ = stop.cancelled() => break,
                Some(joined) = self.consumers.join_next_with_id() => self.reap(joined),
                round = maybe(&mut renewing) => {
                    renewing = None;
                    if round.beat.is_some() {
                        self.beat_ok = round.beat.max(self.beat_ok);
                        self.refresh_deadlines();
                    }
                    self.apply_renewals(round.leases);
                }
                _ = renew_tick.tick(), if renewing.is_none() => {
                    // Published every tick, not only on change, so an
                    // exporter's idle timeout keeps it while the worker lives.
                    self.count_held();
                    renewing = Some(self.renew_call(true));
                }
                beat = maybe(&mut beating) => {
                    beating = None;
                    if beat.is_some() {
                        self.beat_ok = beat.max(self.beat_ok);
                        self.refresh_deadlines();
                    }
                }
                polled = maybe(&mut polling) => {
                    polling = None;
                    match polled {
                        Ok((workers, sent)) => {
                            self.memory.observe_workers(&workers, Instant::now());
                            self.workers = (workers, sent);
                            let live = self.live();
                            if self.scans.due(sent, &live) && self.beat_fresh() {
                                scanning = Some(self.list_call());
                            }
                        }
                        Err(e) => {
                            // Retried on the next scan tick, not a renew
                            // interval later.
                            self.scans.changed();
                            tracing::warn!(error = %e, "reading the heartbeats failed");
                        }
                    }
                }
                listing = maybe(&mut scanning) => {
                    scanning = None;
                    match listing {
                        Ok(leases) => {
                            if sync_wanted && syncing.is_none() {
                                sync_wanted = false;
                                let leased = leases.iter().map(|l| l.shard_id.clone()).collect();
                                syncing = Some(self.sync_listed_call(leased));
                            }
                            let live = self.live();
                            let plan = self.plan(&leases);
                            self.scans.listed(self.workers.1, live, plan.settled);
                            let store = Arc::clone(&self.store);
                            executing = Some(Box::pin(execute(store, self.me.clone(), plan)));
                        }
                        Err(e) => {
                            self.scans.changed();
                            tracing::warn!(error = %e, "lease scan failed");
                        }
                    }
                }
                executed = maybe(&mut executing) => {
                    executing = None;
                    self.apply_executed(executed);
                }
                _ = scan_tick.tick(), if polling.is_none() && scanning.is_none() && executing.is_none() && first_sync_done => {
                    if renewing.is_none() && beating.is_none() && self.beat_overdue() {
                        beating = Some(self.beat_call());
                    }
                    let now = Instant::now();
                    let next_death = self.memory.next_death(&self.settings(), &self.me, self.workers.1);
                    if self.scans.beats_due(now, next_death) {
                        self.scans.beats_read(now);
                        polling = Some(self.poll_call());
                    }
                }
                synced = maybe(&mut syncing) => {
                    syncing = None;
                    first_sync_done = true;
                    let interval = self.config().consumer.shard_sync_interval;
                    match synced {
                        Ok(created) => {
                            if created > 0 {
                                self.scans.changed();
                            }
                            sync_retry = self.config().consumer.retry_min_delay;
                            sync_at = Instant::now() + interval;
                        }
                        Err(e) => {
                            let wait = sync_retry.min(interval);
                            tracing::warn!(error = %e, retry_in = ?wait, "shard sync failed");
                            sync_at = Instant::now() + wait;
                            sync_retry = (sync_retry * 2).min(self.config().consumer.retry_max_delay);
                        }
                    }
                }
                _ = tokio::time::sleep_until(sync_at), if syncing.is_none() && !sync_wanted => {
                    if first_sync_done {
                        sync_wanted = true;
                        self.scans.changed();
                    } else {
                        syncing = Some(self.sync_call());
                    }
                }
            }
        }
        drop((polling, scanning, executing, syncing));
        // A heartbeat in flight must land before the heartbeat is removed.
        if let Some(beat) = beating {
            beat.await;
        }
        self.shut_down(renewing).await;
        metrics::gauge!(metric::CURRENT_LEASES, "worker" => self.me.to_string()).set(0.0);
        tracing::info!("worker stopped");
        match self.fatal.take() {
            Some(e) => Err(Error::Processor(e)),
            None => Ok(()),
        }
    }

    /// Renew every held lease, each with its meter's latest figure.
    fn renew_call(&mut self, heartbeat: bool) -> BoxFuture<'static, Round> {
        let now = Instant::now();
        let snapshot: Vec<Lease> = self
            .held
            .values_mut()
            .filter(|h| !h.lost.is_cancelled())
            .map(|h| {
                let mut lease = h.lease.clone();
                lease.throughput_bytes_per_sec = h.meter.sample(now);
                lease
            })
            .collect();
        Box::pin(renew_all(
            Arc::clone(&self.store),
            self.me.clone(),
            snapshot,
            self.config().renew_interval,
            heartbeat,
        ))
    }

    fn list_call(&self) -> BoxFuture<'static, Listing> {
        let store = Arc::clone(&self.store);
        let bound = self.config().lease_duration;
        Box::pin(async move {
            tokio::time::timeout(bound, store.list_leases())
                .await
                .map_err(|_| timed_out("listing leases"))?
        })
    }

    fn poll_call(&self) -> BoxFuture<'static, Polled> {
        let store = Arc::clone(&self.store);
        let bound = self.config().lease_duration;
        Box::pin(async move {
            let sent = Instant::now();
            let workers = tokio::time::timeout(bound, store.list_workers())
                .await
                .map_err(|_| timed_out("reading heartbeats"))??;
            Ok((workers, sent))
        })
    }

    /// The live workers as of the last heartbeat listing.
    fn live(&self) -> BTreeSet<WorkerId> {
        self.memory.live(&self.settings(), &self.me, self.workers.1)
    }

    fn settings(&self) -> Settings {
        let config = self.config();
        Settings {
            lease_duration: config.lease_duration,
            renew_interval: config.renew_interval,
            scan_interval: config.scan_interval,
            take_interval: config.take_interval,
            handoff_timeout: config.handoff_timeout,
            max_leases: config.max_leases_per_worker,
            balance: config.balance_mode,
        }
    }

    fn sync_call(&self) -> BoxFuture<'static, Result<usize>> {
        let store = Arc::clone(&self.store);
        let source = Arc::clone(&self.ctx.source);
        let initial = self.config().consumer.initial_position;
        Box::pin(async move { shard_sync::sync_shards(&store, &source, initial).await })
    }

    fn sync_listed_call(&self, leased: HashSet<ShardId>) -> BoxFuture<'static, Result<usize>> {
        let store = Arc::clone(&self.store);
        let source = Arc::clone(&self.ctx.source);
        let initial = self.config().consumer.initial_position;
        Box::pin(async move { shard_sync::sync_listed(&store, &source, initial, &leased).await })
    }

    /// Apply renew results to the leases still held under the generation
    /// that was renewed.
    fn apply_renewals(&mut self, results: Vec<super::renewer::Renewed>) {
        for renewed in results {
            let deadline = self.deadline(renewed.sent);
            let Some(held) = self.held.get_mut(&renewed.shard_id) else {
                continue;
            };
            if held.lease.generation != renewed.generation || held.lost.is_cancelled() {
                continue;
            }
            match renewed.result {
                Ok(lease) => {
                    held.renewed = renewed.sent;
                    held.deadline.send_replace(deadline);
                    if let Some(to) = lease.handoff_to.as_ref().filter(|to| **to != self.me) {
                        let to = to.clone();
                        held.control.send_if_modified(|c| {
                            let run = *c == Control::Run;
                            if run {
                                tracing::info!(shard = %renewed.shard_id, to = %to, "hand-off requested");
                                *c = Control::Handoff(to.clone());
                            }
                            run
                        });
                    }
                    held.lease = lease;
                }
                Err(e) if is_lost(&e) => {
                    tracing::warn!(shard = %renewed.shard_id, error = %e, "renew refused: lease lost");
                    held.lost.cancel();
                }
                Err(e) => {
                    // The consumer's own deadline stops it if this goes on.
                    tracing::warn!(shard = %renewed.shard_id, error = %e, "renew failed; will retry");
                }
            }
        }
    }

    /// Plan a taker round from a listing; also tells consumers whose lease
    /// the listing shows as no longer theirs. Its time goes to
    /// [`metric::LEASE_TAKER_PLAN_SECONDS`].
    fn plan(&mut self, leases: &[Lease]) -> taker::Plan {
        // The wall clock, not tokio's (paused in tests): this is CPU work.
        let started = std::time::Instant::now();
        let plan = self.plan_round(leases);
        metrics::histogram!(metric::LEASE_TAKER_PLAN_SECONDS, "worker" => self.me.to_string())
            .record(started.elapsed().as_secs_f64());
        plan
    }

    /// [`plan`](Self::plan), untimed.
    fn plan_round(&mut self, leases: &[Lease]) -> taker::Plan {
        let listed: HashMap<&ShardId, &Lease> = leases.iter().map(|l| (&l.shard_id, l)).collect();
        for (shard_id, held) in &self.held {
            let ours = listed
                .get(shard_id)
                .is_some_and(|l| l.is_owned_by(&self.me) && l.generation == held.lease.generation);
            if !ours && !held.lost.is_cancelled() {
                tracing::warn!(shard = %shard_id, "the lease changed hands (a reset, a delete or a take): stopping its consumer");
                held.lost.cancel();
            }
        }
        let now = Instant::now();
        let busy: HashSet<ShardId> = self.held.keys().cloned().collect();
        let cooling: HashSet<ShardId> = self
            .backoff
            .iter()
            .filter(|(_, b)| b.until > now)
            .map(|(id, _)| id.clone())
            .collect();
        let settings = self.settings();
        let me = self.me.clone();
        let (workers, workers_read) = &self.workers;
        taker::plan(
            &mut self.memory,
            &settings,
            &View {
                me: &me,
                leases,
                workers,
                busy: &busy,
                cooling: &cooling,
                now,
                workers_read: *workers_read,
            },
        )
    }

    fn apply_executed(&mut self, executed: Executed) {
        let now = Instant::now();
        if !executed.taken.is_empty() || !executed.requested.is_empty() {
            self.scans.changed();
        }
        for lease in &executed.requested {
            metrics::counter!(metric::HANDOFFS_REQUESTED, "worker" => self.me.to_string())
                .increment(1);
            self.memory.requested(lease, now);
        }
        for (lease, sent) in executed.taken {
            metrics::counter!(metric::LEASES_TAKEN, "worker" => self.me.to_string()).increment(1);
            self.memory.taken(&lease.shard_id);
            self.start(lease, sent);
        }
    }

    /// Start a consumer on a lease this worker now holds.
    fn start(&mut self, lease: Lease, sent: Instant) {
        let shard_id = lease.shard_id.clone();
        if self.held.contains_key(&shard_id) {
            // The planner never takes a busy shard; if a take raced anyway,
            // the store fenced the old holding and its consumer is ending.
            tracing::warn!(shard = %shard_id, "a consumer is still ending here; not starting a second");
            return;
        }
        let lost = CancellationToken::new();
        let (control, control_rx) = watch::channel(Control::Run);
        let (deadline, deadline_rx) = watch::channel(self.deadline(sent));
        let meter = Meter::new(lease.throughput_bytes_per_sec, sent);
        let consumer = Consumer::new(
            Arc::clone(&self.ctx),
            lease.clone(),
            lost.clone(),
            control_rx,
        )
        .with_deadline(deadline_rx)
        .with_delivered(meter.counter());
        let span = tracing::info_span!("shard", shard = %shard_id, worker = %self.me);
        let task = self.consumers.spawn(consumer.run().instrument(span)).id();
        self.tasks.insert(task, shard_id.clone());
        self.held.insert(
            shard_id,
            Held {
                lease,
                task,
                lost,
                control,
                deadline,
                renewed: sent,
                meter,
            },
        );
        self.count_held();
    }

    fn count_held(&self) {
        metrics::gauge!(metric::CURRENT_LEASES, "worker" => self.me.to_string())
            .set(self.held.len() as f64);
    }

    /// A consumer ended: its `Outcome` is the one end signal.
    fn reap(
        &mut self,
        joined: std::result::Result<(tokio::task::Id, Outcome), tokio::task::JoinError>,
    ) {
        let (task, outcome) = match joined {
            Ok((task, outcome)) => (task, Some(outcome)),
            Err(e) => (e.id(), None),
        };
        let Some(shard_id) = self.tasks.remove(&task) else {
            return;
        };
        self.scans.changed();
        if self.held.get(&shard_id).is_some_and(|h| h.task == task) {
            self.held.remove(&shard_id);
        }
        self.count_held();
        metric::shard_released(&shard_id);
        match outcome {
            Some(Outcome::LeaseLost) => {
                metrics::counter!(metric::LEASES_LOST, "worker" => self.me.to_string())
                    .increment(1);
                self.backoff.remove(&shard_id);
            }
            Some(Outcome::Stopped(e)) => {
                tracing::error!(shard = %shard_id, error = %e, "processor failed; stopping the worker");
                self.fatal.get_or_insert(e);
                self.stop.cancel();
            }
            Some(Outcome::Panicked) | None => self.back_off(&shard_id),
            Some(Outcome::ShardEnded | Outcome::Released) => {
                self.backoff.remove(&shard_id);
            }
        }
    }

    /// Escalate a failing shard's backoff here: doubling from the retry
    /// delay to its maximum, one warning and one count per escalation.
    fn back_off(&mut self, shard_id: &ShardId) {
        let config = self.config();
        let (min, max) = (
            config.consumer.retry_min_delay,
            config.consumer.retry_max_delay,
        );
        let entry = self.backoff.entry(shard_id.clone()).or_insert(Backoff {
            failures: 0,
            until: Instant::now(),
        });
        entry.failures = entry.failures.saturating_add(1);
        let delay = min.saturating_mul(1u32 << entry.failures.min(16)).min(max);
        entry.until = Instant::now() + delay;
        tracing::warn!(shard = %shard_id, failures = entry.failures, retry_in = ?delay, "shard consumer failed; backing off before taking it again");
        metrics::counter!(metric::SHARD_BACKOFFS, metric::shard_labels(shard_id)).increment(1);
    }

    /// Graceful shutdown: the heartbeat goes first (peers stop counting
    /// this worker), every consumer gets `shutdown_requested` and releases
    /// its lease, renewals go on meanwhile; after the grace period, what is
    /// left is abandoned and every store call is bounded.
    async fn shut_down(&mut self, mut renewing: Option<BoxFuture<'static, Round>>) {
        tracing::info!("shutting down");
        let bound = self.config().renew_interval;
        // A heartbeat still in flight must land before the removal, or it
        // would list this worker again with a counter that never moves.
        if let Some(round) = renewing.take() {
            let round = round.await;
            if round.beat.is_some() {
                self.beat_ok = round.beat;
            }
            self.apply_renewals(round.leases);
        }
        match tokio::time::timeout(bound, self.store.remove_worker(&self.me)).await {
            // Unlisted, this worker is out of peers' heartbeat rule: from
            // now on only the renewals extend its deadlines.
            Ok(Ok(())) => self.beat_ok = None,
            Ok(Err(e)) => tracing::warn!(error = %e, "removing the heartbeat failed"),
            Err(_) => tracing::warn!("removing the heartbeat timed out"),
        }
        self.withdraw_handoffs(bound).await;
        for held in self.held.values() {
            held.control.send_if_modified(|c| {
                let run = *c == Control::Run;
                if run {
                    *c = Control::Shutdown;
                }
                run
            });
        }
        let grace = tokio::time::sleep(self.config().consumer.shutdown_grace);
        tokio::pin!(grace);
        let mut renew_tick = tokio::time::interval(self.config().renew_interval);
        renew_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !self.consumers.is_empty() {
            tokio::select! {
                biased;
                Some(joined) = self.consumers.join_next_with_id() => self.reap(joined),
                round = maybe(&mut renewing) => {
                    renewing = None;
                    self.apply_renewals(round.leases);
                }
                _ = renew_tick.tick(), if renewing.is_none() => {
                    // Leases only: the heartbeat is already gone.
                    renewing = Some(self.renew_call(false));
                }
                _ = &mut grace => {
                    tracing::warn!("shutdown grace period over; abandoning the remaining leases");
                    self.consumers.abort_all();
                    while let Some(joined) = self.consumers.join_next_with_id().await {
                        self.reap(joined);
                    }
                }
            }
        }
        drop(renewing);
        // A lease handed to this worker while it was stopping has no
        // consumer: give it back so a peer need not wait for it to expire.
        if let Ok(Ok(leases)) = tokio::time::timeout(bound, self.store.list_leases()).await {
            for lease in leases.iter().filter(|l| l.is_owned_by(&self.me)) {
                match tokio::time::timeout(bound, self.store.release_lease(lease, None)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::debug!(shard = %lease.shard_id, error = %e, "releasing a leftover lease failed")
                    }
                    Err(_) => {
                        tracing::debug!(shard = %lease.shard_id, "releasing a leftover lease timed out")
                    }
                }
            }
        }
    }
}

impl<F: ProcessorFactory> Coordinator<F> {
    /// Withdraw this worker's own pending hand-off requests, so no owner
    /// hands a lease to a worker that is gone (it would sit unread until
    /// it expired). All at once, bounded by `bound` in total; a request
    /// that could not be withdrawn is only a delay (its owner hands the
    /// lease to a worker with no heartbeat, and peers take it once it
    /// expires), never a second reader.
    async fn withdraw_handoffs(&mut self, bound: Duration) {
        let pending = self.memory.drain_pending();
        if pending.is_empty() {
            return;
        }
        let store = &self.store;
        let me = &self.me;
        let calls = pending.iter().map(|observed| async move {
            match store.withdraw_handoff(observed, me).await {
                Ok(()) => {}
                // The owner changed: the request went with it.
                Err(Error::Conflict { .. } | Error::NotFound { .. }) => {}
                Err(e) => {
                    tracing::warn!(shard = %observed.shard_id, error = %e, "withdrawing a hand-off request failed")
                }
            }
        });
        if tokio::time::timeout(bound, futures::future::join_all(calls))
            .await
            .is_err()
        {
            tracing::warn!("withdrawing the hand-off requests timed out");
        }
    }
}

/// The slow lease-listing cadence. In throughput mode it is at most the
/// balancing interval: a load shift changes only the leases' recorded
/// figures, which no heartbeat shows, so a settled worker on the slow
/// cadence would not see it (nor pull) until `lease_scan_interval`. Count
/// mode keeps the slow cadence: a lease count changes only through takes,
/// hand-offs and endings, which already trigger a listing.
fn lease_listing_every(config: &WorkerConfig) -> Duration {
    match config.balance_mode {
        BalanceMode::Throughput(_) => config.lease_scan_interval.min(config.take_interval),
        BalanceMode::Count => config.lease_scan_interval,
    }
}

fn timed_out(what: &'static str) -> Error {
    Error::Unavailable {
        service: "lease store",
        source: Some(format!("{what} timed out").into()),
    }
}
