#!/usr/bin/env bash
# Runs every benchmark in benches/src/bin against real servers (started as
# for the tests) and prints each figure as a ratio against its baseline
# measured in the same run. Figures are collected in BENCHMARKS.md.
#
# Arguments name benchmarks to run (default: all), e.g.
# `scripts/bench-all.sh engine kpl_deaggregate`.
#
# `--smoke` (first argument) is what CI runs: a debug build, each benchmark
# at a size that takes seconds, failing if one fails or hangs. Its figures
# mean nothing (debug build, tiny sizes); it proves every benchmark still
# builds, starts its servers and runs to the end.
set -euo pipefail
shopt -s nullglob
cd "$(dirname "$0")/.."
smoke=false
if [ "${1:-}" = --smoke ]; then
    smoke=true
    shift
fi
source scripts/lib/servers.sh
start_all_servers

# kcl-cli's bins too: the multilang benchmark runs kcl-sample-child.
if $smoke; then
    profile=debug
    cargo build -p kcl-benches -p kcl-cli --bins
else
    profile=release
    cargo build --release -p kcl-benches -p kcl-cli --bins
fi

# Smoke-run arguments: small enough for seconds in a debug build.
smoke_args() {
    case "$1" in
    balance) echo --steady-s 2 --limit-s 15 ;;
    dynamo_checkpoint) echo 20 ;;
    engine) echo --records 2000 --rounds 1 --lease-ms 500 ;;
    fanout) echo --seconds 2 --rate 50 --subscriptions 10 ;;
    kinesis_drain) echo --records 2000 ;;
    kpl_deaggregate) echo 0.1 ;;
    multilang) echo 2000 ;;
    postgres_checkpoint | redis_checkpoint) echo 0.5 ;;
    scale) echo --shards 200 --workers 4 --baseline-shards 20 --single-shards 100 --server-shards 100 --lease-ms 2000 --settle 1 --timeout 120 ;;
    startup) echo --rounds 1 ;;
    store_cost) echo --shards 20 --workers 2 --window 5 --settle 1 ;;
    *)
        echo "bench-all.sh: no smoke arguments for benchmark '$1'; add them to smoke_args" >&2
        return 1
        ;;
    esac
}

benches=("$@")
if [ ${#benches[@]} -eq 0 ]; then
    for f in benches/src/bin/*.rs; do
        benches+=("$(basename "$f" .rs)")
    done
fi
for bench in "${benches[@]}"; do
    echo
    echo "== bench $bench"
    bin="${CARGO_TARGET_DIR:-target}/$profile/$bench"
    if $smoke; then
        args=$(smoke_args "$bench")
        SECONDS=0
        # shellcheck disable=SC2086 # the arguments are words
        timeout 300 "$bin" $args
        echo "   (smoke run took ${SECONDS}s)"
    else
        "$bin"
    fi
done
