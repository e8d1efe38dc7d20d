"""The containers' arguments against the real binaries: every flag is one the binary
lists (its --help, or `quiver-operator flags`), the binary's own parser accepts the whole
command line, and the tenant server and the router, started with the chart's arguments,
answer on the probes' paths and accept the chart's initial placement table."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import _chart
from _chart import REPO, Rendered, single, split_args


def _accepted(binary: str) -> dict[str, _chart.Flag]:
    if binary == "quiver-operator":
        return _chart.cli("quiver-operator", "run").flags
    return _chart.cli(binary).flags


def _args(container: dict) -> list[str]:
    """The container's arguments after the subcommand, if any."""
    if container["command"][0] == "quiver-operator":
        assert container["args"][0] == "run", "the operator runs with `quiver-operator run`"
        return container["args"][1:]
    return container["args"]


def test_operator_flag_list_and_its_help_agree():
    listed = set(_chart.operator_flag_list())
    helped = set(_chart.cli("quiver-operator", "run").flags) - {"--help", "--version"}
    assert listed == helped
    assert "run" in _chart.cli("quiver-operator").subcommands


def test_every_argument_is_a_flag_the_binary_lists(rendered: Rendered):
    for _, c in rendered.containers():
        binary = c["command"][0]
        listed = (set(_chart.operator_flag_list()) if binary == "quiver-operator"
                  else set(_chart.cli(binary).flags))
        parsed = split_args(_args(c), _accepted(binary))
        unknown = set(parsed) - listed
        assert not unknown, f"{binary} does not accept {sorted(unknown)}"
        for flag, values in parsed.items():
            assert len(values) == 1 or flag == "--shard", f"{binary}: {flag} given twice"


def test_the_binaries_own_parsers_accept_the_arguments(rendered: Rendered):
    """`<binary> [run] <args> --help`: clap parses (and type-checks) every argument before
    it reaches --help, and exits 0 only if all of them are valid."""
    for _, c in rendered.containers():
        binary = c["command"][0]
        sub = ["run"] if binary == "quiver-operator" else []
        out = _chart.run_binary(binary, *sub, *_args(c), "--help")
        assert out.returncode == 0, f"{binary} refuses {c['args']}: {out.stderr}"
        # and a wrong one is refused the same way (the check is not vacuous)
        out = _chart.run_binary(binary, *sub, *_args(c), "--no-such-flag", "--help")
        assert out.returncode != 0


# ---------------------------------------------------------------------------------------
# Running them


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, headers: dict | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _wait(url: str, proc: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{proc.args[0]} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if _get(url)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    pytest.fail(f"{url} did not answer 200 within {timeout} s:\n{log.read_text()[-3000:]}")


def _replace(args: list[str], replacements: dict[str, str | None]) -> list[str]:
    """Replaces `--flag=value` arguments (None drops them) and appends the new ones."""
    out = [a for a in args if a.partition("=")[0] not in replacements]
    out += [f"{k}={v}" for k, v in replacements.items() if v is not None]
    return out


def _container_env(container: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


class Running:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.procs: list[subprocess.Popen] = []

    def start(self, binary: str, args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, Path]:
        log = self.tmp / f"{binary}.log"
        proc = subprocess.Popen(
            [str(_chart.binary(binary)), *args],
            cwd=self.tmp,
            env={**_chart.clean_env(), **env},
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        self.procs.append(proc)
        return proc, log

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.fixture(scope="module")
def running():
    with tempfile.TemporaryDirectory(prefix="quiver-chart-") as tmp:
        r = Running(Path(tmp))
        try:
            yield r
        finally:
            r.stop()


def _probe_urls(container: dict, base: str) -> list[str]:
    paths = [container[p]["httpGet"]["path"] for p in ("startupProbe", "readinessProbe", "livenessProbe")
             if p in container]
    return [base + p for p in paths]


def test_the_tenant_server_runs_with_the_charts_arguments(default_render: Rendered, running: Running):
    _, c = default_render.container_running("quiver-tenant-server")
    port = _free_port()
    workspace = running.tmp / "workspace"
    workspace.mkdir()
    args = _replace(c["args"], {"--workspace": str(workspace), "--host": "127.0.0.1",
                                "--port": str(port)})
    token = "chart-test-admin-token"
    proc, log = running.start("quiver-tenant-server", args,
                              {**_container_env(c), "QUIVER_ADMIN_TOKEN": token})
    base = f"http://127.0.0.1:{port}"
    _wait(base + c["readinessProbe"]["httpGet"]["path"], proc, log)
    for url in _probe_urls(c, base):
        assert _get(url)[0] == 200, url
    annotations = _chart.render({}).of_kind("StatefulSet")[0]["spec"]["template"]["metadata"]["annotations"]
    status, body = _get(base + annotations["prometheus.io/path"])
    assert status == 200 and b"quiver_projects" in body
    # QUIVER_ADMIN_TOKEN, as the chart passes it, guards the admin API
    assert _get(base + "/admin/v1/stats")[0] == 401
    assert _get(base + "/admin/v1/stats", {"Authorization": f"Bearer {token}"})[0] == 200
    # JSON logs, as the chart asks (--log-format=json)
    lines = [l for l in log.read_text().splitlines() if l.strip()]
    assert lines and all(json.loads(l) for l in lines)


def test_the_router_runs_with_the_charts_arguments_and_placement(default_render: Rendered, running: Running):
    _, c = default_render.container_running("quiver-router")
    args = split_args(c["args"], _chart.cli("quiver-router").flags)
    cm = default_render.get("ConfigMap", single(args, "--placement-configmap"))
    table_file = running.tmp / "placement.json"
    table_file.write_text(cm["data"]["placement.json"])
    port = _free_port()
    # the same arguments, with the ConfigMap (read through the Kubernetes API) swapped for
    # the file holding the chart's initial table
    router_args = _replace(c["args"], {"--placement-configmap": None, "--placement-namespace": None,
                                       "--placement-file": str(table_file),
                                       "--host": "127.0.0.1", "--port": str(port)})
    proc, log = running.start("quiver-router", router_args, _container_env(c))
    base = f"http://127.0.0.1:{port}"
    # ready means: a placement table is loaded and valid (docs/router.md)
    _wait(base + c["readinessProbe"]["httpGet"]["path"], proc, log)
    for url in _probe_urls(c, base):
        assert _get(url)[0] == 200, url
    status, body = _get(base + "/placement")
    table = json.loads(cm["data"]["placement.json"])
    assert status == 200
    served = json.loads(body)
    assert {k: served[k] for k in table} == table
    assert _get(base + "/metrics")[0] == 200


def test_the_operator_serves_the_probes_paths_on_its_metrics_port(default_render: Rendered):
    """The operator needs a Kubernetes API to start, so its routes are read from its
    source; --metrics-port is where they are served (test_chart checks the ports)."""
    code = (REPO / "operator" / "src" / "http.rs").read_text()
    _, c = default_render.container_running("quiver-operator")
    for probe in ("readinessProbe", "livenessProbe"):
        path = c[probe]["httpGet"]["path"]
        assert re.search(rf'\.route\(\s*"{re.escape(path)}"', code), f"the operator serves no {path}"
    assert re.search(r'\.route\(\s*"/metrics"', code)
    main = (REPO / "operator" / "src" / "main.rs").read_text()
    assert re.search(r"config\.metrics_port", main), "the endpoint listens on --metrics-port"
    # the leader identity comes from POD_NAME, which the chart sets
    leader = (REPO / "operator" / "src" / "leader.rs").read_text()
    assert '"POD_NAME"' in leader
    assert "POD_NAME" in {e["name"] for e in c["env"]}
