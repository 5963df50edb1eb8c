"""One selection engine per training task, for servers that run many tasks at once.

:class:`TaskEngines` opens each task's :class:`SelectionEngine` on first use, from one
:class:`~lowcarb.EngineSpec`, with its own SQLite ledger file under a state directory,
so that a restarted server continues every task with the same fairness state. A lock per
task serializes the rounds of one task while different tasks decide in parallel. The
ledger is the only record: a decided round can be replayed to a caller that retries, or
completed, after any number of later rounds and after a restart.

What a server must not run out of is bounded here: at most ``max_open`` ledgers are open
at once (an idle task's ledger is closed and reopened on its next round, so thousands of
tasks fit in a small file-descriptor limit), at most ``max_tasks`` tasks exist, one
process holds the state directory (:class:`~lowcarb._statelock.StateLock`), and with
``provider_timeout_s`` no provider call holds a decision longer than that.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from lowcarb._chain import ProviderChain
from lowcarb._clock import Clock, SystemClock
from lowcarb._config import Settings
from lowcarb._deadline import DeadlineProvider
from lowcarb._energy import Client
from lowcarb._engine import Decision, SelectionEngine
from lowcarb._ledger import Ledger, RoundRecord
from lowcarb._provider import CarbonProvider
from lowcarb._spec import EngineSpec
from lowcarb._statelock import StateLock
from lowcarb.exceptions import DataValidationError, InvalidInputError

__all__ = [
    "TASK_ID_PATTERN",
    "RoundConflictError",
    "Selection",
    "TaskEngines",
    "TaskLimitError",
    "check_task_id",
]

log = logging.getLogger("lowcarb")

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


class TaskLimitError(InvalidInputError):
    """A new task would exceed the registry's ``max_tasks``.

    Attributes:
        limit: The registry's ``max_tasks``.
    """

    def __init__(self, message: str, *, limit: int) -> None:
        self.limit = limit
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


def _positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(f"{name} must be a positive integer, got {value!r}")
    return value


def _default_max_open() -> int:
    """64 open ledgers, or fewer under a small file-descriptor limit (``ulimit -n``)."""
    try:
        import resource
    except ImportError:  # not POSIX
        return 64
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 64
    # Ledgers may take a sixth of the descriptors beyond a reserve of 64 (three each): the
    # rest is for connections, providers and the interpreter.
    return max(4, min(64, (soft - 64) // 6))


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
        max_tasks: Most tasks the registry holds (those on disk count); a new task past
            it raises :class:`TaskLimitError`.
        max_open: Most task ledgers open at once (with a state directory): the least
            recently used idle one is closed to open another. Each open ledger holds
            three file descriptors; None takes 64, or fewer when the process's
            descriptor limit is small (a sixth of what it leaves beyond 64).
        provider_timeout_s: Seconds each provider call may take before the chain's next
            member answers instead (see :class:`~lowcarb._deadline.DeadlineProvider`);
            None waits as long as the providers do.
        **engine_options: :class:`~lowcarb.EngineSpec` fields (``policy``, ``rounds``,
            ``fairness``, ``energy``, ...) applied to ``spec``.

    Raises:
        LedgerError: If another process holds the state directory (naming it), or the
            directory cannot be locked.

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
        max_tasks: int = 10_000,
        max_open: int | None = None,
        provider_timeout_s: float | None = None,
        **engine_options: Any,
    ) -> None:
        self.max_tasks = _positive("max_tasks", max_tasks)
        self.max_open = _positive("max_open", _default_max_open() if max_open is None else max_open)
        if provider_timeout_s is not None:
            DeadlineProvider.check_timeout(provider_timeout_s)
        self.provider_timeout_s = provider_timeout_s
        self.spec = EngineSpec.resolve(provider, spec, settings=settings, **engine_options)
        self.state_dir = None if state_dir is None else Path(state_dir)
        self._state_lock: StateLock | None = None
        self._task_ids: set[str] = set()
        if self.state_dir is not None:
            if self.state_dir.exists() and not self.state_dir.is_dir():
                raise InvalidInputError(f"state directory {self.state_dir} is not a directory")
            self.state_dir.mkdir(parents=True, exist_ok=True)
            self._state_lock = StateLock.acquire(self.state_dir)
            # Read once: afterwards the registry knows every task it creates.
            for path in self.state_dir.glob(f"*{_LEDGER_SUFFIX}"):
                name = path.name[: -len(_LEDGER_SUFFIX)]
                if _TASK_ID.fullmatch(name):
                    self._task_ids.add(name)
        self._provider_arg = provider if isinstance(provider, CarbonProvider) else None
        self._provider: ProviderChain | None = None
        self._clock: Clock = clock or SystemClock()
        self._spec_for = spec_for
        self._guard = threading.Lock()
        self._locks: dict[str, threading.RLock] = {}
        # Open engines, least recently used first.
        self._engines: OrderedDict[str, SelectionEngine] = OrderedDict()
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
                    chain = ProviderChain.of(
                        self._provider_arg,
                        default_fallback=self.spec.default_fallback,
                        clock=self._clock,
                    )
                else:
                    chain = self.spec.open_chain(clock=self._clock)
                if self.provider_timeout_s is not None:
                    timeout = self.provider_timeout_s
                    chain = ProviderChain(
                        [DeadlineProvider(m, timeout_s=timeout) for m in chain.members],
                        clock=self._clock,
                    )
                self._provider = chain
            return self._provider

    @property
    def provider_name(self) -> str:
        """The chain's primary provider, opened or not (never waits, never opens it)."""
        chain = self._provider
        if chain is not None:
            return chain.name
        if self._provider_arg is not None:
            return self._provider_arg.name
        return self.spec.chain_names[0]

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
        """The task's engine, opening it (the caller holds the task's lock)."""
        with self._guard:
            engine = self._engines.get(task_id)
            if engine is not None:
                self._engines.move_to_end(task_id)
                return engine
            if task_id not in self._task_ids and len(self._task_ids) >= self.max_tasks:
                raise TaskLimitError(
                    f"task {task_id!r} would be task {self.max_tasks + 1}; this registry "
                    f"holds at most {self.max_tasks} tasks",
                    limit=self.max_tasks,
                )
        if self.state_dir is not None:
            self._make_room()
        path = None if self.state_dir is None else self.state_dir / f"{task_id}{_LEDGER_SUFFIX}"
        ledger = Ledger(path)
        try:
            engine = SelectionEngine(
                self.provider, spec=self.spec_of(task_id), ledger=ledger, clock=self._clock
            )
        except BaseException:
            ledger.close()
            raise
        with self._guard:
            self._engines[task_id] = engine
            self._task_ids.add(task_id)
        return engine

    def _make_room(self) -> None:
        """Close least recently used idle ledgers until one more fits under ``max_open``.

        A task in use (its lock held by another thread) is skipped: the pool may then
        exceed ``max_open`` by the number of rounds in progress, never more.
        """
        with self._guard:
            excess = len(self._engines) - self.max_open + 1
            candidates = [(t, self._locks[t]) for t in self._engines] if excess > 0 else []
        for task_id, lock in candidates:
            if excess <= 0:
                break
            if not lock.acquire(blocking=False):
                continue
            try:
                with self._guard:
                    engine = self._engines.pop(task_id, None)
                if engine is not None:
                    engine.ledger.close()
                    excess -= 1
            finally:
                lock.release()

    def get(self, task_id: str) -> SelectionEngine:
        """The task's engine, opened (and its run resumed from its ledger) on first use.

        Use :meth:`session` to hold the task's lock while calling the engine directly:
        without it, an idle engine's ledger may be closed to make room for other tasks.

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
        """Ids of every task: those found in the state directory and those created since."""
        with self._guard:
            return sorted(self._task_ids)

    def has_task(self, task_id: str) -> bool:
        """Whether ``task_id`` is a task of this registry (without opening it)."""
        return task_id in self._task_ids

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

    def decision(self, task_id: str, round: int) -> Decision:
        """The decision of a round the task has decided (read from its ledger).

        Raises:
            RoundConflictError: If the round was never decided.
            InvalidInputError: For a bad task id or round.
        """
        _check_round(round)
        with self.session(task_id) as engine:
            expected = engine.rounds_done + 1
            if round >= expected:
                raise RoundConflictError(
                    f"round {round} of task {task_id!r} has not been decided "
                    f"(next round: {expected})",
                    expected=expected,
                )
            return self._known(engine, round, expected)

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
            return engine.complete(
                self.decision(task_id, round),
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
        """Close every ledger, the shared provider and the state directory's lock.

        The registry cannot be used after.
        """
        with self._guard:
            self._closed = True
            locks = dict(self._locks)
            provider, self._provider = self._provider, None
        for task_id, lock in locks.items():
            # Taking the task's lock lets a round in progress finish writing its ledger.
            with lock, self._guard:
                engine = self._engines.pop(task_id, None)
            if engine is not None:
                engine.ledger.close()
                if engine.provider is not provider:
                    engine.provider.close()
        if provider is not None:
            provider.close()
        if self._state_lock is not None:
            self._state_lock.release()

    def __enter__(self) -> TaskEngines:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
