#!/usr/bin/env bash
# Runs every test, after installing what they need (scripts/prereqs.sh):
#   tests/setup      the install checks themselves (standard library only)
#   cargo test       the Rust suites (real RocksDB on disk, real processes over sockets)
#   tests/compat     the official chromadb client against one server and a router
#   tests/chart      the Helm chart, rendered with Helm's own library
#   tests/python     the wheel in a fresh venv: its commands, the Python client, the
#                    compatibility suite and the Rust client against `quiver run`
# Set CARGO_TARGET_DIR to reuse a build (the first one compiles RocksDB, ~25 min).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/prereqs.sh
python3 -m unittest discover -s tests/setup
cargo test --release --workspace
tests/compat/run.sh
tests/chart/run.sh
tests/python/run.sh
