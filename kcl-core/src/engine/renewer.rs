//! The lease renewer: renews a snapshot of the held leases and sends the
//! heartbeat, and returns what happened. It changes nothing itself: the
//! worker's loop applies the results to the leases it owns.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::ids::{ShardId, WorkerId};
use crate::lease::Lease;
use crate::store::LeaseStore;

/// The outcome of one lease's renew.
#[derive(Debug)]
pub(crate) struct Renewed {
    pub(crate) shard_id: ShardId,
    /// The generation renewed (a result for an older holding is ignored).
    pub(crate) generation: u64,
    /// When the renew was sent: a peer cannot see the lease expire before
    /// this instant plus a lease duration.
    pub(crate) sent: Instant,
    pub(crate) result: Result<Lease>,
}

/// One renew round: the leases' results and, if a heartbeat was sent and
/// succeeded, when it was sent.
#[derive(Debug)]
pub(crate) struct Round {
    pub(crate) beat: Option<Instant>,
    pub(crate) leases: Vec<Renewed>,
}

/// Send the heartbeat, bounded by `bound`; returns when it was sent if it
/// succeeded.
pub(crate) async fn beat(
    store: &dyn LeaseStore,
    me: &WorkerId,
    bound: Duration,
) -> Option<Instant> {
    let sent = Instant::now();
    match tokio::time::timeout(bound, store.heartbeat(me)).await {
        Ok(Ok(())) => Some(sent),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "heartbeat failed");
            None
        }
        Err(_) => {
            tracing::warn!("heartbeat timed out");
            None
        }
    }
}

/// Renew every lease in `held` (each call bounded by `bound`, so one hung
/// call cannot stall the others) and, if asked, send the heartbeat,
/// concurrently.
pub(crate) async fn renew_all(
    store: Arc<dyn LeaseStore>,
    me: WorkerId,
    held: Vec<Lease>,
    bound: Duration,
    heartbeat: bool,
) -> Round {
    let heartbeat = async {
        if heartbeat {
            beat(&*store, &me, bound).await
        } else {
            None
        }
    };
    let renewals = futures::future::join_all(held.into_iter().map(|lease| {
        let store = Arc::clone(&store);
        async move {
            let sent = Instant::now();
            let result = match tokio::time::timeout(bound, store.renew_lease(&lease)).await {
                Ok(result) => result,
                Err(_) => Err(Error::Unavailable {
                    service: "lease store",
                    source: Some("renew timed out".into()),
                }),
            };
            Renewed {
                shard_id: lease.shard_id,
                generation: lease.generation,
                sent,
                result,
            }
        }
    }));
    let (beat, leases) = tokio::join!(heartbeat, renewals);
    Round { beat, leases }
}

/// Whether a renew error means the lease is gone for good (fenced or
/// deleted), rather than a store that may answer next time.
pub(crate) fn is_lost(e: &Error) -> bool {
    e.is_conflict() || matches!(e, Error::NotFound { .. })
}
