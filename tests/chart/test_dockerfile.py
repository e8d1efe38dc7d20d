"""The Dockerfile, read (no Docker engine here): a build stage that compiles the three
binaries, a small runtime stage without build tools that runs them as a non-root user,
and the names it copies are the workspace's binaries."""

from __future__ import annotations

import re
import shlex
import tomllib
from dataclasses import dataclass, field

from _chart import BINARIES, REPO


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, op: str) -> list[str]:
        return [arg for o, arg in self.instructions if o == op]


def parse_dockerfile(text: str) -> list[Stage]:
    # join continuation lines, drop comments and the parser directive
    logical, current = [], ""
    for line in text.splitlines():
        if not current and line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        current += line
        if current.strip():
            logical.append(current.strip())
        current = ""
    stages: list[Stage] = []
    for line in logical:
        op, _, arg = line.partition(" ")
        op = op.upper()
        if op == "FROM":
            m = re.match(r"^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$", arg.strip(), re.I)
            stages.append(Stage(base=m.group(1), name=m.group(2)))
        else:
            assert stages, f"{op} before FROM"
            stages[-1].instructions.append((op, arg.strip()))
    return stages


DOCKERFILE = REPO / "Dockerfile"


def _stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text())


def workspace_binaries() -> dict[str, str]:
    """binary name -> package, from the workspace members' Cargo.toml files."""
    root = tomllib.loads((REPO / "Cargo.toml").read_text())
    found = {}
    for member in root["workspace"]["members"]:
        manifest = tomllib.loads((REPO / member / "Cargo.toml").read_text())
        package = manifest["package"]["name"]
        bins = [b["name"] for b in manifest.get("bin", [])]
        if not bins and (REPO / member / "src" / "main.rs").exists():
            bins = [package]
        for b in bins:
            found[b] = package
    return found


def test_two_stages_build_then_run():
    stages = _stages()
    assert [s.base for s in stages] == ["rust:1-bookworm", "debian:bookworm-slim"]
    build, runtime = stages
    assert build.name and runtime.name


def test_the_build_stage_compiles_the_three_binaries():
    build = _stages()[0]
    runs = " ".join(build.all("RUN"))
    assert "libclang-dev" in runs, "RocksDB's bindgen needs libclang"
    (cargo,) = [r for r in build.all("RUN") if "cargo build" in r]
    words = shlex.split(cargo.split("cargo build", 1)[1].split("&&")[0])
    assert "--release" in words and "--bins" in words and "--locked" in words
    packages = {words[i + 1] for i, w in enumerate(words) if w == "-p"}
    binaries = workspace_binaries()
    assert packages == {binaries[b] for b in BINARIES}


def test_the_runtime_stage_is_small_and_unprivileged():
    build, runtime = _stages()
    runs = " ".join(runtime.all("RUN"))
    installed = set(re.findall(r"apt-get install[^&]*", runs))
    packages = {w for cmd in installed for w in cmd.split()[2:] if not w.startswith("-")}
    assert packages == {"ca-certificates"}
    for tool in ("cargo", "rustc", "gcc", "clang", "build-essential", "make", "curl", "wget"):
        assert not re.search(rf"\b{tool}\b", runs), f"{tool} in the runtime image"
    assert "rm -rf /var/lib/apt/lists" in runs
    (user,) = runtime.all("USER")
    assert user == "65532:65532"
    assert "--uid 65532" in runs and "--gid 65532" in runs
    # the three binaries, from the build stage, in /usr/local/bin
    (copy,) = runtime.all("COPY")
    words = copy.split()
    assert words[0] == f"--from={build.name}"
    assert words[-1] == "/usr/local/bin/"
    copied = {w.rsplit("/", 1)[1] for w in words[1:-1]}
    assert copied == set(BINARIES)
    assert set(BINARIES) <= set(workspace_binaries())
    # the workspace is /data, owned by that user
    assert "WORKSPACE_DIR=/data" in runtime.all("ENV")
    assert "chown 65532:65532 /data" in runs
    assert runtime.all("CMD") == ['["quiver-tenant-server"]']


def test_the_build_stage_outputs_what_the_runtime_copies():
    build, runtime = _stages()
    (cargo,) = [r for r in build.all("RUN") if "cargo build" in r]
    (copy,) = runtime.all("COPY")
    for b in BINARIES:
        assert f"target/release/{b}" in cargo
        assert f"/out/{b}" in copy


def test_dockerignore_keeps_the_context_small_and_complete():
    ignored = [l.strip() for l in (REPO / ".dockerignore").read_text().splitlines()
               if l.strip() and not l.startswith("#")]
    for must in ("target", ".git", "workspace"):
        assert must in ignored
    # nothing the Cargo workspace needs is left out
    members = tomllib.loads((REPO / "Cargo.toml").read_text())["workspace"]["members"]
    for pattern in ignored:
        for needed in ["Cargo.toml", "Cargo.lock", *members]:
            assert not re.fullmatch(pattern.replace("*", "[^/]*"), needed), (pattern, needed)


def test_the_readme_builds_and_loads_the_image():
    readme = (REPO / "README.md").read_text()
    assert "docker build -t quiver:" in readme
    assert re.search(r"kind load docker-image quiver:", readme)
    assert re.search(r"k3d image import quiver:", readme)
    assert "helm install quiver charts/quiver" in readme
    assert "kubectl apply" in readme and "examples/project.yaml" in readme
