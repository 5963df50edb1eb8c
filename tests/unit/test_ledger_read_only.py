"""Reading a ledger another process writes: read-only, one commit at a time, never blocking."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from lowcarb import (
    ClientRound,
    InvalidInputError,
    Ledger,
    LedgerError,
    LowcarbError,
    RoundRecord,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _round(n: int) -> RoundRecord:
    start = T0 + timedelta(hours=n)
    return RoundRecord(
        round=n,
        decided_at=start,
        start=start,
        end=start + timedelta(hours=1),
        policy="test",
        reason="r",
        signal={"provider": "static"},
        candidates=3,
        clients=(
            ClientRound("a", "DE", 0.1, "model", 300.0),
            ClientRound("b", "FR", 0.1, "model", 50.0),
        ),
        random_expected_g=40.0,
    )


@pytest.fixture
def written(tmp_path):
    path = tmp_path / "run.ledger.sqlite"
    ledger = Ledger(path)
    ledger.open_run("r", config={}, now=T0)
    ledger.record_round("r", _round(1))
    yield path, ledger
    ledger.close()


def test_reads_what_the_writer_committed_and_never_writes(written):
    path, writer = written
    reader = Ledger.open_read_only(path)
    assert reader.read_only and reader.runs() == ["r"]
    assert [r.round for r in reader.rounds("r")] == [1]
    writer.record_round("r", _round(2))
    assert reader.rounds_done("r") == 2
    with pytest.raises((sqlite3.OperationalError, LowcarbError), match="read-?only"):
        reader.open_run("other", config={})
    reader.close()


def test_a_snapshot_sees_one_commit_and_does_not_block_the_writer(written):
    path, writer = written
    reader = Ledger.open_read_only(path)
    with reader.snapshot():
        before = reader.rounds("r")
        writer.record_round("r", _round(2))  # would time out if the reader blocked it
        writer.complete_round("r", 1, completed_at=T0, actual={"DE": 1.0})
        assert reader.rounds("r") == before
        assert reader.participation("r") == {"a": 1, "b": 1}
    assert reader.rounds_done("r") == 2
    reader.close()


def test_snapshot_is_for_read_only_ledgers(written):
    _, writer = written
    with pytest.raises(InvalidInputError, match="open_read_only"), writer.snapshot():
        pass


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a database at all, just text" * 40, "not a lowcarb ledger"),
        (None, "not a lowcarb ledger"),  # SQLite, but without lowcarb's tables
    ],
)
def test_a_file_that_is_not_a_ledger(tmp_path, content, message):
    path = tmp_path / "x.sqlite"
    if content is None:
        sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.commit()
    else:
        path.write_bytes(content)
    with pytest.raises(LedgerError, match=message):
        Ledger.open_read_only(path)


@pytest.mark.parametrize(("version", "says"), [("3", "newer lowcarb"), ("1", "older lowcarb")])
def test_another_schema_says_which_lowcarb_to_use(written, version, says):
    path, writer = written
    writer._db.execute("UPDATE meta SET value=? WHERE key='schema'", (version,))
    with pytest.raises(LedgerError, match=f"schema {version}.*{says}"):
        Ledger.open_read_only(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(InvalidInputError, match="no ledger file"):
        Ledger.open_read_only(tmp_path / "nope.sqlite")
    with pytest.raises(InvalidInputError, match="directory"):
        Ledger.open_read_only(tmp_path)
    assert not (tmp_path / "nope.sqlite").exists()
