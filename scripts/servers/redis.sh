# Sourced by scripts/test-all.sh: start_redis starts a private redis-server
# for the tests (installing it first on a fresh Debian machine) and exports
#   KCL_TEST_REDIS_URL          redis://127.0.0.1:<port>
#   KCL_TEST_REDIS_SERVER_BIN   the redis-server binary, for tests that
#                               start (and restart) servers of their own
#                               (TLS, a six-node cluster, a failover).
#   KCL_TEST_REDIS_CLI_BIN      redis-cli, which joins those cluster nodes
#                               (`redis-cli --cluster create`).
start_redis() {
    if ! command -v redis-server >/dev/null 2>&1; then
        echo "redis-server not found: installing it"
        apt_install redis-server
    fi
    if ! command -v redis-cli >/dev/null 2>&1; then
        apt_install redis-tools
    fi
    # tests/tls.rs makes a throwaway CA and server certificate with it.
    if ! command -v openssl >/dev/null 2>&1; then
        apt_install openssl
    fi
    # The Debian package may start a system-wide instance; we never touch
    # it and run our own on a free port instead.
    local port dir
    port=$(free_port)
    dir="$STATE_DIR/redis"
    mkdir -p "$dir"
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
        --dir "$dir" --logfile "$dir/redis-$port.log" &
    STARTED_PIDS+=("$!")
    wait_for_port "$port" 30
    export KCL_TEST_REDIS_URL="redis://127.0.0.1:$port"
    KCL_TEST_REDIS_SERVER_BIN=$(command -v redis-server)
    export KCL_TEST_REDIS_SERVER_BIN
    KCL_TEST_REDIS_CLI_BIN=$(command -v redis-cli)
    export KCL_TEST_REDIS_CLI_BIN
    echo "redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') on $KCL_TEST_REDIS_URL"
}
