#!/usr/bin/env python3
"""Is there a libclang that bindgen (RocksDB's bindings) can load and use?

bindgen loads libclang at run time through clang-sys, which looks in $LIBCLANG_PATH when
it is set, else in the usual library directories, for a file named libclang.so,
libclang-<v>.so, libclang.so.<v> or libclang-<v>.so.<v>. A similar name is not enough:
Debian's base image ships libclang-cpp.so.14, the C++ API, which is not libclang. So this
check does what bindgen will do: load each candidate, look up the C API, and parse a
translation unit that includes <stddef.h> (clang's own builtin headers, which come with
libclang-dev and without which bindgen fails as well).

Exit status 0 and the library's path on stdout when one works; 1 otherwise, with what was
tried on stderr. `--explain` prints every candidate and the verdict.
"""

from __future__ import annotations

import ctypes
import glob
import os
import re
import subprocess
import sys
import tempfile

# clang-sys's file names; -cpp (the C++ API) never matches.
NAME = re.compile(r"^libclang(-[0-9][0-9.]*)?\.so(\.[0-9][0-9.]*)?$")

# clang-sys's search directories on Linux when LIBCLANG_PATH is not set (clang-sys 1.9,
# build/common.rs), after `llvm-config --prefix`, LD_LIBRARY_PATH and LIBRARY_PATH.
DIRECTORIES = [
    "/usr/local/llvm*/lib*",
    "/usr/local/lib*/*/*",
    "/usr/local/lib*/*",
    "/usr/local/lib*",
    "/usr/lib*/*/*",
    "/usr/lib*/*",
    "/usr/lib*",
]


def llvm_config_dirs() -> list[str]:
    try:
        out = subprocess.run(["llvm-config", "--prefix"], capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.SubprocessError):
        return []
    if out.returncode != 0 or not out.stdout.strip():
        return []
    prefix = out.stdout.splitlines()[0].strip()
    return [os.path.join(prefix, d) for d in ("bin", "lib", "lib64")]


def candidates() -> list[str]:
    explicit = os.environ.get("LIBCLANG_PATH")
    if explicit:
        if os.path.isfile(explicit):
            return [explicit]
        dirs = [explicit]
    else:
        dirs = llvm_config_dirs()
        for var in ("LD_LIBRARY_PATH", "LIBRARY_PATH"):
            dirs.extend(p for p in os.environ.get(var, "").split(":") if p)
        for pattern in DIRECTORIES:
            dirs.extend(d for d in sorted(glob.glob(pattern)) if os.path.isdir(d))
    found: list[str] = []
    for d in dirs:
        try:
            names = sorted(os.listdir(d))
        except OSError:
            continue
        for name in names:
            path = os.path.join(d, name)
            if NAME.match(name) and os.path.isfile(path) and path not in found:
                found.append(path)
    return found


def usable(path: str) -> str | None:
    """None when bindgen could use this library, else why not."""
    try:
        lib = ctypes.CDLL(path)
    except OSError as e:
        return f"cannot be loaded: {e}"
    try:
        create_index = lib.clang_createIndex
        parse = lib.clang_parseTranslationUnit
        diagnostics = lib.clang_getNumDiagnostics
        dispose_tu = lib.clang_disposeTranslationUnit
        dispose_index = lib.clang_disposeIndex
    except AttributeError:
        return "has no libclang C API (clang_createIndex)"
    create_index.restype = ctypes.c_void_p
    create_index.argtypes = [ctypes.c_int, ctypes.c_int]
    parse.restype = ctypes.c_void_p
    parse.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.POINTER(ctypes.c_char_p),
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_uint,
        ctypes.c_uint,
    ]
    diagnostics.restype = ctypes.c_uint
    diagnostics.argtypes = [ctypes.c_void_p]
    dispose_tu.argtypes = [ctypes.c_void_p]
    dispose_index.argtypes = [ctypes.c_void_p]

    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "probe.h")
        with open(source, "w") as f:
            f.write("#include <stddef.h>\nsize_t probe(void);\n")
        index = create_index(0, 0)
        if not index:
            return "clang_createIndex failed"
        try:
            tu = parse(index, source.encode(), None, 0, None, 0, 0)
            if not tu:
                return "cannot parse a header"
            try:
                if diagnostics(tu) != 0:
                    return "cannot find clang's builtin headers (<stddef.h>)"
            finally:
                dispose_tu(tu)
        finally:
            dispose_index(index)
    return None


def main() -> int:
    explain = "--explain" in sys.argv[1:]
    tried = []
    for path in candidates():
        why = usable(path)
        if why is None:
            if explain:
                print(f"usable: {path}", file=sys.stderr)
            print(path)
            return 0
        tried.append(f"{path}: {why}")
    where = os.environ.get("LIBCLANG_PATH") or "the usual library directories"
    print(f"no usable libclang in {where}", file=sys.stderr)
    for line in tried:
        print(f"  {line}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
