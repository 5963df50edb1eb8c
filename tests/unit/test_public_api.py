"""The public surface: sorted, complete exports, and a core that imports no framework or HTTP."""

import subprocess
import sys

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
