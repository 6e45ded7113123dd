# Sourced by scripts/test-all.sh: start_kinesis starts kinesis-mock (npm
# package `kinesis-local`), the second Kinesis emulator the retrieval tests
# run against (the first, ferrokinesis, runs inside the tests), and exports
#   KCL_TEST_KINESIS_ENDPOINT   http://127.0.0.1:<port>
#
# kinesis-mock has no host option and listens on all interfaces; for a
# test server with throwaway streams that is acceptable. It dies at start
# without KINESIS_MOCK_CERT_PATH (even when only the plain port is used),
# so that points at the server.json the package ships. The *_DURATION
# variables make stream creation, resharding and deletion take 10 ms.
start_kinesis() {
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        echo "node/npm not found: installing them"
        apt_install nodejs npm
    fi
    local dir="$STATE_DIR/kinesis-local"
    local pkg="$dir/node_modules/kinesis-local"
    if [ ! -f "$pkg/package.json" ]; then
        echo "installing kinesis-local into $dir"
        mkdir -p "$dir"
        npm install --prefix "$dir" --no-audit --no-fund --loglevel=error kinesis-local >/dev/null
    fi
    local main cert port
    main=$(node -e 'const p=require(process.argv[1]); process.stdout.write(p.main || "index.js")' "$pkg/package.json")
    cert=$(find "$pkg" -name server.json -print -quit)
    if [ -z "$cert" ]; then
        echo "kinesis-local: server.json not found under $pkg" >&2
        return 1
    fi
    port=$(free_port)
    KINESIS_MOCK_PLAIN_PORT="$port" \
        KINESIS_MOCK_TLS_PORT="$(free_port)" \
        KINESIS_MOCK_CERT_PATH="$cert" \
        CREATE_STREAM_DURATION=10ms \
        DELETE_STREAM_DURATION=10ms \
        REGISTER_STREAM_CONSUMER_DURATION=10ms \
        START_STREAM_ENCRYPTION_DURATION=10ms \
        STOP_STREAM_ENCRYPTION_DURATION=10ms \
        DEREGISTER_STREAM_CONSUMER_DURATION=10ms \
        MERGE_SHARDS_DURATION=10ms \
        SPLIT_SHARD_DURATION=10ms \
        UPDATE_SHARD_COUNT_DURATION=10ms \
        UPDATE_STREAM_MODE_DURATION=10ms \
        SHARD_LIMIT=1000 \
        LOG_LEVEL=WARN \
        node "$pkg/$main" >"$dir/kinesis-mock-$port.log" 2>&1 &
    STARTED_PIDS+=("$!")
    wait_for_port "$port" 60
    export KCL_TEST_KINESIS_ENDPOINT="http://127.0.0.1:$port"
    echo "kinesis-mock (kinesis-local) on $KCL_TEST_KINESIS_ENDPOINT"
}
