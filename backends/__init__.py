"""Carbon-intensity providers, installed as ``lowcarb.backends``.

Each provider turns a query (zones, time range) into an
:class:`~lowcarb.IntensitySeries` and knows nothing of client selection. Look them up
by name with :func:`lowcarb.get_provider_class`; the classes are also importable here.

Built-in providers:

* ``default`` (:class:`DefaultProvider`): the embedded offline default, synthetic hourly
  series generated from per-zone statistics (contains data from Electricity Maps (ODbL)).
* ``file`` (:class:`FileProvider`): wide CSV/Parquet files and Electricity Maps data-portal
  exports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["DefaultProvider", "FileProvider"]

if TYPE_CHECKING:
    from lowcarb.backends._default import DefaultProvider
    from lowcarb.backends._file import FileProvider

_LAZY = {
    "DefaultProvider": "lowcarb.backends._default",
    "FileProvider": "lowcarb.backends._file",
}


def __getattr__(name: str) -> Any:
    # Import providers on first access, so that `import lowcarb.backends` stays cheap.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lowcarb.backends' has no attribute {name!r}")
