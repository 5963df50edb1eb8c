"""Where a report reads from: a ledger file, a state folder, or a running server's tasks.

Files are opened read-only (:meth:`Ledger.open_read_only`) and each run is read inside one
:meth:`Ledger.snapshot`, so a report of a ledger that a training is writing sees one
commit, and the training never waits for it. A server's in-memory tasks are read through
their engines, one task's lock held for the read.
"""

from __future__ import annotations

import abc
import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lowcarb import (
    TASK_ID_PATTERN,
    DataValidationError,
    Decision,
    InvalidInputError,
    Ledger,
    LedgerError,
    LowcarbError,
    RoundRecord,
    TaskEngines,
)

__all__ = ["LEDGER_SUFFIX", "EnginesSource", "LedgerSource", "PathSource", "RunSnapshot"]

#: How a state folder names each task's ledger (``<task>.ledger.sqlite``, as
#: :class:`~lowcarb.TaskEngines` writes it).
LEDGER_SUFFIX = ".ledger.sqlite"
_TASK_FILE = re.compile(f"({TASK_ID_PATTERN}){re.escape(LEDGER_SUFFIX)}")
#: Most decisions read for the intensity plot; longer runs are thinned evenly.
MAX_PLOTTED_DECISIONS = 240


@dataclass(frozen=True)
class RunSnapshot:
    """One run as its ledger held it at one commit.

    Attributes:
        task: The task (the run id).
        origin: Where it was read, by file name only (pages never show folders).
        config: What the run was opened with (policy, rounds, seed, deadline).
        records: Its rounds, in order.
        population: Rounds taken per known client (0 for clients never selected).
        pauses: Decisions to wait: (decided_at, wait_until, reason).
        latest: The last round's decision as taken (None for an empty run, or a
            ledger that kept no decisions).
        intensities: Per plotted round (thinned to :data:`MAX_PLOTTED_DECISIONS`): the
            round and the intensity each zone had in its decision (gCO2eq/kWh).
        client_zones: Zone of every client the decisions or rounds name.
        read_at: When it was read (UTC).
    """

    task: str
    origin: str
    config: Mapping[str, Any]
    records: tuple[RoundRecord, ...]
    population: Mapping[str, int]
    pauses: tuple[tuple[datetime, datetime, str], ...]
    latest: Decision | None
    intensities: tuple[tuple[int, Mapping[str, float]], ...] = ()
    client_zones: Mapping[str, str] = field(default_factory=dict)
    read_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class LedgerSource(abc.ABC):
    """Tasks and their runs, from wherever they are kept."""

    #: A short label for pages and messages (a file or folder name, never a full path).
    label: str = ""

    @abc.abstractmethod
    def tasks(self) -> list[str]:
        """The tasks there are, sorted."""

    @abc.abstractmethod
    def snapshot(self, task: str) -> RunSnapshot:
        """Read one task's run.

        Raises:
            InvalidInputError: For a task that does not exist.
            DataValidationError: For a file that is not a (readable) lowcarb ledger.
        """

    def version(self) -> str | None:
        """A tag that changes whenever a task's ledger may have changed (None: unknown)."""
        return None

    def unknown_task(self, task: str) -> InvalidInputError:
        """The error for a task that is not there, naming the ones that are."""
        known = self.tasks()
        listed = ", ".join(known[:10]) + (" ..." if len(known) > 10 else "")
        return InvalidInputError(
            f"no task {task!r} in {self.label}" + (f" (tasks: {listed})" if known else "")
        )


class _DecisionCache:
    """Decisions never change once recorded: each is parsed once (bounded, thread-safe)."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._items: OrderedDict[tuple[Any, ...], tuple[dict[str, float], dict[str, str]]] = (
            OrderedDict()
        )
        self._lock = threading.Lock()

    def get(
        self, key: tuple[Any, ...], ledger: Ledger, run: str, number: int
    ) -> tuple[dict[str, float], dict[str, str]]:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                return found
        stored = ledger.decision(run, number)
        value = _zones_of(stored) if stored is not None else ({}, {})
        with self._lock:
            self._items[key] = value
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return value


def _zones_of(stored: Mapping[str, Any]) -> tuple[dict[str, float], dict[str, str]]:
    """(zone -> intensity used, client -> zone) from a recorded decision's candidates."""
    try:
        table = stored["candidates"]
        zones = [str(z) for z in table["zones"]]
        intensity = {z: float(v) for z, v in zip(zones, table["intensity"], strict=True)}
        members = {str(c): zones[int(z)] for c, z in zip(table["id"], table["zone"], strict=True)}
    except (KeyError, TypeError, ValueError, IndexError):
        return {}, {}
    return intensity, members


def _plotted_rounds(last: int) -> list[int]:
    """At most :data:`MAX_PLOTTED_DECISIONS` rounds from 1 to ``last``, evenly, with both ends."""
    if last <= MAX_PLOTTED_DECISIONS:
        return list(range(1, last + 1))
    step = (last - 1) / (MAX_PLOTTED_DECISIONS - 1)
    return sorted({1 + round(i * step) for i in range(MAX_PLOTTED_DECISIONS)})


def read_run(
    ledger: Ledger, run: str, *, origin: str, cache: _DecisionCache, key: tuple[Any, ...]
) -> RunSnapshot:
    """Read one run through the :class:`Ledger` API (the caller makes it one snapshot)."""
    config = ledger.run_config(run)
    records = tuple(ledger.rounds(run))
    population = ledger.participation(run)
    pauses = tuple(ledger.pauses(run))
    intensities = []
    zones: dict[str, str] = {}
    last = records[-1].round if records else 0
    for number in _plotted_rounds(last):
        intensity, members = cache.get((*key, run, number), ledger, run, number)
        if intensity:
            intensities.append((number, intensity))
        zones.update(members)
    latest = None
    if last:
        stored = ledger.decision(run, last)
        if stored is not None:
            try:
                latest = Decision.from_record(stored)
            except DataValidationError:
                latest = None  # an unreadable decision: the rounds still tell the account
            else:
                zones.update({c.id: c.zone for c in latest.clients})
    for record in records:
        zones.update({c.client_id: c.zone for c in (*record.clients, *record.excluded)})
    return RunSnapshot(
        task=run,
        origin=origin,
        config=config,
        records=records,
        population=population,
        pauses=pauses,
        latest=latest,
        intensities=tuple(intensities),
        client_zones=zones,
    )


@contextmanager
def _opened(path: Path) -> Iterator[Ledger]:
    try:
        ledger = Ledger.open_read_only(path)
    except LedgerError:
        raise  # it names the file, not its folder
    except LowcarbError as exc:
        # Other messages name the whole path: pages show the file name only.
        raise DataValidationError(str(exc).replace(str(path), path.name)) from exc
    try:
        with ledger.snapshot():
            yield ledger
    finally:
        ledger.close()


class PathSource(LedgerSource):
    """A ledger file (its runs are the tasks) or a state folder (one ledger per task).

    Args:
        path: A ledger file, or a folder of ``<task>.ledger.sqlite`` files (``lowcarb
            serve --state-dir``, ``lowcarb disco serve --state-dir``).

    Raises:
        InvalidInputError: If nothing is at ``path``.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise InvalidInputError(f"no ledger file or state folder at {self.path}")
        self.folder = self.path.is_dir()
        name = self.path.name or str(self.path)
        self.label = f"state folder {name}" if self.folder else name
        self._cache = _DecisionCache()

    def __repr__(self) -> str:
        return f"PathSource({str(self.path)!r})"

    def _files(self) -> dict[str, Path]:
        if not self.folder:
            return {}
        found = {}
        for entry in self.path.iterdir():
            match = _TASK_FILE.fullmatch(entry.name)
            if match and entry.is_file():
                found[match.group(1)] = entry
        return dict(sorted(found.items()))

    def tasks(self) -> list[str]:
        """Task ids: the state folder's ledger files, or the ledger file's runs."""
        if self.folder:
            return list(self._files())
        with _opened(self.path) as ledger:
            return ledger.runs()

    def snapshot(self, task: str) -> RunSnapshot:
        """Read ``task``'s run as of one commit of its ledger."""
        path = self._files().get(task) if self.folder else self.path
        if path is None:
            raise self.unknown_task(task)
        stat = path.stat()
        with _opened(path) as ledger:
            if task not in ledger.runs():
                raise self.unknown_task(task)
            return read_run(
                ledger,
                task,
                origin=path.name,
                cache=self._cache,
                # The file's identity, not its times: recorded decisions never change,
                # so a growing ledger keeps the ones already parsed.
                key=(str(path), stat.st_dev, stat.st_ino),
            )

    def version(self) -> str:
        """Sizes and modification times of the ledger files and their write-ahead logs."""
        files = list(self._files().values()) if self.folder else [self.path]
        parts = []
        for path in files:
            for part in (path, path.with_name(path.name + "-wal")):
                try:
                    stat = part.stat()
                except OSError:
                    continue
                if part is not path and not stat.st_size:
                    continue  # an empty log a reader may create holds no change
                parts.append(f"{part.name}:{stat.st_size}:{stat.st_mtime_ns}")
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


class EnginesSource(LedgerSource):
    """The tasks of a running server (``lowcarb serve``, ``lowcarb disco serve``).

    With a state folder the ledger files are read as :class:`PathSource` reads them (the
    server never waits); in memory, each task is read through its engine with the task's
    lock held, between two of its rounds.
    """

    def __init__(self, engines: TaskEngines) -> None:
        self.engines = engines
        self.files = PathSource(engines.state_dir) if engines.state_dir is not None else None
        self.label = "this server's tasks"
        self._cache = _DecisionCache()

    def tasks(self) -> list[str]:
        """The tasks the server knows."""
        return self.files.tasks() if self.files is not None else self.engines.tasks()

    def snapshot(self, task: str) -> RunSnapshot:
        """Read one task's run."""
        if self.files is not None:
            return self.files.snapshot(task)
        if task not in self.engines.tasks():
            raise self.unknown_task(task)
        with self.engines.session(task) as engine:
            return read_run(
                engine.ledger,
                engine.run_id,
                origin="memory",
                cache=self._cache,
                key=(id(engine.ledger),),
            )

    def version(self) -> str | None:
        """The files' tag with a state folder; None in memory (read every time)."""
        return self.files.version() if self.files is not None else None
