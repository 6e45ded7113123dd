#!/usr/bin/env bash
# The feature sets a user can pick, each linted on its own (CI runs the
# whole workspace with every feature on; this catches what only breaks
# with a feature off), then rustdoc with warnings as errors (public and
# private items) and the fuzz targets. Prints how long each step took.
set -euo pipefail
cd "$(dirname "$0")/.."

step() {
    local started=$SECONDS
    echo "== $*"
    "$@"
    echo "   took $((SECONDS - started))s"
}

lint() {
    step cargo clippy --locked "$@" -- -D warnings
}

# Library crates: no default features, then each optional feature alone.
lint -p kcl-core --lib --no-default-features
lint -p kcl-core --lib --no-default-features --features kinesis
lint -p kcl-core --lib --no-default-features --features testkit
lint -p kcl-core --lib --no-default-features --features testkit-kinesis
lint -p kcl-store-redis --lib --no-default-features
lint -p kcl-store-redis --lib --no-default-features --features tls
lint -p kcl-store-redis --lib --no-default-features --features cluster
lint -p kcl-store-postgres --lib --no-default-features
lint -p kcl-store-postgres --lib --no-default-features --features tls
# The `kcl` binary with one store, and with none.
lint -p kcl-cli --bins --lib --no-default-features
for feature in dynamodb redis redis-cluster postgres memory cloudwatch; do
    lint -p kcl-cli --bins --lib --no-default-features --features "$feature"
done

RUSTDOCFLAGS="-D warnings" step cargo doc --locked --workspace --no-deps --all-features
# The private items too: module docs are the map a newcomer reads, and a
# broken link there is as wrong as one in the public docs.
RUSTDOCFLAGS="-D warnings" step cargo doc --locked --workspace --no-deps --all-features --document-private-items
step cargo check --manifest-path fuzz/Cargo.toml --locked
