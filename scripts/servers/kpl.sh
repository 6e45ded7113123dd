# Sourced by scripts/test-all.sh: start_kpl installs the PyPI package
# aws-kinesis-agg (the reference KPL aggregator/de-aggregator for Python)
# into the state directory (no server runs) and exports
#   KCL_TEST_KPL_AGG_PYTHONPATH   a PYTHONPATH under which `python3` can
#                                 `import aws_kinesis_agg`
# for kcl-core/tests/kpl_interop.rs.
KPL_AGG_VERSION=1.2.3

start_kpl() {
    local dir="$STATE_DIR/kpl-py"
    if ! command -v python3 >/dev/null 2>&1; then
        echo "python3 not found: installing it"
        apt_install python3
    fi
    if ! python3 -m pip --version >/dev/null 2>&1; then
        echo "pip not found: installing python3-pip"
        apt_install python3-pip
    fi
    if ! PYTHONPATH="$dir" python3 -c 'import aws_kinesis_agg.aggregator' >/dev/null 2>&1; then
        echo "installing aws_kinesis_agg==$KPL_AGG_VERSION into $dir"
        mkdir -p "$dir"
        # --target keeps it out of the system's site-packages; Debian's
        # externally-managed marker only matters for pips that check it anyway.
        python3 -m pip install -q --disable-pip-version-check --target "$dir" \
            "aws_kinesis_agg==$KPL_AGG_VERSION" six ||
            python3 -m pip install -q --disable-pip-version-check --break-system-packages \
                --target "$dir" "aws_kinesis_agg==$KPL_AGG_VERSION" six
    fi
    PYTHONPATH="$dir" python3 -c 'from aws_kinesis_agg import aggregator, deaggregator'
    export KCL_TEST_KPL_AGG_PYTHONPATH="$dir"
    echo "aws_kinesis_agg $KPL_AGG_VERSION under $KCL_TEST_KPL_AGG_PYTHONPATH"
}
