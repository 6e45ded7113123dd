//! Building DynamoDB update and condition expressions for one conditional
//! write, with every attribute name and value as a placeholder.
//!
//! The conditions the lease writes use (see [`crate::item`] for the
//! attributes):
//! - *owned by W*: `checkpointOwner = W`, or no `checkpointOwner` and
//!   `leaseOwner = W` (Java 3.x's "actual owner": during a Java graceful
//!   hand-off the worker still processing is `checkpointOwner`);
//! - *generation is G*: `kclrsGeneration = G`, or, for G = 0, the attribute
//!   is absent (an item Java wrote);
//! - *counter is C*: `leaseCounter = C`, as Java's take and renew check;
//! - *checkpoint is X*: `checkpoint` and `checkpointSubSequenceNumber` are
//!   exactly the values read (DynamoDB cannot compare 56-digit strings as
//!   numbers, so the order is decided in Rust and the write only checks
//!   that nothing moved since);
//! - every update also requires `attribute_exists(leaseKey)`, so an update
//!   never creates an item, and no `entityType` other than `LEASE`, so it
//!   never touches one of Java KCL 3.5's items that are not leases.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::AttributeValue;
use kcl_core::WorkerId;

use crate::item::{
    CHECKPOINT, CHECKPOINT_OWNER, CHECKPOINT_SUB, ENTITY_LEASE, ENTITY_TYPE, GENERATION,
    LEASE_COUNTER, LEASE_KEY, LEASE_OWNER, RawCheckpoint, n, s,
};

/// One conditional `UpdateItem`'s expressions.
#[derive(Debug, Default)]
pub(crate) struct Update {
    set: Vec<String>,
    add: Vec<String>,
    remove: Vec<String>,
    conditions: Vec<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Update {
    /// An update of an item that must exist and be a lease (not one of
    /// Java KCL 3.5's other items that share the table).
    pub(crate) fn existing() -> Self {
        let mut u = Update::default();
        let key = u.name(LEASE_KEY);
        let entity = u.name(ENTITY_TYPE);
        let lease = u.value(s(ENTITY_LEASE));
        u.conditions.push(format!(
            "attribute_exists({key}) AND (attribute_not_exists({entity}) OR {entity} = {lease})"
        ));
        u
    }

    /// An update with no condition (heartbeats).
    pub(crate) fn unconditional() -> Self {
        Update::default()
    }

    fn name(&mut self, attribute: &str) -> String {
        let placeholder = format!("#{attribute}");
        self.names
            .insert(placeholder.clone(), attribute.to_string());
        placeholder
    }

    fn value(&mut self, value: AttributeValue) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values.insert(placeholder.clone(), value);
        placeholder
    }

    pub(crate) fn set(&mut self, attribute: &str, value: AttributeValue) -> &mut Self {
        let (name, value) = (self.name(attribute), self.value(value));
        self.set.push(format!("{name} = {value}"));
        self
    }

    pub(crate) fn add(&mut self, attribute: &str, amount: u64) -> &mut Self {
        let (name, value) = (self.name(attribute), self.value(n(amount)));
        self.add.push(format!("{name} {value}"));
        self
    }

    pub(crate) fn remove(&mut self, attribute: &str) -> &mut Self {
        let name = self.name(attribute);
        self.remove.push(name);
        self
    }

    /// Condition: the lease is held by `owner` (its actual owner, see the
    /// module docs).
    pub(crate) fn owned_by(&mut self, owner: &WorkerId) -> &mut Self {
        let (co, lo) = (self.name(CHECKPOINT_OWNER), self.name(LEASE_OWNER));
        let w = self.value(s(owner.as_str()));
        self.conditions.push(format!(
            "({co} = {w} OR (attribute_not_exists({co}) AND {lo} = {w}))"
        ));
        self
    }

    /// Condition: the lease has no owner at all.
    pub(crate) fn unowned(&mut self) -> &mut Self {
        let (co, lo) = (self.name(CHECKPOINT_OWNER), self.name(LEASE_OWNER));
        self.conditions.push(format!(
            "attribute_not_exists({lo}) AND attribute_not_exists({co})"
        ));
        self
    }

    /// Condition: the owner is `owner`, or none when `None`.
    pub(crate) fn owner_is(&mut self, owner: Option<&WorkerId>) -> &mut Self {
        match owner {
            Some(w) => self.owned_by(w),
            None => self.unowned(),
        }
    }

    /// Condition: string attribute `attribute` equals `value`.
    pub(crate) fn string_is(&mut self, attribute: &str, value: &str) -> &mut Self {
        let name = self.name(attribute);
        let value = self.value(s(value));
        self.conditions.push(format!("{name} = {value}"));
        self
    }

    pub(crate) fn generation_is(&mut self, generation: u64) -> &mut Self {
        let name = self.name(GENERATION);
        let value = self.value(n(generation));
        self.conditions.push(if generation == 0 {
            format!("(attribute_not_exists({name}) OR {name} = {value})")
        } else {
            format!("{name} = {value}")
        });
        self
    }

    pub(crate) fn counter_is(&mut self, counter: u64) -> &mut Self {
        let name = self.name(LEASE_COUNTER);
        let value = self.value(n(counter));
        self.conditions.push(if counter == 0 {
            format!("(attribute_not_exists({name}) OR {name} = {value})")
        } else {
            format!("{name} = {value}")
        });
        self
    }

    pub(crate) fn checkpoint_is(&mut self, raw: &RawCheckpoint) -> &mut Self {
        let name = self.name(CHECKPOINT);
        let value = self.value(s(raw.value.clone()));
        self.conditions.push(format!("{name} = {value}"));
        let sub = self.name(CHECKPOINT_SUB);
        let cond = match &raw.sub {
            Some(v) => format!("{sub} = {}", self.value(AttributeValue::N(v.clone()))),
            None => format!("attribute_not_exists({sub})"),
        };
        self.conditions.push(cond);
        self
    }

    /// The update expression (`SET … ADD … REMOVE …`).
    pub(crate) fn update_expression(&self) -> String {
        let mut parts = Vec::new();
        if !self.set.is_empty() {
            parts.push(format!("SET {}", self.set.join(", ")));
        }
        if !self.add.is_empty() {
            parts.push(format!("ADD {}", self.add.join(", ")));
        }
        if !self.remove.is_empty() {
            parts.push(format!("REMOVE {}", self.remove.join(", ")));
        }
        parts.join(" ")
    }

    /// The condition expression, if any.
    pub(crate) fn condition_expression(&self) -> Option<String> {
        (!self.conditions.is_empty()).then(|| self.conditions.join(" AND "))
    }

    /// Put the expressions on an `UpdateItem` request.
    pub(crate) fn apply(self, request: UpdateItemFluentBuilder) -> UpdateItemFluentBuilder {
        let request = request
            .update_expression(self.update_expression())
            .set_condition_expression(self.condition_expression())
            .set_expression_attribute_names(Some(self.names));
        if self.values.is_empty() {
            request
        } else {
            request.set_expression_attribute_values(Some(self.values))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_java_shaped_take() {
        let mut u = Update::existing();
        u.counter_is(3).generation_is(0);
        u.set(LEASE_OWNER, s("w"))
            .add(LEASE_COUNTER, 1)
            .remove(CHECKPOINT_OWNER);
        assert_eq!(
            u.update_expression(),
            "SET #leaseOwner = :v3 ADD #leaseCounter :v4 REMOVE #checkpointOwner"
        );
        assert_eq!(
            u.condition_expression().unwrap(),
            "attribute_exists(#leaseKey) AND (attribute_not_exists(#entityType) OR #entityType = :v0) \
             AND #leaseCounter = :v1 AND \
             (attribute_not_exists(#kclrsGeneration) OR #kclrsGeneration = :v2)"
        );
        assert_eq!(u.values[":v0"], s("LEASE"));
        assert_eq!(u.values[":v1"], n(3));
    }

    #[test]
    fn checkpoint_condition_handles_missing_sub_sequence() {
        let mut u = Update::existing();
        u.checkpoint_is(&RawCheckpoint {
            value: "TRIM_HORIZON".into(),
            sub: None,
        });
        assert!(
            u.condition_expression()
                .unwrap()
                .ends_with("attribute_not_exists(#checkpointSubSequenceNumber)")
        );
    }
}
