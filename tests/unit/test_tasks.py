"""Per-task engines: ids, isolation, restarts, replays, locking."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from lowcarb import Client, Decision, EngineSpec, ManualClock
from lowcarb._ledger import Ledger
from lowcarb._tasks import RoundConflictError, TaskEngines, check_task_id
from lowcarb.backends import DefaultProvider
from lowcarb.exceptions import DataValidationError, InvalidInputError

START = datetime(2025, 3, 3, tzinfo=UTC)
HOUR = timedelta(hours=1)
CLIENTS = [Client(f"c{i}", zone) for i, zone in enumerate(["DE", "GB", "SG", "ZA", "KR", "GB"])]


def _engines(state_dir, clock: ManualClock, **kw) -> TaskEngines:
    kw.setdefault("rounds", 6)
    return TaskEngines(state_dir, provider=DefaultProvider(clock=clock), clock=clock, **kw)


def _run(engines: TaskEngines, task: str, clock: ManualClock, rounds: int) -> list[tuple]:
    picks = []
    for _ in range(rounds):
        decision = engines.select(task, CLIENTS, 2).decision
        picks.append(decision.selected)
        clock.advance(HOUR)
    return picks


@pytest.mark.parametrize("good", ["mnist", "titanic-v2", "Task_1.b", "a" * 128, "7"])
def test_valid_task_ids_pass(good: str) -> None:
    assert check_task_id(good) == good


@pytest.mark.parametrize(
    "bad", ["", ".hidden", "../etc", "a/b", "a\\b", "x y", "tâche", "a" * 129, "-x", None, 5]
)
def test_task_ids_unsafe_as_file_names_are_refused(bad: object, tmp_path) -> None:
    with pytest.raises(InvalidInputError, match="task id"):
        check_task_id(bad)
    engines = _engines(tmp_path, ManualClock(START))
    with pytest.raises(InvalidInputError, match="task id"):
        engines.get(bad)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_a_restart_continues_each_task_where_it_stopped(tmp_path) -> None:
    # The same six rounds, once in one process and once with a restart after round 3.
    clock = ManualClock(START)
    with _engines(None, clock) as straight:
        expected = _run(straight, "mnist", clock, 6)
        expected_counts = straight.get("mnist").participation

    clock = ManualClock(START)
    with _engines(tmp_path, clock) as first:
        before = _run(first, "mnist", clock, 3)
    with _engines(tmp_path, clock) as second:
        engine = second.get("mnist")
        assert engine.resumed and engine.rounds_done == 3
        after = _run(second, "mnist", clock, 3)
        assert second.get("mnist").participation == expected_counts
    assert before + after == expected
    assert sorted(expected_counts.values()) == [2] * 6  # fair: 6 rounds x 2 over 6 clients


def test_the_latest_round_can_be_completed_after_a_restart(tmp_path) -> None:
    clock = ManualClock(START)
    with _engines(tmp_path, clock) as first:
        _run(first, "mnist", clock, 2)
        decision = first.select("mnist", CLIENTS, 2).decision
    with _engines(tmp_path, clock) as second:
        measured = dict.fromkeys(decision.selected, 0.5)
        record = second.complete("mnist", 3, energy_kwh=measured, metrics={"accuracy": 0.8})
        assert record == second.get("mnist").records()[-1]
        assert record.round == 3 and record.metrics == {"accuracy": 0.8}
        assert {c.client_id: c.energy_kwh for c in record.clients} == measured
        assert {c.energy_source for c in record.clients} == {"measured"}
        # An earlier round too: its decision lives in the ledger, not in a side file.
        earlier = second.complete("mnist", 1, metrics={"loss": 0.3})
        assert earlier.round == 1 and earlier.metrics == {"loss": 0.3}
        with pytest.raises(RoundConflictError, match="has not been decided") as info:
            second.complete("mnist", 4)
        assert info.value.expected == 4


@pytest.mark.slow
def test_a_round_is_completed_and_replayed_after_100_later_rounds_and_a_restart(
    tmp_path,
) -> None:
    clock = ManualClock(START)
    with _engines(tmp_path, clock, rounds=None) as first:
        decided = first.select("t", CLIENTS, 2).decision
        for _ in range(100):
            clock.advance(HOUR)
            first.select("t", CLIENTS, 2)
        record = first.complete("t", 1, metrics={"accuracy": 0.5})
        assert record.round == 1 and {c.client_id for c in record.clients} == set(decided.selected)
    with _engines(tmp_path, clock, rounds=None) as second:
        again = second.select("t", CLIENTS, 2, round=1)
        assert again.replayed and again.decision == decided
        assert second.complete("t", 1, metrics={"loss": 1.0}).metrics == {
            "accuracy": 0.5,
            "loss": 1.0,
        }
    # Nothing beside the ledger: SQLite's WAL files are gone once it is closed.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.ledger.sqlite"]


def test_tasks_are_isolated(tmp_path) -> None:
    clock = ManualClock(START)
    with _engines(tmp_path, clock) as engines:
        _run(engines, "a", clock, 2)
        assert engines.get("b").rounds_done == 0
        assert engines.select("b", CLIENTS[:3], 1).decision.round == 1
        assert engines.get("a").rounds_done == 2
        assert engines.tasks() == ["a", "b"]
    assert {p.name for p in tmp_path.glob("*.sqlite")} == {"a.ledger.sqlite", "b.ledger.sqlite"}
    with Ledger(tmp_path / "b.ledger.sqlite") as ledger:
        assert ledger.runs() == ["b"]
        assert ledger.rounds_done("b") == 1
    with _engines(tmp_path, clock) as again:
        assert again.tasks() == ["a", "b"]  # found on disk before being opened


def test_in_memory_tasks_leave_no_files(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    clock = ManualClock(START)
    with _engines(None, clock) as engines:
        _run(engines, "mnist", clock, 1)
    assert list(tmp_path.iterdir()) == []


def test_a_retried_round_replays_its_decision(tmp_path) -> None:
    clock = ManualClock(START)
    with _engines(tmp_path, clock) as engines:
        first = engines.select("t", CLIENTS, 2, round=1)
        assert not first.replayed
        clock.advance(HOUR)
        again = engines.select("t", CLIENTS[::-1], 3, round=1)
        assert again.replayed and again.decision == first.decision
        assert engines.get("t").rounds_done == 1  # nothing new recorded
        with pytest.raises(RoundConflictError, match="decides round 2 next") as info:
            engines.select("t", CLIENTS, 2, round=5)
        assert info.value.expected == 2
        with pytest.raises(InvalidInputError, match="round must be a positive integer"):
            engines.select("t", CLIENTS, 2, round=0)
        assert engines.select("t", CLIENTS, 2, round=2).decision.round == 2


def test_completing_a_round_not_yet_decided_is_refused(tmp_path) -> None:
    engines = _engines(tmp_path, ManualClock(START))
    with engines, pytest.raises(RoundConflictError, match="has not been decided"):
        engines.complete("t", 1)


def test_a_bad_completion_loses_nothing(tmp_path) -> None:
    clock = ManualClock(START)
    with _engines(tmp_path, clock) as engines:
        decision = engines.select("t", CLIENTS, 2).decision
        outsider = next(iter(decision.deferred))
        with pytest.raises(InvalidInputError, match="did not take part"):
            engines.complete("t", 1, energy_kwh={decision.selected[0]: 1.0, outsider: 1.0})
        record = engines.get("t").ledger.rounds("t")[0]
        assert record.completed_at is None
        assert {c.energy_source for c in record.clients} == {"model"}
        with pytest.raises(InvalidInputError, match="measured energy"):
            engines.complete("t", 1, energy_kwh={decision.selected[0]: -1.0})


def test_concurrent_rounds_of_one_task_are_serialized(tmp_path) -> None:
    clock = ManualClock(START)
    errors: list[BaseException] = []
    rounds: list[int] = []
    with _engines(tmp_path, clock, rounds=None) as engines:

        def worker() -> None:
            try:
                for _ in range(3):
                    rounds.append(engines.select("shared", CLIENTS, 2).decision.round)
            except BaseException as exc:  # collected and re-raised by the test thread
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert sorted(rounds) == list(range(1, 19))
        assert engines.get("shared").rounds_done == 18
        assert sum(engines.get("shared").participation.values()) == 36


def test_a_damaged_recorded_decision_is_reported(tmp_path) -> None:
    clock = ManualClock(START)
    with _engines(tmp_path, clock) as engines:
        engines.select("t", CLIENTS, 2)
    with Ledger(tmp_path / "t.ledger.sqlite") as ledger:
        ledger._db.execute("UPDATE rounds SET decision='{\"round\": 1}'")
    with _engines(tmp_path, clock) as engines:
        assert engines.get("t").rounds_done == 1
        with pytest.raises(DataValidationError, match="not a recorded decision"):
            engines.complete("t", 1)
    with pytest.raises(DataValidationError, match="not a stored decision"):
        Decision.from_dict({"round": 1})


def test_a_spec_per_task_builds_the_engines(tmp_path) -> None:
    clock = ManualClock(START)
    made: list[str] = []

    def spec_for(task_id: str) -> EngineSpec:
        made.append(task_id)
        return EngineSpec(policy="random", rounds=3, seed=7)

    with TaskEngines(
        tmp_path, provider=DefaultProvider(clock=clock), clock=clock, spec_for=spec_for
    ) as engines:
        engine = engines.get("x")
        assert engine.policy_name == "random" and engine.rounds == 3 and engine.seed == 7
        assert engine.run_id == "x"
        engines.get("x")
    assert made == ["x"]


def test_a_closed_registry_refuses_work(tmp_path) -> None:
    engines = _engines(tmp_path, ManualClock(START))
    engines.get("t")
    engines.close()
    with pytest.raises(InvalidInputError, match="closed"):
        engines.get("t")


def test_a_file_as_state_dir_is_refused(tmp_path) -> None:
    path = tmp_path / "file"
    path.write_text("")
    with pytest.raises(InvalidInputError, match="not a directory"):
        TaskEngines(path, provider="default")
