"""Run the bridge: tasks from a folder, one engine per task, uvicorn on loopback."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from lowcarb._clock import Clock
from lowcarb._engine import SelectionEngine
from lowcarb._ledger import Ledger
from lowcarb._provider import CarbonProvider
from lowcarb._tasks import TaskEngines
from lowcarb.adapters.disco._app import GENERATIONS, BridgeLimits, create_app
from lowcarb.adapters.disco._taskdir import BridgeTask, load_tasks
from lowcarb.exceptions import DataValidationError

__all__ = ["load_zone_map", "open_engines", "serve"]

#: Rounds an open-ended task plans ahead.
_PLANNED_ROUNDS = 96


def open_engines(
    tasks: Mapping[str, BridgeTask],
    provider: CarbonProvider,
    *,
    protocol: str,
    state_dir: str | Path | None = None,
    policy: str = "lowcarb",
    unknown_zone: str = "mean",
    seed: int = 0,
    clock: Clock | None = None,
    **engine_options: Any,
) -> TaskEngines:
    """One engine per task, each with its task's energy model and its own ledger file.

    Args:
        tasks: The tasks served.
        provider: The carbon provider shared by every task.
        protocol: The generation served (sizes the model transfer for the energy model).
        state_dir: Folder for ledgers and aggregate logs; None keeps them in memory.
        policy: Selection policy name.
        unknown_zone: ``mean`` or ``error`` for zones without a signal.
        seed: Seeds the engines' tie-breaking.
        clock: Time source (wall clock by default).
        **engine_options: More :class:`SelectionEngine` keyword arguments.
    """
    generation = GENERATIONS[protocol]()

    def factory(task_id: str, ledger: Ledger) -> SelectionEngine:
        task = tasks[task_id]
        encoded = generation.encode_weights(task.artifacts.weights())
        interval = timedelta(seconds=task.settings.round_seconds)
        return SelectionEngine(
            provider,
            ledger=ledger,
            run_id=task_id,
            policy=policy,
            energy=task.settings.energy(len(encoded)),
            rounds=task.settings.rounds,
            round_interval=interval,
            # DISCO rounds last seconds to minutes: plan a bounded number of them ahead.
            horizon=interval * _PLANNED_ROUNDS,
            unknown_zone=unknown_zone,
            seed=seed,
            clock=clock,
            **engine_options,
        )

    return TaskEngines(state_dir, provider=provider, clock=clock, factory=factory)


def load_zone_map(path: str | Path) -> dict[str, str]:
    """Read a JSON object mapping client names (or ids) to zones.

    Raises:
        DataValidationError: If the file is not such an object.
    """
    where = str(path)
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataValidationError(f"cannot read the zone map: {exc}", where) from exc
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in raw.items()
    ):
        raise DataValidationError("a zone map is a JSON object of client -> zone", where)
    return dict(raw)


def serve(
    tasks_dir: str | Path,
    provider: CarbonProvider,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    protocol: str = "v2",
    state_dir: str | Path | None = None,
    limits: BridgeLimits | None = None,
    zone_map: Mapping[str, str] | None = None,
    policy: str = "lowcarb",
    seed: int = 0,
    log_level: str = "info",
) -> None:
    """Serve the tasks of ``tasks_dir`` until interrupted (binds loopback by default).

    Raises:
        DataValidationError: For an unreadable task folder.
    """
    import uvicorn

    limits = limits or BridgeLimits()
    tasks = load_tasks(tasks_dir, protocol)
    state = None if state_dir is None else Path(state_dir)
    engines = open_engines(
        tasks, provider, protocol=protocol, state_dir=state, policy=policy, seed=seed
    )
    try:
        for task_id in tasks:
            engines.get(task_id)  # open every ledger now: a bad state dir fails at start
        app = create_app(
            tasks, engines, protocol=protocol, limits=limits, state_dir=state, zone_map=zone_map
        )
        uvicorn.run(
            app,
            host=host,
            port=port,
            ws="websockets-sansio",  # the legacy websockets server is deprecated
            ws_max_size=limits.max_frame_bytes,
            log_level=log_level,
            # DISCO's WebSocket routes carry no Origin check of their own; loopback by default.
            proxy_headers=False,
        )
    finally:
        engines.close()
