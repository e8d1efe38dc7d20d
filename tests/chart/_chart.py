"""Rendering the chart with Helm's own library, and reading what the binaries accept.

The chart is rendered by ``helm_python`` (the ``helm-python-sdk`` package: Helm's Go SDK
behind a C ABI), through the same client-only dry-run install that ``helm template`` runs,
so the manifests, the hooks' order and ``NOTES.txt`` are exactly what ``helm install``
would send. ``lookup`` finds nothing offline, as on a first install.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "quiver"
EXAMPLES = REPO / "examples"
BINARIES = ("quiver-tenant-server", "quiver-router", "quiver-operator")


# ---------------------------------------------------------------------------------------
# YAML that refuses duplicate keys (PyYAML keeps the last one silently; the API server
# and kubectl refuse such a manifest).


class StrictLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: StrictLoader, node: yaml.MappingNode, deep: bool = False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep)


StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping
)


def load_all(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.load_all(text, Loader=StrictLoader) if d is not None]


def load_file(path: Path) -> Any:
    return yaml.load(path.read_text(), Loader=StrictLoader)


# ---------------------------------------------------------------------------------------
# Rendering


@dataclass
class Rendered:
    release: str
    namespace: str
    values: dict[str, Any]
    docs: list[dict[str, Any]]
    notes: str
    by_key: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def get(self, kind: str, name: str) -> dict[str, Any]:
        assert (kind, name) in self.by_key, (
            f"no {kind} {name!r} in the rendered chart; there are {sorted(self.by_key)}"
        )
        return self.by_key[(kind, name)]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def workloads(self) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] in ("Deployment", "StatefulSet")]

    def containers(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(workload, container) for every container of every workload."""
        return [
            (w, c)
            for w in self.workloads()
            for c in w["spec"]["template"]["spec"].get("initContainers", [])
            + w["spec"]["template"]["spec"]["containers"]
        ]

    def container_running(self, binary: str) -> tuple[dict[str, Any], dict[str, Any]]:
        found = [(w, c) for w, c in self.containers() if c.get("command", [None])[0] == binary]
        assert len(found) == 1, f"expected one container running {binary}, found {len(found)}"
        return found[0]


@functools.lru_cache(maxsize=1)
def chart() -> helm.Chart:
    return helm.Chart.load(str(CHART))


@functools.lru_cache(maxsize=None)
def _render_cached(values_json: str, release: str, namespace: str) -> tuple[str, str]:
    values = json.loads(values_json)
    config = helm.Config(storage_driver="memory", namespace=namespace)
    try:
        rel = config.install(chart(), release, values, namespace=namespace, dry_run="client")
    finally:
        config.close()
    return rel["manifest"], rel.get("notes") or ""


def render(
    values: dict[str, Any] | None = None, *, release: str = "quiver", namespace: str = "quiver"
) -> Rendered:
    values = values or {}
    manifest, notes = _render_cached(json.dumps(values, sort_keys=True), release, namespace)
    docs = load_all(manifest)
    r = Rendered(
        release=release,
        namespace=namespace,
        values=chart().merge_values(copy.deepcopy(values)),
        docs=docs,
        notes=notes,
    )
    for d in docs:
        key = (d["kind"], d["metadata"]["name"])
        assert key not in r.by_key, f"two objects {key}"
        r.by_key[key] = d
    return r


def values_file(path: Path) -> dict[str, Any]:
    return helm.values_from_yaml(path.read_text())


# The value sets every structural test runs on: the defaults, the production-like example,
# and variations that switch on what the defaults leave off.
def value_sets() -> dict[str, tuple[dict[str, Any], str, str]]:
    production = values_file(EXAMPLES / "values-production.yaml")
    return {
        "defaults": ({}, "quiver", "quiver"),
        "production": (production, "quiver", "quiver-prod"),
        "renamed": (
            {
                "shards": {"min": 3, "max": 5},
                "tracing": {"endpoint": "http://collector:4318"},
                "router": {"ingress": {"enabled": True}, "service": {"port": 80}},
                "tenant": {"port": 7200},
                "operator": {"metricsPort": 9090, "adoptUnmanaged": True},
                "cors": {"origins": ["https://a.example.com", "http://b.example.com:8080"]},
            },
            "vectors",
            "team-a",
        ),
        "no-auth": (
            {"auth": {"adminToken": {"enabled": False}}, "metrics": {"podAnnotations": False},
             "router": {"pdb": {"enabled": False}}, "tenant": {"pdb": {"enabled": False}}},
            "q",
            "default",
        ),
    }


# ---------------------------------------------------------------------------------------
# The binaries


def binary_dir() -> Path:
    if os.environ.get("QUIVER_BIN_DIR"):
        return Path(os.environ["QUIVER_BIN_DIR"])
    target = os.environ.get("CARGO_TARGET_DIR")
    return (Path(target) if target else REPO / "target") / "release"


def binary(name: str) -> Path:
    path = binary_dir() / name
    assert path.is_file() and os.access(path, os.X_OK), (
        f"{path} is missing: build it with "
        "`cargo build --release -p quiver-tenant-server -p quiver-router -p quiver-operator` "
        "(tests/chart/run.sh does), or point QUIVER_BIN_DIR at the binaries"
    )
    return path


def clean_env() -> dict[str, str]:
    """The environment minus every variable a binary reads as a setting."""
    prefixes = ("QUIVER_", "CHROMA_", "OTEL_", "KUBE")
    names = {"WORKSPACE_DIR", "KNOWLEDGE_GRAPH_SUBDIR", "CORS_ORIGINS", "ALLOW_RESET",
             "POD_NAMESPACE", "POD_NAME", "RUST_LOG"}
    return {
        k: v for k, v in os.environ.items() if not k.startswith(prefixes) and k not in names
    }


def run_binary(name: str, *args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    # a scratch working directory: the binaries read a .env file from it
    with tempfile.TemporaryDirectory() as cwd:
        return subprocess.run(
            [str(binary(name)), *args],
            cwd=cwd,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )


@dataclass(frozen=True)
class Flag:
    name: str  # with its "--"
    takes_value: bool  # a value is required (--flag <V>)
    optional_value: bool  # --flag [<V>]


@dataclass(frozen=True)
class Cli:
    flags: dict[str, Flag]
    env: frozenset[str]
    subcommands: frozenset[str]


_FLAG_LINE = re.compile(
    r"^\s+(?:-[A-Za-z], )?(--[a-z0-9][a-z0-9-]*)(?: (\[<[^>]+>\]|<[^>]+>))?"
)


def parse_help(text: str) -> Cli:
    flags: dict[str, Flag] = {}
    subcommands: set[str] = set()
    section = None
    for line in text.splitlines():
        if re.match(r"^\S.*:$", line):
            section = line.rstrip(":")
            continue
        if section == "Commands":
            m = re.match(r"^  ([a-z][a-z0-9-]*)\b", line)
            if m:
                subcommands.add(m.group(1))
            continue
        m = _FLAG_LINE.match(line)
        if m:
            value = m.group(2) or ""
            flags[m.group(1)] = Flag(
                name=m.group(1),
                takes_value=value.startswith("<"),
                optional_value=value.startswith("[<"),
            )
    env = frozenset(re.findall(r"\[env: ([A-Z][A-Z0-9_]*)[=\]]", text))
    return Cli(flags=flags, env=env, subcommands=frozenset(subcommands))


@functools.lru_cache(maxsize=None)
def cli(name: str, *subcommand: str) -> Cli:
    out = run_binary(name, *subcommand, "--help")
    assert out.returncode == 0, f"{name} {' '.join(subcommand)} --help failed: {out.stderr}"
    return parse_help(out.stdout)


@functools.lru_cache(maxsize=None)
def operator_flag_list() -> tuple[str, ...]:
    """`quiver-operator flags`: every long flag `quiver-operator run` accepts."""
    out = run_binary("quiver-operator", "flags")
    assert out.returncode == 0, f"quiver-operator flags failed: {out.stderr}"
    flags = tuple(re.findall(r"--[a-z0-9][a-z0-9-]*", out.stdout))
    assert flags, f"quiver-operator flags printed no flag: {out.stdout!r}"
    return flags


def split_args(args: list[str], accepted: dict[str, Flag]) -> dict[str, list[str | None]]:
    """Parses container args the way clap will: `--flag=value`, `--flag value`, or a
    switch. Fails on anything the binary does not accept."""
    parsed: dict[str, list[str | None]] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        assert arg.startswith("--"), f"unexpected positional argument {arg!r} in {args}"
        name, eq, value = arg.partition("=")
        assert name in accepted, f"{name} is not a flag the binary accepts ({sorted(accepted)})"
        flag = accepted[name]
        if eq:
            assert flag.takes_value or flag.optional_value, f"{name} takes no value"
            parsed.setdefault(name, []).append(value)
        elif flag.takes_value:
            assert i + 1 < len(args), f"{name} needs a value"
            i += 1
            parsed.setdefault(name, []).append(args[i])
        else:
            parsed.setdefault(name, []).append(None)
        i += 1
    return parsed


def single(parsed: dict[str, list[str | None]], flag: str) -> str:
    values = parsed.get(flag)
    assert values is not None, f"{flag} is not passed"
    assert len(values) == 1, f"{flag} is passed {len(values)} times"
    assert values[0] is not None
    return values[0]
