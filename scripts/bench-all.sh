#!/usr/bin/env bash
# Runs every benchmark in benches/src/bin against real servers (started as
# for the tests) and prints each figure as a ratio against its baseline
# measured in the same run. Figures are collected in BENCHMARKS.md.
#
# Arguments name benchmarks to run (default: all), e.g.
# `scripts/bench-all.sh engine kpl_deaggregate`.
set -euo pipefail
shopt -s nullglob
cd "$(dirname "$0")/.."
source scripts/lib/servers.sh
start_all_servers

cargo build --release -p kcl-benches --bins
benches=("$@")
if [ ${#benches[@]} -eq 0 ]; then
    for f in benches/src/bin/*.rs; do
        benches+=("$(basename "$f" .rs)")
    done
fi
for bench in "${benches[@]}"; do
    echo
    echo "== bench $bench"
    "${CARGO_TARGET_DIR:-target}/release/$bench"
done
