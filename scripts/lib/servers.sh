# Sourced by scripts/test-all.sh and scripts/bench-all.sh: starts every
# server in scripts/servers/*.sh on a free loopback port (installing it on a
# fresh machine), exports its KCL_TEST_* address, and stops only what it
# started when the calling script exits.
#
# Each scripts/servers/<name>.sh defines start_<name>. Available to them:
# free_port, wait_for_port PORT [SECS], apt_install PKG..., the arrays
# STARTED_PIDS (killed at exit) and STOP_HOOKS (eval'd at exit), $STATE_DIR.

STATE_DIR="${KCL_TEST_STATE_DIR:-$PWD/target/test-servers}"
mkdir -p "$STATE_DIR"
STARTED_PIDS=()
STOP_HOOKS=()

stop_started() {
    local pid hook
    for pid in "${STARTED_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for hook in "${STOP_HOOKS[@]}"; do
        eval "$hook" || true
    done
}
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

start_all_servers() {
    local f name
    for f in scripts/servers/*.sh; do
        # shellcheck source=/dev/null
        source "$f"
    done
    for f in scripts/servers/*.sh; do
        name=$(basename "$f" .sh)
        echo "== starting $name"
        "start_$name"
    done
}
