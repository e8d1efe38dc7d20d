"""The Python package's suite: the installed wheel's commands and the Python client.

Runs in a virtual environment where the wheel was installed (tests/python/run.sh makes a
fresh one). The server under test is started with the wheel's own `quiver run` command
(from this environment's scripts directory, or `$QUIVER_CLI`) on a temporary workspace
and a free port, and stopped when the session ends; `--url` tests a running server
instead (the client tests then run, the wheel's command tests are skipped).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]


def pytest_addoption(parser):
    parser.addoption("--url", default=None,
                     help="base URL of a running Quiver server; without it `quiver run` "
                          "from the installed wheel is started")


def scripts_dir() -> Path:
    return Path(sysconfig.get_path("scripts"))


def installed_command(name: str) -> str:
    """A command the wheel installed into this environment."""
    if name == "quiver" and os.environ.get("QUIVER_CLI"):
        return os.environ["QUIVER_CLI"]
    path = scripts_dir() / name
    if not path.exists():
        pytest.exit(f"{name} is not installed in {scripts_dir()} (is the wheel installed "
                    f"into {sys.prefix}?)", returncode=2)
    return str(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_heartbeat(url: str, proc: subprocess.Popen | None, log: Path | None,
                   timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log else ""
            raise RuntimeError(f"server exited with status {proc.returncode}:\n{tail}")
        try:
            r = requests.get(f"{url}/api/v1/heartbeat", timeout=2)
            if r.status_code == 200:
                return
            last = f"status {r.status_code}"
        except requests.RequestException as e:
            last = repr(e)
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer its heartbeat: {last}")


class Server:
    """A server started by `quiver run`, with its workspace and log."""

    def __init__(self, *extra: str, port: int | None = None) -> None:
        self.scratch = Path(tempfile.mkdtemp(prefix="quiver-python-"))
        self.workspace = self.scratch / "workspace"
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = self.scratch / "server.log"
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn"))
        argv = [installed_command("quiver"), "run", "--path", str(self.workspace),
                "--host", "127.0.0.1", "--port", str(self.port), *extra]
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            wait_heartbeat(self.url, self.proc, self.log)
        except Exception:
            self.stop()
            raise

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def remove(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)


@pytest.fixture(scope="session")
def started_server(request):
    if request.config.getoption("--url"):
        pytest.skip("--url given: this test needs the server the wheel starts")
    server = Server()
    yield server
    server.stop()
    server.remove()


@pytest.fixture(scope="session")
def server_url(request):
    url = request.config.getoption("--url")
    if url:
        url = url.rstrip("/")
        wait_heartbeat(url, None, None, timeout=10)
        yield url
        return
    server = Server()
    yield server.url
    server.stop()
    server.remove()


@pytest.fixture(scope="session")
def host_port(server_url):
    from urllib.parse import urlparse
    u = urlparse(server_url)
    return u.hostname, u.port


@pytest.fixture
def client(host_port):
    from multi_tenant_client import MultiTenantChromaClient
    host, port = host_port
    with MultiTenantChromaClient(host=host, port=port) as c:
        yield c


@pytest.fixture
def project(request, client):
    """A project of this test's own, deleted afterwards."""
    name = "py-" + request.node.name.replace("_", "-").replace("[", "-").strip("]-")[:40]
    name = "".join(ch if ch.isalnum() or ch in "-." else "-" for ch in name)
    name = f"{name}-{os.getpid()}"
    yield name
    try:
        client.delete_project(name)
    except Exception:
        pass
