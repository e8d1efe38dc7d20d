#!/usr/bin/env bash
# The Chroma compatibility suite: builds the tenant server, installs the official chromadb
# client from PyPI into a virtual environment, and runs the suite against the fresh build
# (the suite starts and stops the server itself). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/../.."

cargo build --release -p quiver-tenant-server
export QUIVER_TENANT_SERVER_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/quiver-tenant-server"

venv="${QUIVER_COMPAT_VENV:-$HOME/.cache/quiver-compat-venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q --disable-pip-version-check -r tests/compat/requirements.txt
"$venv/bin/python" -m pytest tests/compat -q "$@"
