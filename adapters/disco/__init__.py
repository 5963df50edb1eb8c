"""A DISCO-compatible federated server whose rounds lowcarb selects.

Unmodified DISCO clients train against it over DISCO's own HTTP and WebSocket protocol;
each round the task's :class:`~lowcarb.SelectionEngine` chooses which connected clients
take part, the bridge averages their updates (federated averaging) and records the
round in the task's ledger. Two protocol generations are served: ``v2`` (the npm client
``@epfml/discojs-node@2.1.1``; cannot pause clients) and ``develop`` (DISCO's October
2024 protocol; holds deferred clients). Needs the ``disco`` extra
(``pip install 'lowcarb[disco]'``); run it with ``lowcarb disco serve``.

Example:
    >>> from lowcarb.adapters.disco import load_tasks
    >>> tasks = load_tasks("examples/disco/tasks", "v2")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lowcarb._extras import install_hint
from lowcarb._public import expose

if TYPE_CHECKING:
    from lowcarb.adapters.disco._app import GENERATIONS, BridgeLimits, create_app
    from lowcarb.adapters.disco._artifacts import ModelArtifacts, load_artifacts
    from lowcarb.adapters.disco._protocol import Generation, ProtocolViolation
    from lowcarb.adapters.disco._room import Aggregate, TaskRoom
    from lowcarb.adapters.disco._serve import load_zone_map, open_engines, serve
    from lowcarb.adapters.disco._taskdir import BridgeTask, TaskSettings, load_task, load_tasks

__all__ = [
    "GENERATIONS",
    "Aggregate",
    "BridgeLimits",
    "BridgeTask",
    "Generation",
    "ModelArtifacts",
    "ProtocolViolation",
    "TaskRoom",
    "TaskSettings",
    "create_app",
    "load_artifacts",
    "load_task",
    "load_tasks",
    "load_zone_map",
    "open_engines",
    "serve",
]

_WHERE = {
    "GENERATIONS": "_app",
    "BridgeLimits": "_app",
    "create_app": "_app",
    "ModelArtifacts": "_artifacts",
    "load_artifacts": "_artifacts",
    "Generation": "_protocol",
    "ProtocolViolation": "_protocol",
    "Aggregate": "_room",
    "TaskRoom": "_room",
    "load_zone_map": "_serve",
    "open_engines": "_serve",
    "serve": "_serve",
    "BridgeTask": "_taskdir",
    "TaskSettings": "_taskdir",
    "load_task": "_taskdir",
    "load_tasks": "_taskdir",
}


def __getattr__(name: str) -> Any:
    # Imported on first use, so that a missing extra fails with a hint, not at import.
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    except ModuleNotFoundError as exc:
        if exc.name in ("starlette", "uvicorn", "msgpack", "anyio"):
            raise ModuleNotFoundError(
                f"the DISCO bridge needs {exc.name}: {install_hint('disco')}", name=exc.name
            ) from exc
        raise
    expose({name: value}, [name], __name__)
    return value
