"""Fixtures for the interop tests: DISCO's npm client installed once, a bridge on loopback."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from _disco_bridge import NODE_DIR
from _disco_develop import SNAPSHOT, BuildError, hooked_server
from _disco_develop import develop_build as develop_build_dir


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


@pytest.fixture(scope="session")
def develop_build() -> Path:
    """DISCO's develop branch built from ../shared (once; cached by its lock file).

    Skips when ../shared or node is absent; a step of the build that fails fails the test
    (CI must not pass by skipping).
    """
    if not SNAPSHOT.is_dir():
        pytest.skip(f"the DISCO develop snapshot is absent ({SNAPSHOT}); the stage needs ../shared")
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed for the DISCO interop tests (not found on PATH)")
    try:
        return develop_build_dir()
    except BuildError as exc:
        pytest.fail(f"building DISCO develop from {SNAPSHOT} failed: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def hooked_disco_server(develop_build: Path) -> Path:
    """DISCO's own server with lowcarb's hook (examples/disco/hook), compiled: its dist/."""
    try:
        return hooked_server(develop_build).parent
    except BuildError as exc:
        pytest.fail(f"building DISCO's server with the hook failed: {exc}", pytrace=False)
