//! The key layout. Every key of one application starts with the hash tag
//! `{<prefix>:<application>}`, so Redis Cluster puts all of them in one
//! slot and every script (which touches at most a lease and the lease
//! index) stays within one slot.
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `{p:app}:lease:<shard id>` | hash | one lease (fields in `codec.rs`) |
//! | `{p:app}:leases` | set | the shard ids that have a lease, for listing |
//! | `{p:app}:workers` | hash | worker id → heartbeat counter |
//! | `{p:app}:checkpoint:<shard id>` | hash | a [`CheckpointStore`](kcl_core::CheckpointStore) checkpoint |
//!
//! The application name cannot hold `:` or braces and the prefix cannot
//! hold braces, so two (prefix, application) pairs never share a tag, and
//! the first `}` of every key closes the tag whatever the shard id holds.

/// The keys of one application under one prefix.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    tag: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str, application: &str) -> Self {
        Keys {
            tag: format!("{{{prefix}:{application}}}"),
        }
    }

    /// The hash tag every key starts with.
    pub(crate) fn tag(&self) -> &str {
        &self.tag
    }

    pub(crate) fn lease(&self, shard_id: &str) -> String {
        format!("{}:lease:{shard_id}", self.tag)
    }

    pub(crate) fn lease_index(&self) -> String {
        format!("{}:leases", self.tag)
    }

    pub(crate) fn workers(&self) -> String {
        format!("{}:workers", self.tag)
    }

    pub(crate) fn checkpoint(&self, shard_id: &str) -> String {
        format!("{}:checkpoint:{shard_id}", self.tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slot-deciding part of a key, as Redis Cluster computes it.
    fn hash_tag(key: &str) -> &str {
        if let Some(open) = key.find('{')
            && let Some(len) = key[open + 1..].find('}')
            && len > 0
        {
            return &key[open + 1..open + 1 + len];
        }
        key
    }

    #[test]
    fn every_key_of_an_application_shares_one_hash_tag() {
        let keys = Keys::new("kcl", "orders");
        for key in [
            keys.lease("shardId-000000000001"),
            keys.lease("odd}{shard"),
            keys.lease_index(),
            keys.workers(),
            keys.checkpoint("shardId-{7}"),
        ] {
            assert_eq!(hash_tag(&key), "kcl:orders", "{key}");
        }
        assert_ne!(
            hash_tag(&Keys::new("kcl", "other").lease_index()),
            "kcl:orders"
        );
    }
}
