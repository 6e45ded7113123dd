//! [`RedisStore`]: the trait implementations. Every compare-and-set is one
//! Lua script (see `scripts.rs`); reads and unconditional writes are plain
//! commands.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use kcl_core::{
    ApplicationName, CheckpointStore, Error, ExtendedSequenceNumber, Lease, LeaseStore,
    PendingCheckpoint, Result, ShardId, WorkerHeartbeat, WorkerId,
};
use redis::{FromRedisValue, Script, Value};

use crate::codec::{self, Fields};
use crate::config::RedisStoreBuilder;
use crate::connection::{Connection, Link};
use crate::error::{conflict, malformed};
use crate::keys::Keys;
use crate::scripts::Scripts;

/// How many shard ids one `SSCAN` asks for, and so how many leases one
/// pipelined round trip of `HGETALL`s reads while listing.
const LIST_PAGE: usize = 1000;

/// Leases, checkpoints and heartbeats of one application in Redis.
/// Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    link: Arc<Link>,
    application: ApplicationName,
    key_prefix: String,
    keys: Keys,
    scripts: Scripts,
    /// The server, with any password redacted.
    endpoint: String,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("endpoint", &self.inner.endpoint)
            .field("cluster", &self.inner.link.is_cluster())
            .field("application", &self.inner.application)
            .field("hash_tag", &self.inner.keys.tag())
            .finish_non_exhaustive()
    }
}

/// What a script answered.
enum Reply {
    Ok(Option<Value>),
    NotFound,
    Conflict(String),
    Backwards { value: String, sub: String },
}

impl RedisStore {
    /// A builder; see [`RedisStoreBuilder`].
    pub fn builder() -> RedisStoreBuilder {
        RedisStoreBuilder::default()
    }

    pub(crate) fn new(
        link: Arc<Link>,
        application: ApplicationName,
        key_prefix: &str,
        endpoint: String,
    ) -> Self {
        let keys = Keys::new(key_prefix, application.as_str());
        RedisStore {
            inner: Arc::new(Inner {
                link,
                application,
                key_prefix: key_prefix.to_string(),
                keys,
                scripts: Scripts::new(),
                endpoint,
            }),
        }
    }

    /// A store for another application on the same connection (as two
    /// applications sharing one server see it), with the same key prefix.
    pub fn with_application(&self, application: ApplicationName) -> Self {
        RedisStore::new(
            self.inner.link.clone(),
            application,
            &self.inner.key_prefix,
            self.inner.endpoint.clone(),
        )
    }

    /// The application namespace this store acts in.
    pub fn application(&self) -> &ApplicationName {
        &self.inner.application
    }

    /// The hash tag `{<prefix>:<application>}` that starts every key of
    /// this store, and so decides its Redis Cluster slot.
    pub fn hash_tag(&self) -> &str {
        self.inner.keys.tag()
    }

    fn connection(&self) -> Connection {
        self.inner.link.connection()
    }

    /// Send one command (or pipeline) and map its failure.
    async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T> {
        let mut connection = self.connection();
        cmd.query_async(&mut connection)
            .await
            .map_err(|e| self.inner.link.failed(&connection, e))
    }

    async fn query_pipeline<T: FromRedisValue>(&self, pipe: &redis::Pipeline) -> Result<T> {
        let mut connection = self.connection();
        pipe.query_async(&mut connection)
            .await
            .map_err(|e| self.inner.link.failed(&connection, e))
    }

    fn scripts(&self) -> &Scripts {
        &self.inner.scripts
    }

    async fn run(&self, script: &Script, keys: &[String], args: &[&[u8]]) -> Result<Value> {
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(key);
        }
        for arg in args {
            invocation.arg(*arg);
        }
        let mut connection = self.connection();
        invocation
            .invoke_async(&mut connection)
            .await
            .map_err(|e| self.inner.link.failed(&connection, e))
    }

    /// Run a script on one lease and decode its status reply.
    async fn run_on_lease(
        &self,
        script: &Script,
        shard_id: &ShardId,
        args: &[&[u8]],
    ) -> Result<Reply> {
        let value = self
            .run(script, &[self.inner.keys.lease(shard_id.as_str())], args)
            .await?;
        decode_reply(value)
    }

    /// A fenced write under `held`: `args` follow owner and generation.
    async fn fenced(&self, script: &Script, held: &Lease, args: &[&[u8]]) -> Result<Reply> {
        let Some(owner) = &held.owner else {
            return Err(conflict(
                &held.shard_id,
                "the held lease has no owner".into(),
            ));
        };
        let generation = held.generation.to_string();
        let mut all: Vec<&[u8]> = vec![owner.as_str().as_bytes(), generation.as_bytes()];
        all.extend_from_slice(args);
        self.run_on_lease(script, &held.shard_id, &all).await
    }
}

fn decode_reply(value: Value) -> Result<Reply> {
    let Value::Array(items) = value else {
        return Err(malformed(format!("unexpected script reply {value:?}")));
    };
    let mut items = items.into_iter();
    let status = items
        .next()
        .map(codec::bytes)
        .transpose()?
        .unwrap_or_default();
    let mut text = || -> Result<String> {
        let b = items
            .next()
            .map(codec::bytes)
            .transpose()?
            .unwrap_or_default();
        String::from_utf8(b).map_err(|_| malformed("a script reply that is not UTF-8"))
    };
    Ok(match status.as_slice() {
        b"ok" => Reply::Ok(items.next()),
        b"not_found" => Reply::NotFound,
        b"conflict" => Reply::Conflict(text()?),
        b"backwards" => Reply::Backwards {
            value: text()?,
            sub: text()?,
        },
        other => {
            return Err(malformed(format!(
                "unknown script status {:?}",
                String::from_utf8_lossy(other)
            )));
        }
    })
}

/// The outcome of a write under a lease, as the contract names it.
fn outcome(
    reply: Reply,
    shard_id: &ShardId,
    requested: Option<&ExtendedSequenceNumber>,
) -> Result<Option<Value>> {
    match reply {
        Reply::Ok(value) => Ok(value),
        Reply::NotFound => Err(Error::lease_not_found(shard_id)),
        Reply::Conflict(reason) => Err(conflict(shard_id, reason)),
        Reply::Backwards { value, sub } => {
            let stored = codec::position(shard_id.as_str(), Some(value), Some(sub))?;
            let requested = requested.ok_or_else(|| malformed("a refusal for no position"))?;
            let stored = stored.map_or_else(|| "?".to_string(), |s| s.to_string());
            Err(Error::checkpoint_backwards(shard_id, &stored, requested))
        }
    }
}

/// The lease a script returned with its `ok`.
fn returned_lease(value: Option<Value>, shard_id: &ShardId) -> Result<Lease> {
    let fields: Fields = codec::fields_from_value(value.unwrap_or(Value::Nil))?;
    codec::lease_from_fields(fields)?
        .ok_or_else(|| malformed(format!("lease {shard_id} vanished inside a script")))
}

#[async_trait]
impl LeaseStore for RedisStore {
    async fn create_lease_if_absent(&self, lease: &Lease) -> Result<bool> {
        let fields = codec::lease_to_fields(lease)?;
        let mut args: Vec<&[u8]> = vec![lease.shard_id.as_str().as_bytes()];
        for (name, value) in &fields {
            args.push(name.as_bytes());
            args.push(value);
        }
        let keys = [
            self.inner.keys.lease(lease.shard_id.as_str()),
            self.inner.keys.lease_index(),
        ];
        match self.run(&self.scripts().create_lease, &keys, &args).await? {
            Value::Int(1) => Ok(true),
            Value::Int(0) => Ok(false),
            other => Err(malformed(format!("create reply {other:?}"))),
        }
    }

    async fn get_lease(&self, shard_id: &ShardId) -> Result<Option<Lease>> {
        let value: Value = self
            .query(redis::cmd("HGETALL").arg(self.inner.keys.lease(shard_id.as_str())))
            .await?;
        codec::lease_from_fields(codec::fields_from_value(value)?)
    }

    async fn list_leases(&self) -> Result<Vec<Lease>> {
        let index = self.inner.keys.lease_index();
        let mut seen = HashSet::new();
        let mut leases = Vec::new();
        let mut cursor = 0u64;
        loop {
            // SSCAN may return an id twice; a page is read in one pipelined
            // round trip of HGETALLs.
            let (next, ids): (u64, Vec<String>) = self
                .query(
                    redis::cmd("SSCAN")
                        .arg(&index)
                        .arg(cursor)
                        .arg("COUNT")
                        .arg(LIST_PAGE),
                )
                .await?;
            let fresh: Vec<String> = ids
                .into_iter()
                .filter(|id| seen.insert(id.clone()))
                .collect();
            if !fresh.is_empty() {
                let mut pipe = redis::pipe();
                for id in &fresh {
                    pipe.cmd("HGETALL").arg(self.inner.keys.lease(id));
                }
                let values: Vec<Value> = self.query_pipeline(&pipe).await?;
                for value in values {
                    // A lease deleted since the scan reads as empty: skip it.
                    if let Some(lease) = codec::lease_from_fields(codec::fields_from_value(value)?)?
                    {
                        leases.push(lease);
                    }
                }
            }
            if next == 0 {
                return Ok(leases);
            }
            cursor = next;
        }
    }

    async fn take_lease(&self, observed: &Lease, new_owner: &WorkerId) -> Result<Lease> {
        let counter = observed.counter.to_string();
        let generation = observed.generation.to_string();
        // A lease never taken (new or re-created) starts a random epoch, so
        // its fence never repeats an earlier life's.
        let epoch = Lease::random_generation_epoch().to_string();
        let reply = self
            .run_on_lease(
                &self.scripts().take_lease,
                &observed.shard_id,
                &[
                    counter.as_bytes(),
                    generation.as_bytes(),
                    new_owner.as_str().as_bytes(),
                    epoch.as_bytes(),
                ],
            )
            .await?;
        returned_lease(
            outcome(reply, &observed.shard_id, None)?,
            &observed.shard_id,
        )
    }

    async fn renew_lease(&self, held: &Lease) -> Result<Lease> {
        let rate = held
            .throughput_bytes_per_sec
            .map_or_else(String::new, |r| r.to_string());
        let reply = self
            .fenced(&self.scripts().renew_lease, held, &[rate.as_bytes()])
            .await?;
        returned_lease(outcome(reply, &held.shard_id, None)?, &held.shard_id)
    }

    async fn release_lease(&self, held: &Lease, to: Option<&WorkerId>) -> Result<()> {
        let to = to.map_or(&b""[..], |w| w.as_str().as_bytes());
        let reply = self
            .fenced(&self.scripts().release_lease, held, &[to])
            .await?;
        outcome(reply, &held.shard_id, None).map(drop)
    }

    async fn request_handoff(&self, observed: &Lease, to: &WorkerId) -> Result<()> {
        let owner = observed.owner.as_ref().map_or("", WorkerId::as_str);
        let generation = observed.generation.to_string();
        let reply = self
            .run_on_lease(
                &self.scripts().request_handoff,
                &observed.shard_id,
                &[
                    owner.as_bytes(),
                    generation.as_bytes(),
                    to.as_str().as_bytes(),
                ],
            )
            .await?;
        outcome(reply, &observed.shard_id, None).map(drop)
    }

    async fn update_checkpoint(
        &self,
        held: &Lease,
        checkpoint: &ExtendedSequenceNumber,
    ) -> Result<()> {
        let (value, sub) = checkpoint.to_parts();
        let sub = sub.to_string();
        let reply = self
            .fenced(
                &self.scripts().update_checkpoint,
                held,
                &[value.as_bytes(), sub.as_bytes()],
            )
            .await?;
        outcome(reply, &held.shard_id, Some(checkpoint)).map(drop)
    }

    async fn prepare_checkpoint(&self, held: &Lease, pending: &PendingCheckpoint) -> Result<()> {
        let (value, sub) = pending.sequence.to_parts();
        let sub = sub.to_string();
        let (has_state, state): (&[u8], &[u8]) = match &pending.state {
            Some(state) => (b"1", state),
            None => (b"0", b""),
        };
        let reply = self
            .fenced(
                &self.scripts().prepare_checkpoint,
                held,
                &[value.as_bytes(), sub.as_bytes(), has_state, state],
            )
            .await?;
        outcome(reply, &held.shard_id, Some(&pending.sequence)).map(drop)
    }

    async fn update_child_shard_ids(&self, held: &Lease, children: &[ShardId]) -> Result<()> {
        let children = codec::join_shard_ids(children);
        let reply = self
            .fenced(
                &self.scripts().update_child_shard_ids,
                held,
                &[children.as_bytes()],
            )
            .await?;
        outcome(reply, &held.shard_id, None).map(drop)
    }

    async fn pin_start(&self, held: &Lease, at: SystemTime) -> Result<()> {
        let millis = Lease::millis_since_epoch(at).to_string();
        let reply = self
            .fenced(&self.scripts().pin_start, held, &[millis.as_bytes()])
            .await?;
        outcome(reply, &held.shard_id, None).map(drop)
    }

    async fn withdraw_handoff(&self, observed: &Lease, requester: &WorkerId) -> Result<()> {
        let owner = observed.owner.as_ref().map_or("", WorkerId::as_str);
        let generation = observed.generation.to_string();
        let reply = self
            .run_on_lease(
                &self.scripts().withdraw_handoff,
                &observed.shard_id,
                &[
                    owner.as_bytes(),
                    generation.as_bytes(),
                    requester.as_str().as_bytes(),
                ],
            )
            .await?;
        outcome(reply, &observed.shard_id, None).map(drop)
    }

    async fn delete_lease(&self, shard_id: &ShardId) -> Result<()> {
        // Unconditional: the hash and its index entry go in one MULTI.
        let () = self
            .query_pipeline(
                redis::pipe()
                    .atomic()
                    .del(self.inner.keys.lease(shard_id.as_str()))
                    .ignore()
                    .srem(self.inner.keys.lease_index(), shard_id.as_str())
                    .ignore(),
            )
            .await?;
        Ok(())
    }

    async fn reset_checkpoint(
        &self,
        shard_id: &ShardId,
        checkpoint: &ExtendedSequenceNumber,
    ) -> Result<()> {
        let (value, sub) = checkpoint.to_parts();
        let sub = sub.to_string();
        let reply = self
            .run_on_lease(
                &self.scripts().reset_checkpoint,
                shard_id,
                &[value.as_bytes(), sub.as_bytes()],
            )
            .await?;
        outcome(reply, shard_id, None).map(drop)
    }

    async fn heartbeat(&self, worker: &WorkerId) -> Result<()> {
        let _: i64 = self
            .query(
                redis::cmd("HINCRBY")
                    .arg(self.inner.keys.workers())
                    .arg(worker.as_str())
                    .arg(1),
            )
            .await?;
        Ok(())
    }

    async fn list_workers(&self) -> Result<Vec<WorkerHeartbeat>> {
        let value: Value = self
            .query(redis::cmd("HGETALL").arg(self.inner.keys.workers()))
            .await?;
        codec::fields_from_value(value)?
            .into_iter()
            .map(|(worker, counter)| {
                let counter = std::str::from_utf8(&counter)
                    .ok()
                    .and_then(|c| c.parse().ok())
                    .ok_or_else(|| malformed(format!("heartbeat counter of {worker}")))?;
                Ok(WorkerHeartbeat {
                    worker_id: WorkerId::new(worker)?,
                    counter,
                })
            })
            .collect()
    }

    async fn remove_worker(&self, worker: &WorkerId) -> Result<()> {
        let _: i64 = self
            .query(
                redis::cmd("HDEL")
                    .arg(self.inner.keys.workers())
                    .arg(worker.as_str()),
            )
            .await?;
        Ok(())
    }
}

#[async_trait]
impl CheckpointStore for RedisStore {
    async fn get_checkpoint(&self, shard_id: &ShardId) -> Result<Option<ExtendedSequenceNumber>> {
        let (value, sub): (Option<String>, Option<String>) = self
            .query(
                redis::cmd("HMGET")
                    .arg(self.inner.keys.checkpoint(shard_id.as_str()))
                    .arg(codec::CHECKPOINT)
                    .arg(codec::CHECKPOINT_SUB),
            )
            .await?;
        codec::position(shard_id.as_str(), value, sub)
    }

    async fn set_checkpoint(
        &self,
        shard_id: &ShardId,
        checkpoint: &ExtendedSequenceNumber,
    ) -> Result<()> {
        let (value, sub) = checkpoint.to_parts();
        let sub = sub.to_string();
        let keys = [self.inner.keys.checkpoint(shard_id.as_str())];
        let reply = decode_reply(
            self.run(
                &self.scripts().set_checkpoint,
                &keys,
                &[value.as_bytes(), sub.as_bytes()],
            )
            .await?,
        )?;
        match outcome(reply, shard_id, Some(checkpoint)) {
            Ok(_) => Ok(()),
            Err(Error::NotFound { .. }) => Err(malformed("set_checkpoint answered not_found")),
            Err(e) => Err(e),
        }
    }
}
