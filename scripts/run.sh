#!/usr/bin/env bash
# Builds Keelson and starts it on this machine. Extra arguments go to `keelson store`.
# Data lives in ${KEELSON_DATA_DIR:-$HOME/.local/share/keelson}.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release -p keelson
data="${KEELSON_DATA_DIR:-$HOME/.local/share/keelson}"
mkdir -p "$data"
exec "$CARGO_TARGET_DIR/release/keelson" store --data-dir "$data" "$@"
