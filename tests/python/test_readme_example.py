"""The original system's example, as the README shows it, runs unchanged against a server
started by the wheel: the README's code block is executed as it is written."""

from __future__ import annotations

import re
import socket
from pathlib import Path

from conftest import REPO, Server

START = "<!-- original-client-example -->"


def readme_example() -> str:
    text = (REPO / "README.md").read_text()
    after = text.split(START, 1)
    assert len(after) == 2, f"README.md has no {START} marker"
    m = re.search(r"```python\n(.*?)```", after[1], re.S)
    assert m, "no python block after the marker"
    return m.group(1)


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_the_readme_example_runs_unchanged(capsys):
    code = readme_example()
    assert "port=7100" in code and "from multi_tenant_client import" in code
    if port_is_free(7100):
        server = Server(port=7100)
    else:
        # 7100 is taken on this machine: the one change is the port the example dials
        server = Server()
        code = code.replace("port=7100", f"port={server.port}")
    try:
        exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
    finally:
        server.stop()
        server.remove()
    out = capsys.readouterr().out
    assert "doc1" in out, out

