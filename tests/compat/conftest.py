"""Chroma v2 compatibility suite: fixtures.

Run against a server that is already up with ``--url http://HOST:PORT``; without ``--url``
the Quiver tenant server binary is started on a temporary workspace and a free port
(``--allow-reset``), and stopped when the session ends. The binary is
``$QUIVER_TENANT_SERVER_BIN``, else ``$CARGO_TARGET_DIR/release/quiver-tenant-server``,
else ``target/release/quiver-tenant-server`` in the repository.

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


def pytest_addoption(parser):
    parser.addoption(
        "--url",
        action="store",
        default=None,
        help="base URL of a running Chroma-compatible server (e.g. http://127.0.0.1:8000); "
        "without it the Quiver tenant server binary is started",
    )


def _server_binary() -> str:
    env = os.environ.get("QUIVER_TENANT_SERVER_BIN")
    if env:
        return env
    target = os.environ.get("CARGO_TARGET_DIR") or str(REPO / "target")
    return str(Path(target) / "release" / "quiver-tenant-server")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_heartbeat(url: str, proc: subprocess.Popen | None, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited early with status {proc.returncode}")
        try:
            r = httpx.get(f"{url}/api/v2/heartbeat", timeout=2.0)
            if r.status_code == 200:
                return
            last = f"status {r.status_code}"
        except httpx.HTTPError as e:
            last = repr(e)
        time.sleep(0.1)
    raise RuntimeError(f"server at {url} did not answer /api/v2/heartbeat: {last}")


@pytest.fixture(scope="session")
def server_url(request):
    url = request.config.getoption("--url")
    if url:
        url = url.rstrip("/")
        _wait_heartbeat(url, None, timeout=10.0)
        yield url
        return

    binary = _server_binary()
    if not os.path.exists(binary):
        pytest.exit(f"Quiver tenant server binary not found at {binary} "
                    "(set QUIVER_TENANT_SERVER_BIN or pass --url)", returncode=2)
    workspace = tempfile.mkdtemp(prefix="quiver-compat-")
    port = _free_port()
    log_path = os.path.join(os.path.dirname(workspace), f"quiver-compat-{port}.log")
    log = open(log_path, "wb")
    env = dict(os.environ)
    env.setdefault("RUST_LOG", "warn")
    proc = subprocess.Popen(
        [binary, "--host", "127.0.0.1", "--port", str(port), "--workspace", workspace, "--allow-reset"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            _wait_heartbeat(url, proc)
        except RuntimeError as e:
            log.flush()
            with open(log_path, "rb") as f:
                tail = f.read()[-4000:].decode(errors="replace")
            raise RuntimeError(f"{e}\n--- server log ---\n{tail}") from None
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(workspace, ignore_errors=True)
        try:
            os.remove(log_path)
        except OSError:
            pass


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
