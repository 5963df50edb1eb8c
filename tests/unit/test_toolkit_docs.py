"""The "Writing your own provider" page runs as written, and uses public names only.

Its titled blocks (``mygrid/provider.py``, ``test_mygrid.py``, ...) become files of a
scratch project; its untitled blocks run in order; then pytest runs the page's contract
tests against the page's providers. All of it in a subprocess, so that the page's
``register_provider`` and imports leave this process untouched.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lowcarb.testing import ProviderContract

PAGE = Path(__file__).resolve().parents[2] / "docs" / "providers" / "writing.md"
BLOCK = re.compile(r'```python(?: title="([^"]+)")?\n(.*?)```', re.S)
PUBLIC = {"lowcarb", "lowcarb.backends.toolkit", "lowcarb.exceptions", "lowcarb.testing"}

RUNNER = """
import sys
from pathlib import Path

import pytest

for block in sorted(Path("blocks").iterdir()):
    exec(compile(block.read_text(), f"writing.md block {block.name}", "exec"), {})
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", *sys.argv[1:]]))
"""


def blocks() -> list[tuple[str, str]]:
    found = BLOCK.findall(PAGE.read_text(encoding="utf-8"))
    assert found, f"{PAGE} has no Python blocks"
    return found


def test_the_page_imports_only_public_lowcarb_names() -> None:
    for title, code in blocks():
        for node in ast.walk(ast.parse(code)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lowcarb"):
                assert node.module in PUBLIC, f"{title or 'a block'} imports {node.module}"
            if isinstance(node, ast.Import):
                names = {alias.name for alias in node.names if alias.name.startswith("lowcarb")}
                assert names <= PUBLIC, f"{title or 'a block'} imports {names}"


@pytest.mark.slow
def test_the_page_runs_and_its_providers_pass_the_contract(tmp_path: Path) -> None:
    (tmp_path / "blocks").mkdir()
    tests = []
    for number, (title, code) in enumerate(blocks()):
        if not title:
            (tmp_path / "blocks" / f"{number:02d}.py").write_text(code, encoding="utf-8")
            continue
        target = tmp_path / title
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.parent != tmp_path:
            (target.parent / "__init__.py").touch()
        target.write_text(code, encoding="utf-8")
        if target.name.startswith("test_"):
            tests.append(title)
    assert tests, "the page shows no contract test"
    (tmp_path / "run.py").write_text(RUNNER, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "run.py", *tests],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # Every check of the contract ran for each of the page's providers, as its console
    # example says.
    checks = [name for name in dir(ProviderContract) if name.startswith("test_")]
    expected = f"{len(checks) * 2} passed"
    assert expected in done.stdout, done.stdout
    assert expected in PAGE.read_text(encoding="utf-8"), "update the page's pytest output"
