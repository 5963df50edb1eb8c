from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from lowcarb import (
    DataValidationError,
    IntensitySeries,
    InvalidInputError,
    align,
    convert_intensity,
    lbs_per_mwh_to_g_per_kwh,
)

H = timedelta(hours=1)


def frame(
    values: dict[str, list[float]], start: str = "2024-01-01", freq: str = "h"
) -> pd.DataFrame:
    n = len(next(iter(values.values())))
    index = pd.date_range(start, periods=n, freq=freq, tz="UTC", name="start")
    return pd.DataFrame(values, index=index)


def test_basic_accessors():
    s = IntensitySeries(frame({"DE": [100, 200, 300], "GB": [50, 60, 70]}), H, provider="x")
    assert s.zones == ["DE", "GB"]
    assert s.start == datetime(2024, 1, 1, tzinfo=UTC)
    assert s.end == datetime(2024, 1, 1, 3, tzinfo=UTC)
    assert s.at("DE", datetime(2024, 1, 1, 1, 30, tzinfo=UTC)) == 200
    with pytest.raises(InvalidInputError, match="outside"):
        s.at("DE", datetime(2024, 1, 1, 3, tzinfo=UTC))
    with pytest.raises(InvalidInputError, match="not in this series"):
        s.at("FR", datetime(2024, 1, 1, tzinfo=UTC))
    assert "DE" in repr(s) and "history" in repr(s)


def test_non_utc_index_is_converted():
    index = pd.date_range("2024-01-01T01:00", periods=2, freq="h", tz="Europe/Berlin")
    s = IntensitySeries(pd.DataFrame({"DE": [1.0, 2.0]}, index=index), H)
    assert str(s.values.index.tz) == "UTC"
    assert s.start == datetime(2024, 1, 1, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("index", "message"),
    [
        (pd.DatetimeIndex(["2024-01-01", "2024-01-01"], tz="UTC"), "duplicated"),
        (pd.DatetimeIndex(["2024-01-01T01:00", "2024-01-01"], tz="UTC"), "increasing"),
        (pd.DatetimeIndex(["2024-01-01T00:00", "2024-01-01T00:30"], tz="UTC"), "regular"),
    ],
)
def test_index_rules(index, message):
    with pytest.raises(DataValidationError, match=message):
        IntensitySeries(pd.DataFrame({"DE": [1.0, 2.0]}, index=index), H)


def test_naive_index_rejected():
    index = pd.date_range("2024-01-01", periods=2, freq="h")
    with pytest.raises(InvalidInputError, match="timezone-aware"):
        IntensitySeries(pd.DataFrame({"DE": [1.0, 2.0]}, index=index), H)


def test_naive_issued_at_rejected():
    with pytest.raises(InvalidInputError, match="naive"):
        IntensitySeries(frame({"DE": [1.0]}), H, issued_at=datetime(2024, 1, 1))


def test_from_points_fills_gaps_with_nan():
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    s = IntensitySeries.from_points({"DE": [(t0, 100), (t0 + 2 * H, 300)]}, H, provider="p")
    assert len(s) == 3
    assert np.isnan(s.values["DE"].iloc[1])


def test_resample_coarsen_and_refine():
    s = IntensitySeries(
        frame({"DE": [100, 200, 300, 400]}, freq="15min"),
        timedelta(minutes=15),
        estimated=frame({"DE": [False, True, False, False]}, freq="15min"),
    )
    hourly = s.resample(H)
    assert len(hourly) == 1
    assert hourly.values["DE"].iloc[0] == 250
    assert bool(hourly.estimated_mask()["DE"].iloc[0]) is True
    back = hourly.resample(timedelta(minutes=30))
    assert list(back.values["DE"]) == [250, 250]
    assert back.end == hourly.end


def test_align_inner_and_outer():
    a = IntensitySeries(frame({"DE": [1, 2, 3]}), H)
    b = IntensitySeries(
        frame({"GB": [10, 20, 30, 40]}, start="2024-01-01T01:00", freq="30min"),
        timedelta(minutes=30),
    )
    inner = align(a, b)
    assert all(s.resolution == H for s in inner)
    assert list(inner[0].values.index) == list(inner[1].values.index)
    assert len(inner[0]) == 2
    outer = align(a, b, how="outer")
    assert len(outer[0]) == 3
    assert np.isnan(outer[1].values["GB"].iloc[0])


def test_select_and_between():
    s = IntensitySeries(frame({"DE": [1, 2, 3], "GB": [4, 5, 6]}), H)
    assert s.select(["GB"]).zones == ["GB"]
    with pytest.raises(InvalidInputError):
        s.select(["FR"])
    cut = s.between(datetime(2024, 1, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, 2, tzinfo=UTC))
    assert list(cut.values["DE"]) == [2]


def test_records_and_metadata_are_json_ready():
    issued = datetime(2024, 1, 1, 1, tzinfo=timezone(timedelta(hours=2)))
    s = IntensitySeries(frame({"DE": [1.0, float("nan")]}), H, is_forecast=True, issued_at=issued)
    records = s.to_records()
    assert records[0] == {
        "zone": "DE",
        "start": "2024-01-01T00:00:00Z",
        "value": 1.0,
        "estimated": False,
    }
    assert records[1]["value"] is None
    meta = s.metadata()
    assert meta["issued_at"] == "2023-12-31T23:00:00Z"
    assert meta["unit"] == "gCO2eq/kWh"


def test_units():
    assert lbs_per_mwh_to_g_per_kwh(1000) == pytest.approx(453.59237)
    assert convert_intensity(1, "kg/kWh") == 1000
    assert convert_intensity(np.array([1000.0]), "lbs/MWh", "kg/MWh")[0] == pytest.approx(453.59237)
    with pytest.raises(InvalidInputError, match="unknown intensity unit"):
        convert_intensity(1, "furlongs")
