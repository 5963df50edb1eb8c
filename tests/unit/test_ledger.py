"""The participation ledger: runs, atomic rounds, completion, persistence and crashes."""

from __future__ import annotations

import dataclasses
import os
import select
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import closing
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from lowcarb import InvalidInputError, LedgerError
from lowcarb._ledger import ClientRound, Ledger, RoundRecord

T0 = datetime(2024, 6, 1, 12, tzinfo=UTC)
H = timedelta(hours=1)
CEST = timezone(timedelta(hours=2))
WRITER = Path(__file__).with_name("_ledger_writer.py")


def cr(client_id: str, zone: str = "DE", energy: float = 1.0, used: float = 100.0) -> ClientRound:
    return ClientRound(client_id, zone, energy, "model", used)


def record(n: int, *clients: ClientRound, **changes) -> RoundRecord:
    start = T0 + n * H
    base = RoundRecord(
        round=n,
        decided_at=start - timedelta(minutes=5),
        start=start,
        end=start + H,
        policy="greedy",
        reason=f"round {n}",
        signal={"provider": "static", "fallback": None},
        candidates=10,
        clients=clients or (cr("a"), cr("b", "FR")),
        random_expected_g=500.0,
    )
    return dataclasses.replace(base, **changes)


@pytest.fixture
def ledger():
    with Ledger() as led:
        led.open_run("r", config={"rounds": 3}, now=T0)
        yield led


def client_rows(led: Ledger, run_id: str = "r") -> list[tuple]:
    return led._db.execute(
        "SELECT round, client_id, zone, energy_kwh, energy_source, intensity_used, "
        "intensity_actual FROM client_rounds WHERE run_id=? ORDER BY round, client_id",
        (run_id,),
    ).fetchall()


def snapshot(led: Ledger, run_id: str = "r") -> tuple:
    """Everything the ledger holds for a run, to assert that a failed call changed nothing."""
    return (
        led.rounds(run_id),
        led.participation(run_id),
        led.rounds_done(run_id),
        client_rows(led, run_id),
        led._db.execute("SELECT * FROM participation ORDER BY run_id, client_id").fetchall(),
    )


# -- runs -------------------------------------------------------------------------------


def test_open_run_creates_then_resumes_and_keeps_the_first_config():
    with Ledger(":memory:") as led:
        assert led.runs() == []
        assert led.open_run("r", config={"rounds": 3, "at": T0}, now=T0) is False
        assert led.open_run("r", config={"rounds": 99}, now=T0 + H) is True
        assert led.runs() == ["r"]
        # The resume does not overwrite; a non-JSON value is stored as text.
        assert led.run_config("r") == {"rounds": 3, "at": str(T0)}


def test_runs_are_listed_oldest_first_whatever_the_offset():
    with Ledger() as led:
        led.open_run("late", config={}, now=T0 + 2 * H)
        # 13:30+02:00 is 11:30 UTC: older than "late" and "early" although its text sorts last.
        led.open_run("zz-oldest", config={}, now=datetime(2024, 6, 1, 13, 30, tzinfo=CEST))
        led.open_run("early", config={}, now=T0)
        assert led.runs() == ["zz-oldest", "early", "late"]


@pytest.fixture
def tokyo_local_time():
    """The process's local time zone is UTC+9 for the duration of the test."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Tokyo"
    time.tzset()
    yield
    if saved is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = saved
    time.tzset()


@pytest.mark.skipif(not hasattr(time, "tzset"), reason="time.tzset is POSIX-only")
@pytest.mark.usefixtures("tokyo_local_time")
def test_runs_order_mixes_default_and_explicit_creation_times():
    with Ledger() as led:
        led.open_run("first", config={})  # stamped with the wall clock
        led.open_run("second", config={}, now=datetime.now(UTC) + H)
        assert led.runs() == ["first", "second"]
        stamps = [r[0] for r in led._db.execute("SELECT created_at FROM runs")]
        assert all(s.endswith("+00:00") for s in stamps)


def test_run_config_of_an_unknown_run_and_empty_run_ids_are_rejected(ledger):
    with pytest.raises(InvalidInputError, match="no run 'nope'"):
        ledger.run_config("nope")
    with pytest.raises(InvalidInputError, match="non-empty"):
        ledger.open_run("", config={})
    assert ledger.runs() == ["r"]


def test_a_fresh_run_has_no_state(ledger):
    assert ledger.participation("r") == {}
    assert ledger.rounds_done("r") == 0
    assert ledger.rounds("r") == []
    assert ledger.pauses("r") == []
    assert ledger.rounds_done("unknown") == 0


# -- record_round -----------------------------------------------------------------------


def test_record_round_writes_round_client_rounds_and_participation(ledger):
    ledger.record_round("r", record(1, cr("a"), cr("b", "FR")))
    ledger.record_round("r", record(2, cr("a"), cr("c", "PL")))
    ledger.record_round("r", record(3, cr("c", "PL"), cr("a")))
    assert ledger.participation("r") == {"a": 3, "b": 1, "c": 2}
    assert ledger.rounds_done("r") == 3
    assert [r.round for r in ledger.rounds("r")] == [1, 2, 3]
    assert [r.round for r in ledger.rounds("r", since=1)] == [2, 3]
    assert ledger.rounds("r", since=3) == []
    assert len(client_rows(ledger)) == 6
    last = ledger._db.execute(
        "SELECT client_id, zone, last_round FROM participation WHERE run_id='r' ORDER BY client_id"
    ).fetchall()
    assert last == [("a", "DE", 3), ("b", "FR", 1), ("c", "PL", 3)]


def test_runs_do_not_share_state(ledger):
    ledger.open_run("other", config={}, now=T0)
    ledger.record_round("r", record(1, cr("a")))
    ledger.record_round("other", record(1, cr("a"), cr("z")))
    ledger.record_round("other", record(2, cr("z")))
    assert ledger.participation("r") == {"a": 1}
    assert ledger.participation("other") == {"a": 1, "z": 2}
    assert ledger.rounds_done("r") == 1
    assert ledger.rounds_done("other") == 2
    assert [len(r.clients) for r in ledger.rounds("other")] == [2, 1]


def test_rounds_round_trip_every_field(ledger):
    original = RoundRecord(
        round=1,
        decided_at=datetime(2024, 6, 1, 13, 55, 30, 123456, tzinfo=CEST),
        start=datetime(2024, 6, 1, 14, tzinfo=CEST),
        end=datetime(2024, 6, 1, 13, tzinfo=UTC),
        policy="carbon-greedy",
        reason="lowest forecast intensity; fairness floor kept",
        signal={
            "provider": "electricitymaps",
            "method": "forecast",
            "issued_at": "2024-06-01T11:00:00+00:00",
            "fallback": None,
            "sources": ["electricitymaps", "default"],
        },
        candidates=7,
        clients=(
            ClientRound("zeta", "FR", 0.25, "model", 55.5),
            ClientRound("alpha", "DE", 1.125, "measured", 312.0, 298.75),
        ),
        random_expected_g=123.456,
        random_actual_g=99.5,
        metrics={"accuracy": 0.875, "loss": 0.31},
        completed_at=datetime(2024, 6, 1, 15, 1, tzinfo=CEST),
    )
    ledger.record_round("r", original)
    (got,) = ledger.rounds("r")
    for when in (got.decided_at, got.start, got.end, got.completed_at):
        assert when.utcoffset() == timedelta(0)
    assert got.decided_at == datetime(2024, 6, 1, 11, 55, 30, 123456, tzinfo=UTC)
    assert got.start == datetime(2024, 6, 1, 12, tzinfo=UTC)
    assert got.completed_at == datetime(2024, 6, 1, 13, 1, tzinfo=UTC)
    assert isinstance(got.signal, dict) and isinstance(got.metrics, dict)
    # The ledger returns a round's clients ordered by client id.
    assert got.clients == tuple(sorted(original.clients, key=lambda c: c.client_id))
    assert dataclasses.replace(got, clients=()) == dataclasses.replace(original, clients=())
    assert got.energy_kwh == pytest.approx(1.375)
    assert got.emissions_g == pytest.approx(0.25 * 55.5 + 1.125 * 298.75)


def test_optional_fields_round_trip_as_none(ledger):
    ledger.record_round("r", record(1, random_expected_g=None))
    (got,) = ledger.rounds("r")
    assert got.random_expected_g is None
    assert got.random_actual_g is None
    assert got.completed_at is None
    assert got.metrics == {}
    assert all(c.intensity_actual is None for c in got.clients)


def test_a_duplicate_round_number_raises_and_changes_nothing(ledger):
    ledger.record_round("r", record(1, cr("a"), cr("b")))
    before = snapshot(ledger)
    with pytest.raises(InvalidInputError, match="round 1 of run 'r' is already recorded"):
        ledger.record_round("r", record(1, cr("a"), cr("c"), policy="other"))
    assert snapshot(ledger) == before
    assert ledger.participation("r") == {"a": 1, "b": 1}
    # The failed transaction was rolled back: the connection still writes.
    ledger.record_round("r", record(2, cr("c")))
    assert ledger.participation("r") == {"a": 1, "b": 1, "c": 1}


def test_a_client_listed_twice_raises_and_writes_nothing(ledger):
    with pytest.raises(InvalidInputError, match="listed twice"):
        ledger.record_round("r", record(1, cr("a"), cr("b"), cr("a", "FR")))
    assert ledger.rounds("r") == []
    assert ledger.participation("r") == {}
    assert ledger.rounds_done("r") == 0
    assert client_rows(ledger) == []


def test_a_failure_after_the_round_row_rolls_the_round_back(ledger):
    ledger.record_round("r", record(1, cr("a")))
    before = snapshot(ledger)
    # The round row goes in first; the second client-round breaks a NOT NULL constraint.
    broken = ClientRound("b", "DE", None, "model", 100.0)  # type: ignore[arg-type]
    with pytest.raises((sqlite3.IntegrityError, InvalidInputError)):
        ledger.record_round("r", record(2, cr("a"), broken))
    assert snapshot(ledger) == before
    with pytest.raises(InvalidInputError, match="naive"):
        ledger.record_round("r", record(2, cr("a"), end=datetime(2024, 6, 1)))
    assert snapshot(ledger) == before


def test_one_ledger_serialises_writers_from_threads(ledger):
    def write(first: int) -> None:
        for n in range(first, first + 20):
            ledger.record_round("r", record(n, cr(f"t{first}"), cr("shared")))

    threads = [threading.Thread(target=write, args=(1 + 20 * i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert ledger.rounds_done("r") == 80
    assert ledger.participation("r") == {"t1": 20, "t21": 20, "t41": 20, "t61": 20, "shared": 80}


# -- complete_round ---------------------------------------------------------------------


def test_complete_round_fills_actuals_measured_energy_and_metrics(ledger):
    ledger.record_round(
        "r", record(1, cr("a", "DE", 2.0), cr("b", "FR", 1.0), cr("c", "DE"), metrics={"loss": 1.5})
    )
    ledger.record_round("r", record(2, cr("a"), cr("b", "FR")))
    ledger.complete_round(
        "r",
        1,
        completed_at=datetime(2024, 6, 1, 16, tzinfo=CEST),
        actual={"DE": 150.0, "FR": 40},
        energy_kwh={"b": 0.5},
        random_actual_g=321.0,
        metrics={"accuracy": 0.8},
    )
    first, second = ledger.rounds("r")
    assert first.completed_at == datetime(2024, 6, 1, 14, tzinfo=UTC)
    assert first.metrics == {"loss": 1.5, "accuracy": 0.8}
    assert first.random_expected_g == 500.0
    assert first.random_actual_g == 321.0
    assert first.clients == (
        ClientRound("a", "DE", 2.0, "model", 100.0, 150.0),
        ClientRound("b", "FR", 0.5, "measured", 100.0, 40.0),
        ClientRound("c", "DE", 1.0, "model", 100.0, 150.0),
    )
    # Round 2 has the same clients and zones, and is untouched.
    assert second.completed_at is None
    assert all(c.intensity_actual is None and c.energy_source == "model" for c in second.clients)

    # A second report merges metrics and keeps the counterfactual it does not give.
    ledger.complete_round("r", 1, completed_at=T0 + 5 * H, metrics={"accuracy": 0.9})
    first = ledger.rounds("r")[0]
    assert first.metrics == {"loss": 1.5, "accuracy": 0.9}
    assert first.random_actual_g == 321.0
    assert first.completed_at == T0 + 5 * H
    assert first.clients[1].energy_kwh == 0.5
    assert ledger.participation("r") == {"a": 2, "b": 2, "c": 1}


def test_complete_round_of_an_unknown_round_raises(ledger):
    ledger.record_round("r", record(1))
    before = snapshot(ledger)
    with pytest.raises(InvalidInputError, match="round 2 of run 'r' is not recorded"):
        ledger.complete_round("r", 2, completed_at=T0, metrics={"accuracy": 1.0})
    with pytest.raises(InvalidInputError, match="not recorded"):
        ledger.complete_round("other", 1, completed_at=T0)
    assert snapshot(ledger) == before


def test_an_unknown_client_rolls_back_the_whole_completion(ledger):
    ledger.record_round("r", record(1, cr("a"), cr("b", "FR"), metrics={"loss": 2.0}))
    ledger.record_round("r", record(2, cr("z")))
    before = snapshot(ledger)
    # "z" exists, but not in round 1; everything before the bad client must be undone.
    with pytest.raises(InvalidInputError, match="client 'z' did not take part in round 1"):
        ledger.complete_round(
            "r",
            1,
            completed_at=T0 + 3 * H,
            actual={"DE": 10.0, "FR": 20.0},
            energy_kwh={"a": 9.0, "z": 1.0},
            random_actual_g=1.0,
            metrics={"accuracy": 0.5, "loss": 0.0},
        )
    assert snapshot(ledger) == before
    (first, _) = ledger.rounds("r")
    assert first.completed_at is None and first.metrics == {"loss": 2.0}
    assert first.random_actual_g is None
    assert [(c.energy_kwh, c.energy_source, c.intensity_actual) for c in first.clients] == [
        (1.0, "model", None),
        (1.0, "model", None),
    ]
    # The ledger still writes after the rollback.
    ledger.complete_round("r", 1, completed_at=T0 + 3 * H, energy_kwh={"a": 9.0})
    assert ledger.rounds("r")[0].clients[0].energy_source == "measured"


def test_a_naive_completion_time_is_rejected_without_effect(ledger):
    ledger.record_round("r", record(1))
    before = snapshot(ledger)
    with pytest.raises(InvalidInputError, match="naive"):
        ledger.complete_round("r", 1, completed_at=datetime(2024, 6, 1), actual={"DE": 1.0})
    assert snapshot(ledger) == before


# -- population and pauses --------------------------------------------------------------


def test_register_clients_adds_population_without_resetting_counts(ledger):
    ledger.record_round("r", record(1, cr("a"), cr("b", "FR")))
    ledger.record_round("r", record(2, cr("a")))
    ledger.register_clients("r", {"a": "NL", "b": "FR", "z": "PL"})
    assert ledger.participation("r") == {"a": 2, "b": 1, "z": 0}
    rows = ledger._db.execute(
        "SELECT client_id, zone, rounds, last_round FROM participation "
        "WHERE run_id='r' ORDER BY client_id"
    ).fetchall()
    assert rows == [("a", "NL", 2, 2), ("b", "FR", 1, 1), ("z", "PL", 0, 0)]
    ledger.register_clients("r", {"z": "PL"})  # idempotent
    ledger.record_round("r", record(3, cr("z", "PL")))
    assert ledger.participation("r") == {"a": 2, "b": 1, "z": 1}
    ledger.register_clients("r", {})
    assert ledger.participation("other") == {}


def test_pauses_are_recorded_and_read_back_in_order(ledger):
    ledger.record_pause("r", decided_at=T0, wait_until=T0 + 2 * H, reason="threshold exceeded")
    ledger.record_pause(
        "r",
        decided_at=datetime(2024, 6, 1, 16, tzinfo=CEST),
        wait_until=datetime(2024, 6, 1, 17, tzinfo=CEST),
        reason="again above the threshold",
    )
    ledger.record_pause("other", decided_at=T0, wait_until=T0 + H, reason="elsewhere")
    pauses = ledger.pauses("r")
    assert pauses == [
        (T0, T0 + 2 * H, "threshold exceeded"),
        (T0 + 2 * H, T0 + 3 * H, "again above the threshold"),
    ]
    assert all(w.utcoffset() == timedelta(0) for p in pauses for w in p[:2])
    assert ledger.pauses("other") == [(T0, T0 + H, "elsewhere")]
    assert ledger.participation("r") == {}
    with pytest.raises(InvalidInputError, match="naive"):
        ledger.record_pause("r", decided_at=datetime(2024, 6, 1), wait_until=T0, reason="x")
    assert len(ledger.pauses("r")) == 2


# -- files ------------------------------------------------------------------------------


def test_state_persists_across_reopening(tmp_path):
    path = tmp_path / "sub" / "dir" / "ledger.db"  # parents are created
    with Ledger(path) as led:
        assert led.open_run("r", config={"rounds": 5}, now=T0) is False
        led.register_clients("r", {"a": "DE", "b": "FR", "z": "PL"})
        led.record_round("r", record(1, cr("a"), cr("b", "FR")))
        led.complete_round("r", 1, completed_at=T0 + 2 * H, actual={"DE": 90.0})
        led.record_round("r", record(2, cr("a")))
        led.record_pause("r", decided_at=T0, wait_until=T0 + H, reason="wait")
        saved = (led.rounds("r"), led.participation("r"), led.pauses("r"))
    assert repr(led) == f"Ledger({str(path)!r})"
    with Ledger(str(path)) as led:
        led.check()
        assert led.open_run("r", config={"rounds": 99}, now=T0) is True
        assert led.run_config("r") == {"rounds": 5}
        assert (led.rounds("r"), led.participation("r"), led.pauses("r")) == saved
        assert led.participation("r") == {"a": 2, "b": 1, "z": 0}
        assert led.rounds_done("r") == 2
        assert led._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        led.record_round("r", record(3, cr("z", "PL")))
        assert led.participation("r")["z"] == 1


def test_two_ledgers_on_one_file_see_each_others_rounds(tmp_path):
    path = tmp_path / "ledger.db"
    with Ledger(path) as one, Ledger(path) as two:
        one.open_run("r", config={}, now=T0)
        assert two.open_run("r", config={}, now=T0) is True
        one.record_round("r", record(1, cr("a")))
        assert two.rounds_done("r") == 1
        two.record_round("r", record(2, cr("a")))
        assert one.participation("r") == {"a": 2}
        with pytest.raises(InvalidInputError, match="already recorded"):
            one.record_round("r", record(2, cr("b")))


def test_a_newer_schema_version_is_refused(tmp_path):
    path = tmp_path / "ledger.db"
    Ledger(path).close()
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("UPDATE meta SET value='3' WHERE key='schema'")
    with pytest.raises(LedgerError, match="ledger schema 3; this lowcarb reads 2.*newer"):
        Ledger(path)


def test_a_schema_1_ledger_is_upgraded_in_place(tmp_path):
    """Ledgers of the first release gain the decision and details columns, keeping rows."""
    path = tmp_path / "ledger.db"
    with Ledger(path) as ledger:
        ledger.open_run("r", config={})
        ledger.record_round("r", record(1, cr("a")))
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("ALTER TABLE rounds DROP COLUMN decision")
        db.execute("ALTER TABLE rounds DROP COLUMN details")
        db.execute("UPDATE meta SET value='1' WHERE key='schema'")
    with Ledger(path) as ledger:
        assert [r.round for r in ledger.rounds("r")] == [1]
        assert ledger.decision("r", 1) is None  # kept no decision: cannot be replayed
        ledger.record_round("r", record(2, cr("a")), decision={"round": 2})
        assert ledger.decision("r", 2) == {"round": 2}


def test_a_file_that_is_not_sqlite_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "notes.db"
    garbage = b"this is definitely not an SQLite database\n" * 200
    path.write_bytes(garbage)
    with pytest.raises(
        LedgerError, match="notes.db: cannot open it: the file is not an SQLite"
    ) as excinfo:
        Ledger(path)
    # The file's name, never its folder: the message may be shown to remote callers.
    assert str(tmp_path) not in str(excinfo.value) and excinfo.value.path == path
    assert isinstance(excinfo.value.__cause__, sqlite3.DatabaseError)
    assert path.read_bytes() == garbage


def test_a_directory_path_is_an_input_error(tmp_path):
    with pytest.raises(InvalidInputError, match="is a directory") as excinfo:
        Ledger(tmp_path)
    assert excinfo.type is InvalidInputError


def test_check_passes_on_a_fresh_ledger(tmp_path):
    with Ledger(tmp_path / "l.db") as led:
        led.check()
    with Ledger(None) as led:
        led.check()
        assert repr(led) == "Ledger(':memory:')"


# -- crash safety -----------------------------------------------------------------------


class _Writer:
    """A writer subprocess whose stdout lines are read without blocking past a deadline."""

    def __init__(self, path: Path, run_id: str) -> None:
        # Started early: it imports lowcarb, then waits for go() before opening the ledger.
        self.proc = subprocess.Popen(
            [sys.executable, str(WRITER), str(path), run_id],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.committed: list[int] = []
        self.completed: list[int] = []
        self._partial = b""

    def go(self) -> None:
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.flush()

    def _take(self, data: bytes) -> None:
        *lines, self._partial = (self._partial + data).split(b"\n")
        for line in lines:
            kind, n = line.decode().split()
            (self.committed if kind == "committed" else self.completed).append(int(n))

    def read_until_committed(self, target: int, timeout: float = 30.0) -> None:
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while not self.committed or self.committed[-1] < target:
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"writer committed only {self.committed[-1:]} rounds in {timeout} s")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                data = os.read(fd, 65536)
                if not data:
                    self.proc.wait()
                    pytest.fail(f"writer exited early: {self.proc.stderr.read().decode()}")
                self._take(data)

    def kill(self) -> None:
        """SIGKILL the writer, then collect the lines it flushed before dying."""
        os.kill(self.proc.pid, signal.SIGKILL)
        rest, err = self.proc.communicate(timeout=30)
        self._take(rest)
        assert self.proc.returncode == -signal.SIGKILL, err.decode()

    def discard(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=30)


def _assert_consistent(led: Ledger, run_id: str, writer: _Writer, floor: int) -> int:
    """Everything reported committed is there, whole; nothing partial is. Returns N."""
    led.check()
    rounds = led.rounds(run_id)
    numbers = [r.round for r in rounds]
    done = led.rounds_done(run_id)
    assert numbers == list(range(1, done + 1)), "rounds must be contiguous from 1"
    # Every round the writer saw committed survived; at most one more committed unreported.
    assert writer.committed, "the writer reported no commit"
    assert writer.committed[-1] <= done <= writer.committed[-1] + 1
    assert done >= floor
    per_client: Counter[str] = Counter()
    for r in rounds:
        assert len(r.clients) == 10, f"round {r.round} is partial: {len(r.clients)} clients"
        per_client.update(c.client_id for c in r.clients)
        # A completion is all or nothing too.
        completed = r.completed_at is not None
        applied = (
            "accuracy" in r.metrics,
            r.random_actual_g is not None,
            *(c.intensity_actual is not None for c in r.clients),
        )
        assert set(applied) == {completed}, f"round {r.round} is half completed: {applied}"
    reported = set(writer.completed)
    assert {r.round for r in rounds if r.completed_at is not None} >= reported
    # Participation equals the client-rounds actually stored, client by client.
    stored = Counter(
        dict(
            led._db.execute(
                "SELECT client_id, COUNT(*) FROM client_rounds WHERE run_id=? GROUP BY client_id",
                (run_id,),
            ).fetchall()
        )
    )
    assert led.participation(run_id) == dict(per_client) == dict(stored)
    assert sum(per_client.values()) == 10 * done
    return done


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")
@pytest.mark.slow
def test_sigkill_mid_run_loses_no_committed_round_and_leaves_no_partial_one(tmp_path):
    path = tmp_path / "crash.db"
    # A round is two transactions (record, then complete), each ending in an fsync: a few
    # ms. Kill after different numbers of rounds and at different delays after the line
    # that reached the threshold, so the kills land at different points of the loop; each
    # writer resumes the file the previous one was killed on.
    moments = ((50, 0.0), (20, 0.0015), (20, 0.003), (20, 0.0045), (20, 0.006))
    # Each writer starts now and imports lowcarb while the ones before it write.
    writers = [_Writer(path, "crash") for _ in moments]
    done = 0
    try:
        for writer, (threshold, delay) in zip(writers, moments, strict=True):
            writer.go()
            try:
                writer.read_until_committed(done + threshold)
                if delay:
                    time.sleep(delay)
            finally:
                writer.kill()
            assert writer.committed[0] == done + 1  # it resumed after the last stored round
            with Ledger(path) as led:
                done = _assert_consistent(led, "crash", writer, floor=done + threshold)
    finally:
        for writer in writers:
            writer.discard()

    with Ledger(path) as led:
        assert led.open_run("crash", config={}, now=T0) is True
        assert led.run_config("crash") == {"writer": True}
        n = led.rounds_done("crash") + 1
        before = led.participation("crash")
        led.record_round("crash", record(n, cr("c00"), cr("new")))
        assert led.rounds_done("crash") == n
        after = led.participation("crash")
        assert after["c00"] == before["c00"] + 1 and after["new"] == 1
        led.check()


# -- storage faults and implausible values --------------------------------------------------


def test_a_foreign_sqlite_database_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "app.sqlite"
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TABLE users (name TEXT)")
    before = path.read_bytes()
    with pytest.raises(LedgerError, match="SQLite database of something else .tables users"):
        Ledger(path)
    assert path.read_bytes() == before
    with closing(sqlite3.connect(path)) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
    assert tables == {"users"}  # no ledger table was added to it


def test_a_path_that_is_not_a_regular_file_is_refused(tmp_path):
    fifo = tmp_path / "pipe.sqlite"
    os.mkfifo(fifo)
    with pytest.raises(LedgerError, match="pipe.sqlite is not a regular file"):
        Ledger(fifo)


def test_a_folder_that_cannot_be_created_is_a_ledger_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(LedgerError, match="its folder cannot be created") as excinfo:
        Ledger(blocker / "sub" / "l.sqlite")
    assert str(tmp_path) not in str(excinfo.value)


@pytest.mark.parametrize(
    ("pragma", "meaning"),
    [
        # SQLite's own limit on the file's pages is how a full disk looks to it.
        ("PRAGMA max_page_count = {pages}", "the disk is full"),
        ("PRAGMA query_only = ON", "it is read-only"),
    ],
)
def test_a_storage_fault_is_a_ledger_error_and_loses_nothing(tmp_path, pragma, meaning):
    path = tmp_path / "task.ledger.sqlite"
    with Ledger(path) as led:
        led.open_run("r", config={}, now=T0)
        led.record_round("r", record(1))
        before = snapshot(led)
        pages = led._db.execute("PRAGMA page_count").fetchone()[0]
        led._db.execute(pragma.format(pages=pages))
        many = tuple(cr(f"client-{i:04d}-" + "x" * 200) for i in range(200))
        with pytest.raises(
            LedgerError, match=f"ledger task.ledger.sqlite: cannot .*: {meaning}"
        ) as exc:
            led.record_round("r", record(2, *many))
        assert str(tmp_path) not in str(exc.value)
        with pytest.raises(LedgerError, match=meaning):
            led.complete_round(
                "r",
                1,
                completed_at=T0 + 2 * H,
                metrics={"m" * 500: 1.0} | {f"k{i}": 1.0 for i in range(3000)},
            )
        assert snapshot(led) == before
    with Ledger(path) as led:  # and nothing half-written is found after a restart
        assert [r.round for r in led.rounds("r")] == [1]
        assert led.rounds("r")[0].completed_at is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"energy_kwh": {"a": 1e308}},
            r"energy_kwh \(kWh\)\['a'\] must be a finite number between 0 and 10000",
        ),
        ({"energy_kwh": {"a": 10**400}}, "must be a finite number between 0 and 10000"),
        ({"energy_kwh": {"a": -1.0}}, "must be a finite number between"),
        ({"energy_kwh": {"a": float("nan")}}, "must be a finite number between"),
        ({"energy_kwh": {"a": True}}, "must be a number"),
        (
            {"actual": {"DE": 3001.0}},
            r"actual \(gCO2eq/kWh\)\['DE'\] must be a finite number between 0 and 3000",
        ),
        ({"actual": {"\ud800": 100.0}}, "lone surrogate"),
        (
            {"metrics": {"loss": 1e300}},
            "metrics\\['loss'\\] must be a finite number between -1e\\+12 and 1e\\+12",
        ),
        ({"metrics": {"\ud800": 1.0}}, "a key of round 1: metrics .* lone surrogate"),
        ({"details": {"note": "\udcff"}}, "cannot record"),
        (
            {"excluded": [ClientRound("late", "DE", 1e308, "reported", 100.0)]},
            "excluded: energy_kwh of 'late'",
        ),
        ({"excluded": [ClientRound("\ud800", "DE", 1.0, "reported", 100.0)]}, "lone surrogate"),
        ({"random_actual_g": float("inf")}, "random_actual_g must be a finite number between"),
    ],
)
def test_implausible_or_unencodable_outcomes_are_refused_before_anything_is_written(
    ledger, changes, message
):
    ledger.record_round("r", record(1))
    before = snapshot(ledger)
    with pytest.raises(InvalidInputError, match=message):
        ledger.complete_round("r", 1, completed_at=T0 + 2 * H, **changes)
    assert snapshot(ledger) == before


@pytest.mark.parametrize(
    ("clients", "changes", "message"),
    [
        (
            (cr("a", energy=1e5),),
            {},
            "energy_kwh of 'a' .* must be a finite number between 0 and 10000",
        ),
        (
            (cr("a", used=1e9),),
            {},
            "intensity of 'a' .* must be a finite number between 0 and 3000",
        ),
        ((cr("\ud800"),), {}, "client id '.ud800' is not valid Unicode"),
        ((cr("a", zone="DE\udc80"),), {}, "zone of 'a'"),
        ((cr("a"),), {"metrics": {"acc": float("inf")}}, "metrics"),
        ((cr("a"),), {"random_expected_g": 1e300}, "random_expected_g"),
    ],
)
def test_implausible_rounds_are_not_recorded(ledger, clients, changes, message):
    with pytest.raises(InvalidInputError, match=message):
        ledger.record_round("r", record(1, *clients, **changes))
    assert ledger.rounds_done("r") == 0 and ledger.participation("r") == {}
    with pytest.raises(InvalidInputError, match="lone surrogate"):
        ledger.register_clients("r", {"b": "\ud83d"})
    assert ledger.participation("r") == {}


def test_every_accepted_value_reads_back_and_serializes(ledger):
    """The largest plausible values are stored, read back, and are valid strict JSON."""
    import json

    ledger.record_round("r", record(1, cr("a", energy=1e4, used=3000.0), cr("é-ü", "FR")))
    done = ledger.complete_round(
        "r",
        1,
        completed_at=T0 + 2 * H,
        energy_kwh={"a": 1e4},
        actual={"DE": 3000.0},
        metrics={"accuracy": 0.9, "loss": -1e12, "名前": 1e12},
        excluded=[ClientRound("late", "DE", 1e4, "reported", 3000.0)],
    )
    assert done.emissions_g == pytest.approx(1e4 * 3000 + 1.0 * 100.0)
    text = json.dumps(
        [dataclasses.asdict(r) for r in ledger.rounds("r")], default=str, allow_nan=False
    )
    text.encode("utf-8")
