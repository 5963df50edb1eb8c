"""One selection engine per training task, for servers that run many tasks at once.

:class:`TaskEngines` opens each task's :class:`SelectionEngine` on first use, with its own
SQLite ledger file under a state directory, so that a restarted server continues every
task with the same fairness state. A lock per task serializes the rounds of one task
while different tasks decide in parallel. The latest decision of each task is kept in a
small JSON file beside its ledger, so a round decided before a restart can still be
completed (or its decision replayed to a caller that retries) after it.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from lowcarb._clock import Clock, SystemClock
from lowcarb._config import Settings, load_settings
from lowcarb._energy import Client
from lowcarb._engine import ClientDecision, Decision, SelectionEngine
from lowcarb._ledger import Ledger
from lowcarb._provider import CarbonProvider
from lowcarb.exceptions import DataValidationError, InvalidInputError

__all__ = [
    "TASK_ID_PATTERN",
    "RoundConflictError",
    "Selection",
    "TaskEngines",
    "check_task_id",
    "decision_from_dict",
]

# Letters, digits, '.', '_' and '-'; starts with a letter or digit, so no hidden files,
# no '..' and no path separators: the id is used verbatim as a file name.
#: What a task id may look like (a regular expression matched in full).
TASK_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
_TASK_ID = re.compile(TASK_ID_PATTERN)
_LEDGER_SUFFIX = ".ledger.sqlite"
_DECISION_SUFFIX = ".decision.json"
#: Decisions per task kept in memory for completion and replay.
_KEEP_DECISIONS = 16

EngineFactory = Callable[[str, Ledger], SelectionEngine]


class RoundConflictError(InvalidInputError):
    """A caller's round number does not fit the task's state.

    Attributes:
        expected: The round number the task will decide next (1-based).
    """

    def __init__(self, message: str, *, expected: int) -> None:
        self.expected = expected
        super().__init__(message)


@dataclass(frozen=True)
class Selection:
    """The answer of :meth:`TaskEngines.select`.

    Attributes:
        decision: The round's decision.
        replayed: True when the round had been decided before and this is that decision
            again (a caller retrying), False for a new decision.
    """

    decision: Decision
    replayed: bool


def check_task_id(task_id: object) -> str:
    """Return ``task_id`` if it can name a task (and its files), else raise.

    Raises:
        InvalidInputError: Saying which characters are allowed.
    """
    if not isinstance(task_id, str) or not _TASK_ID.fullmatch(task_id):
        raise InvalidInputError(
            f"task id {task_id!r} is invalid: use 1 to 128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return task_id


def _when(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def decision_from_dict(data: Mapping[str, Any]) -> Decision:
    """Rebuild a :class:`Decision` from its :meth:`Decision.to_dict` form.

    Raises:
        DataValidationError: If ``data`` is not a decision's dictionary.
    """
    try:
        fields = dict(data)
        fields["clients"] = tuple(ClientDecision(**c) for c in fields["clients"])
        fields["selected"], fields["deferred"] = tuple(data["selected"]), tuple(data["deferred"])
        for key in ("wait_until", "decided_at", "start", "end"):
            fields[key] = _when(fields[key])
        return Decision(**fields)
    except (KeyError, TypeError, ValueError) as exc:
        raise DataValidationError(f"not a stored decision: {exc}") from None


class TaskEngines:
    """A thread-safe registry of per-task selection engines.

    Args:
        state_dir: Folder for each task's ledger (``<task>.ledger.sqlite``) and latest
            decision (``<task>.decision.json``); None keeps every task in memory.
        provider: The provider shared by every task: an instance, a registry name, or
            None for the configured chain. Opened once, on the first task.
        clock: Time source shared by every engine.
        settings: Settings to use instead of reading the configuration.
        factory: Builds a task's engine from its id and ledger, replacing the default
            ``SelectionEngine(provider, ledger=..., run_id=task_id, **engine_options)``.
        **engine_options: Keyword arguments for each :class:`SelectionEngine` (``policy``,
            ``rounds``, ``fairness``, ``energy``, ...).

    Example:
        >>> engines = TaskEngines(provider="default")
        >>> engines.get("mnist").run_id
        'mnist'
        >>> engines.close()
    """

    def __init__(
        self,
        state_dir: str | Path | None = None,
        *,
        provider: CarbonProvider | str | None = None,
        clock: Clock | None = None,
        settings: Settings | None = None,
        factory: EngineFactory | None = None,
        **engine_options: Any,
    ) -> None:
        self.state_dir = None if state_dir is None else Path(state_dir)
        if self.state_dir is not None:
            if self.state_dir.exists() and not self.state_dir.is_dir():
                raise InvalidInputError(f"state directory {self.state_dir} is not a directory")
            self.state_dir.mkdir(parents=True, exist_ok=True)
        self._provider_arg = provider
        self._provider: CarbonProvider | None = None
        self._clock: Clock = clock or SystemClock()
        self._settings = settings
        self._factory = factory
        self._options = engine_options
        self._guard = threading.Lock()
        self._locks: dict[str, threading.RLock] = {}
        self._engines: dict[str, SelectionEngine] = {}
        self._decisions: dict[str, OrderedDict[int, Decision]] = {}
        self._closed = False

    def __repr__(self) -> str:
        where = "memory" if self.state_dir is None else str(self.state_dir)
        return f"TaskEngines(state={where!r}, open_tasks={len(self._engines)})"

    # -- engines ------------------------------------------------------------------------

    def _lock(self, task_id: str) -> threading.RLock:
        with self._guard:
            if self._closed:
                raise InvalidInputError("the task registry is closed")
            return self._locks.setdefault(task_id, threading.RLock())

    def _shared_provider(self) -> CarbonProvider:
        with self._guard:
            if self._provider is None:
                arg = self._provider_arg
                if isinstance(arg, CarbonProvider):
                    self._provider = arg
                else:
                    settings = self._settings or load_settings()
                    self._provider = settings.open_provider(arg, clock=self._clock)
            return self._provider

    @property
    def provider(self) -> CarbonProvider:
        """The provider shared by the tasks (opened on first use)."""
        return self._shared_provider()

    @property
    def clock(self) -> Clock:
        """The clock the engines read (the wall clock unless one was given)."""
        return self._clock

    @property
    def persistent(self) -> bool:
        """Whether task state is kept on disk (a state directory is set)."""
        return self.state_dir is not None

    def _path(self, task_id: str, suffix: str) -> Path | None:
        return None if self.state_dir is None else self.state_dir / f"{task_id}{suffix}"

    def _open(self, task_id: str) -> SelectionEngine:
        engine = self._engines.get(task_id)
        if engine is not None:
            return engine
        stored = self._load_decision(task_id)
        ledger = Ledger(self._path(task_id, _LEDGER_SUFFIX))
        try:
            if self._factory is not None:
                engine = self._factory(task_id, ledger)
            else:
                engine = SelectionEngine(
                    self._shared_provider(),
                    ledger=ledger,
                    run_id=task_id,
                    clock=self._clock,
                    settings=self._settings,
                    **self._options,
                )
        except BaseException:
            ledger.close()
            raise
        self._engines[task_id] = engine
        self._decisions[task_id] = OrderedDict()
        if stored is not None:
            self._decisions[task_id][stored.round] = stored
        return engine

    def get(self, task_id: str) -> SelectionEngine:
        """The task's engine, opened (and its run resumed from its ledger) on first use.

        Use :meth:`session` to hold the task's lock while calling the engine directly.

        Raises:
            InvalidInputError: For an invalid task id or a closed registry.
        """
        task_id = check_task_id(task_id)
        with self._lock(task_id):
            return self._open(task_id)

    @contextmanager
    def session(self, task_id: str) -> Iterator[SelectionEngine]:
        """Hold the task's lock and yield its engine (one round at a time per task)."""
        task_id = check_task_id(task_id)
        with self._lock(task_id):
            yield self._open(task_id)

    def tasks(self) -> list[str]:
        """Ids of the open tasks and of those with a ledger in the state directory."""
        found = set(self._engines.copy())  # copy() is atomic; iterating is not
        if self.state_dir is not None:
            for path in self.state_dir.glob(f"*{_LEDGER_SUFFIX}"):
                name = path.name[: -len(_LEDGER_SUFFIX)]
                if _TASK_ID.fullmatch(name):
                    found.add(name)
        return sorted(found)

    # -- rounds ---------------------------------------------------------------------------

    def select(
        self,
        task_id: str,
        clients: Iterable[Client | Mapping[str, Any]],
        k: int,
        *,
        round: int | None = None,
        now: datetime | None = None,
    ) -> Selection:
        """Decide the task's next round, or replay a round already decided.

        Args:
            task_id: The task.
            clients: The candidates (see :meth:`SelectionEngine.select`).
            k: Clients wanted.
            round: The round the caller means (1-based): the next one decides, an earlier
                one returns the recorded decision (idempotent retries); None decides.
            now: Decision time (UTC); defaults to the clock.

        Raises:
            RoundConflictError: If ``round`` lies ahead of the next round, or names an old
                round whose decision is no longer held.
            InvalidInputError: For bad candidates or ``k`` (from the engine).
        """
        task_id = check_task_id(task_id)
        with self.session(task_id) as engine:
            expected = engine.rounds_done + 1
            if round is not None:
                if isinstance(round, bool) or not isinstance(round, int) or round < 1:
                    raise InvalidInputError(f"round must be a positive integer, got {round!r}")
                if round > expected:
                    raise RoundConflictError(
                        f"task {task_id!r} decides round {expected} next, not round {round}",
                        expected=expected,
                    )
                if round < expected:
                    return Selection(self._known(task_id, round, expected), replayed=True)
            decision = engine.select(clients, k, now=now)
            if decision.run_now:
                self._remember(task_id, decision)
            return Selection(decision, replayed=False)

    def complete(
        self,
        task_id: str,
        round: int,
        *,
        energy_kwh: Mapping[str, float] | None = None,
        metrics: Mapping[str, float] | None = None,
        actual: Mapping[str, float] | None = None,
        excluded_energy_kwh: Mapping[str, float] | None = None,
    ) -> Decision:
        """Record a decided round's outcome (see :meth:`SelectionEngine.complete`).

        Returns:
            The round's decision.

        Raises:
            RoundConflictError: If the round was never decided or its decision is no
                longer held.
            InvalidInputError: For bad energies or a client that was not in the round.
        """
        task_id = check_task_id(task_id)
        with self.session(task_id) as engine:
            expected = engine.rounds_done + 1
            if isinstance(round, bool) or not isinstance(round, int) or round < 1:
                raise InvalidInputError(f"round must be a positive integer, got {round!r}")
            if round >= expected:
                raise RoundConflictError(
                    f"round {round} of task {task_id!r} has not been decided "
                    f"(next round: {expected})",
                    expected=expected,
                )
            decision = self._known(task_id, round, expected)
            engine.complete(
                decision,
                energy_kwh=energy_kwh,
                metrics=metrics,
                actual=actual,
                excluded_energy_kwh=excluded_energy_kwh,
            )
            return decision

    def _known(self, task_id: str, round: int, expected: int) -> Decision:
        decision = self._decisions[task_id].get(round)
        if decision is None:
            raise RoundConflictError(
                f"round {round} of task {task_id!r} was decided, but its decision is no "
                f"longer held (the last {_KEEP_DECISIONS} are, and after a restart only the "
                f"latest); next round: {expected}",
                expected=expected,
            )
        return decision

    def _remember(self, task_id: str, decision: Decision) -> None:
        held = self._decisions[task_id]
        held[decision.round] = decision
        while len(held) > _KEEP_DECISIONS:
            held.popitem(last=False)
        path = self._path(task_id, _DECISION_SUFFIX)
        if path is not None:
            # Write then rename: a crash leaves the old file or the new one, never half.
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(json.dumps(decision.to_dict(), default=str), encoding="utf-8")
            os.replace(tmp, path)

    def _load_decision(self, task_id: str) -> Decision | None:
        path = self._path(task_id, _DECISION_SUFFIX)
        if path is None or not path.is_file():
            return None
        try:
            return decision_from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, DataValidationError) as exc:
            raise DataValidationError(
                f"cannot read the latest decision ({exc}); the ledger is intact: delete this "
                "file to continue (only replaying or completing that round needs it)",
                str(path),
            ) from exc

    # -- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Close every ledger and the shared provider; the registry cannot be used after."""
        with self._guard:
            self._closed = True
            locks = dict(self._locks)
            provider, self._provider = self._provider, None
        for task_id, lock in locks.items():
            with lock:  # let a round in progress finish writing its ledger
                engine = self._engines.pop(task_id, None)
            if engine is not None:
                engine.ledger.close()
                if engine.provider is not provider:
                    engine.provider.close()
        if provider is not None:
            provider.close()

    def __enter__(self) -> TaskEngines:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
