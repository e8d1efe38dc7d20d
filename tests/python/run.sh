#!/usr/bin/env bash
# The Python package's suite: builds the wheel with maturin from the same cargo build as
# the other suites (it fails if that would compile RocksDB again), installs it into a
# fresh virtual environment, and there runs, against servers started by the wheel's own
# `quiver run` command:
#   1. tests/python: the wheel's commands and binaries, the Python client
#      (multi_tenant_client / quiver.client), the README's original-client example;
#   2. the Chroma compatibility suite (tests/compat, topology "wheel");
#   3. the Rust client's live test (client/tests/live.rs), so both clients are checked
#      against the same server.
# Extra arguments go to pytest (to both Python suites).
set -euo pipefail
cd "$(dirname "$0")/../.."
repo="$PWD"

cargo build --release -p quiver-tenant-server -p quiver-router
target="${CARGO_TARGET_DIR:-$repo/target}"
export CARGO_TARGET_DIR="$target"

tools="${QUIVER_MATURIN_VENV:-$HOME/.cache/quiver-maturin-venv}"
if [ ! -x "$tools/bin/python" ]; then
  python3 -m venv "$tools"
fi
"$tools/bin/pip" install -q --disable-pip-version-check -r tests/python/build-requirements.txt

scratch="$(mktemp -d "${TMPDIR:-/tmp}/quiver-wheel-XXXXXX")"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$scratch"
}
trap cleanup EXIT

echo "=== building the wheel (maturin) ==="
"$tools/bin/maturin" build --release --out "$scratch/wheels" 2>&1 | tee "$scratch/maturin.log"
if grep -q "Compiling librocksdb-sys" "$scratch/maturin.log"; then
  echo "the wheel build compiled RocksDB again: its cargo invocation differs from" \
       "'cargo build --release -p quiver-tenant-server' (features, profile or target)" >&2
  exit 1
fi
wheel="$(ls "$scratch"/wheels/quiver_db-*.whl)"
echo "built $(basename "$wheel")"

echo "=== installing it into a fresh virtual environment ==="
venv="$scratch/venv"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check "$wheel"
# the package works with nothing but its own dependencies
(cd "$scratch" && "$venv/bin/python" -c "
import multi_tenant_client, quiver.client
assert multi_tenant_client.MultiTenantChromaClient is quiver.client.MultiTenantChromaClient
")
"$venv/bin/quiver" --version
"$venv/bin/pip" install -q --disable-pip-version-check \
  -r tests/python/requirements.txt -r tests/compat/requirements.txt

failed=()
echo "=== Python package suite ==="
if ! QUIVER_WHEEL="$wheel" "$venv/bin/python" -m pytest tests/python -q "$@"; then
  failed+=("tests/python")
fi

echo "=== Chroma compatibility suite: server started by the wheel's quiver command ==="
if ! QUIVER_COMPAT_TOPOLOGY=wheel QUIVER_CLI="$venv/bin/quiver" \
    "$venv/bin/python" -m pytest tests/compat -q "$@"; then
  failed+=("tests/compat (wheel)")
fi

echo "=== Rust client live test against the wheel's server ==="
port="$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
RUST_LOG=warn "$venv/bin/quiver" run --path "$scratch/live-workspace" --host 127.0.0.1 \
  --port "$port" >"$scratch/live-server.log" 2>&1 &
server_pid=$!
"$venv/bin/python" - "$port" <<'PY'
import sys, time, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/api/v1/heartbeat"
for _ in range(300):
    try:
        urllib.request.urlopen(url, timeout=2)
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit(f"{url} did not answer")
PY
# same package selection as the workspace test run, so nothing is rebuilt
if ! QUIVER_TEST_URL="http://127.0.0.1:$port" \
    cargo test --release --workspace --test live -- --ignored; then
  failed+=("client/tests/live.rs")
  tail -50 "$scratch/live-server.log" >&2
fi

if [ "${#failed[@]}" -gt 0 ]; then
  echo "Python package suite FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "Python package suite passed (wheel, Python client, compatibility, Rust client)"
