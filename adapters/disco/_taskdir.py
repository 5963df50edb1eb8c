"""DISCO tasks on disk: one folder per task, as the bridge serves them.

A task folder holds::

    task.json      the DISCO task, exactly as DISCO defines it for the protocol generation
                   (``taskID`` for v2, ``id`` for develop)
    model.json     the TF.js layers model DISCO exports, and the weight file(s) it lists
    lowcarb.json   optional: how the bridge selects clients for this task

``lowcarb.json`` keys (all optional): ``zone`` (default zone of clients that declare
none), ``clients_per_round`` (K, default 2), ``min_clients`` (clients connected before the
first round is decided, default K), ``zones`` (client name or id -> zone), ``device_power_w``
(W, default 70), ``round_seconds`` (a client's training time per round and the spacing of
rounds, default 60) and ``rounds`` (server rounds the training is expected to take; fair
shares are counted over them, so give it whenever it is known).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from lowcarb import DEFAULT_DEVICE_POWER_W, EnergyModel, check_task_id
from lowcarb.adapters.disco._artifacts import ModelArtifacts, load_artifacts, read_json_file
from lowcarb.exceptions import DataValidationError

__all__ = ["BridgeTask", "TaskSettings", "load_task", "load_tasks", "task_generation"]

_SETTINGS_KEYS = {
    "zone",
    "clients_per_round",
    "min_clients",
    "zones",
    "device_power_w",
    "round_seconds",
    "rounds",
}


@dataclass(frozen=True)
class TaskSettings:
    """How the bridge selects clients for one task (``lowcarb.json``).

    Attributes:
        zone: Zone of clients that declare none (None: the engine's unknown-zone rule).
        clients_per_round: Clients selected per round (K).
        min_clients: Clients connected before the first round is decided (later rounds
            take whoever is connected).
        zones: Client name (or protocol id) -> zone.
        device_power_w: A client's device power while training (W).
        round_seconds: A client's training time per round (s), for the energy model,
            and the expected spacing of rounds (one planning slot). DISCO rounds last
            seconds to minutes, so a task states its own instead of the core's hour.
        rounds: Server rounds the training is expected to take (None: open-ended).
    """

    zone: str | None = None
    clients_per_round: int = 2
    min_clients: int | None = None
    zones: Mapping[str, str] = field(default_factory=dict)
    device_power_w: float = DEFAULT_DEVICE_POWER_W
    round_seconds: float = 60.0
    rounds: int | None = None

    @property
    def quorum(self) -> int:
        """Clients needed before a round is decided."""
        return self.min_clients if self.min_clients is not None else self.clients_per_round

    def energy(self, model_bytes: int) -> EnergyModel:
        """The energy model of one client-round (the model travels up and down once)."""
        return EnergyModel(
            device_power_w=self.device_power_w,
            round_time=timedelta(seconds=self.round_seconds),
            bytes_up=float(model_bytes),
            bytes_down=float(model_bytes),
        )


def _positive_int(raw: Mapping[str, Any], key: str, where: str) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DataValidationError(f"{key} must be a positive integer, got {value!r}", where)
    return value


def _positive_float(raw: Mapping[str, Any], key: str, default: float, where: str) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DataValidationError(f"{key} must be a number, got {value!r}", where)
    if value <= 0:
        raise DataValidationError(f"{key} must be positive, got {value!r}", where)
    return float(value)


def _settings(path: Path) -> TaskSettings:
    if not path.exists():  # optional; but a FIFO or device in its place is refused below
        return TaskSettings()
    where = str(path)
    raw = read_json_file(path, "the task settings")
    if not isinstance(raw, dict):
        raise DataValidationError("must hold a JSON object", where)
    unknown = sorted(set(raw) - _SETTINGS_KEYS)
    if unknown:
        raise DataValidationError(
            f"unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(_SETTINGS_KEYS))}",
            where,
        )
    zone, zones = raw.get("zone"), raw.get("zones", {})
    if zone is not None and (not isinstance(zone, str) or not zone):
        raise DataValidationError(f"zone must be a non-empty string, got {zone!r}", where)
    if not isinstance(zones, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in zones.items()
    ):
        raise DataValidationError("zones must map client names to zone strings", where)
    k = _positive_int(raw, "clients_per_round", where) or 2
    quorum = _positive_int(raw, "min_clients", where)
    if quorum is not None and quorum < k:
        raise DataValidationError(f"min_clients ({quorum}) is below clients_per_round ({k})", where)
    return TaskSettings(
        zone=zone,
        clients_per_round=k,
        min_clients=quorum,
        zones=dict(zones),
        device_power_w=_positive_float(raw, "device_power_w", 70.0, where),
        round_seconds=_positive_float(raw, "round_seconds", 60.0, where),
        rounds=_positive_int(raw, "rounds", where),
    )


def task_generation(raw: Mapping[str, Any]) -> str:
    """``v2`` for a task with ``taskID``, ``develop`` for one with ``id``."""
    if isinstance(raw.get("taskID"), str):
        return "v2"
    if isinstance(raw.get("id"), str):
        return "develop"
    raise DataValidationError("a DISCO task needs a string 'taskID' (v2) or 'id' (develop)")


@dataclass(frozen=True)
class BridgeTask:
    """A task the bridge serves.

    Attributes:
        id: The task id (``taskID`` or ``id``).
        generation: The protocol generation its JSON belongs to.
        disco: The DISCO task JSON, served as is by ``GET /tasks``.
        artifacts: The initial model.
        settings: Selection settings.
        folder: Where it was read from.
    """

    id: str
    generation: str
    disco: Mapping[str, Any]
    artifacts: ModelArtifacts
    settings: TaskSettings
    folder: Path


def load_task(folder: Path) -> BridgeTask:
    """Read one task folder.

    Raises:
        DataValidationError: Naming the file and what is wrong with it.
    """
    task_file = folder / "task.json"
    raw = read_json_file(task_file, "the task")
    if not isinstance(raw, dict):
        raise DataValidationError("a DISCO task is a JSON object", str(task_file))
    try:
        generation = task_generation(raw)
        task_id = check_task_id(raw["taskID" if generation == "v2" else "id"])
    except DataValidationError as exc:
        raise DataValidationError(str(exc), str(task_file)) from None
    except ValueError as exc:
        raise DataValidationError(str(exc), str(task_file)) from None
    training = raw.get("trainingInformation")
    if not isinstance(training, dict):
        raise DataValidationError("trainingInformation is missing", str(task_file))
    return BridgeTask(
        id=task_id,
        generation=generation,
        disco=raw,
        artifacts=load_artifacts(folder / "model.json"),
        settings=_settings(folder / "lowcarb.json"),
        folder=folder,
    )


def load_tasks(directory: str | Path, generation: str) -> dict[str, BridgeTask]:
    """Read every task folder under ``directory`` (folders without ``task.json`` are skipped).

    Args:
        directory: The tasks folder.
        generation: The protocol generation served; every task must belong to it.

    Raises:
        DataValidationError: For an unreadable task, a duplicate id, a task of another
            generation, or a folder without any task.
    """
    root = Path(directory)
    if not root.is_dir():
        raise DataValidationError("is not a folder of DISCO tasks", str(root))
    tasks: dict[str, BridgeTask] = {}
    for folder in sorted(p for p in root.iterdir() if (p / "task.json").exists()):
        task = load_task(folder)
        if task.generation != generation:
            raise DataValidationError(
                f"task {task.id!r} is a {task.generation} task; serve it with "
                f"--protocol {task.generation}",
                str(folder / "task.json"),
            )
        if task.id in tasks:
            raise DataValidationError(f"task id {task.id!r} is used twice", str(folder))
        tasks[task.id] = task
    if not tasks:
        raise DataValidationError("holds no task folder (a folder with task.json)", str(root))
    return tasks
