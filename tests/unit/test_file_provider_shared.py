"""FileProvider against the real files in ../shared/data, checked with plain pandas."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lowcarb import ManualClock
from lowcarb.backends._file import FileProvider

pytestmark = pytest.mark.shared_data

PORTAL = "electricitymaps-portal-format-2023"
WIDE = "electricitymaps-16zones-2021-2023"
Y2023 = (datetime(2023, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC))
FULL = (datetime(2021, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC))


def _portal_frames(folder: Path) -> dict[str, pd.DataFrame]:
    """Each export read independently, keyed by its Zone Id."""
    frames = {}
    for path in sorted(folder.glob("*.csv")):
        frame = pd.read_csv(path)
        zone = frame["Zone Id"].iloc[0]
        frame.index = pd.to_datetime(frame["Datetime (UTC)"], utc=True)
        frames[zone] = frame
    return frames


@pytest.fixture(scope="module")
def portal_dir(shared_data: Path) -> Path:
    return shared_data / PORTAL


@pytest.fixture(scope="module")
def portal_lca(portal_dir: Path):
    p = FileProvider(portal_dir)
    return p, p.history(p.served_zones(), *Y2023)


@pytest.fixture(scope="module")
def wide(shared_data: Path):
    folder = shared_data / WIDE
    p = FileProvider(
        folder / "carbon_intensity_lca_2021_2023_hourly.csv",
        estimated_path=folder / "data_estimated_2021_2023_hourly.csv",
        clock=ManualClock(datetime(2023, 6, 1, 12, tzinfo=UTC)),
    )
    return p, p.history(p.served_zones(), *FULL)


# -- portal exports -------------------------------------------------------------------------


def test_portal_directory_zones_and_rows(portal_dir: Path, portal_lca) -> None:
    p, series = portal_lca
    assert sorted(p.served_zones()) == sorted(_portal_frames(portal_dir))
    assert sorted(p.served_zones()) == ["DE", "GB", "US-CAL-CISO"]
    assert len(series) == 8760
    assert series.resolution == timedelta(hours=1)
    assert not series.values.isna().to_numpy().any()
    assert p.capabilities.resolution == timedelta(hours=1)


def test_portal_values_match_pandas(portal_dir: Path, portal_lca) -> None:
    _, series = portal_lca
    for zone, frame in _portal_frames(portal_dir).items():
        expected = frame["Carbon Intensity gCO₂eq/kWh (LCA)"].astype(float)
        np.testing.assert_allclose(series.values[zone].to_numpy(), expected.to_numpy())
        assert series.values[zone].mean() == pytest.approx(expected.mean())


def test_portal_estimated_flags_are_booleans(portal_dir: Path, portal_lca) -> None:
    _, series = portal_lca
    mask = series.estimated_mask()
    for zone, frame in _portal_frames(portal_dir).items():
        assert mask[zone].dtype == bool
        expected = frame["Data Estimated"].astype(str).str.lower().eq("true")
        assert mask[zone].tolist() == expected.tolist(), zone


def test_portal_lifecycle_above_direct(portal_dir: Path, portal_lca) -> None:
    _, lca = portal_lca
    p = FileProvider(portal_dir, basis="direct")
    direct = p.history(p.served_zones(), *Y2023)
    assert direct.basis == "direct"
    for zone in lca.zones:
        assert lca.values[zone].mean() > direct.values[zone].mean(), zone


# -- the wide 16-zone files -----------------------------------------------------------------


def test_wide_loads_fast(shared_data: Path) -> None:
    folder = shared_data / WIDE
    began = time.perf_counter()
    p = FileProvider(
        folder / "carbon_intensity_lca_2021_2023_hourly.csv",
        estimated_path=folder / "data_estimated_2021_2023_hourly.csv",
    )
    p.served_zones()
    assert time.perf_counter() - began < 2.0


def test_wide_shape(shared_data: Path, wide) -> None:
    p, series = wide
    header = pd.read_csv(shared_data / WIDE / "carbon_intensity_lca_2021_2023_hourly.csv", nrows=0)
    assert p.served_zones() == list(header.columns[1:])
    assert len(p.served_zones()) == 16
    assert len(series) == 26280
    assert not series.values.isna().to_numpy().any()
    assert p.capabilities.forecast_horizon == FULL[1] - FULL[0]


def test_wide_statistics_match_pandas(shared_data: Path, wide) -> None:
    _, series = wide
    real = pd.read_csv(
        shared_data / WIDE / "carbon_intensity_lca_2021_2023_hourly.csv",
        index_col="datetime_utc",
        parse_dates=True,
    )
    year = real.loc["2023"]
    got = series.between(*Y2023).values
    for zone in ("DE", "GB", "ZA"):
        assert got[zone].mean() == pytest.approx(year[zone].mean()), zone
        assert got[zone].max() == pytest.approx(year[zone].max()), zone
    assert series.values.mean().to_numpy() == pytest.approx(real.mean().to_numpy())


def test_wide_estimated_flags(shared_data: Path, wide) -> None:
    _, series = wide
    flags = pd.read_csv(
        shared_data / WIDE / "data_estimated_2021_2023_hourly.csv", index_col="datetime_utc"
    )
    mask = series.estimated_mask()
    assert mask["IN-WE"].all()
    for zone in flags.columns:
        assert int(mask[zone].sum()) == int(flags[zone].sum()), zone


def test_wide_replay_and_latest(shared_data: Path, wide) -> None:
    p, series = wide
    now = datetime(2023, 6, 1, 12, tzinfo=UTC)
    latest = p.latest(["DE"])
    assert latest.values["DE"].iloc[0] == series.values["DE"].loc[pd.Timestamp(now)]
    forecast = p.forecast(["DE", "GB"], horizon=timedelta(hours=24))
    assert forecast.perfect_foresight
    assert len(forecast) == 24
    expected = series.between(now, now + timedelta(hours=24)).values[["DE", "GB"]]
    pd.testing.assert_frame_equal(forecast.values, expected)
