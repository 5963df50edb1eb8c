"""The public provider toolkit: complete, cheap to import, and all the built-ins use."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import lowcarb.backends.toolkit as toolkit
from lowcarb.backends.toolkit import HttpOptions, HttpProvider
from lowcarb.exceptions import ConfigurationError

BACKENDS = Path(__file__).resolve().parents[2] / "backends"
# The toolkit and the modules behind it bridge to the core; everything else is a provider.
TOOLKIT_MODULES = {"toolkit.py", "_points.py"} | {p.name for p in BACKENDS.glob("_http_*.py")}
ALLOWED = ("lowcarb.backends.", "lowcarb.exceptions")


def test_all_is_sorted_and_complete():
    names = toolkit.__all__
    assert names == sorted(names, key=lambda n: (not n.isupper(), n))
    for name in names:
        assert getattr(toolkit, name) is not None, name
    public = {n for n in dir(toolkit) if not n.startswith("_") and n != "annotations"}
    assert public - {"importlib", "TYPE_CHECKING", "Any"} == set(names)


def test_unknown_names_raise_attribute_error():
    with pytest.raises(AttributeError, match="NoSuchHelper"):
        toolkit.NoSuchHelper  # noqa: B018


@pytest.mark.slow
def test_the_toolkit_and_a_local_provider_load_no_http_library():
    code = (
        "import sys\n"
        "from lowcarb.backends.toolkit import CarbonProvider, Point, assemble, fill_gaps\n"
        "from lowcarb.backends import DefaultProvider, FileProvider\n"
        "DefaultProvider()\n"
        "bad = [m for m in ('httpx', 'tenacity') if m in sys.modules]\n"
        "assert not bad, bad\n"
        "from lowcarb.backends.toolkit import HttpProvider\n"
        "assert 'httpx' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    "path", sorted(p for p in BACKENDS.glob("*.py") if p.name not in TOOLKIT_MODULES), ids=str
)
def test_providers_import_the_toolkit_not_private_core_modules(path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0:
            module = node.module or ""
            if module.startswith("lowcarb"):
                assert module == "lowcarb" or module.startswith(ALLOWED), (path.name, module)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                assert not alias.name.startswith("lowcarb._"), (path.name, alias.name)


def test_http_options_are_declared_once():
    fields = {f.name for f in dataclasses.fields(HttpOptions)}
    parameters = set(inspect.signature(HttpProvider.__init__).parameters)
    assert not fields & parameters  # taken as **options and checked by HttpOptions


class Grid(HttpProvider):
    name = "grid"
    default_base_url = "https://grid.example/v1"

    @property
    def capabilities(self):  # pragma: no cover - not used
        raise NotImplementedError

    def served_zones(self) -> list[str]:
        return ["DE"]


def test_http_provider_options_are_checked_by_http_options():
    p = Grid(timeout_s=3, gaps="keep")
    assert p.options == HttpOptions(base_url="https://grid.example/v1", timeout_s=3, gaps="keep")
    assert p.base_url == "https://grid.example/v1" and p.timeout_s == 3.0 and p.gaps == "keep"
    with pytest.raises(ConfigurationError, match="timeout_s must be a number > 0"):
        Grid(timeout_s=0)
    with pytest.raises(ConfigurationError, match="must start with http"):
        Grid(base_url="grid.example")
    with pytest.raises(TypeError, match="colour"):
        Grid(colour="green")


def test_an_http_provider_without_any_base_url_is_refused():
    class Nowhere(Grid):
        default_base_url = ""

    with pytest.raises(ConfigurationError, match="base_url must start with http"):
        Nowhere()
    assert Nowhere(base_url="http://localhost:8080").base_url == "http://localhost:8080"
