"""Install hints for optional extras: one wording wherever a missing package stops lowcarb.

The docs install from a clone (``pip install -e '.[disco]'``), a user of a release from
PyPI (``pip install 'lowcarb[disco]'``): every hint gives both.
"""

from __future__ import annotations

from lowcarb.exceptions import ConfigurationError

__all__ = ["install_hint", "missing_extra"]


def install_hint(extra: str | None = None, *, package: str | None = None) -> str:
    """How to install an extra (``extra``), or a package no extra brings (``package``)."""
    if extra:
        return f"pip install 'lowcarb[{extra}]' (in a clone: pip install -e '.[{extra}]')"
    return f"pip install {package}"


def _missing_name(exc: BaseException) -> str | None:
    """The module an ImportError (or one it was raised from) could not find."""
    seen: BaseException | None = exc
    while seen is not None:
        name = getattr(seen, "name", None)
        if isinstance(seen, ImportError) and name:
            return str(name)
        seen = seen.__cause__ or seen.__context__
    return None


def missing_extra(what: str, extra: str, exc: BaseException | None = None) -> ConfigurationError:
    """The error for ``what`` (a command or a feature) when ``extra`` is not installed.

    A configuration error (exit code 2 on the command line), naming the missing module
    when ``exc`` tells it, and the install hint once.
    """
    name = _missing_name(exc) if exc is not None else None
    needs = f"{name} (the {extra!r} extra)" if name else f"the {extra!r} extra"
    hint = install_hint(extra)
    return ConfigurationError(f"{what} needs {needs}, which is not installed: {hint}")
