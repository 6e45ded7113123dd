//! The memory store has no backend errors of its own: every failure it
//! returns is one of the contract's outcomes, built with the constructors
//! every store shares (`Error::lease_not_found`, `Error::lease_fenced`,
//! `Error::checkpoint_backwards`). The file stays so that every store crate
//! has the same layout.
