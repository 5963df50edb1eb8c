"""One selection engine per training task, for servers that run many tasks at once.

:class:`TaskEngines` opens each task's :class:`SelectionEngine` on first use, from one
:class:`~lowcarb.EngineSpec`, with its own SQLite ledger file under a state directory,
so that a restarted server continues every task with the same fairness state. A lock per
task serializes the rounds of one task while different tasks decide in parallel. The
ledger is the only record: a decided round can be replayed to a caller that retries, or
completed, after any number of later rounds and after a restart.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from lowcarb._chain import ProviderChain
from lowcarb._clock import Clock, SystemClock
from lowcarb._config import Settings
from lowcarb._energy import Client
from lowcarb._engine import Decision, SelectionEngine
from lowcarb._ledger import Ledger, RoundRecord
from lowcarb._provider import CarbonProvider
from lowcarb._spec import EngineSpec
from lowcarb.exceptions import DataValidationError, InvalidInputError

__all__ = [
    "TASK_ID_PATTERN",
    "RoundConflictError",
    "Selection",
    "TaskEngines",
    "check_task_id",
]

# Letters, digits, '.', '_' and '-'; starts with a letter or digit, so no hidden files,
# no '..' and no path separators: the id is used verbatim as a file name.
#: What a task id may look like (a regular expression matched in full).
TASK_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
_TASK_ID = re.compile(TASK_ID_PATTERN)
_LEDGER_SUFFIX = ".ledger.sqlite"

#: Builds a task's spec from its id (the run id is set to the task id afterwards).
SpecFactory = Callable[[str], EngineSpec]


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


def _check_round(round: object) -> None:
    if isinstance(round, bool) or not isinstance(round, int) or round < 1:
        raise InvalidInputError(f"round must be a positive integer, got {round!r}")


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


class TaskEngines:
    """A thread-safe registry of per-task selection engines.

    Args:
        state_dir: Folder for each task's ledger (``<task>.ledger.sqlite``); None keeps
            every task in memory.
        spec: The training every task runs (its ``run_id`` becomes the task id, its
            ``ledger`` the task's file); None: built from the configuration, or from
            ``engine_options`` alone when ``provider`` is an instance.
        provider: The provider (or chain) shared by every task: an instance, a registry
            name, or None for the spec's chain. Opened once, on the first task.
        clock: Time source shared by every engine.
        settings: Settings to use instead of reading the configuration.
        spec_for: Builds a task's spec from its id, replacing ``spec`` (e.g. a model size
            per task).
        **engine_options: :class:`~lowcarb.EngineSpec` fields (``policy``, ``rounds``,
            ``fairness``, ``energy``, ...) applied to ``spec``.

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
        spec: EngineSpec | None = None,
        provider: CarbonProvider | str | None = None,
        clock: Clock | None = None,
        settings: Settings | None = None,
        spec_for: SpecFactory | None = None,
        **engine_options: Any,
    ) -> None:
        self.state_dir = None if state_dir is None else Path(state_dir)
        if self.state_dir is not None:
            if self.state_dir.exists() and not self.state_dir.is_dir():
                raise InvalidInputError(f"state directory {self.state_dir} is not a directory")
            self.state_dir.mkdir(parents=True, exist_ok=True)
        self.spec = EngineSpec.resolve(provider, spec, settings=settings, **engine_options)
        self._provider_arg = provider if isinstance(provider, CarbonProvider) else None
        self._provider: ProviderChain | None = None
        self._clock: Clock = clock or SystemClock()
        self._spec_for = spec_for
        self._guard = threading.Lock()
        self._locks: dict[str, threading.RLock] = {}
        self._engines: dict[str, SelectionEngine] = {}
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

    @property
    def provider(self) -> ProviderChain:
        """The provider chain shared by the tasks (opened on first use)."""
        with self._guard:
            if self._provider is None:
                if self._provider_arg is not None:
                    self._provider = ProviderChain.of(
                        self._provider_arg,
                        default_fallback=self.spec.default_fallback,
                        clock=self._clock,
                    )
                else:
                    self._provider = self.spec.open_chain(clock=self._clock)
            return self._provider

    @property
    def clock(self) -> Clock:
        """The clock the engines read (the wall clock unless one was given)."""
        return self._clock

    @property
    def persistent(self) -> bool:
        """Whether task state is kept on disk (a state directory is set)."""
        return self.state_dir is not None

    def spec_of(self, task_id: str) -> EngineSpec:
        """The spec task ``task_id`` runs (its ledger set by the registry)."""
        spec = self._spec_for(task_id) if self._spec_for is not None else self.spec
        return spec.replace(run_id=task_id, ledger=None)

    def _open(self, task_id: str) -> SelectionEngine:
        engine = self._engines.get(task_id)
        if engine is not None:
            return engine
        path = None if self.state_dir is None else self.state_dir / f"{task_id}{_LEDGER_SUFFIX}"
        ledger = Ledger(path)
        try:
            engine = SelectionEngine(
                self.provider, spec=self.spec_of(task_id), ledger=ledger, clock=self._clock
            )
        except BaseException:
            ledger.close()
            raise
        self._engines[task_id] = engine
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
            RoundConflictError: If ``round`` lies ahead of the next round.
            InvalidInputError: For bad candidates or ``k`` (from the engine).
        """
        with self.session(task_id) as engine:
            expected = engine.rounds_done + 1
            if round is not None:
                _check_round(round)
                if round > expected:
                    raise RoundConflictError(
                        f"task {task_id!r} decides round {expected} next, not round {round}",
                        expected=expected,
                    )
                if round < expected:
                    return Selection(self._known(engine, round, expected), replayed=True)
            return Selection(engine.select(clients, k, now=now), replayed=False)

    def complete(
        self,
        task_id: str,
        round: int,
        *,
        energy_kwh: Mapping[str, float] | None = None,
        metrics: Mapping[str, float] | None = None,
        actual: Mapping[str, float] | None = None,
        excluded_energy_kwh: Mapping[str, float] | None = None,
        excluded_zones: Mapping[str, str] | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> RoundRecord:
        """Record a decided round's outcome (see :meth:`SelectionEngine.complete`).

        Returns:
            The round as recorded.

        Raises:
            RoundConflictError: If the round was never decided.
            InvalidInputError: For bad energies or a client that was not in the round.
        """
        with self.session(task_id) as engine:
            expected = engine.rounds_done + 1
            _check_round(round)
            if round >= expected:
                raise RoundConflictError(
                    f"round {round} of task {task_id!r} has not been decided "
                    f"(next round: {expected})",
                    expected=expected,
                )
            return engine.complete(
                self._known(engine, round, expected),
                energy_kwh=energy_kwh,
                metrics=metrics,
                actual=actual,
                excluded_energy_kwh=excluded_energy_kwh,
                excluded_zones=excluded_zones,
                details=details,
            )

    @staticmethod
    def _known(engine: SelectionEngine, round: int, expected: int) -> Decision:
        try:
            return engine.decision(round)
        except DataValidationError:
            raise  # a damaged ledger is not the caller's conflict
        except InvalidInputError as exc:
            raise RoundConflictError(str(exc), expected=expected) from None

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
