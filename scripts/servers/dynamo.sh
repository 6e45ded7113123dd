# DynamoDB emulator for the tests: moto_server on a free loopback port.
# Sourced by scripts/test-all.sh, which calls start_dynamo.

start_dynamo() {
    local moto
    # pyenv shims are not always on PATH for non-interactive shells.
    moto=$(PATH="$PATH:${PYENV_ROOT:-$HOME/.pyenv}/shims:$HOME/.local/bin" command -v moto_server || true)
    if [ -z "$moto" ]; then
        # Debian's system Python refuses global pip installs (PEP 668):
        # install into a private venv under the state dir instead.
        local venv="$STATE_DIR/moto-venv"
        if [ ! -x "$venv/bin/moto_server" ]; then
            command -v python3 >/dev/null 2>&1 || apt_install python3
            if ! python3 -m venv "$venv" >/dev/null 2>&1; then
                rm -rf "$venv"
                apt_install python3-venv python3-pip
                python3 -m venv "$venv"
            fi
            "$venv/bin/pip" install -q 'moto[server]'
        fi
        moto="$venv/bin/moto_server"
    fi
    local port
    port=$(free_port)
    # The Python beside moto_server (the venv's, or pyenv's shim) runs it
    # one request at a time: see moto_serial.py for why.
    local python
    python="$(dirname "$moto")/python3"
    [ -x "$python" ] || python=python3
    "$python" scripts/servers/moto_serial.py 127.0.0.1 "$port" >"$STATE_DIR/moto.log" 2>&1 &
    STARTED_PIDS+=("$!")
    wait_for_port "$port" 60
    export KCL_TEST_DYNAMO_ENDPOINT="http://127.0.0.1:$port"
    echo "moto_server (DynamoDB) on $KCL_TEST_DYNAMO_ENDPOINT"
}
