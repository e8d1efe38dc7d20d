"""scripts/libclang_check.py, the check that decides whether prereqs.sh installs
libclang-dev: it must accept only a libclang that bindgen can load and use.

Debian's base image ships libclang-cpp.so.14 (the C++ API), which a name match such as
`libclang*.so*` takes for libclang; bindgen then fails on a fresh machine. These cases
run the check as prereqs.sh does, on directories made to look like such machines.

Run with the standard library only: python3 -m unittest discover -s tests/setup
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHECK = REPO / "scripts" / "libclang_check.py"


def run_check(libclang_path: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("LIBCLANG_PATH", None)
    if libclang_path is not None:
        env["LIBCLANG_PATH"] = libclang_path
    return subprocess.run([sys.executable, str(CHECK), "--explain"], capture_output=True,
                          text=True, env=env, timeout=60)


def ctypes_util_find(name: str) -> str:
    """The path of a system library (libm, say)."""
    for pattern in (f"/lib/*/lib{name}.so.*", f"/usr/lib/*/lib{name}.so.*", f"/lib64/lib{name}.so.*"):
        hits = sorted(glob.glob(pattern))
        if hits:
            return hits[0]
    raise unittest.SkipTest(f"lib{name} not found")


def system_libclang_cpp() -> str | None:
    found = sorted(glob.glob("/usr/lib/*/libclang-cpp.so*") +
                   glob.glob("/usr/lib/llvm-*/lib/libclang-cpp.so*"))
    return found[0] if found else None


class LibclangCheck(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="libclang-check-"))

    def tearDown(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_this_machine_has_a_usable_libclang_after_prereqs(self):
        out = run_check()
        self.assertEqual(out.returncode, 0, out.stderr)
        path = out.stdout.strip()
        self.assertTrue(os.path.isfile(path), path)
        self.assertNotIn("libclang-cpp", os.path.basename(path))

    def test_the_directory_it_found_passes_on_its_own(self):
        found = run_check().stdout.strip()
        out = run_check(os.path.dirname(found))
        self.assertEqual(out.returncode, 0, out.stderr)

    def test_libclang_cpp_alone_is_not_libclang(self):
        """What the fresh image has; clang-sys never loads a -cpp file, whatever it holds."""
        cpp = system_libclang_cpp()
        if cpp is not None:
            os.symlink(cpp, self.tmp / os.path.basename(cpp))
        # even the real libclang, under the C++ library's name, is not what bindgen loads
        real = run_check().stdout.strip()
        shutil.copy(real, self.tmp / "libclang-cpp.so.99")
        out = run_check(str(self.tmp))
        self.assertEqual(out.returncode, 1, out.stdout)
        self.assertIn("no usable libclang", out.stderr)

    def test_another_library_under_libclangs_name_is_refused(self):
        """A similar name is not enough: the library must have libclang's C API."""
        other = system_libclang_cpp() or ctypes_util_find("m")
        shutil.copy(other, self.tmp / "libclang.so")
        out = run_check(str(self.tmp))
        self.assertEqual(out.returncode, 1, out.stdout)
        self.assertIn("has no libclang C API", out.stderr)

    def test_a_file_that_is_no_library_is_refused(self):
        (self.tmp / "libclang.so.1").write_text("not an ELF file")
        out = run_check(str(self.tmp))
        self.assertEqual(out.returncode, 1, out.stdout)
        self.assertIn("cannot be loaded", out.stderr)

    def test_an_empty_directory_has_none(self):
        out = run_check(str(self.tmp))
        self.assertEqual(out.returncode, 1)
        self.assertIn("no usable libclang", out.stderr)


class PrereqsScript(unittest.TestCase):
    def test_prereqs_is_idempotent_and_installs_nothing_when_all_is_there(self):
        out = subprocess.run(["bash", str(REPO / "scripts" / "prereqs.sh")],
                             capture_output=True, text=True, timeout=600)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertNotIn("installing", out.stderr)


if __name__ == "__main__":
    unittest.main()
