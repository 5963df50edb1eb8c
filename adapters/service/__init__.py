"""The selection service: lowcarb's engine over HTTP/JSON, for any framework.

``lowcarb serve`` runs it; :func:`create_app` builds the ASGI application for embedding
and :func:`serve` runs it under uvicorn with the service's connection and request limits.
It needs Starlette and uvicorn (the ``disco`` extra), imported on first use.

Example:
    >>> from lowcarb import TaskEngines
    >>> from lowcarb.adapters.service import ServiceConfig, create_app
    >>> app = create_app(TaskEngines("state"), ServiceConfig(token="s3cret"))  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lowcarb._extras import install_hint
from lowcarb._public import expose

if TYPE_CHECKING:
    from lowcarb.adapters.service._app import ServiceConfig, create_app
    from lowcarb.adapters.service._server import serve

__all__ = ["ServiceConfig", "create_app", "serve"]
_WHERE = {"ServiceConfig": "_app", "create_app": "_app", "serve": "_server"}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        module = importlib.import_module(f"{__name__}.{_WHERE[name]}")
    except ModuleNotFoundError as exc:
        if exc.name not in ("starlette", "uvicorn", "h11"):
            raise
        raise ImportError(
            f"the selection service needs {exc.name}: {install_hint('disco')}"
        ) from exc
    value = getattr(module, name)
    expose({name: value}, [name], __name__)
    return value
