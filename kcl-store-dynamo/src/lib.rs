//! DynamoDB lease and checkpoint store for kcl, sharing a lease table with Java KCL workers.
//!
//! **Not implemented yet**: this crate is a placeholder that reserves its
//! place in the workspace; issue #7 fills it. It exports nothing.
