//! The Lua scripts: one per compare-and-set, each kept as a `.lua` file in
//! `src/scripts/` and sent as `common.lua` followed by its own body (except
//! `update_checkpoint.lua`, the hot path, which stands alone).
//!
//! [`redis::Script`] runs a script with `EVALSHA` and loads it on a
//! `NOSCRIPT` reply, so scripts survive a server restart or failover
//! (which empties the script cache) without our help.

use redis::Script;

const COMMON: &str = include_str!("scripts/common.lua");

/// Every script the store runs, compiled once per store.
pub(crate) struct Scripts {
    pub(crate) create_lease: Script,
    pub(crate) take_lease: Script,
    pub(crate) renew_lease: Script,
    pub(crate) release_lease: Script,
    pub(crate) request_handoff: Script,
    pub(crate) update_checkpoint: Script,
    pub(crate) prepare_checkpoint: Script,
    pub(crate) update_child_shard_ids: Script,
    pub(crate) reset_checkpoint: Script,
    pub(crate) pin_start: Script,
    pub(crate) withdraw_handoff: Script,
    pub(crate) set_checkpoint: Script,
}

fn with_common(body: &str) -> Script {
    Script::new(&format!("{COMMON}\n{body}"))
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Scripts {
            create_lease: with_common(include_str!("scripts/create_lease.lua")),
            take_lease: with_common(include_str!("scripts/take_lease.lua")),
            renew_lease: with_common(include_str!("scripts/renew_lease.lua")),
            release_lease: with_common(include_str!("scripts/release_lease.lua")),
            request_handoff: with_common(include_str!("scripts/request_handoff.lua")),
            // The hot path carries its own (unrolled) comparison.
            update_checkpoint: Script::new(include_str!("scripts/update_checkpoint.lua")),
            prepare_checkpoint: with_common(include_str!("scripts/prepare_checkpoint.lua")),
            update_child_shard_ids: with_common(include_str!("scripts/update_child_shard_ids.lua")),
            reset_checkpoint: with_common(include_str!("scripts/reset_checkpoint.lua")),
            pin_start: with_common(include_str!("scripts/pin_start.lua")),
            withdraw_handoff: with_common(include_str!("scripts/withdraw_handoff.lua")),
            set_checkpoint: with_common(include_str!("scripts/set_checkpoint.lua")),
        }
    }
}

impl std::fmt::Debug for Scripts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scripts").finish_non_exhaustive()
    }
}
