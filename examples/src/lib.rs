//! Runnable example programs for kcl: one file per program in `src/bin/`,
//! run with `cargo run --release -p kcl-examples --bin <name>`.
