# Sourced by scripts/test-all.sh: start_postgres starts a private PostgreSQL
# cluster for the tests (installing PostgreSQL first on a fresh Debian
# machine) and exports
#   KCL_TEST_POSTGRES_URL      postgres://postgres@127.0.0.1:<port>/postgres
#   KCL_TEST_POSTGRES_BIN_DIR  the directory holding initdb and pg_ctl, for
#                              tests that start (and restart) clusters of
#                              their own.
# It never uses or touches a server the machine already runs (e.g. on 5432).

# The newest /usr/lib/postgresql/<version>/bin that has initdb, if any.
postgres_bin_dir() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

# Run a PostgreSQL binary as the postgres user when we are root (initdb and
# the server refuse to run as root).
as_postgres() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

start_postgres() {
    local bin port dir data
    if ! bin=$(postgres_bin_dir); then
        echo "PostgreSQL (initdb) not found: installing it"
        apt_install postgresql
        bin=$(postgres_bin_dir) || { echo "postgresql installed but no initdb found" >&2; return 1; }
    fi
    # kcl-store-postgres/tests/tls.rs makes a throwaway CA with it.
    if ! command -v openssl >/dev/null 2>&1; then
        apt_install openssl
    fi
    port=$(free_port)
    dir="$STATE_DIR/postgres"
    # A cluster left running in our own state dir by an interrupted run.
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_postgres "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then
        chown postgres: "$dir"
        # The server runs as postgres: it must reach the state dir. If a
        # parent directory shuts it out, use a private dir under /tmp.
        if ! runuser -u postgres -- test -w "$dir"; then
            dir=$(mktemp -d /tmp/kcl-postgres.XXXXXX)
            chown postgres: "$dir"
        fi
    fi
    data="$dir/data"
    as_postgres "$bin/initdb" -D "$data" -U postgres -A trust -E UTF8 --locale=C \
        --no-sync >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; return 1; }
    # Loopback only, on our port, socket in our dir; durability off (test data).
    as_postgres "$bin/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        start >/dev/null || { cat "$dir/server.log" >&2; return 1; }
    # pg_ctl daemonizes the server: record the postmaster's PID, and stop
    # it cleanly with pg_ctl at exit.
    STARTED_PIDS+=("$(head -n 1 "$data/postmaster.pid")")
    STOP_HOOKS+=("as_postgres '$bin/pg_ctl' -D '$data' -m fast -w stop >/dev/null 2>&1")
    wait_for_port "$port" 30
    export KCL_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
    export KCL_TEST_POSTGRES_BIN_DIR="$bin"
    echo "postgres $("$bin/postgres" --version | awk '{print $3}') on $KCL_TEST_POSTGRES_URL"
}
