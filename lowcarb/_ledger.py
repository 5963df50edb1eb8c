"""The participation ledger: fairness state and per-round records in SQLite.

The ledger is the one record of a round: the decision as it was taken (so the round can
be replayed and completed after any number of later rounds and after a restart), the
client-rounds with their energy and intensities, what the framework reported, and the
participation counts. One file holds any number of training runs. Every round is written
in one transaction, in WAL mode with ``synchronous=FULL``, so a process killed at any
instant leaves either the whole round or none of it, and a restarted process continues
with the same fairness state.

What is written is checked first: quantities against the plausibility bounds of
:mod:`lowcarb._bounds` and text for UTF-8, so a stored value never breaks a later read. A
storage fault (read-only folder, full disk, a file that is not a lowcarb ledger) raises
:class:`~lowcarb.LedgerError`, whose message names the file but not its folder.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lowcarb._bounds import (
    MAX_CLIENT_ROUND_KWH,
    MAX_METRIC,
    MAX_PLAUSIBLE_G_PER_KWH,
    MAX_ROUND_G,
    check_quantity,
    check_text,
    check_text_keys,
)
from lowcarb._time import ensure_utc
from lowcarb.exceptions import DataValidationError, InvalidInputError, LedgerError

__all__ = ["ClientRound", "Ledger", "RoundRecord"]

_SCHEMA_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, created_at TEXT NOT NULL, config TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS participation (
    run_id TEXT NOT NULL, client_id TEXT NOT NULL, zone TEXT NOT NULL,
    rounds INTEGER NOT NULL, last_round INTEGER NOT NULL,
    PRIMARY KEY (run_id, client_id)
);
CREATE TABLE IF NOT EXISTS rounds (
    run_id TEXT NOT NULL, round INTEGER NOT NULL,
    decided_at TEXT NOT NULL, start TEXT NOT NULL, end TEXT NOT NULL,
    policy TEXT NOT NULL, reason TEXT NOT NULL, signal TEXT NOT NULL,
    candidates INTEGER NOT NULL, random_expected_g REAL, random_actual_g REAL,
    metrics TEXT NOT NULL DEFAULT '{}', completed_at TEXT,
    decision TEXT, details TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (run_id, round)
);
CREATE TABLE IF NOT EXISTS client_rounds (
    run_id TEXT NOT NULL, round INTEGER NOT NULL, client_id TEXT NOT NULL,
    zone TEXT NOT NULL, energy_kwh REAL NOT NULL, energy_source TEXT NOT NULL,
    intensity_used REAL NOT NULL, intensity_actual REAL,
    PRIMARY KEY (run_id, round, client_id)
);
-- Candidates that were not selected but trained anyway (clients a framework cannot pause,
-- such as DISCO v2's): their energy is part of the run's footprint, not of its selection.
CREATE TABLE IF NOT EXISTS excluded_rounds (
    run_id TEXT NOT NULL, round INTEGER NOT NULL, client_id TEXT NOT NULL,
    zone TEXT NOT NULL, energy_kwh REAL NOT NULL, energy_source TEXT NOT NULL,
    intensity_used REAL NOT NULL, intensity_actual REAL,
    PRIMARY KEY (run_id, round, client_id)
);
CREATE TABLE IF NOT EXISTS pauses (
    run_id TEXT NOT NULL, decided_at TEXT NOT NULL, wait_until TEXT NOT NULL,
    reason TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class ClientRound:
    """One client's part in one round.

    Attributes:
        client_id: The client.
        zone: Its grid zone.
        energy_kwh: Energy of its round (kWh): the model's estimate or a measurement.
        energy_source: ``model``, ``measured`` or (for excluded clients) ``reported``.
        intensity_used: Intensity the decision used (gCO2eq/kWh).
        intensity_actual: Intensity that really applied, once known (gCO2eq/kWh).
    """

    client_id: str
    zone: str
    energy_kwh: float
    energy_source: str
    intensity_used: float
    intensity_actual: float | None = None

    @property
    def emissions_expected_g(self) -> float:
        """gCO2eq with the intensity the decision used."""
        return self.energy_kwh * self.intensity_used

    @property
    def emissions_g(self) -> float:
        """gCO2eq with the actual intensity when known, else the expected one."""
        intensity = self.intensity_used if self.intensity_actual is None else self.intensity_actual
        return self.energy_kwh * intensity


@dataclass(frozen=True)
class RoundRecord:
    """One round as the ledger keeps it.

    Attributes:
        round: Round number within the run (1-based).
        decided_at: When the decision was taken (UTC).
        start: Start of the round's slot (UTC).
        end: End of the round's slot (UTC).
        policy: The policy's name.
        reason: The decision's human reason.
        signal: Provenance of the carbon signal (provider, method, issued_at, fallback).
        candidates: How many clients were eligible.
        clients: The selected clients' records.
        excluded: Candidates not selected that trained anyway (their energy counts in
            the footprint, not in participation).
        random_expected_g: Expected gCO2eq had K candidates been drawn at random, with
            the intensities the decision used (the counterfactual).
        random_actual_g: The same with actual intensities, once known.
        metrics: Reported metrics (e.g. ``accuracy``).
        completed_at: When the round was reported complete.
        details: What an integration recorded about the round beyond metrics (e.g. the
            DISCO bridge's aggregate), JSON-friendly.
    """

    round: int
    decided_at: datetime
    start: datetime
    end: datetime
    policy: str
    reason: str
    signal: Mapping[str, Any]
    candidates: int
    clients: tuple[ClientRound, ...]
    random_expected_g: float | None = None
    random_actual_g: float | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    completed_at: datetime | None = None
    excluded: tuple[ClientRound, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def energy_kwh(self) -> float:
        """Total energy of the selected clients' round (kWh)."""
        return sum(c.energy_kwh for c in self.clients)

    @property
    def emissions_g(self) -> float:
        """Total gCO2eq of the selected clients (actual intensities where known)."""
        return sum(c.emissions_g for c in self.clients)

    @property
    def excluded_energy_kwh(self) -> float:
        """Energy (kWh) of candidates left out that trained anyway."""
        return sum(c.energy_kwh for c in self.excluded)

    @property
    def excluded_emissions_g(self) -> float:
        """Their gCO2eq (actual intensities where known)."""
        return sum(c.emissions_g for c in self.excluded)

    @property
    def random_g(self) -> float | None:
        """The random counterfactual: with actual intensities once known, else expected."""
        return self.random_expected_g if self.random_actual_g is None else self.random_actual_g

    @property
    def measured_share(self) -> float:
        """Fraction of the selected clients whose energy was measured, not modelled."""
        if not self.clients:
            return 0.0
        return sum(c.energy_source == "measured" for c in self.clients) / len(self.clients)


def _insert_client_rounds(
    db: sqlite3.Connection,
    verb: str,
    table: str,
    run_id: str,
    round_number: int,
    rows: Sequence[ClientRound],
) -> None:
    """Write client-rounds into ``client_rounds`` or ``excluded_rounds`` (same columns)."""
    db.executemany(
        f"{verb} INTO {table} VALUES (?,?,?,?,?,?,?,?)",
        [
            (
                run_id,
                round_number,
                c.client_id,
                c.zone,
                c.energy_kwh,
                c.energy_source,
                c.intensity_used,
                c.intensity_actual,
            )
            for c in rows
        ],
    )


def _json(value: Mapping[str, Any]) -> str:
    """Strict JSON: NaN, infinities and unencodable text are refused, not stored."""
    try:
        # ensure_ascii=False, so that a lone surrogate fails to encode here instead of
        # being stored as "\\ud800" and failing every later answer that holds it.
        text = json.dumps(
            dict(value), default=str, sort_keys=True, allow_nan=False, ensure_ascii=False
        )
        text.encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"cannot record {str(value)[:200]}: {exc}") from None
    return text


def _check_rows(rows: Sequence[ClientRound], what: str) -> None:
    """Refuse client-rounds with implausible energy or intensity, or unencodable text."""
    for c in rows:
        check_text(f"{what}: client id", c.client_id)
        check_text(f"{what}: zone of {c.client_id!r}", c.zone)
        check_quantity(
            f"{what}: energy_kwh of {c.client_id!r} (kWh)", c.energy_kwh, most=MAX_CLIENT_ROUND_KWH
        )
        for name, value in (("intensity", c.intensity_used), ("actual", c.intensity_actual)):
            if value is not None:
                check_quantity(
                    f"{what}: {name} of {c.client_id!r} (gCO2eq/kWh)",
                    value,
                    most=MAX_PLAUSIBLE_G_PER_KWH,
                )


def _check_map(
    name: str, values: Mapping[str, float] | None, *, most: float, least: float = 0.0
) -> None:
    """Refuse a map of quantities with an unencodable key or an implausible value."""
    if values is None:
        return
    check_text_keys(name, values)
    for key, value in values.items():
        check_quantity(f"{name}[{key!r}]", value, most=most, least=least)


#: What SQLite's and the OS's storage errors mean, in words a caller can act on.
_FAULTS = (
    ("full", "the disk is full"),
    ("readonly", "it is read-only"),
    ("read-only", "it is read-only"),
    ("permission", "permission is denied"),
    ("unable to open", "the file cannot be opened (no permission, or its folder is missing)"),
    ("not a database", "the file is not an SQLite database"),
    ("malformed", "the file is damaged"),
    ("locked", "another process is writing it"),
    ("i/o", "the disk reported an I/O error"),
)


def _fault(exc: BaseException) -> str:
    """The meaning of a storage error (never its text, which may hold paths)."""
    text = (exc.strerror or "") if isinstance(exc, OSError) else str(exc)
    for needle, meaning in _FAULTS:
        if needle in text.lower():
            return meaning
    return f"a storage error occurred ({type(exc).__name__})"


def _iso(when: datetime) -> str:
    return ensure_utc(when).isoformat()


def _when(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


class Ledger:
    """Participation counts and round records in a SQLite database.

    Args:
        path: Database file; ``None`` or ``":memory:"`` keeps it in memory (simulations).

    Example:
        >>> ledger = Ledger()
        >>> ledger.open_run("demo", config={"rounds": 3})
        >>> ledger.participation("demo")
        {}
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path: str | Path = ":memory:" if path is None or path == ":memory:" else Path(path)
        self._name = (
            f"ledger {self.path.name}" if isinstance(self.path, Path) else "the in-memory ledger"
        )
        if isinstance(self.path, Path):
            if self.path.is_dir():
                raise InvalidInputError(f"ledger path {self.path} is a directory, not a file")
            if self.path.exists() and not self.path.is_file():
                raise LedgerError(f"{self._name} is not a regular file", path=self.path)
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise LedgerError(
                    f"{self._name}: its folder cannot be created: {_fault(exc)}", path=self.path
                ) from exc
        self._lock = threading.Lock()
        with self._storage("open it"):
            self._db = sqlite3.connect(
                str(self.path), isolation_level=None, check_same_thread=False, timeout=30.0
            )
        try:
            with self._storage("open it"):
                self._adopt()
        except BaseException:
            self._db.close()
            raise

    def _adopt(self) -> None:
        """Set the file up as a ledger, refusing a database of something else."""
        db = self._db
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if tables and "meta" not in tables:
            # Never add ledger tables to another application's database.
            raise LedgerError(
                f"{self._name} is an SQLite database of something else "
                f"(tables {', '.join(sorted(tables)[:5])}), not a lowcarb ledger",
                path=self.path,
            )
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        # executescript commits on its own; CREATE ... IF NOT EXISTS is idempotent.
        db.executescript(_SCHEMA)
        with self._transaction("set it up"):
            self._check_version()

    def _check_version(self) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if row is None:
            self._db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(_SCHEMA_VERSION),))
            return
        try:
            version = int(row[0])
        except ValueError:
            version = -1
        if version == 1:
            # Schema 1 lacked the decision and integration details of a round: add them
            # (its rounds keep no decision, so only they cannot be replayed).
            self._db.execute("ALTER TABLE rounds ADD COLUMN decision TEXT")
            self._db.execute("ALTER TABLE rounds ADD COLUMN details TEXT NOT NULL DEFAULT '{}'")
            self._db.execute("UPDATE meta SET value=? WHERE key='schema'", (str(_SCHEMA_VERSION),))
        elif version != _SCHEMA_VERSION:
            newer = " (written by a newer lowcarb: upgrade to read it)" if version > 1 else ""
            raise LedgerError(
                f"{self._name} has ledger schema {str(row[0])[:20]}; this lowcarb reads "
                f"{_SCHEMA_VERSION}{newer}",
                path=self.path,
            )

    @contextmanager
    def _storage(self, doing: str) -> Iterator[None]:
        """Raise storage faults as :class:`LedgerError`, saying what could not be done."""
        try:
            yield
        except sqlite3.IntegrityError:
            raise  # a constraint the caller broke, mapped by the caller
        except sqlite3.Error as exc:
            raise LedgerError(
                f"{self._name}: cannot {doing}: {_fault(exc)}", path=self.path
            ) from exc

    @contextmanager
    def _transaction(self, doing: str = "write it") -> Iterator[sqlite3.Connection]:
        # Explicit BEGIN IMMEDIATE: one writer at a time, and a round is all or nothing.
        db = self._db
        with self._storage(doing):
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                # A failed COMMIT (a full disk) may already have rolled back.
                if db.in_transaction:
                    with suppress(sqlite3.Error):
                        db.execute("ROLLBACK")
                raise

    def __repr__(self) -> str:
        return f"Ledger({str(self.path)!r})"

    def close(self) -> None:
        """Close the database (committed rounds are already on disk)."""
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- runs -------------------------------------------------------------------------

    def open_run(
        self, run_id: str, *, config: Mapping[str, Any], now: datetime | None = None
    ) -> bool:
        """Create the run, or resume it if it exists.

        Returns:
            True if the run existed (a resumed training).
        """
        if not run_id or not isinstance(run_id, str):
            raise InvalidInputError("run_id must be a non-empty string")
        check_text("run_id", run_id)
        stamp = _iso(now if now is not None else datetime.now(UTC))
        with self._lock, self._transaction("open the run") as db:
            found = db.execute("SELECT 1 FROM runs WHERE run_id=?", (run_id,)).fetchone()
            if found is None:
                db.execute(
                    "INSERT INTO runs VALUES (?, ?, ?)",
                    (run_id, stamp, json.dumps(dict(config), default=str, sort_keys=True)),
                )
        return found is not None

    def runs(self) -> list[str]:
        """Run ids in the ledger, oldest first."""
        with self._storage("read it"):
            rows = self._db.execute("SELECT run_id FROM runs ORDER BY created_at, run_id")
            return [r[0] for r in rows]

    def run_config(self, run_id: str) -> dict[str, Any]:
        """The configuration a run was opened with."""
        with self._storage("read it"):
            row = self._db.execute("SELECT config FROM runs WHERE run_id=?", (run_id,)).fetchone()
        if row is None:
            raise InvalidInputError(f"no run {run_id!r} in {self.path}")
        return dict(json.loads(row[0]))

    # -- fairness state ---------------------------------------------------------------

    def participation(self, run_id: str) -> dict[str, int]:
        """Rounds taken so far by each known client of the run."""
        with self._storage("read it"):
            rows = self._db.execute(
                "SELECT client_id, rounds FROM participation WHERE run_id=?", (run_id,)
            )
            return {client: int(n) for client, n in rows}

    def register_clients(self, run_id: str, clients: Mapping[str, str]) -> None:
        """Record clients (id -> zone) as part of the run's population, with 0 rounds."""
        for cid, zone in clients.items():
            check_text("client id", cid)
            check_text(f"zone of {cid!r}", zone)
        with self._lock, self._transaction("record the clients") as db:
            db.executemany(
                "INSERT INTO participation VALUES (?, ?, ?, 0, 0) "
                "ON CONFLICT (run_id, client_id) DO UPDATE SET zone=excluded.zone",
                [(run_id, cid, zone) for cid, zone in clients.items()],
            )

    def rounds_done(self, run_id: str) -> int:
        """Highest round number recorded for the run (0 if none)."""
        with self._storage("read it"):
            row = self._db.execute(
                "SELECT MAX(round) FROM rounds WHERE run_id=?", (run_id,)
            ).fetchone()
        return int(row[0] or 0)

    # -- rounds -----------------------------------------------------------------------

    def record_round(
        self, run_id: str, record: RoundRecord, *, decision: Mapping[str, Any] | None = None
    ) -> None:
        """Write a decided round, its client-rounds and the participation counts, atomically.

        Args:
            run_id: The run.
            record: The round.
            decision: The decision as taken (JSON-friendly), kept so that the round can be
                replayed and completed later (see :meth:`decision`).

        Raises:
            InvalidInputError: If the round number is already recorded, or a value is
                implausible (see :mod:`lowcarb._bounds`) or not encodable text.
            LedgerError: If the ledger cannot be written (nothing is then written).
        """
        ids = [c.client_id for c in record.clients]
        if len(set(ids)) != len(ids):
            raise InvalidInputError(f"round {record.round}: a client is listed twice")
        _check_rows(record.clients, f"round {record.round}")
        _check_map(
            f"round {record.round}: metrics", record.metrics, most=MAX_METRIC, least=-MAX_METRIC
        )
        for name in ("random_expected_g", "random_actual_g"):
            value = getattr(record, name)
            if value is not None:
                check_quantity(f"round {record.round}: {name}", value, most=MAX_ROUND_G)
        decided = None if decision is None else _json(decision)
        noted = _json(record.details)
        with self._lock, self._transaction("record the round") as db:
            try:
                db.execute(
                    "INSERT INTO rounds VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        run_id,
                        record.round,
                        _iso(record.decided_at),
                        _iso(record.start),
                        _iso(record.end),
                        record.policy,
                        record.reason,
                        _json(record.signal),
                        record.candidates,
                        record.random_expected_g,
                        record.random_actual_g,
                        _json(record.metrics),
                        None if record.completed_at is None else _iso(record.completed_at),
                        decided,
                        noted,
                    ),
                )
            except sqlite3.IntegrityError as exc:
                raise InvalidInputError(
                    f"round {record.round} of run {run_id!r} is already recorded"
                ) from exc
            _insert_client_rounds(
                db, "INSERT", "client_rounds", run_id, record.round, record.clients
            )
            db.executemany(
                "INSERT INTO participation VALUES (?, ?, ?, 1, ?) "
                "ON CONFLICT (run_id, client_id) DO UPDATE SET rounds=rounds+1, "
                "last_round=excluded.last_round, zone=excluded.zone",
                [(run_id, c.client_id, c.zone, record.round) for c in record.clients],
            )

    def complete_round(
        self,
        run_id: str,
        round_number: int,
        *,
        completed_at: datetime,
        actual: Mapping[str, float] | None = None,
        energy_kwh: Mapping[str, float] | None = None,
        random_actual_g: float | None = None,
        metrics: Mapping[str, float] | None = None,
        excluded: Sequence[ClientRound] = (),
        details: Mapping[str, Any] | None = None,
        dropped: Sequence[str] = (),
        random_expected_g: float | None = None,
    ) -> RoundRecord:
        """Add what became known after a round: actual intensities, measured energy, metrics.

        Args:
            run_id: The run.
            round_number: The round.
            completed_at: When it completed (UTC).
            actual: Actual intensity per zone (gCO2eq/kWh).
            energy_kwh: Measured energy per client (kWh); replaces the model's estimate.
            random_actual_g: The random counterfactual with actual intensities.
            metrics: Metrics to merge into the round's (e.g. ``{"accuracy": 0.91}``).
            excluded: Candidates not selected that trained anyway (replacing any recorded
                for the round).
            details: What an integration records about the round (merged into the
                round's details, key by key).
            dropped: Selected clients that did not train after all (failed, timed out):
                their client-rounds are removed and their participation given back.
                Dropping a client already dropped changes nothing.
            random_expected_g: A new expected random counterfactual (e.g. for the
                clients that did train).

        Returns:
            The round as recorded now.

        Raises:
            InvalidInputError: If the round is not recorded, a client is not in it, or a
                value is implausible (see :mod:`lowcarb._bounds`) or not encodable text;
                nothing is written then.
            LedgerError: If the ledger cannot be written (nothing is then written).
        """
        where = f"round {round_number}"
        _check_map(f"{where}: actual (gCO2eq/kWh)", actual, most=MAX_PLAUSIBLE_G_PER_KWH)
        _check_map(f"{where}: energy_kwh (kWh)", energy_kwh, most=MAX_CLIENT_ROUND_KWH)
        _check_map(f"{where}: metrics", metrics, most=MAX_METRIC, least=-MAX_METRIC)
        _check_rows(excluded, f"{where}: excluded")
        for name, value in (
            ("random_actual_g", random_actual_g),
            ("random_expected_g", random_expected_g),
        ):
            if value is not None:
                check_quantity(f"{where}: {name}", value, most=MAX_ROUND_G)
        with self._lock, self._transaction("record the round's outcome") as db:
            row = db.execute(
                "SELECT metrics, details FROM rounds WHERE run_id=? AND round=?",
                (run_id, round_number),
            ).fetchone()
            if row is None:
                raise InvalidInputError(f"round {round_number} of run {run_id!r} is not recorded")
            merged = {**json.loads(row[0]), **dict(metrics or {})}
            noted = {**json.loads(row[1]), **dict(details or {})}
            db.execute(
                "UPDATE rounds SET completed_at=?, metrics=?, details=?, "
                "random_actual_g=COALESCE(?, random_actual_g), "
                "random_expected_g=COALESCE(?, random_expected_g) WHERE run_id=? AND round=?",
                (
                    _iso(completed_at),
                    _json(merged),
                    _json(noted),
                    random_actual_g,
                    random_expected_g,
                    run_id,
                    round_number,
                ),
            )
            for client in dropped:
                removed = db.execute(
                    "DELETE FROM client_rounds WHERE run_id=? AND round=? AND client_id=?",
                    (run_id, round_number, client),
                ).rowcount
                if removed:
                    # The client keeps its fair share: this round no longer counts for it.
                    db.execute(
                        "UPDATE participation SET rounds=rounds-1, last_round=COALESCE("
                        "(SELECT MAX(round) FROM client_rounds WHERE run_id=? AND client_id=?), 0"
                        ") WHERE run_id=? AND client_id=?",
                        (run_id, client, run_id, client),
                    )
            _insert_client_rounds(
                db, "INSERT OR REPLACE", "excluded_rounds", run_id, round_number, excluded
            )
            for zone, value in (actual or {}).items():
                for table in ("client_rounds", "excluded_rounds"):
                    db.execute(
                        f"UPDATE {table} SET intensity_actual=? "
                        "WHERE run_id=? AND round=? AND zone=?",
                        (float(value), run_id, round_number, zone),
                    )
            for client, value in (energy_kwh or {}).items():
                updated = db.execute(
                    "UPDATE client_rounds SET energy_kwh=?, energy_source='measured' "
                    "WHERE run_id=? AND round=? AND client_id=?",
                    (float(value), run_id, round_number, client),
                ).rowcount
                if not updated:
                    raise InvalidInputError(
                        f"client {client!r} did not take part in round {round_number}"
                    )
            return self._rounds(run_id, round_number - 1, round_number)[0]

    def decision(self, run_id: str, round_number: int) -> dict[str, Any] | None:
        """The decision of a recorded round as it was taken (its ``to_record`` form).

        None when the round is not recorded, or was recorded by a lowcarb that kept no
        decisions (ledger schema 1).
        """
        with self._storage("read it"):
            row = self._db.execute(
                "SELECT decision FROM rounds WHERE run_id=? AND round=?", (run_id, round_number)
            ).fetchone()
        return None if row is None or row[0] is None else dict(json.loads(row[0]))

    def record_pause(
        self, run_id: str, *, decided_at: datetime, wait_until: datetime, reason: str
    ) -> None:
        """Record a decision to wait instead of running a round."""
        check_text("reason", reason)
        with self._lock, self._transaction("record the pause") as db:
            db.execute(
                "INSERT INTO pauses VALUES (?, ?, ?, ?)",
                (run_id, _iso(decided_at), _iso(wait_until), reason),
            )

    def pauses(self, run_id: str) -> list[tuple[datetime, datetime, str]]:
        """Recorded pauses: (decided_at, wait_until, reason)."""
        with self._storage("read it"):
            rows = self._db.execute(
                "SELECT decided_at, wait_until, reason FROM pauses WHERE run_id=? ORDER BY rowid",
                (run_id,),
            ).fetchall()
        return [(datetime.fromisoformat(a), datetime.fromisoformat(b), r) for a, b, r in rows]

    def rounds(self, run_id: str, *, since: int = 0) -> list[RoundRecord]:
        """Round records of a run, in order, from round ``since + 1``."""
        with self._lock, self._storage("read it"):
            return self._rounds(run_id, since, None)

    def _rounds(self, run_id: str, since: int, until: int | None) -> list[RoundRecord]:
        last = 2**62 if until is None else until
        clients = self._client_rounds("client_rounds", run_id, since, last)
        excluded = self._client_rounds("excluded_rounds", run_id, since, last)
        out = []
        for row in self._db.execute(
            "SELECT round, decided_at, start, end, policy, reason, signal, candidates, "
            "random_expected_g, random_actual_g, metrics, completed_at, details FROM rounds "
            "WHERE run_id=? AND round>? AND round<=? ORDER BY round",
            (run_id, since, last),
        ):
            out.append(
                RoundRecord(
                    round=row[0],
                    decided_at=datetime.fromisoformat(row[1]),
                    start=datetime.fromisoformat(row[2]),
                    end=datetime.fromisoformat(row[3]),
                    policy=row[4],
                    reason=row[5],
                    signal=json.loads(row[6]),
                    candidates=row[7],
                    clients=tuple(clients.get(row[0], ())),
                    random_expected_g=row[8],
                    random_actual_g=row[9],
                    metrics=json.loads(row[10]),
                    completed_at=_when(row[11]),
                    excluded=tuple(excluded.get(row[0], ())),
                    details=json.loads(row[12]),
                )
            )
        return out

    def _client_rounds(
        self, table: str, run_id: str, since: int, until: int
    ) -> dict[int, list[ClientRound]]:
        rows: dict[int, list[ClientRound]] = {}
        for row in self._db.execute(
            "SELECT round, client_id, zone, energy_kwh, energy_source, intensity_used, "
            f"intensity_actual FROM {table} WHERE run_id=? AND round>? AND round<=? "
            "ORDER BY round, client_id",
            (run_id, since, until),
        ):
            rows.setdefault(row[0], []).append(ClientRound(*row[1:]))
        return rows

    def check(self) -> None:
        """Run SQLite's integrity check.

        Raises:
            DataValidationError: If the file is damaged.
        """
        result = self._db.execute("PRAGMA integrity_check").fetchone()[0]
        if result != "ok":
            raise DataValidationError(f"ledger {self.path} is damaged: {result}")

    # -- reading a ledger another process writes ------------------------------------------

    #: True for a ledger opened with :meth:`open_read_only`.
    read_only: bool = False

    @classmethod
    def open_read_only(cls, path: str | Path) -> Ledger:
        """Open an existing ledger file for reading only (reports, dashboards).

        The file is opened with SQLite's ``mode=ro``: nothing is created, migrated or
        written, and in WAL mode a reader never blocks the process writing the ledger.
        Use :meth:`snapshot` to read several things as of one commit.

        Raises:
            InvalidInputError: If the file does not exist or is a directory.
            LedgerError: If it cannot be opened, is not a lowcarb ledger, or has another
                schema (saying whether an older or a newer lowcarb wrote it); the message
                names the file, not its folder.
        """
        target = Path(path)
        if target.is_dir():
            raise InvalidInputError(f"ledger path {target} is a directory, not a file")
        if not target.is_file():
            raise InvalidInputError(f"no ledger file at {target}")
        # Built as any ledger is (so it has every attribute one has), then pointed at the
        # file through a read-only connection instead of its in-memory database.
        ledger = cls()
        ledger._db.close()
        ledger.path = target
        ledger._name = f"ledger {target.name}"
        ledger.read_only = True
        uri = f"{target.resolve().as_uri()}?mode=ro"
        try:
            ledger._db = sqlite3.connect(
                uri, uri=True, isolation_level=None, check_same_thread=False, timeout=10.0
            )
        except sqlite3.Error as exc:
            raise LedgerError(f"{target.name}: cannot open it: {_fault(exc)}", path=target) from exc
        try:
            row = ledger._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        except sqlite3.DatabaseError as exc:
            ledger._db.close()
            why = "it has no ledger tables" if "no such table" in str(exc) else _fault(exc)
            raise LedgerError(f"{target.name} is not a lowcarb ledger: {why}", path=target) from exc
        version = row[0] if row is not None else None
        if version != str(_SCHEMA_VERSION):
            ledger._db.close()
            if version is None:
                raise LedgerError(
                    f"{target.name} is not a lowcarb ledger: it has no schema version",
                    path=target,
                )
            older = version.isdigit() and int(version) < _SCHEMA_VERSION
            hint = (
                "written by an older lowcarb: open it once with this one to upgrade it"
                if older
                else "written by a newer lowcarb: upgrade lowcarb to read it"
            )
            raise LedgerError(
                f"{target.name} has ledger schema {version[:20]}; this lowcarb reads "
                f"{_SCHEMA_VERSION} ({hint})",
                path=target,
            )
        return ledger

    @contextmanager
    def snapshot(self) -> Iterator[Ledger]:
        """Read as of one commit: every read inside sees the same state of the ledger.

        Only for ledgers opened with :meth:`open_read_only` (a read transaction, which in
        WAL mode does not block the writer).

        Raises:
            InvalidInputError: On a ledger opened for writing.
        """
        if not self.read_only:
            raise InvalidInputError("snapshot() reads a ledger opened with open_read_only()")
        self._db.execute("BEGIN")
        try:
            yield self
        finally:
            self._db.execute("COMMIT")
