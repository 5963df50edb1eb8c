"""The embedded default: deterministic, consistent, labelled synthetic, honest forecasts."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from lowcarb import InvalidInputError, ManualClock, NoDataError, UnknownZoneError
from lowcarb._zones import ZONE_CATALOG
from lowcarb.backends import DefaultProvider
from lowcarb.backends._default import _profiles

H = timedelta(hours=1)
T0 = datetime(2024, 6, 1, 12, tzinfo=UTC)


@pytest.fixture
def provider() -> DefaultProvider:
    return DefaultProvider(clock=ManualClock(T0))


def test_serves_sixteen_zones_on_six_continents(provider):
    zones = provider.served_zones()
    assert len(zones) == 16
    assert {ZONE_CATALOG[z].continent for z in zones} == {
        "Africa",
        "Asia",
        "Europe",
        "North America",
        "Oceania",
        "South America",
    }
    assert provider.capabilities.synthetic


def test_labelled_synthetic(provider):
    s = provider.latest(["DE"])
    assert s.synthetic and s.provider == "default"
    assert any("synthetic" in n for n in s.notes)
    assert "synthetic" in repr(provider)


def test_any_year_is_labelled_with_the_years_its_statistics_come_from():
    # 1975 or 2026 alike are the profiles of 2021-2023: the notes say so.
    for year in (1975, 2026):
        when = datetime(year, 1, 1, tzinfo=UTC)
        s = DefaultProvider(clock=ManualClock(when)).latest(["DE"])
        assert s.values.index[0].year == year
        assert any("2021-2023" in n for n in s.notes), s.notes


def test_deterministic_and_seeded():
    a = DefaultProvider(clock=ManualClock(T0)).history(["DE"], T0 - 48 * H, T0)
    b = DefaultProvider(clock=ManualClock(T0)).history(["DE"], T0 - 48 * H, T0)
    c = DefaultProvider(seed=1, clock=ManualClock(T0)).history(["DE"], T0 - 48 * H, T0)
    assert a.values.equals(b.values)
    assert not a.values.equals(c.values)


def test_overlapping_queries_agree(provider):
    long = provider.history(["GB", "KR"], T0 - 100 * H, T0)
    short = provider.history(["KR", "GB"], T0 - 10 * H, T0 - 5 * H)
    assert np.allclose(long.values.loc[short.values.index, ["KR", "GB"]], short.values)


def test_year_boundary_is_seamless_in_shape(provider):
    # Generated per calendar year; a range across New Year is still one regular series.
    s = provider.trace(
        ["DE"], datetime(2023, 12, 31, 20, tzinfo=UTC), datetime(2024, 1, 1, 4, tzinfo=UTC)
    )
    assert len(s) == 8 and not s.values.isna().any().any()


def test_history_stops_at_the_current_hour(provider):
    with pytest.raises(NoDataError, match="forecast"):
        provider.history(["DE"], T0, T0 + 2 * H)
    assert len(provider.history(["DE"], T0 - H, T0 + H)) == 2


def test_latest_is_the_current_hour(provider):
    s = provider.latest(["DE", "GB"])
    assert s.start == T0 and len(s) == 1
    assert (
        s.values.loc[s.values.index[0], "DE"]
        == provider.trace(["DE"], T0, T0 + H).values["DE"].iloc[0]
    )


def test_forecast_shape_and_flags(provider):
    f = provider.forecast(["DE"], horizon=timedelta(hours=24))
    assert len(f) == 24 and f.is_forecast and f.issued_at == T0
    assert not f.perfect_foresight
    # The current hour is known, so the forecast starts from the truth.
    assert f.values["DE"].iloc[0] == provider.latest(["DE"]).values["DE"].iloc[0]


def test_forecast_uses_no_future_information():
    """Error grows with lead time, and forecasts are not the future values."""
    errors = {1: [], 24: [], 72: []}
    for day in range(0, 360, 5):
        issue = datetime(2022, 1, 1, tzinfo=UTC) + timedelta(days=day, hours=7)
        p = DefaultProvider(clock=ManualClock(issue))
        f = p.forecast(["DE"], horizon=timedelta(hours=73)).values["DE"]
        truth = p.trace(["DE"], issue, issue + 73 * H).values["DE"]
        for lead in errors:
            errors[lead].append(abs(f.iloc[lead] - truth.iloc[lead]))
    mae = {k: float(np.mean(v)) for k, v in errors.items()}
    assert 0 < mae[1] < mae[24] < mae[72]


def test_bases_differ_and_direct_is_lower(provider):
    direct = DefaultProvider(basis="direct", clock=ManualClock(T0))
    start = T0 - 24 * 30 * H
    lca = provider.history(provider.served_zones(), start, T0).values.mean()
    dir_ = direct.history(direct.served_zones(), start, T0).values.mean()
    assert (dir_ < lca).all()
    assert direct.latest(["DE"]).basis == "direct"


def test_bad_input(provider):
    with pytest.raises(UnknownZoneError) as exc:
        provider.latest(["US-CAL-CSO"])
    assert "US-CAL-CISO" in exc.value.suggestions
    with pytest.raises(InvalidInputError, match="naive"):
        provider.history(["DE"], datetime(2024, 1, 1), T0)
    with pytest.raises(InvalidInputError, match="before"):
        provider.history(["DE"], T0, T0 - H)
    with pytest.raises(InvalidInputError, match="beyond"):
        provider.forecast(["DE"], horizon=timedelta(days=30))
    with pytest.raises(InvalidInputError, match="positive"):
        provider.forecast(["DE"], horizon=timedelta(0))
    with pytest.raises(InvalidInputError, match="basis"):
        DefaultProvider(basis="lca")  # type: ignore[arg-type]


def _expected_mean(zone: str, year: int) -> float:
    """Long-run mean implied by the embedded statistics alone (no source data needed)."""
    import pandas as pd

    entry = _profiles()["zones"][zone]
    index = pd.date_range(
        f"{year}-01-01", f"{year + 1}-01-01", freq="h", tz="UTC", inclusive="left"
    )
    local = index.tz_convert(entry["timezone"])
    weekend = (local.day_of_week >= 5).astype(int)
    return float(entry["lifecycle"]["mean"][weekend, local.month - 1, local.hour].mean())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_yearly_mean_matches_embedded_statistics(seed):
    p = DefaultProvider(seed=seed)
    year = 2022
    s = p.trace(
        p.served_zones(), datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC)
    )
    for zone in p.served_zones():
        assert s.values[zone].mean() == pytest.approx(_expected_mean(zone, year), rel=0.05), zone
