#!/usr/bin/env bash
# The Helm chart's suite: renders charts/quiver with Helm's own library (helm-python-sdk,
# Helm's Go SDK behind a C ABI, from PyPI: no helm binary, no cluster, no Docker engine)
# and checks the manifests against the Kubernetes schemas, the CRDs in crds/, the
# operator's code (RBAC) and the real binaries (their flags, probes and placement table).
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/../.."

# The same package sets as tests/compat/run.sh and the operator alone, so that nothing
# already built for the earlier suites is built again.
cargo build --release -p quiver-tenant-server -p quiver-router
cargo build --release -p quiver-operator
target="${CARGO_TARGET_DIR:-$PWD/target}"
export QUIVER_BIN_DIR="$target/release"

venv="${QUIVER_CHART_VENV:-$HOME/.cache/quiver-chart-venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q --disable-pip-version-check -r tests/chart/requirements.txt

echo "=== Helm chart suite ==="
"$venv/bin/python" -m pytest tests/chart -q "$@"
