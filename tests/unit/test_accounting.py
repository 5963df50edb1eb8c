"""Carbon accounting of a run: totals, counterfactual, fairness, tables and exports."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from lowcarb._accounting import RunSummary, jain_index, summarize
from lowcarb._ledger import ClientRound, Ledger, RoundRecord

T0 = datetime(2024, 6, 1, 12, tzinfo=UTC)
H = timedelta(hours=1)
FALLBACK = "electricitymaps failed; default answered for DE"


def rr(
    n: int,
    clients,
    *,
    expected=None,
    actual=None,
    metrics=None,
    fallback=None,
    excluded=(),
    **signal,
):
    return RoundRecord(
        round=n,
        decided_at=T0 + n * H - timedelta(minutes=1),
        start=T0 + n * H,
        end=T0 + (n + 1) * H,
        policy="greedy",
        reason="test",
        signal={"provider": "static", "fallback": fallback, **signal},
        candidates=6,
        clients=tuple(clients),
        random_expected_g=expected,
        random_actual_g=actual,
        metrics=metrics or {},
        excluded=tuple(excluded),
    )


def three_rounds() -> list[RoundRecord]:
    """Three rounds whose account is worked out by hand in the tests below.

    Round 1: a 2 kWh x 150 (actual; 100 used) + b 1 kWh x 50 (used; actual unknown) = 350 g.
    Round 2: a 1 kWh x 200 (used) + c 3 kWh x 80 (actual; 100 used) = 440 g.
    Round 3: d 0.5 kWh x 400 (actual = used) = 200 g.
    """
    return [
        rr(
            1,
            [
                ClientRound("a", "DE", 2.0, "model", 100.0, 150.0),
                ClientRound("b", "FR", 1.0, "model", 50.0),
            ],
            expected=400.0,
            actual=500.0,
            metrics={"accuracy": 0.5},
        ),
        rr(
            2,
            [
                ClientRound("a", "DE", 1.0, "model", 200.0),
                ClientRound("c", "DE", 3.0, "measured", 100.0, 80.0),
            ],
            expected=700.0,
            metrics={"accuracy": 0.7, "loss": 0.3},
            fallback=FALLBACK,
        ),
        rr(
            3,
            [ClientRound("d", "NL", 0.5, "model", 400.0, 400.0)],
            expected=300.0,
            actual=250.0,
            metrics={"loss": 0.1},
        ),
    ]


POPULATION = {"a": 2, "b": 1, "c": 1, "d": 1, "e": 0, "f": 0}


@pytest.fixture
def summary() -> RunSummary:
    return summarize(three_rounds(), run_id="run-1", population=POPULATION)


# -- jain_index -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ([3, 3, 3], 1.0),
        ([7], 1.0),
        ([5, 0, 0, 0], 0.25),
        ([1, 0], 0.5),
        ([1, 2, 3], 36 / 42),
        ([2, 1, 1, 1, 0, 0], 25 / 42),
        ([], 1.0),
        ([0, 0, 0], 1.0),
        (np.array([4.0, 4.0]), 1.0),
    ],
)
def test_jain_index(counts, expected):
    value = jain_index(counts)
    assert isinstance(value, float)
    assert value == pytest.approx(expected)


def test_jain_index_of_one_client_among_n_is_one_over_n():
    for n in (2, 5, 100):
        assert jain_index([9] + [0] * (n - 1)) == pytest.approx(1 / n)


# -- summarize --------------------------------------------------------------------------


def test_totals_use_actual_intensity_where_known_and_expected_otherwise(summary):
    assert summary.run_id == "run-1"
    assert summary.rounds == 3
    assert summary.energy_kwh == pytest.approx(7.5)
    assert summary.emissions_g == pytest.approx(350 + 440 + 200)
    assert summary.emissions_expected_g == pytest.approx(200 + 50 + 200 + 300 + 200)
    assert summary.actual_share == pytest.approx(3 / 5)


def test_random_counterfactual_prefers_actual_over_expected(summary):
    # Round 1 has both (500 actual wins over 400); round 2 only expected; round 3 both.
    assert summary.random_g == pytest.approx(500 + 700 + 250)
    assert summary.saving_vs_random == pytest.approx(1 - 990 / 1450)
    assert [r["random_g"] for r in summary.per_round] == [500.0, 700.0, 250.0]


def test_mean_intensity_is_energy_weighted_and_sci_is_per_round(summary):
    assert summary.mean_intensity == pytest.approx(990 / 7.5)  # 132, not the plain mean 176
    assert summary.sci_g_per_round == pytest.approx(990 / 3)


def test_accuracy_gain_is_points_per_kg_from_first_to_last_reported(summary):
    # Round 3 reports no accuracy: last reported is 0.7. 20 points over 0.99 kg.
    assert summary.accuracy_gain_per_kg == pytest.approx((0.7 - 0.5) * 100 / 0.99)


def test_accuracy_gain_is_first_to_last_not_best_and_can_be_negative():
    records = [
        rr(1, [ClientRound("a", "DE", 1.0, "model", 500.0)], metrics={"accuracy": 0.6}),
        rr(2, [ClientRound("a", "DE", 1.0, "model", 500.0)], metrics={"accuracy": 0.9}),
        rr(3, [ClientRound("a", "DE", 1.0, "model", 500.0)], metrics={"accuracy": 0.5}),
    ]
    assert summarize(records).accuracy_gain_per_kg == pytest.approx(-10 / 1.5)
    assert summarize(records[:1]).accuracy_gain_per_kg is None  # one value: no gain
    free = [
        rr(n, [ClientRound("a", "DE", 0.0, "model", 100.0)], metrics={"accuracy": n / 10})
        for n in (1, 2)
    ]
    assert summarize(free).accuracy_gain_per_kg is None  # no emissions: no ratio


def test_per_round_rows(summary):
    rows = summary.per_round
    assert [r["round"] for r in rows] == [1, 2, 3]
    assert rows[1] == {
        "round": 2,
        "start": "2024-06-01T14:00:00+00:00",
        "clients": 2,
        "energy_kwh": pytest.approx(4.0),
        "emissions_g": pytest.approx(440.0),
        "random_g": 700.0,
        "metrics": {"accuracy": 0.7, "loss": 0.3},
        "fallback": FALLBACK,
        "excluded_g": 0,
    }
    assert [r["emissions_g"] for r in rows] == pytest.approx([350, 440, 200])
    assert rows[0]["fallback"] is None


def test_per_client_and_per_zone_tables(summary):
    assert summary.per_client == {
        "a": {"rounds": 2, "energy_kwh": 3.0, "emissions_g": 500.0},
        "b": {"rounds": 1, "energy_kwh": 1.0, "emissions_g": 50.0},
        "c": {"rounds": 1, "energy_kwh": 3.0, "emissions_g": 240.0},
        "d": {"rounds": 1, "energy_kwh": 0.5, "emissions_g": 200.0},
    }
    assert summary.per_zone == {
        "DE": {"rounds": 3, "energy_kwh": 6.0, "emissions_g": 740.0},
        "FR": {"rounds": 1, "energy_kwh": 1.0, "emissions_g": 50.0},
        "NL": {"rounds": 1, "energy_kwh": 0.5, "emissions_g": 200.0},
    }


def test_participation_counts_never_selected_clients_of_the_population(summary):
    assert summary.participation == {
        "min": 0.0,
        "max": 2.0,
        "jain": pytest.approx(25 / 42),
        "never": 2,
    }
    alone = summarize(three_rounds())
    assert alone.participation == {
        "min": 1.0,
        "max": 2.0,
        "jain": pytest.approx(25 / 28),
        "never": 0,
    }


def test_fallbacks_are_counted(summary):
    assert summary.fallbacks == 1
    one = [ClientRound("a", "DE", 1.0, "model", 1.0)]
    records = [rr(n, one, fallback=FALLBACK) for n in (1, 2)]
    records.append(rr(3, one, fallback=None))  # the engine writes "fallback": None
    records.append(dataclasses.replace(rr(4, one), signal={"provider": "static"}))
    assert summarize(records).fallbacks == 2
    assert [r["fallback"] for r in summarize(records).per_round] == [FALLBACK, FALLBACK, None, None]


def test_no_counterfactual_when_a_round_has_none():
    records = three_rounds()
    records[1] = rr(2, records[1].clients)  # neither expected nor actual random
    s = summarize(records)
    assert s.random_g is None
    assert s.saving_vs_random is None
    assert s.per_round[1]["random_g"] is None
    assert s.emissions_g == pytest.approx(990)


def test_an_empty_run():
    s = summarize([], run_id="empty", population={"a": 0, "b": 0})
    assert (s.rounds, s.energy_kwh, s.emissions_g, s.emissions_expected_g) == (0, 0.0, 0.0, 0.0)
    assert s.actual_share == 0.0
    assert s.random_g is None and s.saving_vs_random is None
    assert s.mean_intensity is None and s.sci_g_per_round is None
    assert s.accuracy_gain_per_kg is None
    assert s.participation == {"min": 0.0, "max": 0.0, "jain": 1.0, "never": 2}
    assert summarize([]).participation == {"min": 0.0, "max": 0.0, "jain": 1.0, "never": 0}
    assert (s.per_round, s.per_client, s.per_zone, s.fallbacks) == ([], {}, {}, 0)


def test_summarize_reads_the_ledger_the_same_way():
    with Ledger() as ledger:
        ledger.open_run("run-1", config={}, now=T0)
        ledger.register_clients("run-1", {"e": "PL", "f": "PL"})
        for record in three_rounds():
            ledger.record_round("run-1", record)
        population = ledger.participation("run-1")
        from_ledger = summarize(ledger.rounds("run-1"), run_id="run-1", population=population)
    direct = summarize(three_rounds(), run_id="run-1", population=POPULATION)
    assert population == POPULATION
    assert from_ledger.to_dict() == direct.to_dict()


# -- exports ----------------------------------------------------------------------------


def _no_nan(token: str) -> float:
    raise AssertionError(f"{token} is not valid JSON")


def test_to_json_writes_valid_json_with_units(summary, tmp_path):
    path = summary.to_json(tmp_path / "summary.json")
    assert path == tmp_path / "summary.json"
    data = json.loads(path.read_text(), parse_constant=_no_nan)
    assert data["units"] == {"energy": "kWh", "emissions": "gCO2eq", "intensity": "gCO2eq/kWh"}
    assert "_records" not in data
    assert data["run_id"] == "run-1"
    assert data["rounds"] == 3
    assert data["energy_kwh"] == pytest.approx(7.5)
    assert data["emissions_g"] == pytest.approx(990)
    assert data["random_g"] == pytest.approx(1450)
    assert data["fallbacks"] == 1
    assert data["participation"]["never"] == 2
    assert data["per_client"]["a"] == {"rounds": 2, "energy_kwh": 3.0, "emissions_g": 500.0}
    assert data["per_zone"]["DE"]["emissions_g"] == pytest.approx(740)
    assert [r["start"] for r in data["per_round"]] == [
        "2024-06-01T13:00:00+00:00",
        "2024-06-01T14:00:00+00:00",
        "2024-06-01T15:00:00+00:00",
    ]
    # The empty run's None values are JSON nulls.
    empty = json.loads(summarize([]).to_json(tmp_path / "empty.json").read_text())
    assert empty["mean_intensity"] is None and empty["random_g"] is None


def test_to_json_accepts_a_str_path(summary, tmp_path):
    target = str(tmp_path / "s.json")
    assert summary.to_json(target).read_text().endswith("}\n")


HEADER = [
    "run_id",
    "round",
    "start",
    "end",
    "client_id",
    "zone",
    "energy_kwh",
    "energy_source",
    "intensity_used_g_per_kwh",
    "intensity_actual_g_per_kwh",
    "emissions_g",
    "selected",
]


def test_to_csv_writes_one_row_per_client_round(summary, tmp_path):
    path = summary.to_csv(tmp_path / "rounds.csv")
    assert path == tmp_path / "rounds.csv"
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == HEADER
    body = [dict(zip(HEADER, row, strict=True)) for row in rows[1:]]
    assert [(r["round"], r["client_id"]) for r in body] == [
        ("1", "a"),
        ("1", "b"),
        ("2", "a"),
        ("2", "c"),
        ("3", "d"),
    ]
    assert body[0] == {
        "run_id": "run-1",
        "round": "1",
        "start": "2024-06-01T13:00:00+00:00",
        "end": "2024-06-01T14:00:00+00:00",
        "client_id": "a",
        "zone": "DE",
        "energy_kwh": "2",
        "energy_source": "model",
        "intensity_used_g_per_kwh": "100",
        "intensity_actual_g_per_kwh": "150",
        "emissions_g": "300",
        "selected": "1",
    }
    assert body[1]["intensity_actual_g_per_kwh"] == ""
    assert body[1]["emissions_g"] == "50"
    assert body[3]["energy_source"] == "measured"
    assert body[4]["zone"] == "NL"
    assert math.fsum(float(r["emissions_g"]) for r in body) == pytest.approx(summary.emissions_g)
    assert math.fsum(float(r["energy_kwh"]) for r in body) == pytest.approx(summary.energy_kwh)


def test_to_csv_keeps_six_significant_digits_and_an_empty_run_has_a_header(tmp_path):
    record = rr(1, [ClientRound("x", "SE", 0.123456789, "model", 41.987654, 12.5)])
    with summarize([record], run_id="r").to_csv(tmp_path / "one.csv").open(newline="") as handle:
        (row,) = csv.DictReader(handle)
    assert row["energy_kwh"] == "0.123457"
    assert row["intensity_used_g_per_kwh"] == "41.9877"
    assert float(row["emissions_g"]) == pytest.approx(0.123456789 * 12.5, rel=1e-5)
    with summarize([]).to_csv(tmp_path / "none.csv").open(newline="") as handle:
        assert list(csv.reader(handle)) == [HEADER]


def test_clients_that_trained_without_being_selected_count_in_the_footprint_only(tmp_path):
    # DISCO v2 cannot hold a client back: its update is left out, its energy is spent.
    record = rr(
        1,
        [ClientRound("a", "DE", 2.0, "model", 100.0, 150.0)],
        excluded=(ClientRound("b", "PL", 1.0, "reported", 600.0, 700.0),),
    )
    summary = summarize([record], run_id="r", population={"a": 1, "b": 0})
    assert summary.emissions_g == pytest.approx(300.0)
    assert summary.energy_kwh == pytest.approx(2.0)
    assert summary.excluded_energy_kwh == pytest.approx(1.0)
    assert summary.excluded_emissions_g == pytest.approx(700.0)
    assert summary.per_round[0]["excluded_g"] == pytest.approx(700.0)
    assert summary.participation["never"] == 1  # b trained, but was never selected
    assert summary.to_dict()["excluded_emissions_g"] == pytest.approx(700.0)
    with summary.to_csv(tmp_path / "r.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["client_id"], r["selected"], r["emissions_g"]) for r in rows] == [
        ("a", "1", "300"),
        ("b", "0", "700"),
    ]
