//! Benchmarks for kcl live in `benches/` (see BENCHMARKS.md).
