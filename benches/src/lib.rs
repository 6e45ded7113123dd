//! Benchmarks for kcl: one program per figure in `src/bin/`, each printing
//! its figure as a ratio against a baseline measured in the same run. Run
//! one with `cargo run --release -p kcl-benches --bin <name>`, all with
//! `scripts/bench-all.sh`; figures are collected in BENCHMARKS.md.

pub mod counting;
pub mod process;
pub mod stores;
