"""Run the bridge: tasks from a folder, one engine per task, uvicorn on loopback."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path

from lowcarb import CarbonProvider, Clock, EngineSpec, TaskEngines
from lowcarb.adapters.disco._app import GENERATIONS, BridgeLimits, create_app
from lowcarb.adapters.disco._artifacts import read_json_file
from lowcarb.adapters.disco._server import bridge_config, map_large_buffers
from lowcarb.adapters.disco._taskdir import BridgeTask, load_tasks
from lowcarb.exceptions import DataValidationError

__all__ = ["load_zone_map", "open_engines", "serve", "startup_line"]

#: Rounds an open-ended task plans ahead.
_PLANNED_ROUNDS = 96


def open_engines(
    tasks: Mapping[str, BridgeTask],
    provider: CarbonProvider,
    *,
    protocol: str,
    spec: EngineSpec | None = None,
    state_dir: str | Path | None = None,
    clock: Clock | None = None,
    provider_timeout_s: float | None = None,
) -> TaskEngines:
    """One engine per task, each with its task's energy model and its own ledger file.

    Args:
        tasks: The tasks served.
        provider: The carbon provider (or chain) shared by every task.
        protocol: The generation served (sizes the model transfer for the energy model).
        spec: What every task shares (policy, fairness, seed, unknown zones, ...); each
            task sets its energy model, rounds and round length.
        state_dir: Folder for ledgers and saved models; None keeps them in memory.
        clock: Time source (wall clock by default).
        provider_timeout_s: Seconds a provider call may take before the chain's next
            member answers instead; None waits as long as the providers do.

    Raises:
        LedgerError: If another process holds ``state_dir``.
    """
    generation = GENERATIONS[protocol]()
    base = spec or EngineSpec()

    def spec_for(task_id: str) -> EngineSpec:
        task = tasks[task_id]
        encoded = generation.encode_weights(task.artifacts.weights())
        interval = timedelta(seconds=task.settings.round_seconds)
        return base.replace(
            energy=task.settings.energy(len(encoded)),
            rounds=task.settings.rounds,
            round_interval=interval,
            # DISCO rounds last seconds to minutes: plan a bounded number of them ahead.
            horizon=interval * _PLANNED_ROUNDS,
        )

    return TaskEngines(
        state_dir,
        spec=base,
        provider=provider,
        clock=clock,
        spec_for=spec_for,
        provider_timeout_s=provider_timeout_s,
    )


def load_zone_map(path: str | Path) -> dict[str, str]:
    """Read a JSON object mapping client names (or ids) to zones.

    Raises:
        DataValidationError: If the file is not such an object.
    """
    where = str(path)
    raw = read_json_file(Path(path), "the zone map")
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in raw.items()
    ):
        raise DataValidationError("a zone map is a JSON object of client -> zone", where)
    return dict(raw)


def startup_line(
    tasks: Mapping[str, BridgeTask], provider: CarbonProvider, protocol: str, state: Path | None
) -> str:
    """What the bridge serves, in one line for the operator (no secrets: names only)."""
    served = ", ".join(
        f"{t.id} ({t.settings.rounds} rounds)" if t.settings.rounds else f"{t.id} (open-ended)"
        for t in tasks.values()
    )
    where = f"state in {state}" if state is not None else "state in memory only"
    return (
        f"lowcarb disco serve: provider {provider.name}; protocol {protocol}; "
        f"tasks {served}; {where}"
    )


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
    spec: EngineSpec | None = None,
    log_level: str = "info",
    provider_timeout_s: float | None = None,
    clock: Clock | None = None,
    announce: Callable[[str], None] | None = None,
) -> None:
    """Serve the tasks of ``tasks_dir`` until interrupted (binds loopback by default).

    Args:
        tasks_dir: The folder of task folders.
        provider: The carbon provider (or chain) every task shares.
        host: Address to bind.
        port: TCP port (0 picks a free one).
        protocol: ``v2`` or ``develop``.
        state_dir: Ledgers and saved models; None keeps them in memory.
        limits: Frame, connection, timeout and pacing limits.
        zone_map: Client name or id -> zone, for every task.
        spec: What every task's engine shares (see :func:`open_engines`).
        log_level: uvicorn's log level.
        provider_timeout_s: Seconds a provider call may take before the chain's next
            member answers.
        clock: The engines' time source (the wall clock by default; ``lowcarb --now``
            fixes it).
        announce: Called once with :func:`startup_line` before serving.

    Raises:
        DataValidationError: For an unreadable task folder.
    """
    import uvicorn

    limits = limits or BridgeLimits()
    tasks = load_tasks(tasks_dir, protocol)
    state = None if state_dir is None else Path(state_dir)
    engines = open_engines(
        tasks,
        provider,
        protocol=protocol,
        spec=spec,
        state_dir=state,
        clock=clock,
        provider_timeout_s=provider_timeout_s,
    )
    try:
        for task_id in tasks:
            engines.get(task_id)  # open every ledger now: a bad state dir fails at start
        if announce is not None:
            announce(startup_line(tasks, provider, protocol, state))
        app = create_app(
            tasks, engines, protocol=protocol, limits=limits, state_dir=state, zone_map=zone_map
        )
        map_large_buffers()  # so that the memory of refused frames goes back to the system
        server = uvicorn.Server(
            bridge_config(app, limits, host=host, port=port, log_level=log_level)
        )
        server.run()
        if not server.started:
            raise SystemExit(3)  # as uvicorn.run: the address could not be bound
    finally:
        engines.close()
