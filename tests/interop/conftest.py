"""Fixtures for the interop tests: DISCO's npm client installed once, a bridge on loopback."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from _disco_bridge import EXAMPLES, NODE_DIR, Bridge, start_bridge


@pytest.fixture(scope="session")
def node_fixture() -> Path:
    """tests/interop/node with @epfml/discojs-node@2.1.1 installed (reused when present).

    The install follows ../shared/reference/disco.md: `npm install --ignore-scripts`, with
    @tensorflow/tfjs-node aliased to the pure-JS @tensorflow/tfjs (no native download).
    """
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed for the DISCO interop tests (not found on PATH)")
    installed = NODE_DIR / "node_modules" / "@epfml" / "discojs-node" / "package.json"
    msgpack_js = NODE_DIR / "node_modules" / "@msgpack" / "msgpack" / "package.json"
    if not (installed.is_file() and msgpack_js.is_file()):
        subprocess.run(
            [npm, "install", "--ignore-scripts", "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            check=True,
            timeout=900,
        )
    version = json.loads(installed.read_text())["version"]
    assert version == "2.1.1", f"expected @epfml/discojs-node 2.1.1, found {version}"
    return NODE_DIR


@pytest.fixture
def bridge_v2(tmp_path: Path) -> Iterator[Bridge]:
    bridge = start_bridge(EXAMPLES / "tasks", tmp_path / "state")
    yield bridge
    bridge.stop()
