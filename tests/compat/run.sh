#!/usr/bin/env bash
# The Chroma compatibility suite: builds the tenant server and the router, installs the
# official chromadb client from PyPI into a virtual environment, and runs the suite twice
# against the fresh build: once against a single tenant server, once through the router in
# front of three tenant servers (the suite starts and stops the processes itself). Both
# runs always happen; the script fails if either fails. Extra arguments go to pytest (to
# both runs).
set -euo pipefail
cd "$(dirname "$0")/../.."

cargo build --release -p quiver-tenant-server -p quiver-router
target="${CARGO_TARGET_DIR:-$PWD/target}"
export QUIVER_TENANT_SERVER_BIN="$target/release/quiver-tenant-server"
export QUIVER_ROUTER_BIN="$target/release/quiver-router"

venv="${QUIVER_COMPAT_VENV:-$HOME/.cache/quiver-compat-venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q --disable-pip-version-check -r tests/compat/requirements.txt

failed=()
for topology in single router; do
  echo "=== Chroma compatibility suite: topology $topology ==="
  if ! QUIVER_COMPAT_TOPOLOGY="$topology" "$venv/bin/python" -m pytest tests/compat -q "$@"; then
    failed+=("$topology")
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "Chroma compatibility suite FAILED for: ${failed[*]}" >&2
  exit 1
fi
echo "Chroma compatibility suite passed (single tenant server and router)"
