"""The public surface: sorted, complete exports, and a core that imports no framework or HTTP."""

import subprocess
import sys

import pytest

import lowcarb
import lowcarb.backends
import lowcarb.exceptions


def test_all_is_sorted_and_complete():
    for module in (lowcarb, lowcarb.backends, lowcarb.exceptions):
        names = module.__all__
        assert names == sorted(names, key=lambda n: (not n.isupper(), n)) or names == sorted(
            names
        ), module.__name__
        for name in names:
            assert getattr(module, name) is not None
    public = {n for n in dir(lowcarb) if not n.startswith("_") and n[0].isupper()}
    modules = {"exceptions", "backends", "adapters", "annotations"}
    assert public - set(lowcarb.__all__) - modules == set()


def test_exceptions_tree():
    for name in lowcarb.exceptions.__all__:
        obj = getattr(lowcarb.exceptions, name)
        if isinstance(obj, type):
            assert issubclass(obj, lowcarb.LowcarbError)
    assert issubclass(lowcarb.ProviderTimeoutError, TimeoutError)
    assert issubclass(lowcarb.ProviderUnavailableError, ConnectionError)
    assert issubclass(lowcarb.ConfigurationError, ValueError)


def test_errors_never_carry_secrets():
    err = lowcarb.ProviderError(
        "GET https://x/api?securityToken=abcdef123456&zone=DE failed", provider="entsoe"
    )
    assert "abcdef123456" not in str(err) and "zone=DE" in str(err)
    err = lowcarb.AuthenticationError("header auth-token: s3cr3t-value rejected")
    assert "s3cr3t-value" not in str(err)
    assert (
        lowcarb.exceptions.redact("Authorization: Bearer eyJhbGciOi.x.y")
        == "Authorization: REDACTED"
    )


@pytest.mark.slow
def test_core_imports_no_framework_and_no_http():
    code = (
        "import sys, lowcarb, lowcarb.backends; "
        "from lowcarb.backends import DefaultProvider; DefaultProvider(); "
        "bad = [m for m in ('httpx', 'flwr', 'tenacity', 'starlette', 'requests', 'entsoe') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_py_typed_ships():
    from importlib import resources

    assert resources.files("lowcarb").joinpath("py.typed").is_file()


def test_public_names_print_their_public_module():
    import lowcarb.adapters.flower
    import lowcarb.cli
    import lowcarb.simulation

    assert repr(lowcarb.SelectionEngine) == "<class 'lowcarb.SelectionEngine'>"
    for package in (lowcarb, lowcarb.simulation, lowcarb.cli, lowcarb.adapters.flower):
        for name in package.__all__:
            obj = getattr(package, name)
            if isinstance(obj, type) or callable(obj):
                module = obj.__module__
                assert not any(part.startswith("_") for part in module.split(".")), (
                    f"{package.__name__}.{name} prints as {module}.{name}"
                )


def _imports(path):
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def test_the_layers_point_one_way():
    """The core reaches providers through the registry, never by import; the CLI's app
    module imports none of its commands (no cycle); the simulator uses the public API."""
    from pathlib import Path

    root = Path(lowcarb.__file__).parent
    for path in root.rglob("*.py"):
        if "cli" in path.relative_to(root).parts:
            continue
        for name in _imports(path):
            assert not name.startswith(("lowcarb.backends", "lowcarb.adapters")), (path, name)
    for name in _imports(root / "cli" / "_app.py"):
        assert not name.startswith("lowcarb.cli"), name
    for path in (root / "simulation").glob("*.py"):
        private = [n for n in _imports(path) if n.startswith("lowcarb._")]
        # Leaf helpers only: exports, time, and the one wording of install hints.
        assert set(private) <= {"lowcarb._public", "lowcarb._time", "lowcarb._extras"}, (
            path,
            private,
        )
