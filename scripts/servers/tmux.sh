# Sourced by scripts/test-all.sh: start_tmux makes sure tmux is installed
# (the `kcl watch` test draws the live view in a detached tmux session on
# a private socket) and exports
#   KCL_TEST_TMUX   the tmux binary
start_tmux() {
    if ! command -v tmux >/dev/null 2>&1; then
        echo "tmux not found: installing it"
        apt_install tmux
    fi
    export KCL_TEST_TMUX
    KCL_TEST_TMUX=$(command -v tmux)
    echo "tmux at $KCL_TEST_TMUX"
}
