#!/usr/bin/env bash
# Runs every test in the workspace against real servers.
#
# Starts each server the tests need (installing it first on a fresh
# machine) on a free loopback port, exports its address as KCL_TEST_*,
# sets KCL_TEST_REQUIRE_SERVERS=1 so no server-backed test can pass by
# skipping, runs `cargo test`, and stops only what it started.
#
# Extra arguments go to `cargo test` (e.g. `scripts/test-all.sh -p kcl-store-redis`).
set -euo pipefail
shopt -s nullglob
cd "$(dirname "$0")/.."
source scripts/lib/servers.sh
start_all_servers

export KCL_TEST_REQUIRE_SERVERS=1
echo "== cargo test"
# With arguments (e.g. `-p kcl-store-redis`), test only what they name.
scope=(--workspace)
[ $# -gt 0 ] && scope=()
# `--all-targets` would override a `--test NAME` (or `--lib`...) given as an argument.
targets=(--all-targets)
for arg in "$@"; do
    case "$arg" in
    --test | --test=* | --lib | --bin | --bin=* | --bins | --example* | --bench* | --tests) targets=() ;;
    esac
done
cargo test "${scope[@]}" "${targets[@]}" --all-features "$@"
# Doctests, unless the arguments already pick targets (`--test NAME`,
# `--lib`...), which cargo refuses to mix with `--doc`.
for arg in "$@"; do
    case "$arg" in
    --test | --test=* | --lib | --bin | --bin=* | --bins | --example* | --bench* | --tests) exit 0 ;;
    esac
done
cargo test "${scope[@]}" --doc --all-features "$@"
