"""The installed wheel: its commands, the server `quiver run` starts, and what its
binaries need from the system (so that it installs on other machines, not only here)."""

from __future__ import annotations

import importlib.metadata
import os
import re
import signal
import subprocess
import zipfile
from pathlib import Path

import pytest
import requests

from conftest import Server, installed_command, scripts_dir

BINARIES = ("quiver", "quiver-tenant-server")

# What a manylinux wheel may load from the system (PEP 600 / auditwheel's policy): glibc's
# libraries, libgcc_s and libstdc++. Anything else must be inside the binary.
SYSTEM_LIBRARIES = re.compile(
    r"^(linux-vdso\.so\.1|ld-linux-x86-64\.so\.2|ld-linux-aarch64\.so\.1|libc\.so\.6|"
    r"libm\.so\.6|libdl\.so\.2|libpthread\.so\.0|librt\.so\.1|libgcc_s\.so\.1|"
    r"libstdc\+\+\.so\.6)$")


def run(*argv: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, **kw)


def test_the_wheel_installs_both_commands_into_the_environment():
    for name in BINARIES:
        path = scripts_dir() / name
        assert path.is_file() and os.access(path, os.X_OK), path


def test_quiver_version_is_the_package_version():
    out = run(installed_command("quiver"), "--version")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["quiver", importlib.metadata.version("quiver-db")]


def test_quiver_run_help_lists_the_server_flags():
    out = run(installed_command("quiver"), "run", "--help")
    assert out.returncode == 0, out.stderr
    for flag in ("--path", "--host", "--port", "--max-open-projects", "--allow-reset"):
        assert flag in out.stdout, flag
    direct = run(installed_command("quiver-tenant-server"), "--help")
    assert direct.returncode == 0 and "--workspace" in direct.stdout


def test_quiver_without_a_command_explains_itself():
    out = run(installed_command("quiver"))
    assert out.returncode == 2
    assert "run" in out.stderr and "Usage" in out.stderr


def test_quiver_run_refuses_a_bad_flag():
    out = run(installed_command("quiver"), "run", "--port", "not-a-port")
    assert out.returncode == 2 and "not-a-port" in out.stderr


def test_quiver_run_serves_the_workspace_at_path(started_server: Server):
    url = started_server.url
    r = requests.post(f"{url}/api/v1/wheel-project/collections", json={"name": "docs"},
                      timeout=10)
    assert r.status_code == 200, r.text
    r = requests.post(f"{url}/api/v1/wheel-project/collections/docs/add", timeout=10,
                      json={"ids": ["a"], "embeddings": [[1.0, 2.0]], "documents": ["hi"]})
    assert r.status_code == 200, r.text
    store = started_server.workspace / "wheel-project" / "knowledge-graph" / "db"
    assert store.is_dir(), "the project's RocksDB lives under --path"
    info = requests.get(f"{url}/", timeout=10).json()
    assert Path(info["base_workspace"]).resolve() == started_server.workspace.resolve()
    # the official client's v2 API is served by the same process
    assert requests.get(f"{url}/api/v2/heartbeat", timeout=10).status_code == 200


def test_quiver_run_reads_the_original_environment_variables(tmp_path):
    """WORKSPACE_DIR and CHROMA_PORT, as the original server; `quiver run` with no flags."""
    from conftest import free_port, wait_heartbeat
    port = free_port()
    env = dict(os.environ, WORKSPACE_DIR=str(tmp_path / "ws"), CHROMA_PORT=str(port),
               CHROMA_HOST="127.0.0.1", RUST_LOG="warn")
    log = tmp_path / "log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([installed_command("quiver"), "run"], stdout=out,
                                stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    try:
        wait_heartbeat(f"http://127.0.0.1:{port}", proc, log)
        r = requests.get(f"http://127.0.0.1:{port}/", timeout=10).json()
        assert Path(r["base_workspace"]).resolve() == (tmp_path / "ws").resolve()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, "a stop signal ends the server cleanly"


def test_binaries_need_only_what_every_linux_has():
    for name in BINARIES:
        out = run("ldd", str(scripts_dir() / name))
        assert out.returncode == 0, out.stderr
        needed = [line.split()[0] for line in out.stdout.splitlines() if line.strip()]
        extra = [lib for lib in needed if not SYSTEM_LIBRARIES.match(os.path.basename(lib))]
        assert not extra, f"{name} needs libraries a fresh system may lack: {extra}"


def test_the_wheel_is_tagged_for_the_platforms_it_runs_on():
    wheel = os.environ.get("QUIVER_WHEEL")
    if not wheel:
        pytest.skip("QUIVER_WHEEL (the built wheel's path) not given")
    name = Path(wheel).name
    # py3-none: one wheel for every Python 3; manylinux: installable on any glibc Linux
    # at least as new as the tag, refused (not broken) on older ones.
    assert re.match(r"^quiver_db-[^-]+-py3-none-manylinux_\d+_\d+_(x86_64|aarch64)", name), name
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
    for binary in BINARIES:
        assert any(n.endswith(f".data/scripts/{binary}") for n in names), binary
    for module in ("quiver/client.py", "quiver/errors.py", "multi_tenant_client/__init__.py"):
        assert module in names, module
