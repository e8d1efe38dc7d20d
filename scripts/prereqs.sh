#!/usr/bin/env bash
# Installs what building and testing Quiver needs on a Debian-like machine that has only a
# Rust toolchain: a libclang that bindgen can really load (RocksDB's bindings are generated
# at build time), a C++ compiler, and Python's venv for the test suites and the wheel.
# Each need is checked for precisely and installed with apt only when missing; run it as
# often as you like. Used by scripts/run.sh and scripts/test.sh.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
apt_updated=""
apt_install() {
  echo "prereqs: installing $* with apt" >&2
  if [ -z "$apt_updated" ]; then
    $SUDO apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

if ! command -v cargo >/dev/null 2>&1; then
  echo "prereqs: no cargo on PATH: install a Rust toolchain first (https://rustup.rs)" >&2
  exit 1
fi

python=""
for candidate in python3 python; do
  if command -v "$candidate" >/dev/null 2>&1; then python="$candidate"; break; fi
done
if [ -z "$python" ]; then
  apt_install python3
  python=python3
fi

# bindgen needs libclang itself (not libclang-cpp, which Debian's base image ships) and
# clang's builtin headers: the check loads the library and parses a header with it.
if ! "$python" "$here/libclang_check.py" >/dev/null 2>&1; then
  apt_install libclang-dev
  if ! "$python" "$here/libclang_check.py" --explain >/dev/null; then
    echo "prereqs: libclang-dev is installed but no usable libclang was found" >&2
    exit 1
  fi
fi

if ! command -v c++ >/dev/null 2>&1; then
  apt_install g++
fi

if ! "$python" -c "import venv, ensurepip" >/dev/null 2>&1; then
  apt_install python3-venv
fi
