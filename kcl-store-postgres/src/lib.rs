//! PostgreSQL lease and checkpoint store for kcl, with transactional checkpoints.
//!
//! **Not implemented yet**: this crate is a placeholder that reserves its
//! place in the workspace; issue #6 fills it. It exports nothing.
