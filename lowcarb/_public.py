"""Public names report the public module that exports them.

A class defined in ``lowcarb/_engine.py`` and exported by ``lowcarb`` prints as
``lowcarb.SelectionEngine`` in reprs, tracebacks and docs once its package's
``__init__`` has called :func:`expose` (as httpx does for its names).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["expose"]


def expose(namespace: Mapping[str, Any], names: Iterable[str], module: str) -> None:
    """Set ``__module__`` of each class and function in ``names`` to ``module``.

    Only objects defined in a private module (a dotted part starting with ``_``) are
    changed: names that already live in a public module keep it.
    """
    for name in names:
        obj = namespace.get(name)
        if not (isinstance(obj, type) or callable(obj)):
            continue
        current = getattr(obj, "__module__", None) or ""
        if not any(part.startswith("_") for part in current.split(".")):
            continue
        with contextlib.suppress(AttributeError, TypeError):  # builtins and C types
            obj.__module__ = module
