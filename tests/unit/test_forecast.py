"""Forecasters: exact baselines, no peeking past the issue time, NaN handling, registry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lowcarb._forecast import (
    BEST_FORECASTER_NAME,
    FORECASTERS,
    NoisyForecaster,
    OracleForecaster,
    PersistenceForecaster,
    ProfileForecaster,
    WeeklyForecaster,
    default_forecaster,
    get_forecaster,
)
from lowcarb.exceptions import InvalidInputError, NoDataError

T0 = datetime(2023, 5, 1, tzinfo=UTC)  # a Monday
H = timedelta(hours=1)


def coded(days: int, step: timedelta = H, zones: tuple[str, ...] = ("A", "B")) -> pd.DataFrame:
    """History whose value encodes its own time: day * 100 + hour (+ 0.5 for zone B)."""
    index = pd.date_range(T0, T0 + timedelta(days=days) - step, freq=step)
    day = (index - pd.Timestamp(T0)).days.to_numpy()
    code = day * 100.0 + index.hour.to_numpy() + index.minute.to_numpy() / 100
    return pd.DataFrame({z: code + 0.5 * k for k, z in enumerate(zones)}, index=index)


def hours(start: datetime, count: int, step: timedelta = H) -> pd.DatetimeIndex:
    return pd.date_range(start, periods=count, freq=step)


def noisy_history(days: int = 20, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    index = hours(T0, days * 24)
    daily = 300 + 100 * np.sin(2 * np.pi * index.hour.to_numpy() / 24)
    return pd.DataFrame(
        {z: daily * (1 + 0.2 * rng.standard_normal(len(index))) for z in ("A", "B", "C")},
        index=index,
    ).clip(lower=1)


# --- persistence and weekly: exact values --------------------------------------------


def test_persistence_takes_same_hour_of_last_observed_day():
    history = coded(3)
    issued = T0 + timedelta(days=3)
    out = PersistenceForecaster().predict(history, issued, hours(issued, 30))
    # Day 3 and the first hours of day 4 both look back to day 2, the last observed day.
    expected = [200.0 + h for h in range(24)] + [200.0 + h for h in range(6)]
    assert out["A"].tolist() == expected
    assert out["B"].tolist() == [v + 0.5 for v in expected]
    assert list(out.columns) == ["A", "B"] and out.index.equals(hours(issued, 30))


def test_persistence_falls_back_to_earlier_day_then_last_value():
    history = coded(3)
    history.loc[T0 + timedelta(days=2, hours=5), "A"] = np.nan  # yesterday 05:00
    history.loc[history.index.hour == 7, "A"] = np.nan  # 07:00 never observed
    issued = T0 + timedelta(days=3)
    out = PersistenceForecaster().predict(history, issued, hours(issued, 24))["A"]
    assert out.iloc[5] == 105.0  # the day before yesterday
    assert out.iloc[7] == 223.0  # last observed value (day 2, 23:00)
    assert out.iloc[6] == 206.0


def test_persistence_with_trailing_nan_rows():
    history = coded(3)
    history.iloc[-3:] = np.nan  # day 2, 21:00-23:00 not reported yet
    issued = T0 + timedelta(days=3)
    out = PersistenceForecaster().predict(history, issued, hours(issued, 24))
    assert out["A"].iloc[21:].tolist() == [121.0, 122.0, 123.0]
    assert not out.isna().to_numpy().any()


def test_persistence_on_15_minute_grid_lags_whole_days():
    step = timedelta(minutes=15)
    history = coded(2, step)
    issued = T0 + timedelta(days=2)
    out = PersistenceForecaster().predict(history, issued, hours(issued, 6, step))
    assert out["A"].tolist() == [100.0, 100.15, 100.30, 100.45, 101.0, 101.15]


def test_issue_mid_interval_keeps_the_started_interval_and_lead_zero():
    history = coded(3)
    issued = T0 + timedelta(days=2, hours=12, minutes=20)  # 12:00 started, 13:00 not
    targets = hours(T0 + timedelta(days=2, hours=12), 3)  # lead 0 is the current hour
    out = PersistenceForecaster().predict(history, issued, targets)
    assert out["A"].tolist() == [112.0, 113.0, 114.0]
    profile = ProfileForecaster().predict(history, issued, targets)
    assert profile["A"].iloc[0] == pytest.approx(212.0)  # the current hour's observation


def test_weekly_takes_same_hour_and_weekday_of_last_observed_week():
    history = coded(15)
    issued = T0 + timedelta(days=15)
    out = WeeklyForecaster().predict(history, issued, hours(issued, 168))["A"]
    assert out.iloc[0] == 800.0 and out.iloc[30] == 906.0 and out.iloc[167] == 1423.0
    history.loc[T0 + timedelta(days=8), "A"] = np.nan
    out = WeeklyForecaster().predict(history, issued, hours(issued, 2))["A"]
    assert out.tolist() == [100.0, 801.0]  # two weeks back, then last week


def test_weekly_without_a_week_of_history_falls_back_to_persistence():
    history = coded(3)
    issued = T0 + timedelta(days=3)
    targets = hours(issued, 24)
    pd.testing.assert_frame_equal(
        WeeklyForecaster().predict(history, issued, targets),
        PersistenceForecaster().predict(history, issued, targets),
    )


# --- the profile forecaster ------------------------------------------------------------


def test_profile_reproduces_a_repeating_day_exactly():
    index = hours(T0, 14 * 24)
    shape = 200 + 50 * np.cos(2 * np.pi * index.hour.to_numpy() / 24)
    history = pd.DataFrame({"A": shape}, index=index)
    issued = T0 + timedelta(days=14)
    out = ProfileForecaster().predict(history, issued, hours(issued, 168))
    np.testing.assert_allclose(out["A"].to_numpy(), np.tile(shape[:24], 7), rtol=1e-12)


def test_profile_anomaly_starts_at_last_value_and_decays_to_profile():
    rng = np.random.default_rng(3)
    index = hours(T0, 14 * 24)
    base = 200 + 50 * np.cos(2 * np.pi * index.hour.to_numpy() / 24)
    noise = np.zeros(len(index))
    for i in range(1, len(index)):  # AR(1) anomalies, so the decay rate is well defined
        noise[i] = 0.9 * noise[i - 1] + rng.normal(0, 5)
    history = pd.DataFrame({"A": base + noise}, index=index)
    history.iloc[-1, 0] = base[-1] + 80  # a large current anomaly
    issued = T0 + timedelta(days=14)
    out = ProfileForecaster().predict(history, issued, hours(issued, 168))["A"]
    plain = ProfileForecaster(weekly_weight=0.0)
    profile_far = plain.predict(history, issued, hours(issued, 168))["A"].iloc[-24:]
    assert out.iloc[0] > base[0] + 40  # most of the anomaly survives one hour
    gaps = (out.iloc[:24] - pd.Series(base[:24], index=out.index[:24])).to_numpy()
    assert (np.diff(gaps[:12]) < 0).all()  # and it fades with lead time
    np.testing.assert_allclose(out.iloc[-24:], profile_far, rtol=0.05)


def test_profile_parameters_are_validated():
    with pytest.raises(InvalidInputError, match="day_decay"):
        ProfileForecaster(day_decay=0)
    with pytest.raises(InvalidInputError, match="weekly_weight"):
        ProfileForecaster(weekly_weight=1.5)
    with pytest.raises(InvalidInputError, match="max_decay_per_hour"):
        ProfileForecaster(max_decay_per_hour=1.0)


# --- contract shared by the history-based forecasters -----------------------------------


@pytest.mark.parametrize("name", sorted(FORECASTERS))
def test_no_future_leak(name):
    full = noisy_history(20)
    issued = T0 + timedelta(days=16, hours=5)
    targets = hours(issued, 240)  # beyond a week, so a weekly lag could reach past issued
    forecaster = get_forecaster(name)
    truncated = full[full.index < pd.Timestamp(issued)]
    altered = full.copy()
    altered[altered.index >= pd.Timestamp(issued)] *= 7.0  # a peek would change the output
    baseline = forecaster.predict(truncated, issued, targets)
    pd.testing.assert_frame_equal(forecaster.predict(full, issued, targets), baseline)
    pd.testing.assert_frame_equal(forecaster.predict(altered, issued, targets), baseline)
    # and the rows just before the issue time do matter, so the test can fail
    moved = full.copy()
    moved[moved.index >= pd.Timestamp(issued) - timedelta(days=1)] *= 7.0
    assert not forecaster.predict(moved, issued, targets).equals(baseline)


@pytest.mark.parametrize("name", sorted(FORECASTERS))
def test_nan_rows_give_finite_non_negative_output(name):
    history = noisy_history(15)
    history.iloc[-5:, 0] = np.nan  # trailing gap in one zone
    history.iloc[100:130, 1] = np.nan  # a gap inside another
    history.iloc[-1, 2] = 0.0
    issued = T0 + timedelta(days=15)
    out = get_forecaster(name).predict(history, issued, hours(issued, 168))
    assert out.shape == (168, 3) and list(out.columns) == ["A", "B", "C"]
    assert not out.isna().to_numpy().any() and (out.to_numpy() >= 0).all()


@pytest.mark.parametrize("name", sorted(FORECASTERS))
def test_zone_without_observation_raises_no_data(name):
    history = noisy_history(8)
    history["C"] = np.nan
    issued = T0 + timedelta(days=8)
    with pytest.raises(NoDataError, match="'C'") as info:
        get_forecaster(name).predict(history, issued, hours(issued, 3))
    assert info.value.provider == "forecast"
    with pytest.raises(NoDataError):  # nothing before the issue time at all
        get_forecaster(name).predict(history, T0, hours(T0, 3))


@pytest.mark.parametrize("name", sorted(FORECASTERS))
def test_validation(name):
    forecaster = get_forecaster(name)
    history = noisy_history(8)
    issued = T0 + timedelta(days=8)
    with pytest.raises(InvalidInputError, match="naive"):
        forecaster.predict(history, issued.replace(tzinfo=None), hours(issued, 3))
    with pytest.raises(InvalidInputError, match="naive"):
        forecaster.predict(history, issued, hours(issued, 3).tz_localize(None))
    with pytest.raises(InvalidInputError, match="naive"):
        forecaster.predict(history.tz_localize(None), issued, hours(issued, 3))
    with pytest.raises(InvalidInputError, match="grid"):
        forecaster.predict(history, issued, hours(issued + timedelta(minutes=30), 3))
    with pytest.raises(InvalidInputError, match="before issued_at"):
        forecaster.predict(history, issued, hours(issued - 2 * H, 3))
    empty = forecaster.predict(history, issued, pd.DatetimeIndex([], tz="UTC"))
    assert empty.empty and list(empty.columns) == ["A", "B", "C"]


# --- oracle and noisy -----------------------------------------------------------------


def test_oracle_returns_truth_and_needs_it():
    truth = noisy_history(10)
    issued = T0 + timedelta(days=8)
    targets = hours(issued, 48)
    out = OracleForecaster(truth).predict(truth, issued, targets)
    pd.testing.assert_frame_equal(out, truth.loc[targets], check_freq=False)
    with pytest.raises(NoDataError, match="covering"):
        OracleForecaster(truth).predict(truth, issued, hours(issued, 49))


def test_noisy_is_deterministic_per_issue_time_and_seed():
    truth = noisy_history(10)
    issued = T0 + timedelta(days=8)
    targets = hours(issued, 48)
    noisy = NoisyForecaster(truth, sigma=0.1, seed=7)
    first = noisy.predict(truth, issued, targets)
    pd.testing.assert_frame_equal(
        first, NoisyForecaster(truth, 0.1, 7).predict(truth, issued, targets)
    )
    assert not first.equals(NoisyForecaster(truth, 0.1, 8).predict(truth, issued, targets))
    assert not first.equals(noisy.predict(truth, issued + H, targets))
    ratio = (first / truth.loc[targets]).to_numpy() - 1
    assert 0.05 < ratio.std() < 0.15
    pd.testing.assert_frame_equal(
        NoisyForecaster(truth, 0.0, 1).predict(truth, issued, targets),
        truth.loc[targets],
        check_freq=False,
    )
    assert (NoisyForecaster(truth, 5.0, 1).predict(truth, issued, targets) >= 0).all().all()


@pytest.mark.parametrize("sigma", [-0.1, float("nan"), float("inf")])
def test_noisy_rejects_bad_sigma(sigma):
    with pytest.raises(InvalidInputError, match="sigma"):
        NoisyForecaster(noisy_history(2), sigma=sigma, seed=0)


# --- registry -----------------------------------------------------------------------


def test_registry_and_best():
    assert set(FORECASTERS) == {"persistence", "weekly", "profile"}
    assert BEST_FORECASTER_NAME == "profile" and isinstance(default_forecaster(), ProfileForecaster)
    assert isinstance(get_forecaster("best"), FORECASTERS[BEST_FORECASTER_NAME])
    assert isinstance(get_forecaster(" Weekly "), WeeklyForecaster)
    with pytest.raises(TypeError):
        FORECASTERS["x"] = PersistenceForecaster  # type: ignore[index]


def test_unknown_forecaster_lists_known_names():
    with pytest.raises(InvalidInputError, match="best, persistence, profile, weekly"):
        get_forecaster("prophet")
    with pytest.raises(InvalidInputError, match="oracle"):
        get_forecaster("oracle")


# --- real data ---------------------------------------------------------------------


@pytest.mark.shared_data
def test_best_beats_persistence_on_real_data(shared_data: Path):
    path = (
        shared_data / "electricitymaps-16zones-2021-2023/carbon_intensity_lca_2021_2023_hourly.csv"
    )
    data = pd.read_csv(path, index_col=0)
    data.index = pd.to_datetime(data.index, utc=True)
    data = data.loc["2023-02-01":"2023-05-01"]
    lookback, errors = 14 * 24, {"persistence": [], BEST_FORECASTER_NAME: []}
    for i in range(lookback, len(data) - 24, 61):  # 61 h apart: every hour of day over time
        issued = data.index[i].to_pydatetime()
        actual = data.iloc[i : i + 24]
        for name in errors:
            forecast = get_forecaster(name).predict(data.iloc[:i], issued, actual.index)
            errors[name].append((forecast - actual).abs().div(actual).to_numpy().mean() * 100)
    assert len(errors["persistence"]) >= 20
    best, persistence = np.mean(errors[BEST_FORECASTER_NAME]), np.mean(errors["persistence"])
    assert best < 0.9 * persistence, (best, persistence)


def test_profile_forecast_stays_within_the_observed_range() -> None:
    # A step-like signal (a marginal plant: 0 g, or a coal plant at 1,000 g, for hours to
    # days): in log space a fresh jump over a low profile would compound to 2,352 g here.
    rng = np.random.default_rng(13)
    index = pd.date_range("2024-01-01", periods=24 * 14, freq="h", tz="UTC")
    steps: list[float] = []
    while len(steps) < len(index):
        steps += [float(rng.choice([0.0, 1000.0]))] * int(rng.integers(6, 48))
    history = pd.DataFrame({"FR": steps[: len(index)]}, index=index)
    issued = (index[-1] + pd.Timedelta(hours=1)).to_pydatetime()
    targets = pd.date_range(issued, periods=96, freq="h")
    forecast = ProfileForecaster().predict(history, issued, targets)["FR"]
    assert forecast.max() <= 1000.0 and forecast.min() >= 0.0
