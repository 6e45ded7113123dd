//! Redis lease and checkpoint store for kcl.
//!
//! **Not implemented yet**: this crate is a placeholder that reserves its
//! place in the workspace; issue #5 fills it. It exports nothing.
