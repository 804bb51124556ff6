#!/usr/bin/env bash
# Builds Keelson and starts it on this machine: today the Kubernetes API server over the in-memory
# store, TLS on 127.0.0.1:6443, admin kubeconfig at $DATA/admin.kubeconfig. Extra arguments go to
# the server. Data (certificates, kubeconfig) lives in ${KEELSON_DATA_DIR:-$HOME/.local/share/keelson}.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release -p apiserver --bin keelson-apiserver
data="${KEELSON_DATA_DIR:-$HOME/.local/share/keelson}"
mkdir -p "$data"
exec "$CARGO_TARGET_DIR/release/keelson-apiserver" --data-dir "$data" --bind-address 127.0.0.1:6443 "$@"
