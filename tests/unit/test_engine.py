"""The selection engine: decisions, bad input, fallbacks, deadlines, restarts."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from lowcarb import EngineSpec, ManualClock
from lowcarb._energy import Client, EnergyModel
from lowcarb._engine import SelectionEngine
from lowcarb._forecast import OracleForecaster
from lowcarb._provider import Capabilities, CarbonProvider
from lowcarb._series import IntensitySeries
from lowcarb.backends import DefaultProvider
from lowcarb.exceptions import (
    ConfigurationError,
    InvalidInputError,
    NoDataError,
    ProviderUnavailableError,
    UnknownZoneError,
)

START = datetime(2024, 5, 6, tzinfo=UTC)
HOUR = timedelta(hours=1)


class TableProvider(CarbonProvider):
    """Serves a fixed frame as history; can be switched to fail like a dead API."""

    name = "table"

    def __init__(self, frame: pd.DataFrame, *, clock=None, step: timedelta = HOUR) -> None:
        super().__init__(clock=clock)
        self.frame = frame
        self.step = step
        self.fail = False
        self.calls = 0
        self.asked: list[tuple[datetime, datetime]] = []

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities("average", "lifecycle", self.step, forecast_horizon=None)

    def served_zones(self) -> list[str]:
        return list(self.frame.columns)

    def _slice(self, zones, start, end) -> IntensitySeries:
        self.calls += 1
        if self.fail:
            raise ProviderUnavailableError("connection refused", provider=self.name)
        self.asked.append((start, end))
        part = self.frame.loc[(self.frame.index >= start) & (self.frame.index < end), zones]
        if part.empty:
            raise NoDataError("nothing there", provider=self.name)
        return IntensitySeries(part, self.step, provider=self.name)

    def _latest(self, zones):
        now = pd.Timestamp(self.clock.now()).floor("h")
        return self._slice(zones, now, now + HOUR)

    def _history(self, zones, start, end):
        return self._slice(zones, start, end)

    def _forecast(self, zones, start, horizon):  # pragma: no cover - no forecasts
        raise NoDataError("no forecasts", provider=self.name)


def _frame(zones: dict[str, list[float]], start: datetime = START - timedelta(days=8)):
    """Hourly frame repeating each zone's daily pattern from 8 days before START."""
    hours = 24 * 20
    index = pd.date_range(start, periods=hours, freq="h", tz="UTC")
    return pd.DataFrame(
        {z: np.resize(np.asarray(v, dtype=float), hours) for z, v in zones.items()}, index=index
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def table(clock: ManualClock) -> TableProvider:
    # DE is dirty, GB clean, SG in between; GB gets dirty at night.
    return TableProvider(
        _frame({"DE": [400.0] * 24, "GB": [100.0] * 12 + [500.0] * 12, "SG": [300.0] * 24}),
        clock=clock,
    )


def _clients(zones=("DE", "GB", "SG"), n=6, **kw) -> list[Client]:
    return [Client(f"c{i}", zones[i % len(zones)], **kw) for i in range(n)]


def _engine(provider, clock, **kw) -> SelectionEngine:
    kw.setdefault("rounds", 4)
    kw.setdefault("default_fallback", False)
    return SelectionEngine(provider, clock=clock, **kw)


def test_a_decision_says_what_why_and_from_which_signal(table, clock) -> None:
    engine = _engine(table, clock, policy="greedy", forecaster="persistence")
    decision = engine.select(_clients(), k=2)
    assert decision.run_now and decision.round == 1
    assert set(decision.selected) == {"c1", "c4"}  # the GB clients
    assert set(decision.deferred) == {"c0", "c2", "c3", "c5"}
    gb = next(c for c in decision.clients if c.id == "c1")
    assert gb.intensity_g_per_kwh == pytest.approx(100.0)
    assert gb.emissions_g == pytest.approx(gb.energy_kwh * 100.0)
    assert decision.expected_emissions_g == pytest.approx(2 * gb.emissions_g)
    assert decision.random_expected_g == pytest.approx(2 * gb.energy_kwh * (400 + 100 + 300) / 3)
    assert decision.signal["provider"] == "table"
    assert decision.signal["sources"]["GB"] == "table history + persistence forecaster"
    assert decision.fallback is None
    assert decision.reason
    assert decision.to_dict()["selected"] == list(decision.selected)
    assert engine.participation == {"c0": 0, "c1": 1, "c2": 0, "c3": 0, "c4": 1, "c5": 0}


def test_the_same_seed_gives_the_same_decisions(table, clock) -> None:
    picks = []
    for _ in range(2):
        engine = _engine(table, ManualClock(START), policy="random", forecaster="persistence")
        picks.append([engine.select(_clients(n=30), k=5).selected for _ in range(3)])
    assert picks[0] == picks[1]


def test_fair_shares_over_a_training(table, clock) -> None:
    engine = _engine(table, clock, rounds=12, forecaster="persistence")
    clients = _clients(n=6)
    for _ in range(12):
        decision = engine.select(clients, k=2)
        clock.advance(HOUR)
        engine.complete(decision)
    assert set(engine.participation.values()) == {4}
    summary = engine.summary()
    assert summary.rounds == 12
    assert summary.participation["jain"] == pytest.approx(1.0)
    assert summary.actual_share == 1.0  # actuals came from the provider's history


def test_clients_of_one_zone_take_turns_without_a_known_number_of_rounds(clock) -> None:
    flat = TableProvider(_frame({"DE": [300.0] * 24}), clock=clock)
    engine = _engine(flat, clock, rounds=None, forecaster="persistence")
    clients = _clients(zones=("DE",), n=3)
    for _ in range(6):
        decision = engine.select(clients, k=2)
        clock.advance(HOUR)
        engine.complete(decision)
    assert engine.participation == {"c0": 4, "c1": 4, "c2": 4}


def test_an_open_ended_training_keeps_fair_shares_over_a_rolling_day(table, clock) -> None:
    # GB is clean half the day: a week-long plan put DE's turns off for days.
    engine = _engine(table, clock, rounds=None, forecaster="persistence")
    clients = _clients(n=6)
    worst = 0.0
    for done in range(1, 49):
        decision = engine.select(clients, k=2)
        clock.advance(HOUR)
        engine.complete(decision)
        fair = done * 2 / 6
        worst = max(worst, *(abs(n - fair) for n in engine.participation.values()))
    # Within one day's share (24 rounds x 2 of 6) of the fair line at every round.
    assert worst <= 24 * 2 / 6 + 1


@pytest.mark.parametrize(
    ("clients", "k", "match"),
    [
        ([Client("a", "DE"), Client("a", "GB")], 1, "duplicate client ids: a"),
        (_clients(), 0, "k must be a positive integer"),
        (_clients(), -3, "k must be a positive integer"),
        (_clients(), True, "k must be a positive integer"),
        (_clients(), 7, "k=7 but only 6 candidates"),
        ([{"id": "x", "zone": "DE", "colour": "red"}], 1, "bad client"),
        ([42], 1, "must be a Client or a mapping"),
    ],
)
def test_bad_rounds_are_refused_and_nothing_is_recorded(table, clock, clients, k, match) -> None:
    engine = _engine(table, clock, forecaster="persistence")
    with pytest.raises(InvalidInputError, match=match):
        engine.select(clients, k=k)
    assert engine.rounds_done == 0
    assert engine.ledger.rounds("default") == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"energy_kwh": float("nan")}, "energy_kwh"),
        ({"energy_kwh": -1.0}, "energy_kwh"),
        ({"power_w": float("inf")}, "power_w"),
        ({"utility": -2.0}, "utility"),
        ({"availability": [(START, START - HOUR)]}, "availability"),
    ],
)
def test_bad_clients_are_refused(kwargs, match) -> None:
    with pytest.raises(InvalidInputError, match=match):
        Client("a", "DE", **kwargs)


def test_engine_arguments_are_checked(table, clock) -> None:
    with pytest.raises(InvalidInputError, match="rounds"):
        _engine(table, clock, rounds=0)
    with pytest.raises(InvalidInputError, match="oracle"):
        _engine(table, clock, policy="oracle")
    with pytest.raises(InvalidInputError, match="unknown policy"):
        _engine(table, clock, policy="fastest")
    with pytest.raises(InvalidInputError, match="fairness"):
        _engine(table, clock, fairness=2.0)


def test_a_zone_without_signal_gets_the_mean_and_says_so(table, clock) -> None:
    engine = _engine(table, clock, policy="greedy", forecaster="persistence")
    decision = engine.select([*_clients(), Client("mars", "XX-MARS")], k=2)
    mars = next(c for c in decision.clients if c.id == "mars")
    assert mars.intensity_g_per_kwh == pytest.approx((400 + 100 + 300) / 3)
    assert "XX-MARS" in (decision.fallback or "")
    assert decision.signal["sources"]["XX-MARS"] == "mean of other zones"
    strict = _engine(table, clock, forecaster="persistence", unknown_zone="error", run_id="s")
    with pytest.raises(UnknownZoneError, match="XX-MARS"):
        strict.select([*_clients(), Client("mars", "XX-MARS")], k=2)


def test_provider_outage_falls_back_to_cache_then_fallback_then_default(table, clock) -> None:
    engine = SelectionEngine(table, clock=clock, rounds=6, forecaster="persistence")
    first = engine.select(_clients(), k=2)
    assert first.fallback is None
    table.fail = True
    clock.advance(HOUR)
    cached = engine.select(_clients(), k=2)
    assert cached.signal["sources"]["DE"] == "cache (1 h old)"
    assert "cached" in (cached.fallback or "")
    assert "table failed" in cached.signal["reasons"]["DE"]
    assert any("connection refused" in note for note in cached.signal["notes"])
    assert "signal fallback" in cached.reason

    # A fresh engine has no cache: the embedded default answers (it serves DE, GB, SG).
    fresh = SelectionEngine(table, clock=clock, rounds=6, forecaster="persistence", run_id="x")
    decision = fresh.select(_clients(), k=2)
    assert decision.signal["sources"]["DE"].startswith("default (fallback)")
    assert "default answered" in (decision.fallback or "")

    # With an explicit fallback chain, the first working provider answers.
    backup = TableProvider(_frame({"DE": [50.0], "GB": [60.0], "SG": [70.0]}), clock=clock)
    backup.name = "backup"
    chained = SelectionEngine(
        table, clock=clock, rounds=6, forecaster="persistence", fallbacks=[backup], run_id="y"
    )
    decision = chained.select(_clients(), k=2)
    assert decision.signal["sources"]["GB"].startswith("backup (fallback)")


def test_total_outage_without_fallbacks_is_a_clear_error(table, clock) -> None:
    table.fail = True
    engine = _engine(table, clock, forecaster="persistence")
    with pytest.raises(ProviderUnavailableError, match="connection refused"):
        engine.select(_clients(), k=2)
    assert engine.rounds_done == 0


def test_deadline_slack_pauses_until_the_clean_hours(clock) -> None:
    # GB is clean only from 12:00; with a deadline the planner waits for it.
    frame = _frame({"GB": [500.0] * 12 + [50.0] * 12})
    table = TableProvider(frame, clock=clock)
    engine = _engine(
        table,
        clock,
        rounds=2,
        forecaster=OracleForecaster(frame),
        deadline=timedelta(hours=20),
        energy=EnergyModel(round_time=HOUR),
    )
    decision = engine.select(_clients(zones=("GB",), n=4), k=2)
    assert not decision.run_now
    assert decision.wait_until == START + timedelta(hours=12)
    assert decision.selected == ()
    assert "paused" in decision.reason
    assert engine.rounds_done == 0
    assert engine.ledger.pauses("default")[0][1] == START + timedelta(hours=12)
    clock.set(decision.wait_until)
    assert engine.select(_clients(zones=("GB",), n=4), k=2).run_now


def test_availability_windows_are_respected(table, clock) -> None:
    late = [(START + timedelta(hours=2), START + timedelta(days=2))]
    clients = [Client("early", "DE"), Client("late", "GB", availability=late)]
    engine = _engine(table, clock, rounds=3, forecaster="persistence", fairness=0.0)
    assert engine.select(clients, k=1).selected == ("early",)


def test_measured_energy_and_metrics_reach_the_account(table, clock) -> None:
    engine = _engine(table, clock, rounds=2, forecaster="persistence")
    decision = engine.select(_clients(), k=2)
    measured = {decision.selected[0]: 0.5}
    engine.complete(decision, energy_kwh=measured, metrics={"accuracy": 0.5})
    with pytest.raises(InvalidInputError, match="measured energy"):
        engine.complete(decision, energy_kwh={decision.selected[0]: -1.0})
    record = engine.ledger.rounds("default")[0]
    by_id = {c.client_id: c for c in record.clients}
    assert by_id[decision.selected[0]].energy_kwh == 0.5
    assert by_id[decision.selected[0]].energy_source == "measured"
    assert record.metrics == {"accuracy": 0.5}
    assert record.completed_at == START


def test_a_restarted_process_continues_with_the_same_fairness_state(table, clock, tmp_path) -> None:
    path = tmp_path / "ledger.sqlite"
    clients = _clients(n=6)
    engine = _engine(table, clock, rounds=6, ledger=path, forecaster="persistence")
    for _ in range(3):
        engine.select(clients, k=2)
        clock.advance(HOUR)
    before = engine.participation
    engine.close()

    again = _engine(table, clock, rounds=6, ledger=path, forecaster="persistence")
    assert again.resumed
    assert again.rounds_done == 3
    assert again.participation == before
    for _ in range(3):
        assert again.select(clients, k=2).round > 3
        clock.advance(HOUR)
    assert set(again.participation.values()) == {2}


def test_summary_exports(table, clock, tmp_path) -> None:
    engine = _engine(table, clock, rounds=2, forecaster="persistence")
    for _ in range(2):
        decision = engine.select(_clients(), k=2)
        clock.advance(HOUR)
        engine.complete(decision)
    summary = engine.summary()
    assert summary.saving_vs_random is not None and summary.saving_vs_random > 0
    assert math.isclose(summary.emissions_g, sum(r["emissions_g"] for r in summary.per_round))
    assert summary.to_json(tmp_path / "run.json").read_text().startswith("{")
    lines = summary.to_csv(tmp_path / "run.csv").read_text().splitlines()
    assert len(lines) == 1 + 4


def test_energy_of_candidates_left_out_is_recorded_and_checked(table, clock, tmp_path) -> None:
    engine = _engine(table, clock, forecaster="persistence", ledger=tmp_path / "l.sqlite")
    decision = engine.select(_clients(), k=2)
    left_out = decision.deferred[0]
    clock.advance(HOUR)
    for bad, match in (
        ({decision.selected[0]: 0.01}, "not a candidate left out"),
        ({"nobody": 0.01}, "not a candidate left out"),
        ({left_out: -1.0}, r"\(kWh\) must be a finite number between 0 and 10000"),
        ({left_out: 10**400}, r"\(kWh\) must be a finite number between 0 and 10000"),
    ):
        with pytest.raises(InvalidInputError, match=match):
            engine.complete(decision, excluded_energy_kwh=bad)
    assert engine.summary().excluded_energy_kwh == 0  # the refusals wrote nothing
    engine.complete(decision, excluded_energy_kwh={left_out: 0.02})
    engine.close()
    reopened = _engine(table, clock, forecaster="persistence", ledger=tmp_path / "l.sqlite")
    summary = reopened.summary()
    actual = next(c for c in decision.clients if c.id == left_out)
    assert summary.excluded_energy_kwh == pytest.approx(0.02)
    # The round has ended: the actual intensity of the client's zone applies, as for others.
    intensity = table.frame.loc[decision.start, actual.zone]
    assert summary.excluded_emissions_g == pytest.approx(0.02 * intensity)
    assert reopened.participation[left_out] == 0


def test_the_default_provider_needs_no_arguments(clock) -> None:
    engine = SelectionEngine(clock=clock, rounds=3)
    decision = engine.select(_clients(), k=2)
    assert decision.signal["provider"] == "default"
    assert len(decision.selected) == 2
    assert "SelectionEngine(provider='default'" in repr(engine)


def test_the_ledger_path_comes_from_config(tmp_path, clock, monkeypatch) -> None:
    (tmp_path / "lowcarb.toml").write_text('ledger = "state/ledger.sqlite"\n')
    monkeypatch.chdir(tmp_path)
    engine = SelectionEngine(clock=clock, rounds=2)
    engine.select(_clients(), k=2)
    engine.close()
    assert (tmp_path / "state" / "ledger.sqlite").is_file()
    monkeypatch.setenv("LOWCARB_LEDGER", str(tmp_path / "env.sqlite"))
    SelectionEngine(clock=clock, rounds=2).close()
    assert (tmp_path / "env.sqlite").is_file()
    (tmp_path / "lowcarb.toml").write_text("ledger = 3\n")
    monkeypatch.delenv("LOWCARB_LEDGER")
    with pytest.raises(ConfigurationError, match="ledger"):
        SelectionEngine(clock=clock, rounds=2)


@pytest.mark.parametrize("policy", ["random", "greedy", "lowcarb-2022", "lowcarb"])
def test_every_policy_respects_availability_now(table, clock, policy) -> None:
    later = [(START + timedelta(hours=5), START + timedelta(days=2))]
    clients = [Client("gb-later", "GB", availability=later), *_clients(zones=("DE",), n=3)]
    engine = _engine(table, clock, policy=policy, rounds=3, forecaster="persistence")
    decision = engine.select(clients, k=2)
    assert "gb-later" not in decision.selected
    assert not next(c for c in decision.clients if c.id == "gb-later").available
    with pytest.raises(InvalidInputError, match="available now"):
        engine.select(clients, k=4)


def test_a_relative_deadline_survives_a_restart(clock, tmp_path) -> None:
    frame = _frame({"GB": [500.0] * 12 + [50.0] * 12})
    path = tmp_path / "ledger.sqlite"

    def engine() -> SelectionEngine:
        return _engine(
            TableProvider(frame, clock=clock),
            clock,
            rounds=2,
            ledger=path,
            forecaster=OracleForecaster(frame),
            deadline=timedelta(hours=20),
            energy=EnergyModel(round_time=HOUR),
        )

    engine().close()
    clock.advance(timedelta(hours=10))  # the process restarts 10 h later
    resumed = engine()
    assert resumed._deadline == START + timedelta(hours=20)


def test_simulations_never_touch_the_configured_ledger(tmp_path, monkeypatch) -> None:
    from lowcarb.simulation import Scenario, simulate

    monkeypatch.setenv("LOWCARB_LEDGER", str(tmp_path / "ledger.sqlite"))
    scenario = Scenario(zones=("DE", "GB"), hours=3, clients=4, per_round=2, learning="none")
    for _ in range(2):
        assert simulate(scenario).policies["lowcarb"].rounds == 3
    assert not (tmp_path / "ledger.sqlite").exists()


def test_history_is_fetched_once_then_only_the_new_intervals(table, clock) -> None:
    engine = _engine(table, clock, rounds=5, forecaster="profile")
    for _ in range(5):
        engine.select(_clients(), k=2)
        clock.advance(HOUR)
    spans = [end - start for start, end in table.asked]
    assert spans[0] == timedelta(days=14)  # the forecaster's lookback, once
    assert spans[1:] == [HOUR] * 4  # then one new interval a round


def test_each_provider_is_averaged_at_its_own_resolution(clock) -> None:
    # A half-hourly primary for GB and an hourly fallback for DE whose value alternates
    # every hour: one-hour slots must see exactly 100, 300, 100, ...
    half = timedelta(minutes=30)
    index = pd.date_range(START - timedelta(days=15), periods=48 * 20, freq="30min", tz="UTC")
    gb = TableProvider(
        pd.DataFrame({"GB": np.resize([50.0, 70.0], len(index))}, index=index),
        clock=clock,
        step=half,
    )
    de = TableProvider(
        _frame({"DE": [100.0, 300.0]}, start=START - timedelta(days=15)), clock=clock
    )
    de.name = "hourly"
    engine = _engine(
        gb,
        clock,
        rounds=4,
        fallbacks=[de],
        forecaster=OracleForecaster(pd.concat([gb.frame, de.frame], axis=1).ffill()),
        energy=EnergyModel(round_time=HOUR),
    )
    signal = engine.source.signal(
        ["GB", "DE"], START, pd.date_range(START, periods=4, freq="h"), HOUR
    )
    assert signal.intensity[0].tolist() == pytest.approx([60.0] * 4)
    assert signal.intensity[1].tolist() == pytest.approx([100.0, 300.0, 100.0, 300.0])


def test_zone_names_are_canonical_where_the_chain_is_entered(clock) -> None:
    engine = SelectionEngine(DefaultProvider(clock=clock), clock=clock, rounds=4)
    decision = engine.select([Client("a", "de"), Client("b", "DE"), Client("c", " gb ")], k=1)
    by_id = {c.id: c for c in decision.clients}
    assert by_id["a"].zone == by_id["b"].zone == "DE" and by_id["c"].zone == "GB"
    assert by_id["a"].intensity_g_per_kwh == by_id["b"].intensity_g_per_kwh
    assert decision.fallback is None  # no "no signal for de"


def test_an_engine_given_a_provider_or_spec_reads_no_environment(
    clock, monkeypatch, caplog
) -> None:
    monkeypatch.setenv("LOWCARB_BOGUS", "1")
    monkeypatch.setenv("LOWCARB_LEDGER", "/nonexistent/ledger.sqlite")
    engine = SelectionEngine(DefaultProvider(clock=clock), clock=clock, rounds=2)
    assert str(engine.ledger.path) == ":memory:"
    from_spec = SelectionEngine(spec=EngineSpec(provider="default", rounds=2), clock=clock)
    assert from_spec.rounds == 2 and str(from_spec.ledger.path) == ":memory:"
    # Reading the configuration warns about the unknown variable and fails on the bad
    # value of a known one.
    monkeypatch.delenv("LOWCARB_LEDGER")
    with caplog.at_level("WARNING", logger="lowcarb"):
        SelectionEngine(clock=clock).close()
    assert "LOWCARB_BOGUS" in caplog.text
    monkeypatch.setenv("LOWCARB_DEFAULT_FALLBACK", "maybe")
    with pytest.raises(ConfigurationError, match="must be true or false"):
        SelectionEngine(clock=clock)
