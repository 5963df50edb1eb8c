"""Completing a round with only the clients that trained; clients counted but not selected."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from lowcarb import Client, Ledger, ManualClock, SelectionEngine
from lowcarb.backends import DefaultProvider
from lowcarb.exceptions import InvalidInputError

START = datetime(2025, 3, 3, tzinfo=UTC)


def engine(tmp_path=None, **kw) -> SelectionEngine:
    clock = ManualClock(START)
    ledger = Ledger(tmp_path / "ledger.db") if tmp_path else Ledger()
    return SelectionEngine(DefaultProvider(clock=clock), ledger=ledger, clock=clock, rounds=4, **kw)


CLIENTS = [Client(f"c{i}", zone) for i, zone in enumerate(["DE", "GB", "FR", "PL"])]


def test_a_client_that_did_not_train_is_not_booked_and_keeps_its_share() -> None:
    e = engine()
    decision = e.select(CLIENTS, 2)
    failed, ok = decision.selected
    before = e.complete(decision.round).random_expected_g  # nothing dropped: unchanged
    assert before == pytest.approx(decision.random_expected_g)
    record = e.complete(decision, trained=[ok])
    assert [c.client_id for c in record.clients] == [ok]
    assert record.energy_kwh == pytest.approx(decision.clients[0].energy_kwh)
    # The counterfactual is that of one random client, as one trained.
    assert record.random_expected_g == pytest.approx(decision.random_expected_g / 2)
    assert e.participation[failed] == 0 and e.participation[ok] == 1
    assert e.ledger.participation(e.run_id)[failed] == 0
    # Completing again with the same outcome changes nothing.
    again = e.complete(decision, trained=[ok])
    assert [c.client_id for c in again.clients] == [ok]
    assert e.participation[failed] == 0
    assert e.summary().participation["never"] == 3  # the failed one and the two left


def test_a_failed_client_is_owed_its_round_later() -> None:
    e = engine()
    first = e.select(CLIENTS, 2)
    failed = first.selected[0]
    e.complete(first, trained=first.selected[1:])
    assert e.participation[failed] == 0
    for _ in range(3):
        e.complete(e.select(CLIENTS, 2))
    # A fair share of 2 rounds each; the lost client-round leaves one client short,
    # and the failed client trained again rather than being counted as done.
    assert e.participation[failed] >= 1
    assert sorted(e.participation.values()) == [1, 2, 2, 2]


def test_trained_must_be_selected_and_dropped_ones_unmeasured() -> None:
    e = engine()
    decision = e.select(CLIENTS, 2)
    stranger = next(c.id for c in CLIENTS if c.id not in decision.selected)
    with pytest.raises(InvalidInputError, match="were not selected"):
        e.complete(decision, trained=[stranger])
    with pytest.raises(InvalidInputError, match="did not train"):
        e.complete(decision, trained=decision.selected[:1], energy_kwh={decision.selected[1]: 0.1})


def test_the_outcome_survives_a_restart(tmp_path) -> None:
    e = engine(tmp_path)
    decision = e.select(CLIENTS, 2)
    e.complete(decision, trained=[])
    e.close()
    again = engine(tmp_path)
    assert again.participation == dict.fromkeys(again.participation, 0)
    assert again.records()[0].clients == ()
    assert again.rounds_done == 1


def test_registered_clients_count_in_the_population_as_never_selected() -> None:
    e = engine()
    e.register([Client("left-out", "nowhere")])
    d = e.select(CLIENTS, 2)
    e.complete(d)
    e.register([Client(d.selected[0], "DE")])  # known clients keep their rounds
    assert e.participation["left-out"] == 0 and e.participation[d.selected[0]] == 1
    # 5 clients in the population, 2 trained: 3 never did, "left-out" among them.
    assert e.summary().participation["never"] == 3
