#!/usr/bin/env bash
# Puts the official Kubernetes Python client (`kubernetes` on PyPI, pinned below) into a virtualenv
# at DEST (default /var/cache/keelson-py) and prints `PYTHON=<its interpreter>`. The API server's
# Python-client test (apiserver/tests/it/python_client.rs) runs tests/python/*.py with it; point
# KEELSON_PYTHON at the printed interpreter.
set -euo pipefail
# Client 37 is generated from the Kubernetes 1.37 API, the version the server serves.
VERSION=37.0.3
DEST="${1:-/var/cache/keelson-py}"
py="$DEST/bin/python"
if [ -x "$py" ] && "$py" -c "import kubernetes, sys; sys.exit(kubernetes.__version__ != '$VERSION')" 2>/dev/null; then
  echo "PYTHON=$py"
  exit 0
fi
python3 -m venv "$DEST"
"$py" -m pip install -q --disable-pip-version-check "kubernetes==$VERSION" >&2
echo "PYTHON=$py"
