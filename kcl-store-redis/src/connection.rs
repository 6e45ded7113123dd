//! The store's link to Redis: one server through a reconnecting
//! [`ConnectionManager`], or (feature `cluster`) a Redis Cluster through
//! `redis::cluster_async`, which follows `MOVED`/`ASK` redirections and
//! refreshes its slot map when the cluster fails over.
//!
//! A `READONLY` reply means the server under a single-server connection
//! was demoted to a replica (a Sentinel or manual failover, a DNS name or
//! virtual address that now points elsewhere). The connection manager
//! reconnects only when the connection drops, and a demoted primary keeps
//! its clients connected, so without help every later write would get
//! `READONLY` again, forever. [`Link::failed`] therefore replaces the
//! connection on `READONLY`; the next call connects afresh and reaches
//! whatever server the address names now.

use std::sync::RwLock;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, ServerErrorKind, Value};

use crate::error::from_redis;

/// The one owner of the store's connection.
pub(crate) struct Link {
    kind: Kind,
}

enum Kind {
    Single {
        /// The connection in use, numbered so that many calls failing at
        /// once on the same connection replace it once.
        current: RwLock<(u64, ConnectionManager)>,
        /// How to open a fresh connection: known for a store built from a
        /// URL, not for one handed a connection.
        reopen: Option<Box<(redis::Client, ConnectionManagerConfig)>>,
    },
    #[cfg(feature = "cluster")]
    Cluster(redis::cluster_async::ClusterConnection),
}

/// One call's handle on the link (cheap to clone).
#[derive(Clone)]
pub(crate) enum Connection {
    Single {
        number: u64,
        connection: ConnectionManager,
    },
    #[cfg(feature = "cluster")]
    Cluster(redis::cluster_async::ClusterConnection),
}

impl Link {
    /// A link to one server. With `reopen`, a `READONLY` reply makes it
    /// open a new connection from that client and configuration.
    pub(crate) fn single(
        connection: ConnectionManager,
        reopen: Option<(redis::Client, ConnectionManagerConfig)>,
    ) -> Link {
        Link {
            kind: Kind::Single {
                current: RwLock::new((0, connection)),
                reopen: reopen.map(Box::new),
            },
        }
    }

    /// A link to a cluster.
    #[cfg(feature = "cluster")]
    pub(crate) fn cluster(connection: redis::cluster_async::ClusterConnection) -> Link {
        Link {
            kind: Kind::Cluster(connection),
        }
    }

    /// Whether this link talks to a cluster.
    pub(crate) fn is_cluster(&self) -> bool {
        match &self.kind {
            Kind::Single { .. } => false,
            #[cfg(feature = "cluster")]
            Kind::Cluster(_) => true,
        }
    }

    /// The connection for one call.
    pub(crate) fn connection(&self) -> Connection {
        match &self.kind {
            Kind::Single { current, .. } => {
                let guard = current.read().unwrap_or_else(|p| p.into_inner());
                Connection::Single {
                    number: guard.0,
                    connection: guard.1.clone(),
                }
            }
            #[cfg(feature = "cluster")]
            Kind::Cluster(connection) => Connection::Cluster(connection.clone()),
        }
    }

    /// Map a failed call on `used` into the store's error, replacing the
    /// connection first when the server answered `READONLY`.
    pub(crate) fn failed(&self, used: &Connection, err: RedisError) -> kcl_core::Error {
        if err.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly) {
            self.reopen(used);
        }
        from_redis(err)
    }

    fn reopen(&self, used: &Connection) {
        let (
            Kind::Single {
                current,
                reopen: Some(reopen),
            },
            Connection::Single { number, .. },
        ) = (&self.kind, used)
        else {
            return;
        };
        let mut guard = current.write().unwrap_or_else(|p| p.into_inner());
        if guard.0 != *number {
            return; // another call replaced it already
        }
        // Lazy: connects on the next call, so this never waits here.
        let (client, config) = &**reopen;
        match ConnectionManager::new_lazy_with_config(client.clone(), config.clone()) {
            Ok(fresh) => {
                tracing::warn!(
                    "Redis answered READONLY (the server was demoted to a replica): \
                     reconnecting to reach the current primary"
                );
                *guard = (number + 1, fresh);
            }
            Err(e) => tracing::warn!(error = %e, "cannot reopen the Redis connection"),
        }
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single { connection, .. } => connection.req_packed_command(cmd),
            #[cfg(feature = "cluster")]
            Connection::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single { connection, .. } => {
                connection.req_packed_commands(pipeline, offset, count)
            }
            #[cfg(feature = "cluster")]
            Connection::Cluster(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single { connection, .. } => connection.get_db(),
            #[cfg(feature = "cluster")]
            Connection::Cluster(connection) => connection.get_db(),
        }
    }
}
