#!/usr/bin/env bash
# The Python of the benchmark's references: hnswlib (the index Chroma serves with, called
# in process by `quiver-bench --mode index`), the real Chroma 1.5.9 server (`--compare`),
# and matplotlib for scripts/plot_index_curve.py. Prints the venv's directory.
set -euo pipefail
venv="${QUIVER_BENCH_VENV:-$HOME/.cache/quiver-bench-venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" >&2
fi
if ! "$venv/bin/python" -c "import hnswlib, numpy, matplotlib, chromadb" >/dev/null 2>&1; then
  "$venv/bin/pip" install -q --upgrade pip >&2
  "$venv/bin/pip" install -q numpy matplotlib hnswlib chromadb==1.5.9 >&2
fi
echo "$venv"
