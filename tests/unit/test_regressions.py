"""Bugs found in review of the foundation, each pinned by a test."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lowcarb import (
    DataValidationError,
    IntensitySeries,
    InvalidInputError,
    ManualClock,
    ProviderChain,
    UnknownZoneError,
    load_settings,
    resolve_zone,
)
from lowcarb.backends import DefaultProvider, FileProvider
from lowcarb.cli import main

H = timedelta(hours=1)
T0 = datetime(2024, 6, 1, 12, 30, tzinfo=UTC)


def six_hours_of_de(path: Path) -> Path:
    index = pd.date_range("2024-06-01T08:00", periods=6, freq="h", tz="UTC")
    pd.DataFrame(
        {"datetime_utc": index.strftime("%Y-%m-%dT%H:%MZ"), "DE": [300, 310, 320, 330, 340, 350]}
    ).to_csv(path, index=False)
    return path


def test_cli_option_can_supply_a_required_provider_option(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    csv = six_hours_of_de(tmp_path / "de.csv")
    assert main(["zones", "-p", "file", "-o", f"path={csv}", "--json"]) == 0
    assert [z["zone"] for z in json.loads(capsys.readouterr().out)["zones"]] == ["DE"]


def test_debug_flag_accepted_after_the_command():
    with pytest.raises(UnknownZoneError):
        main(["latest", "-z", "XX", "--debug"])


def test_fallback_chain_falls_back_for_a_longer_forecast(tmp_path):
    clock = ManualClock(T0)
    chain = ProviderChain(
        [
            FileProvider(six_hours_of_de(tmp_path / "de.csv"), clock=clock),
            DefaultProvider(clock=clock),
        ]
    )
    assert chain.capabilities.forecast_horizon == timedelta(days=14)
    short = chain.forecast(["DE"], horizon=2 * H)
    assert short.provider == "file"
    long = chain.forecast(["DE"], horizon=24 * H)
    assert long.provider == "default" and len(long) == 24
    assert any("file skipped" in n for n in long.notes)


def test_fallback_chain_defaults_to_the_primary_zones(tmp_path):
    clock = ManualClock(T0)
    chain = ProviderChain(
        [
            FileProvider(six_hours_of_de(tmp_path / "de.csv"), clock=clock),
            DefaultProvider(clock=clock),
        ]
    )
    assert chain.default_zones() == ["DE"]
    assert "GB" in chain.served_zones()
    assert chain.latest(["GB"]).provider == "default"


def test_history_returns_intervals_starting_in_the_range_for_every_provider(tmp_path):
    clock = ManualClock(T0)
    providers = [
        FileProvider(six_hours_of_de(tmp_path / "de.csv"), clock=clock),
        DefaultProvider(clock=clock),
    ]
    start, end = datetime(2024, 6, 1, 9, 30, tzinfo=UTC), T0
    indexes = [p.history(["DE"], start, end).values.index for p in providers]
    assert indexes[0].equals(indexes[1])
    assert indexes[0][0] == pd.Timestamp("2024-06-01T10:00Z") and len(indexes[0]) == 3


def test_forecast_reach_is_measured_from_now():
    p = DefaultProvider(clock=ManualClock(T0))
    with pytest.raises(InvalidInputError, match="ahead of now"):
        p.forecast(["DE"], start=T0 + timedelta(days=365), horizon=H)
    assert len(p.forecast(["DE"], start=T0 + timedelta(days=13), horizon=H)) == 1


def test_from_points_refuses_off_grid_and_duplicate_points():
    with pytest.raises(DataValidationError, match="off the"):
        IntensitySeries.from_points({"DE": [(T0, 1.0), (T0 + 1.5 * H, 2.0)]}, H)
    with pytest.raises(DataValidationError, match="duplicated"):
        IntensitySeries.from_points({"DE": [(T0, 1.0), (T0, 2.0)]}, H)


def test_coarsening_over_a_missing_part_is_flagged_estimated():
    index = pd.date_range("2024-01-01", periods=4, freq="15min", tz="UTC")
    s = IntensitySeries(
        pd.DataFrame({"DE": [100, np.nan, 300, 400]}, index=index), timedelta(minutes=15)
    )
    hourly = s.resample(H)
    assert hourly.values["DE"].iloc[0] == pytest.approx(800 / 3)
    assert bool(hourly.estimated_mask()["DE"].iloc[0])


def test_coordinates_match_the_zone_they_are_in():
    served = ["DE", "GB", "CH"]
    assert resolve_zone("48.14,11.58", served).zone == "DE"  # Munich, nearer Zurich's point
    with pytest.raises(UnknownZoneError) as exc:
        resolve_zone("48.85,2.35", served)  # Paris
    assert exc.value.zone == "48.85,2.35"
    assert "FR" in str(exc.value)


def test_secret_looking_key_message_does_not_point_to_a_rejected_variable(tmp_path):
    (tmp_path / "lowcarb.toml").write_text('[providers.default]\napi_key = "abc"\n')
    with pytest.raises(Exception, match="reads none named 'api_key'") as exc:
        load_settings(environ={}, cwd=tmp_path)
    assert "LOWCARB_DEFAULT_API_KEY" not in str(exc.value)


def test_default_flags_zones_whose_source_was_estimated():
    mask = DefaultProvider(clock=ManualClock(T0)).latest(["IN-WE", "JP-TK", "DE"]).estimated_mask()
    assert mask.iloc[0].to_dict() == {"IN-WE": True, "JP-TK": True, "DE": False}
