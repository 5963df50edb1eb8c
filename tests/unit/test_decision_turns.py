"""What a decision tells a person: each waiting client's next planned turn, and what the
intensities it used are (kind, basis, synthetic); both survive the ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

import lowcarb
from lowcarb import Client, Decision, ManualClock, SelectionEngine


def _engine(**options) -> tuple[SelectionEngine, ManualClock]:
    clock = ManualClock(datetime(2024, 6, 1, tzinfo=UTC))
    return SelectionEngine("default", rounds=12, clock=clock, **options), clock


CLIENTS = [Client(f"c{i}", zone) for i, zone in enumerate(["DE", "FR", "PL", "SE", "GB", "ES"])]


def test_waiting_clients_know_their_next_planned_turn():
    engine, _ = _engine()
    decision = engine.select(CLIENTS, k=2)
    waiting = [c for c in decision.clients if not c.selected]
    assert all(c.next_turn is None for c in decision.clients if c.selected)
    planned = [c.next_turn for c in waiting if c.next_turn is not None]
    # 12 rounds of 2 over 6 clients: every client has later turns, all within the plan.
    assert len(planned) == len(waiting) == 4
    interval = engine.round_interval
    for when in planned:
        assert when > decision.start
        assert (when - decision.decided_at) % interval == timedelta(0)
    # A slot holds at most K of the waiting clients' turns.
    assert max(planned.count(t) for t in planned) <= 2


def test_next_turns_survive_the_ledger_and_the_dict_form():
    engine, _ = _engine()
    decision = engine.select(CLIENTS, k=2)
    again = engine.decision(decision.round)
    assert [c.next_turn for c in again.clients] == [c.next_turn for c in decision.clients]
    assert Decision.from_dict(decision.to_dict()).clients == decision.clients
    row = decision.to_dict()["clients"][0]
    assert row["next_turn"] is None or isinstance(row["next_turn"], str)


def test_policies_without_a_plan_leave_next_turn_empty():
    engine, _ = _engine(policy="random")
    decision = engine.select(CLIENTS, k=2)
    assert all(c.next_turn is None for c in decision.clients)
    assert "next_turn_s" not in decision.to_record()["candidates"]


def test_the_signal_says_what_its_intensities_are():
    engine, _ = _engine()
    decision = engine.select(CLIENTS, k=2)
    assert (decision.signal["kind"], decision.signal["basis"]) == ("average", "lifecycle")
    assert decision.signal["synthetic"] is True
    record = engine.records()[0]
    assert record.signal["kind"] == "average"


def test_next_turns_at_scale_are_one_lookup_per_client():
    from lowcarb._policies import _next_turns, _take_from_groups

    rng = np.random.default_rng(0)
    group = rng.integers(0, 3, 50)
    counts = np.array([[2, 1, 0, 3], [1, 0, 2, 0], [0, 0, 0, 1]])
    take = np.minimum(counts[:, 0], np.bincount(group, minlength=3))
    chosen, queue = _take_from_groups(group, take, rng)
    turns = _next_turns(group, counts, queue)
    assert (turns[chosen] == -1).all()
    for g in range(3):
        members = [i for i in np.flatnonzero(group == g) if i not in set(chosen)]
        members.sort(key=lambda i: queue[i])
        slots = [t for t in range(1, 4) for _ in range(counts[g, t])]
        expected = slots + [-1] * (len(members) - len(slots))
        assert [int(turns[i]) for i in members] == expected[: len(members)]
    assert lowcarb.LowcarbPolicy().name == "lowcarb"
