"""Per-task engines: ids, isolation, restarts, replays, locking."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from lowcarb import Capabilities, CarbonProvider, Client, Decision, EngineSpec, ManualClock
from lowcarb._ledger import Ledger
from lowcarb._tasks import RoundConflictError, TaskEngines, TaskLimitError, check_task_id
from lowcarb.backends import DefaultProvider
from lowcarb.exceptions import DataValidationError, InvalidInputError, LedgerError

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
    with _engines(tmp_path, ManualClock(START)) as engines:
        with pytest.raises(InvalidInputError, match="task id"):
            engines.get(bad)  # type: ignore[arg-type]
        assert engines.tasks() == []
    assert [p.name for p in tmp_path.iterdir()] == ["lowcarb.lock"]


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
    # Nothing beside the ledger and the folder's lock: SQLite's WAL files are gone once
    # it is closed, and so is the lock's holder record.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lowcarb.lock", "t.ledger.sqlite"]


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


# -- bounded resources: open ledgers, tasks, the state folder, provider calls ---------------


def test_idle_ledgers_are_closed_to_keep_at_most_max_open(tmp_path) -> None:
    clock = ManualClock(START)
    tasks = [f"t{i}" for i in range(6)]
    with _engines(tmp_path, clock, max_open=2) as engines:
        for _ in range(2):
            for task in tasks:
                engines.select(task, CLIENTS, 2)
                assert len(engines._engines) <= 2
            clock.advance(HOUR)
        # A reopened task continues where it stopped, its earlier rounds still completable.
        for task in tasks:
            with engines.session(task) as engine:
                assert engine.rounds_done == 2
            assert engines.complete(task, 1, metrics={"loss": 1.0}).round == 1
        assert engines.tasks() == sorted(tasks)
        assert all(engines.has_task(t) for t in tasks) and not engines.has_task("t99")


def test_a_task_past_max_tasks_is_refused_and_the_others_keep_working(tmp_path) -> None:
    clock = ManualClock(START)
    with _engines(tmp_path, clock, max_tasks=2) as engines:
        engines.select("a", CLIENTS, 2)
        engines.select("b", CLIENTS, 2)
        with pytest.raises(TaskLimitError, match="holds at most 2 tasks") as info:
            engines.select("c", CLIENTS, 2)
        assert info.value.limit == 2
        assert engines.select("a", CLIENTS, 2).decision.round == 2
    assert not (tmp_path / "c.ledger.sqlite").exists()
    # Tasks on disk count after a restart too.
    with _engines(tmp_path, clock, max_tasks=2) as engines, pytest.raises(TaskLimitError):
        engines.get("c")


@pytest.mark.parametrize("kw", [{"max_tasks": 0}, {"max_open": -1}, {"max_open": True}])
def test_bad_bounds_are_refused(kw: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError, match="must be a positive integer"):
        _engines(None, ManualClock(START), **kw)


def test_a_held_state_folder_is_refused_naming_its_holder(tmp_path) -> None:
    clock = ManualClock(START)
    with _engines(tmp_path, clock) as first:
        first.select("t", CLIENTS, 2)
        with pytest.raises(LedgerError, match=rf"in use by process {os.getpid()} on .* \(since "):
            _engines(tmp_path, clock)
        assert first.select("t", CLIENTS, 2).decision.round == 2  # the holder is unharmed
    with _engines(tmp_path, clock) as second:  # released on close
        assert second.get("t").rounds_done == 2


@pytest.mark.slow
def test_a_second_process_cannot_take_a_held_state_folder(tmp_path) -> None:
    code = (
        "import sys\n"
        "from lowcarb import TaskEngines\n"
        "from lowcarb.exceptions import LedgerError\n"
        "try:\n"
        "    TaskEngines(sys.argv[1], provider='default')\n"
        "except LedgerError as exc:\n"
        "    print(exc); sys.exit(3)\n"
    )
    with _engines(tmp_path, ManualClock(START)):
        done = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 3, done.stderr
    assert f"in use by process {os.getpid()}" in done.stdout


class HangingProvider(CarbonProvider):
    """Lists its zones at once, then never answers for data until released."""

    name = "hanging"

    def __init__(self, release: threading.Event) -> None:
        super().__init__()
        self.release = release

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities("average", "lifecycle", HOUR, timedelta(hours=24))

    def served_zones(self) -> list[str]:
        return ["DE", "GB", "SG", "ZA", "KR"]

    def _hang(self, *args: object) -> Any:
        self.release.wait(60)  # bounded, so that a broken test cannot hang the suite
        raise RuntimeError("released")

    _latest = _history = _forecast = _hang


def test_a_hanging_provider_is_passed_by_after_the_deadline(tmp_path) -> None:
    clock = ManualClock(START)
    release = threading.Event()
    engines = TaskEngines(
        None, provider=HangingProvider(release), clock=clock, provider_timeout_s=0.2, rounds=6
    )
    try:
        decisions: list[Decision] = []

        def select(task: str) -> None:
            decisions.append(engines.select(task, CLIENTS, 2).decision)

        for wave in range(2):  # the second wave finds four calls abandoned, still running
            threads = [threading.Thread(target=select, args=(f"t{wave}-{i}",)) for i in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
        assert len(decisions) == 8
        for decision in decisions:
            assert decision.signal["provider"] == "default"
            assert "hanging" in decision.signal["notes"][0]
            assert "signal fallback" in decision.reason
        notes = " ".join(n for d in decisions for n in d.signal["notes"])
        assert "no answer to forecast within 0.2 s" in notes
        # Past four abandoned calls, the provider is passed by at once.
        assert "4 calls past their deadline still wait" in notes
    finally:
        release.set()
        engines.close()


def test_a_bad_provider_timeout_is_refused() -> None:
    for bad in (0, -1, float("nan"), "5", True):
        with pytest.raises(InvalidInputError, match="provider timeout"):
            TaskEngines(provider="default", provider_timeout_s=bad)


@pytest.mark.slow
def test_many_more_tasks_than_file_descriptors(tmp_path) -> None:
    """120 tasks, each a ledger of three descriptors, under a limit of 128 descriptors."""
    code = """
import resource, sys
from datetime import UTC, datetime, timedelta
from lowcarb import Client, ManualClock, TaskEngines
from lowcarb.backends import DefaultProvider

resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))
clock = ManualClock(datetime(2025, 3, 3, tzinfo=UTC))
clients = [Client(f"c{i}", z) for i, z in enumerate(["DE", "GB", "SG", "ZA"])]
with TaskEngines(sys.argv[1], provider=DefaultProvider(clock=clock), clock=clock,
                 rounds=4, max_open=16) as engines:
    for round_ in (1, 2):
        for i in range(120):
            engines.select(f"task-{i}", clients, 2, round=round_)
            engines.complete(f"task-{i}", round_, metrics={"loss": 1.0})
        clock.advance(timedelta(hours=1))
    print(len(engines.tasks()), sum(engines.get(f"task-{i}").rounds_done for i in range(120)))
"""
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["120", "240"]
    with Ledger(tmp_path / "task-119.ledger.sqlite") as ledger:
        assert [r.completed_at is not None for r in ledger.rounds("task-119")] == [True, True]


def test_concurrent_calls_within_the_deadline_are_not_limited(tmp_path) -> None:
    """Only abandoned calls count against the limit: eight tasks at once all use the
    primary provider."""
    clock = ManualClock(START)

    class Slow(DefaultProvider):
        def _forecast(self, *args: Any) -> Any:
            threading.Event().wait(0.05)  # slow, but well within the deadline
            return super()._forecast(*args)

    engines = TaskEngines(None, provider=Slow(clock=clock), clock=clock, provider_timeout_s=30)
    decisions: list[Decision] = []
    threads = [
        threading.Thread(
            target=lambda i=i: decisions.append(engines.select(f"t{i}", CLIENTS, 2).decision)
        )
        for i in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    engines.close()
    assert len(decisions) == 8
    assert all(d.signal["fallback"] is None for d in decisions)
