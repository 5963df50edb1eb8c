"""A provider's own forecast is blended with the history forecaster by measured skill."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from lowcarb import (
    Capabilities,
    CarbonProvider,
    Client,
    IntensitySeries,
    ManualClock,
    NoDataError,
    SelectionEngine,
)
from lowcarb._skill import LEAD_BUCKETS, ForecastSkill

START = datetime(2024, 5, 6, tzinfo=UTC)
HOUR = timedelta(hours=1)


def _truth() -> pd.DataFrame:
    """Two zones whose days differ: a history forecaster cannot know tomorrow's level."""
    rng = np.random.default_rng(11)
    index = pd.date_range(START - timedelta(days=15), periods=24 * 25, freq="h", tz="UTC")
    days = (index - index[0]).days.to_numpy()
    level = rng.uniform(150, 450, days.max() + 1)[days]
    cycle = 60 * np.sin(2 * np.pi * index.hour.to_numpy() / 24)
    return pd.DataFrame({"A": level + cycle, "B": 700 - level - cycle}, index=index)


class ForecastingProvider(CarbonProvider):
    """History from a table; a forecast of it with a chosen relative error (72 h reach)."""

    name = "forecasting"

    def __init__(self, truth: pd.DataFrame, *, error: float, clock: ManualClock) -> None:
        super().__init__(clock=clock)
        self.truth = truth
        self.error = error

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities("average", "lifecycle", HOUR, forecast_horizon=timedelta(hours=72))

    def served_zones(self) -> list[str]:
        return list(self.truth.columns)

    def _part(self, zones: list[str], start: datetime, end: datetime) -> pd.DataFrame:
        frame = self.truth
        part = frame.loc[(frame.index >= start) & (frame.index < end), zones]
        if part.empty:
            raise NoDataError("nothing there", provider=self.name)
        return part

    def _latest(self, zones: list[str]) -> IntensitySeries:
        now = pd.Timestamp(self.clock.now()).floor("h")
        return IntensitySeries(self._part(zones, now, now + HOUR), HOUR, provider=self.name)

    def _history(self, zones: list[str], start: datetime, end: datetime) -> IntensitySeries:
        end = min(end, self.clock.now())
        return IntensitySeries(self._part(zones, start, end), HOUR, provider=self.name)

    def _forecast(self, zones: list[str], start: datetime, horizon: timedelta) -> IntensitySeries:
        part = self._part(zones, start, start + horizon)
        # A fixed pattern of errors (seeded by the issue hour): a biased, noisy forecast.
        rng = np.random.default_rng(int(pd.Timestamp(start).value // 3_600_000_000_000))
        noisy = (part * (1 + self.error * (0.5 + rng.standard_normal(part.shape)))).clip(lower=1)
        return IntensitySeries(
            noisy, HOUR, provider=self.name, is_forecast=True, issued_at=self.clock.now()
        )


def _run(error: float, rounds: int) -> SelectionEngine:
    clock = ManualClock(START)
    engine = SelectionEngine(
        ForecastingProvider(_truth(), error=error, clock=clock),
        clock=clock,
        # Longer than the provider's 72 h: the history forecaster runs, and the blend is
        # measured (within a shorter horizon the provider's forecast stands alone).
        rounds=rounds + 150,
        default_fallback=False,
    )
    clients = [Client(f"c{i}", "AB"[i % 2]) for i in range(6)]
    for _ in range(rounds):
        decision = engine.select(clients, k=2)
        clock.advance(HOUR)
        engine.complete(decision)
    return engine


@pytest.mark.slow
def test_a_good_provider_forecast_keeps_its_weight_and_a_bad_one_loses_it() -> None:
    good = _run(0.02, 80)
    bad = _run(0.6, 80)
    last_good = good.decision(80).signal
    last_bad = bad.decision(80).signal
    for zone in ("A", "B"):
        assert last_good["blend"][zone]["0-6 h"] > 0.8
        assert last_bad["blend"][zone]["0-6 h"] < 0.3
    assert "blended with the profile forecaster by measured skill" in last_good["sources"]["A"]


def test_before_any_measurement_the_provider_forecast_stands_alone_in_its_reach() -> None:
    engine = _run(0.6, 1)
    signal = engine.decision(1).signal
    assert "blend" not in signal
    assert signal["sources"]["A"] == "forecasting forecast + profile forecaster"


def _skill_with(own_sd: float, history_sd: float, *, issues: int = 40) -> ForecastSkill:
    """Forecasts of 100 h issued every hour, with log-normal errors of the given sizes."""
    rng = np.random.default_rng(5)
    skill = ForecastSkill(min_pairs=30)
    index = pd.date_range(START, periods=issues + 100, freq="h", tz="UTC")
    truth = pd.DataFrame({"Z": rng.uniform(100, 500, len(index))}, index=index)
    for i in range(issues):
        part = truth.iloc[i : i + 100]
        own = part * np.exp(rng.normal(0, own_sd, part.shape))
        history = part * np.exp(rng.normal(0, history_sd, part.shape))
        skill.record(index[i].to_pydatetime(), own, history)
    skill.score(truth, index[-1].to_pydatetime())
    return skill


def test_weights_follow_the_error_variances() -> None:
    # Independent errors: the weight is var_h / (var_h + var_p).
    table = _skill_with(0.05, 0.15).table("Z")
    assert set(table) == {label for label, _ in LEAD_BUCKETS}
    assert table["6-24 h"] == pytest.approx(0.9, abs=0.05)
    assert _skill_with(0.15, 0.15).table("Z")["24-72 h"] == pytest.approx(0.5, abs=0.1)
    assert _skill_with(0.3, 0.02).table("Z")["72 h+"] < 0.05


def test_unscored_buckets_keep_the_provider_alone_and_old_days_are_forgotten() -> None:
    skill = ForecastSkill(min_pairs=30)
    index = pd.date_range(START, periods=10, freq="h", tz="UTC")
    truth = pd.DataFrame({"Z": np.linspace(100, 200, 10)}, index=index)
    skill.record(START, truth * 3, truth)  # 10 bad targets: too few to measure
    skill.score(truth, index[-1].to_pydatetime())
    assert skill.table("Z") == {}
    assert skill.weights("Z", START, index).tolist() == [1.0] * 10
    measured = _skill_with(0.3, 0.02)
    assert measured.weights("Z", START, index).max() < 0.05
    empty = pd.DataFrame({"Z": []}, index=pd.DatetimeIndex([], tz="UTC"))
    measured.score(empty, START + timedelta(days=30))
    assert measured.table("Z") == {}
