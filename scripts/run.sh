#!/usr/bin/env bash
# Runs a tenant server on the embedded default (0.0.0.0:7100, data in ./workspace), after
# installing what the build needs. Arguments go to the server (`scripts/run.sh --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/prereqs.sh
exec cargo run --release -p quiver-tenant-server -- "$@"
