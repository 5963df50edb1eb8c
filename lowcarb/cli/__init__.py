"""The ``lowcarb`` command line.

:data:`app` is the Typer application and :func:`main` runs it (the ``lowcarb`` console
script). Each command group lives in its own module and registers on ``app``:
data commands (``zones``, ``latest``, ``history``, ``forecast``, ``resolve``),
``config show``, ``simulate``, ``serve``, ``disco serve``, ``report`` and ``dashboard``.
"""

from __future__ import annotations

from lowcarb._public import expose
from lowcarb.cli._app import app, main

# isort: off
# The command modules register on `app` when imported, in the order `--help` lists them.
from lowcarb.cli import _signals, _simulate, _serve, _config, _disco, _report, _dashboard  # noqa: F401

# isort: on

__all__ = ["app", "main"]

expose(globals(), __all__, __name__)
