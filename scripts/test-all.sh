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

STATE_DIR="${KCL_TEST_STATE_DIR:-$PWD/target/test-servers}"
mkdir -p "$STATE_DIR"
STARTED_PIDS=()

stop_started() {
    local pid
    for pid in "${STARTED_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for hook in "${STOP_HOOKS[@]}"; do
        eval "$hook" || true
    done
}
STOP_HOOKS=()
trap stop_started EXIT

# A free TCP port on 127.0.0.1.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Wait until something listens on 127.0.0.1:$1 (up to $2 seconds, default 60).
wait_for_port() {
    local port=$1 limit=${2:-60} i
    for ((i = 0; i < limit * 10; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "nothing listens on 127.0.0.1:$port after ${limit}s" >&2
    return 1
}

apt_updated=0
apt_install() {
    if [ "$apt_updated" = 0 ]; then
        apt-get update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# Each file in scripts/servers/ defines start_<name>, which starts one
# server and exports its KCL_TEST_* variable.
for f in scripts/servers/*.sh; do
    # shellcheck source=/dev/null
    source "$f"
done
for f in scripts/servers/*.sh; do
    name=$(basename "$f" .sh)
    echo "== starting $name"
    "start_$name"
done

export KCL_TEST_REQUIRE_SERVERS=1
echo "== cargo test"
cargo test --workspace --all-targets --all-features "$@"
cargo test --workspace --doc --all-features "$@"
