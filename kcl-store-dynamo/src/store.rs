//! [`DynamoStore`]: the handle, its tables, and the request helpers every
//! trait method is built from.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{ReturnValue, ReturnValuesOnConditionCheckFailure};
use kcl_core::{ApplicationName, Error, Lease, Result, ShardId, WorkerHeartbeat, WorkerId};

use crate::config::DynamoStoreBuilder;
use crate::error::{Kind, kind, malformed, map_sdk};
use crate::expr::Update;
use crate::item::{Item, LEASE_KEY, RawCheckpoint, Reader, s};

/// Hash key of the heartbeat table.
pub const WORKER_ID: &str = "workerId";
/// The heartbeat counter attribute.
pub const HEARTBEAT_COUNTER: &str = "heartbeatCounter";

/// Leases and checkpoints in a DynamoDB lease table Java KCL workers can
/// share, heartbeats in a table of their own. Cheap to clone; clones share
/// the client.
#[derive(Clone)]
pub struct DynamoStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) client: Client,
    pub(crate) application: ApplicationName,
    pub(crate) table: String,
    pub(crate) heartbeat_table: String,
    /// The checkpoint this store last saw for each shard, used as the
    /// expected value of the next checkpoint write so the usual checkpoint
    /// is one round trip. Only ever a guess: a stale entry costs one failed
    /// conditional write, never a wrong one.
    pub(crate) last_checkpoint: Mutex<HashMap<ShardId, RawCheckpoint>>,
}

impl std::fmt::Debug for DynamoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoStore")
            .field("application", &self.inner.application)
            .field("table", &self.inner.table)
            .field("heartbeat_table", &self.inner.heartbeat_table)
            .finish_non_exhaustive()
    }
}

/// How a conditional update ended.
pub(crate) enum Outcome {
    /// Written; the item as stored after the write.
    Written(Item),
    /// The condition failed; the item as it was, if it exists (from
    /// `ReturnValuesOnConditionCheckFailure`, or a follow-up read when the
    /// server did not return it).
    ConditionFailed(Option<Item>),
}

impl DynamoStore {
    /// A builder; see [`DynamoStoreBuilder`].
    pub fn builder() -> DynamoStoreBuilder {
        DynamoStoreBuilder::default()
    }

    pub(crate) fn from_parts(
        client: Client,
        application: ApplicationName,
        table: String,
        heartbeat_table: String,
    ) -> Self {
        DynamoStore {
            inner: Arc::new(Inner {
                client,
                application,
                table,
                heartbeat_table,
                last_checkpoint: Mutex::default(),
            }),
        }
    }

    /// The application namespace this store acts in.
    pub fn application(&self) -> &ApplicationName {
        &self.inner.application
    }

    /// The lease table's name.
    pub fn table_name(&self) -> &str {
        &self.inner.table
    }

    /// The heartbeat table's name.
    pub fn heartbeat_table_name(&self) -> &str {
        &self.inner.heartbeat_table
    }

    /// The underlying client (for tools and benchmarks).
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    pub(crate) fn table(&self) -> &str {
        &self.inner.table
    }

    pub(crate) fn parse(&self, item: &Item) -> Result<Lease> {
        Reader::new(self.table(), item).lease()
    }

    pub(crate) fn remember_checkpoint(&self, shard_id: &ShardId, item: &Item) {
        if let Some(raw) = RawCheckpoint::of(item) {
            self.cache().insert(shard_id.clone(), raw);
        }
    }

    pub(crate) fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<ShardId, RawCheckpoint>> {
        self.inner
            .last_checkpoint
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The lease item of `shard_id`, read consistently.
    pub(crate) async fn get_item(&self, shard_id: &ShardId) -> Result<Option<Item>> {
        let out = self
            .inner
            .client
            .get_item()
            .table_name(self.table())
            .key(LEASE_KEY, s(shard_id.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| map_sdk(self.table(), e))?;
        Ok(out.item.filter(|item| !item.is_empty()))
    }

    /// Run one conditional update of the lease of `shard_id`, returning the
    /// item after the write, or the item as it was when the condition
    /// failed.
    pub(crate) async fn update(&self, shard_id: &ShardId, update: Update) -> Result<Outcome> {
        let request = self
            .inner
            .client
            .update_item()
            .table_name(self.table())
            .key(LEASE_KEY, s(shard_id.as_str()))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        match update.apply(request).send().await {
            Ok(out) => Ok(Outcome::Written(out.attributes.unwrap_or_default())),
            Err(e) if kind(&e) == Kind::ConditionFailed => {
                let returned = match e.into_service_error() {
                    UpdateItemError::ConditionalCheckFailedException(c) => c.item,
                    _ => None,
                };
                let item = match returned.filter(|i| !i.is_empty()) {
                    Some(item) => Some(item),
                    // Servers that do not return the old item: read it.
                    None => self.get_item(shard_id).await?,
                };
                Ok(Outcome::ConditionFailed(item))
            }
            Err(e) => Err(map_sdk(self.table(), e)),
        }
    }

    /// Scan the whole lease table, page by page.
    pub(crate) async fn scan_leases(&self) -> Result<Vec<Lease>> {
        let mut leases = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .inner
                .client
                .scan()
                .table_name(self.table())
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| map_sdk(self.table(), e))?;
            for item in out.items() {
                leases.push(self.parse(item)?);
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(leases),
            }
        }
    }

    pub(crate) async fn beat(&self, worker: &WorkerId) -> Result<()> {
        let table = &self.inner.heartbeat_table;
        let mut update = Update::unconditional();
        update.add(HEARTBEAT_COUNTER, 1);
        let request = self
            .inner
            .client
            .update_item()
            .table_name(table)
            .key(WORKER_ID, s(worker.as_str()));
        update
            .apply(request)
            .send()
            .await
            .map_err(|e| map_sdk(table, e))?;
        Ok(())
    }

    pub(crate) async fn workers(&self) -> Result<Vec<WorkerHeartbeat>> {
        let table = &self.inner.heartbeat_table;
        let mut workers = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .inner
                .client
                .scan()
                .table_name(table)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| map_sdk(table, e))?;
            for item in out.items() {
                let reader = Reader::new(table, item);
                let id = reader
                    .string(WORKER_ID)?
                    .ok_or_else(|| malformed(table, "?", "no workerId"))?;
                workers.push(WorkerHeartbeat {
                    worker_id: WorkerId::new(id).map_err(|e| malformed(table, id, e))?,
                    counter: reader.number(HEARTBEAT_COUNTER)?.unwrap_or(0),
                });
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(workers),
            }
        }
    }

    pub(crate) async fn remove_heartbeat(&self, worker: &WorkerId) -> Result<()> {
        let table = &self.inner.heartbeat_table;
        self.inner
            .client
            .delete_item()
            .table_name(table)
            .key(WORKER_ID, s(worker.as_str()))
            .send()
            .await
            .map_err(|e| map_sdk(table, e))?;
        Ok(())
    }
}

/// `Conflict` naming the lease and what did not match.
pub(crate) fn conflict(shard_id: &ShardId, reason: &str) -> Error {
    Error::conflict(shard_id.as_str(), reason)
}
