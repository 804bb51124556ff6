#!/usr/bin/env bash
# Builds Keelson and starts it on this machine: `keelson server`, the raft store (rocksdb under the
# data dir) and the Kubernetes API server with TLS on 127.0.0.1:6443. The admin kubeconfig is
# written to $DATA/admin.kubeconfig, DATA=${KEELSON_DATA_DIR:-$HOME/.local/share/keelson}.
# Extra arguments go to `keelson server` (e.g. --ephemeral, --secure-port 0, --bind-address).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release -p keelson --bin keelson
data="${KEELSON_DATA_DIR:-$HOME/.local/share/keelson}"
exec "$CARGO_TARGET_DIR/release/keelson" server --data-dir "$data" "$@"
