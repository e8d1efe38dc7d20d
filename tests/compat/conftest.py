"""Chroma v2 compatibility suite: fixtures.

Run against a server that is already up with ``--url http://HOST:PORT``; without ``--url``
the suite starts the Quiver binaries itself and stops them when the session ends. Each
tenant server gets a temporary workspace and a free port (``--allow-reset``). The topology
is ``--topology`` or ``$QUIVER_COMPAT_TOPOLOGY``:

* ``single`` (default): one tenant server, tested directly;
* ``router``: three tenant servers behind ``quiver-router`` (static placement, one
  ``--shard`` each); the suite talks to the router only, once its ``/readyz`` answers 200;
* ``wheel``: one tenant server started by the Python package's ``quiver run`` command
  (``$QUIVER_CLI``, the command installed from the wheel), as a pip user starts it.

The tenant server binary is ``$QUIVER_TENANT_SERVER_BIN``, else
``$CARGO_TARGET_DIR/release/quiver-tenant-server``, else
``target/release/quiver-tenant-server`` in the repository; the router binary is
``$QUIVER_ROUTER_BIN``, else ``quiver-router`` in the same places.

The assertions encode what the real Chroma 1.5.9 server does when driven by the official
``chromadb`` 1.5.9 Python client.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

import chromadb  # noqa: E402
import httpx  # noqa: E402
import pytest  # noqa: E402
from chromadb.config import Settings  # noqa: E402

from _helpers import new_tenant, unique  # noqa: E402,F401

REPO = Path(__file__).resolve().parents[2]


TOPOLOGIES = ("single", "router", "wheel")
ROUTER_SHARDS = 3


def pytest_addoption(parser):
    parser.addoption(
        "--url",
        action="store",
        default=None,
        help="base URL of a running Chroma-compatible server (e.g. http://127.0.0.1:8000); "
        "without it the Quiver binaries are started (see --topology)",
    )
    parser.addoption(
        "--topology",
        action="store",
        choices=TOPOLOGIES,
        default=None,
        help="what the suite starts when --url is not given: 'single' (one tenant server, "
        "the default), 'router' (three tenant servers behind quiver-router) or 'wheel' "
        "(one tenant server started by $QUIVER_CLI run); "
        "default from $QUIVER_COMPAT_TOPOLOGY",
    )


def _topology(config) -> str:
    topology = config.getoption("--topology") or os.environ.get("QUIVER_COMPAT_TOPOLOGY") or "single"
    if topology not in TOPOLOGIES:
        raise pytest.UsageError(
            f"QUIVER_COMPAT_TOPOLOGY={topology!r}: expected one of {', '.join(TOPOLOGIES)}")
    return topology


def pytest_configure(config):
    _topology(config)  # a misspelt topology stops the run before any test


def pytest_report_header(config):
    if config.getoption("--url"):
        return f"quiver compat: server under test {config.getoption('--url')}"
    return f"quiver compat: topology {_topology(config)}"


def _binary(env_var: str, name: str) -> str:
    env = os.environ.get(env_var)
    if env:
        return env
    target = os.environ.get("CARGO_TARGET_DIR") or str(REPO / "target")
    return str(Path(target) / "release" / name)


def _server_binary() -> str:
    return _binary("QUIVER_TENANT_SERVER_BIN", "quiver-tenant-server")


def _router_binary() -> str:
    return _binary("QUIVER_ROUTER_BIN", "quiver-router")


def _quiver_command() -> str:
    return os.environ.get("QUIVER_CLI") or shutil.which("quiver") or "quiver"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ok(url: str, path: str, proc: subprocess.Popen | None, timeout: float = 30.0) -> None:
    """Polls `GET {url}{path}` until it answers 200."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited early with status {proc.returncode}")
        try:
            r = httpx.get(f"{url}{path}", timeout=2.0)
            if r.status_code == 200:
                return
            last = f"status {r.status_code}: {r.text[:200]}"
        except httpx.HTTPError as e:
            last = repr(e)
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer {path}: {last}")


def _wait_heartbeat(url: str, proc: subprocess.Popen | None, timeout: float = 30.0) -> None:
    _wait_ok(url, "/api/v2/heartbeat", proc, timeout)


class _Processes:
    """The processes one session started, with their logs; stops them in reverse order."""

    def __init__(self) -> None:
        self.scratch = tempfile.mkdtemp(prefix="quiver-compat-")
        self.procs: list[tuple[str, subprocess.Popen, str]] = []
        self.env = dict(os.environ)
        self.env.setdefault("RUST_LOG", "warn")

    def start(self, label: str, argv: list[str]) -> subprocess.Popen:
        log_path = os.path.join(self.scratch, f"{label}.log")
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        self.procs.append((label, proc, log_path))
        return proc

    def start_tenant_server(self, label: str) -> tuple[str, subprocess.Popen]:
        workspace = os.path.join(self.scratch, f"{label}-workspace")
        os.mkdir(workspace)
        port = _free_port()
        proc = self.start(label, [
            _server_binary(), "--host", "127.0.0.1", "--port", str(port),
            "--workspace", workspace, "--allow-reset",
        ])
        return f"http://127.0.0.1:{port}", proc

    def start_with_quiver_command(self, label: str) -> tuple[str, subprocess.Popen]:
        """`quiver run`, with the flags `chroma run` users know (--path)."""
        workspace = os.path.join(self.scratch, f"{label}-workspace")
        port = _free_port()
        proc = self.start(label, [
            _quiver_command(), "run", "--path", workspace, "--host", "127.0.0.1",
            "--port", str(port), "--allow-reset",
        ])
        return f"http://127.0.0.1:{port}", proc

    def logs(self) -> str:
        out = []
        for label, _, log_path in self.procs:
            try:
                with open(log_path, "rb") as f:
                    tail = f.read()[-4000:].decode(errors="replace")
            except OSError:
                tail = "(no log)"
            out.append(f"--- {label} log ---\n{tail}")
        return "\n".join(out)

    def stop(self) -> None:
        for _, proc, _ in reversed(self.procs):
            proc.terminate()
        for _, proc, _ in reversed(self.procs):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(self.scratch, ignore_errors=True)


def _start_single(procs: _Processes) -> str:
    url, proc = procs.start_tenant_server("tenant-server")
    _wait_heartbeat(url, proc)
    return url


def _start_wheel(procs: _Processes) -> str:
    url, proc = procs.start_with_quiver_command("quiver-run")
    _wait_heartbeat(url, proc)
    return url


def _start_router(procs: _Processes) -> str:
    shard_urls = []
    for i in range(ROUTER_SHARDS):
        url, proc = procs.start_tenant_server(f"tenant-server-{i}")
        shard_urls.append((url, proc))
    for url, proc in shard_urls:
        _wait_heartbeat(url, proc)
    port = _free_port()
    argv = [_router_binary(), "--host", "127.0.0.1", "--port", str(port)]
    for url, _ in shard_urls:
        argv += ["--shard", url]
    proc = procs.start("router", argv)
    url = f"http://127.0.0.1:{port}"
    _wait_ok(url, "/readyz", proc)
    return url


@pytest.fixture(scope="session")
def server_url(request):
    url = request.config.getoption("--url")
    if url:
        url = url.rstrip("/")
        _wait_heartbeat(url, None, timeout=10.0)
        yield url
        return

    topology = _topology(request.config)
    if topology == "wheel":
        binaries = [("QUIVER_CLI", _quiver_command())]
    else:
        binaries = [("QUIVER_TENANT_SERVER_BIN", _server_binary())]
    if topology == "router":
        binaries.append(("QUIVER_ROUTER_BIN", _router_binary()))
    for env_var, binary in binaries:
        if not os.path.exists(binary):
            pytest.exit(f"{os.path.basename(binary)} binary not found at {binary} "
                        f"(set {env_var} or pass --url)", returncode=2)

    procs = _Processes()
    try:
        try:
            start = {"single": _start_single, "router": _start_router, "wheel": _start_wheel}
            url = start[topology](procs)
        except RuntimeError as e:
            raise RuntimeError(f"{e}\n{procs.logs()}") from None
        yield url
    finally:
        procs.stop()


@pytest.fixture(scope="session")
def host_port(server_url):
    u = urlparse(server_url)
    return u.hostname, u.port or 80


@pytest.fixture(scope="session")
def api(server_url):
    """A raw httpx client on the server's base URL (for header/status checks)."""
    with httpx.Client(base_url=server_url, timeout=30.0) as c:
        yield c


@pytest.fixture(scope="session")
def is_quiver(server_url) -> bool:
    """True when the server also speaks Quiver's own `/api/v1` (GET /api/v1/version)."""
    try:
        r = httpx.get(f"{server_url}/api/v1/version", timeout=5.0)
        return r.status_code == 200 and isinstance(r.json(), dict) and "version" in r.json()
    except Exception:
        return False


@pytest.fixture(scope="session")
def require_quiver(is_quiver):
    if not is_quiver:
        pytest.skip("server under test is not Quiver (GET /api/v1/version failed): "
                    "the /api/v1 per-project API is Quiver's own")


def _settings(host: str, port: int) -> Settings:
    return Settings(
        chroma_api_impl="chromadb.api.fastapi.FastAPI",
        chroma_server_host=host,
        chroma_server_http_port=port,
        anonymized_telemetry=False,
    )


@pytest.fixture(scope="session")
def admin(host_port):
    host, port = host_port
    return chromadb.AdminClient(_settings(host, port))


@pytest.fixture
def tenant(admin) -> str:
    """A fresh tenant (with its default database) for one test."""
    return new_tenant(admin)


@pytest.fixture(scope="module")
def module_tenant(admin) -> str:
    """A fresh tenant shared by the tests of one module (read-only data sets)."""
    return new_tenant(admin)


@pytest.fixture(scope="session")
def make_client(host_port):
    host, port = host_port

    def make(tenant: str, database: str = chromadb.DEFAULT_DATABASE):
        return chromadb.HttpClient(
            host=host, port=port, tenant=tenant, database=database,
            settings=Settings(anonymized_telemetry=False),
        )

    return make


@pytest.fixture
def client(tenant, make_client):
    """An HttpClient on a fresh tenant (default database)."""
    return make_client(tenant)


@pytest.fixture(scope="module")
def module_client(module_tenant, make_client):
    return make_client(module_tenant)


@pytest.fixture
def coll_name():
    return unique("coll")


@pytest.fixture
def collection(client, coll_name):
    """An empty l2 collection on a fresh tenant."""
    return client.create_collection(coll_name, embedding_function=None)
