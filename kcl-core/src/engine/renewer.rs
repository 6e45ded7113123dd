//! The lease renewer: renews held leases every `renew_interval`, sends the
//! heartbeat, and tells consumers of lost leases and hand-off requests.

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::processor::ProcessorFactory;

use super::consumer::Control;
use super::metric;
use super::worker::{Engine, lock_held};

pub(crate) async fn run<F: ProcessorFactory>(engine: &Engine<F>, stop: &CancellationToken) {
    let config = engine.config();
    let mut tick = tokio::time::interval(config.renew_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        renew_all(engine).await;
    }
}

async fn renew_all<F: ProcessorFactory>(engine: &Engine<F>) {
    let config = engine.config();
    // Every call is bounded, so one hung store call cannot stop renewals
    // (and the "no renew for a lease duration" rule still fires).
    let bound = config.renew_interval;
    let heartbeat = tokio::time::timeout(bound, engine.store.heartbeat(&engine.me));
    let snapshot: Vec<_> = lock_held(engine)
        .iter()
        .filter(|(_, h)| !h.lost.is_cancelled())
        .map(|(id, h)| (id.clone(), h.held.clone()))
        .collect();
    let renewals = futures::future::join_all(snapshot.iter().map(|(_, lease)| async {
        match tokio::time::timeout(bound, engine.store.renew_lease(lease)).await {
            Ok(result) => result,
            Err(_) => Err(Error::Unavailable {
                service: "lease store",
                source: Some("renew timed out".into()),
            }),
        }
    }));
    let (heartbeat, results) = tokio::join!(heartbeat, renewals);
    match heartbeat {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "heartbeat failed"),
        Err(_) => tracing::warn!("heartbeat timed out"),
    }
    let now = Instant::now();
    let mut held = lock_held(engine);
    for ((shard_id, lease), result) in snapshot.into_iter().zip(results) {
        let Some(handle) = held.get_mut(&shard_id) else {
            continue;
        };
        if handle.held.generation != lease.generation || handle.lost.is_cancelled() {
            continue;
        }
        match result {
            Ok(renewed) => {
                handle.last_renewed = now;
                if let Some(to) = renewed.handoff_to.filter(|to| *to != engine.me) {
                    handle.control.send_if_modified(|c| {
                        let run = *c == Control::Run;
                        if run {
                            tracing::info!(shard = %shard_id, to = %to, "hand-off requested");
                            *c = Control::Handoff(to.clone());
                        }
                        run
                    });
                }
            }
            Err(e) if e.is_conflict() || matches!(e, Error::NotFound { .. }) => {
                tracing::warn!(shard = %shard_id, error = %e, "renew refused: lease lost");
                handle.lost.cancel();
                metrics::counter!(metric::LEASES_LOST, "worker" => engine.me.to_string())
                    .increment(1);
            }
            Err(e) => {
                if now.duration_since(handle.last_renewed) >= config.lease_duration {
                    tracing::warn!(shard = %shard_id, error = %e, "no renew succeeded for a lease duration; stopping the shard");
                    handle.lost.cancel();
                    metrics::counter!(metric::LEASES_LOST, "worker" => engine.me.to_string())
                        .increment(1);
                } else {
                    tracing::warn!(shard = %shard_id, error = %e, "renew failed; will retry");
                }
            }
        }
    }
}
