//! The daemon side (see the submodules).
