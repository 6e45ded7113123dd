//! The requests every trait method is built from: reads, one conditional
//! update, paged scans, heartbeats. Each reports the capacity DynamoDB
//! says it consumed through the `metrics` facade
//! (`kcl_dynamodb_consumed_capacity_units`, labels `table` and
//! `operation`), so the cost of a fleet shows up beside its other metrics.

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    ConsumedCapacity, ReturnConsumedCapacity, ReturnValue, ReturnValuesOnConditionCheckFailure,
};
use kcl_core::{Lease, Result, ShardId, WorkerHeartbeat, WorkerId};

use crate::error::{Kind, kind, malformed, map_sdk};
use crate::expr::Update;
use crate::item::{Item, LEASE_KEY, Reader, is_lease_item, s};
use crate::store::{DynamoStore, HEARTBEAT_COUNTER, Outcome, WORKER_ID};

/// The metric every request's consumed capacity is added to.
pub const CONSUMED_CAPACITY_METRIC: &str = "kcl_dynamodb_consumed_capacity_units";

/// Give [`CONSUMED_CAPACITY_METRIC`] its help text in the installed
/// recorder (call once after installing an exporter).
pub fn describe_metrics() {
    metrics::describe_counter!(
        CONSUMED_CAPACITY_METRIC,
        "DynamoDB capacity units the lease store consumed, in tenths of a unit (labels table, operation)."
    );
}

/// Add what one request consumed to [`CONSUMED_CAPACITY_METRIC`].
pub(crate) fn record_capacity(operation: &'static str, consumed: Option<&ConsumedCapacity>) {
    let Some(consumed) = consumed else { return };
    let units = consumed.capacity_units.unwrap_or(0.0);
    let table = consumed.table_name.clone().unwrap_or_default();
    metrics::counter!(CONSUMED_CAPACITY_METRIC, "table" => table, "operation" => operation)
        // Units come in halves (an eventually consistent read of 4 KB is
        // 0.5); the counter counts tenths to stay an integer.
        .increment((units * 10.0).round() as u64);
}

impl DynamoStore {
    /// The lease item of `shard_id`, read consistently.
    pub(crate) async fn get_item(&self, shard_id: &ShardId) -> Result<Option<Item>> {
        Ok(self.read_any_item(shard_id).await?.filter(is_lease_item))
    }

    /// The item stored under `shard_id`, whatever it is, read consistently.
    pub(crate) async fn read_any_item(&self, shard_id: &ShardId) -> Result<Option<Item>> {
        let out = self
            .inner
            .client
            .get_item()
            .table_name(self.table())
            .key(LEASE_KEY, s(shard_id.as_str()))
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| map_sdk(self.table(), e))?;
        record_capacity("GetItem", out.consumed_capacity());
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
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        match update.apply(request).send().await {
            Ok(out) => {
                record_capacity("UpdateItem", out.consumed_capacity());
                Ok(Outcome::Written(out.attributes.unwrap_or_default()))
            }
            Err(e) if kind(&e) == Kind::ConditionFailed => {
                let returned = match e.into_service_error() {
                    UpdateItemError::ConditionalCheckFailedException(c) => c.item,
                    _ => None,
                };
                let item = match returned.filter(|i| !i.is_empty() && is_lease_item(i)) {
                    Some(item) => Some(item),
                    // Servers that do not return the old item: read it.
                    None => self.get_item(shard_id).await?,
                };
                Ok(Outcome::ConditionFailed(item))
            }
            Err(e) => Err(map_sdk(self.table(), e)),
        }
    }

    /// Scan the whole lease table, page by page, eventually consistent (as
    /// Java KCL's scans: half the read units of a strongly consistent one;
    /// a stale item costs at most one failed conditional take, since every
    /// write is conditional). Items that are not leases (Java KCL 3.5's
    /// worker metrics, leader and migration items) are skipped.
    pub(crate) async fn scan_leases(&self) -> Result<Vec<Lease>> {
        let mut leases = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .inner
                .client
                .scan()
                .table_name(self.table())
                .consistent_read(false)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| map_sdk(self.table(), e))?;
            record_capacity("Scan", out.consumed_capacity());
            for item in out.items() {
                if let Some(lease) = self.parse_lease_item(item)? {
                    leases.push(lease);
                }
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
            .key(WORKER_ID, s(worker.as_str()))
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        let out = update
            .apply(request)
            .send()
            .await
            .map_err(|e| map_sdk(table, e))?;
        record_capacity("UpdateItem", out.consumed_capacity());
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
                .consistent_read(false)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| map_sdk(table, e))?;
            record_capacity("Scan", out.consumed_capacity());
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
