"""The shared repair policy of the providers (assemble and fill_gaps of the toolkit)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from lowcarb.backends.toolkit import Point, assemble, fill_gaps, intensity_value, timestamp
from lowcarb.exceptions import NoDataError, ResponseParseError

T0 = datetime(2024, 6, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def grid(points, **kwargs):
    options = dict(start=T0, end=T0 + 6 * HOUR, resolution=HOUR, provider="grid")
    options.update(kwargs)
    return assemble(points, **options)


def series(values):
    return [Point(T0 + k * HOUR, v) for k, v in enumerate(values)]


def test_points_on_the_grid_outside_the_range_dropped():
    points = [Point(T0 - HOUR, 1.0), *series([10, 20, 30, 40, 50, 60]), Point(T0 + 6 * HOUR, 9.0)]
    values, estimated, notes = grid({"DE": points})
    assert values["DE"].tolist() == [10, 20, 30, 40, 50, 60]
    assert not estimated.to_numpy().any() and notes == []


def test_interior_gap_interpolated_edges_kept():
    values, estimated, notes = grid({"DE": series([None, 20, None, None, 50, None])})
    assert np.isnan(values["DE"].iloc[0]) and np.isnan(values["DE"].iloc[5])
    assert values["DE"].iloc[2:4].tolist() == [30, 40]
    assert estimated["DE"].tolist() == [False, False, True, True, False, False]
    assert notes == [
        "DE: 2 missing intervals interpolated and flagged estimated",
        "DE: 2 intervals without data, left as NaN",
    ]


def test_gap_longer_than_max_gap_stays_nan():
    values, _, _ = grid({"DE": series([10, None, None, None, 50, 60])}, max_gap=2 * HOUR)
    assert int(values["DE"].isna().sum()) == 3


def test_gap_policies():
    values, _, notes = grid({"DE": series([10, None, 30, 40, 50, 60])}, gaps="keep")
    assert int(values["DE"].isna().sum()) == 1 and notes == [
        "DE: 1 interval without data, left as NaN"
    ]
    with pytest.raises(
        NoDataError, match="DE has no value for 1 interval, first 2024-06-01T01:00Z"
    ):
        grid({"DE": series([10, None, 30, 40, 50, 60])}, gaps="error")


def test_duplicates_and_disorder():
    points = [*reversed(series([10, 20, 30, 40, 50, 60])), Point(T0, 10), Point(T0 + HOUR, 30)]
    values, estimated, notes = grid({"DE": points})
    assert values["DE"].tolist() == [10, 25, 30, 40, 50, 60]
    assert estimated["DE"].tolist() == [False, True, False, False, False, False]
    assert notes == [
        "DE: intervals arrived out of time order; sorted",
        "DE: 1 interval given twice with equal values",
        "DE: 1 interval given twice with different values; their mean is used and flagged estimated",
    ]


def test_estimated_points_stay_flagged_and_zones_keep_their_order():
    values, estimated, _ = grid(
        {"B": series([1] * 6), "A": [Point(T0 + k * HOUR, 2.0, True) for k in range(6)]}
    )
    assert list(values.columns) == ["B", "A"] and estimated["A"].all()


def test_off_grid_and_empty_zones_are_errors():
    with pytest.raises(ResponseParseError, match="off the 1 h grid"):
        grid({"DE": [Point(T0 + timedelta(minutes=30), 1.0)]})
    with pytest.raises(
        NoDataError, match="no data for FR in 2024-06-01T00:00Z .. 2024-06-01T06:00Z"
    ):
        grid({"DE": series([1] * 6), "FR": []})


@pytest.mark.parametrize(
    ("raw", "factor", "expected"),
    [(None, 1.0, None), (120, 1.0, 120.0), (1000.0, 0.45359237, 453.59237), (0, 1.0, 0.0)],
)
def test_intensity_value_converts(raw, factor, expected):
    assert intensity_value(raw, where="x", provider="p", factor=factor) == expected


@pytest.mark.parametrize("raw", ["120", True, -1, 3001, float("nan"), [1]])
def test_intensity_value_rejects(raw):
    with pytest.raises(ResponseParseError):
        intensity_value(raw, where="data[0].value", provider="p")


def test_timestamp_formats_of_every_provider():
    for text in (
        "2018-01-20T12:00Z",
        "2025-03-29T18:00:00.000Z",
        "2022-07-15T00:00:00+00:00",
        "2022-07-15T02:00:00+02:00",
        "2022-05-17T00:00:00.5092741+00:00",
    ):
        parsed = timestamp(text, where="t", provider="p")
        assert parsed.tzinfo is not None and parsed.utcoffset() == timedelta(0)
    with pytest.raises(ResponseParseError, match="without a UTC offset"):
        timestamp("2022-07-15T00:00:00", where="t", provider="p")


def column(values):
    times = pd.date_range(T0, periods=len(values), freq="h")
    data = np.array([np.nan if v is None else v for v in values], dtype=float)
    return data, np.zeros(len(values), dtype=bool), times


def test_fill_gaps_fills_short_interior_runs_in_place_and_reports_every_run():
    values, flags, times = column([None, 10, None, None, 40, None, None, None, 80, None])
    runs = fill_gaps(values, flags, times, HOUR, max_gap=2 * HOUR)
    assert [(r.first, r.last, r.filled, r.reason) for r in runs] == [
        (0, 0, False, "leading"),
        (2, 3, True, ""),
        (5, 7, False, "too long"),
        (9, 9, False, "trailing"),
    ]
    assert values[2:4].tolist() == [20, 30]
    assert np.flatnonzero(flags).tolist() == [2, 3]
    assert runs[1].start == T0 + 2 * HOUR and runs[1].end == T0 + 4 * HOUR
    assert runs[2].length == 3 and np.isnan(values[5:8]).all()


@pytest.mark.parametrize("gaps", ["keep", "error"])
def test_fill_gaps_fills_nothing_unless_asked_to_interpolate(gaps):
    values, flags, times = column([10, None, 30])
    runs = fill_gaps(values, flags, times, HOUR, gaps=gaps)
    assert [(r.filled, r.reason) for r in runs] == [(False, "policy")]
    assert np.isnan(values[1]) and not flags.any()


def test_fill_gaps_without_gaps_reports_nothing():
    values, flags, times = column([10, 20])
    assert fill_gaps(values, flags, times, HOUR) == [] and values.tolist() == [10, 20]
