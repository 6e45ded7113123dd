# Sourced by scripts/test-all.sh: start_multilang installs the official
# MultiLang child libraries (no server runs) into the state directory and
# exports
#   KCL_TEST_KCLPY_DIR        the unpacked PyPI amazon-kclpy sdist: put it on
#                             PYTHONPATH; samples/sample_kclpy_app.py runs as is
#   KCL_TEST_AWS_KCL_NODE_PATH  a NODE_PATH under which require('aws-kcl') works
# for kcl-cli/tests/multilang_*.rs. kclpy's own install step downloads jars
# from Maven (unreachable here) and fails; its protocol code is pure stdlib,
# so the sdist is unpacked instead of installed.
KCLPY_VERSION=3.2.0
AWS_KCL_VERSION=2.3.2

start_multilang() {
    local py="$STATE_DIR/kclpy" node="$STATE_DIR/aws-kcl"
    if ! command -v python3 >/dev/null 2>&1; then
        apt_install python3
    fi
    if ! python3 -m pip --version >/dev/null 2>&1; then
        apt_install python3-pip
    fi
    if [ ! -f "$py/amazon_kclpy-$KCLPY_VERSION/samples/sample_kclpy_app.py" ]; then
        echo "downloading amazon-kclpy==$KCLPY_VERSION (sdist) into $py"
        mkdir -p "$py"
        python3 -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: \
            "amazon-kclpy==$KCLPY_VERSION" -d "$py"
        tar xzf "$py/amazon_kclpy-$KCLPY_VERSION.tar.gz" -C "$py"
    fi
    if ! command -v node >/dev/null 2>&1; then
        apt_install nodejs npm
    fi
    if [ ! -f "$node/node_modules/aws-kcl/package.json" ]; then
        echo "installing aws-kcl@$AWS_KCL_VERSION into $node"
        mkdir -p "$node"
        (cd "$node" && npm install --silent --no-audit --no-fund "aws-kcl@$AWS_KCL_VERSION")
    fi
    export KCL_TEST_KCLPY_DIR="$py/amazon_kclpy-$KCLPY_VERSION"
    export KCL_TEST_AWS_KCL_NODE_PATH="$node/node_modules"
    PYTHONPATH="$KCL_TEST_KCLPY_DIR" python3 -c 'from amazon_kclpy import kcl'
    NODE_PATH="$KCL_TEST_AWS_KCL_NODE_PATH" node -e 'require("aws-kcl")'
    echo "kclpy $KCLPY_VERSION at $KCL_TEST_KCLPY_DIR, aws-kcl $AWS_KCL_VERSION under $KCL_TEST_AWS_KCL_NODE_PATH"
}
