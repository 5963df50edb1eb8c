"""The synthetic default against the real data its statistics came from."""

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from lowcarb.backends import DefaultProvider

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def real(shared_data) -> pd.DataFrame:
    path = (
        shared_data
        / "electricitymaps-16zones-2021-2023"
        / "carbon_intensity_lca_2021_2023_hourly.csv"
    )
    frame = pd.read_csv(path, index_col="datetime_utc", parse_dates=True)
    return frame


@pytest.fixture(scope="module", params=[0, 7])
def synthetic(request) -> pd.DataFrame:
    p = DefaultProvider(seed=request.param)
    return p.trace(
        p.served_zones(), datetime(2021, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC)
    ).values


def test_each_zone_mean_within_five_percent(real, synthetic):
    for zone in synthetic.columns:
        assert synthetic[zone].mean() == pytest.approx(real[zone].mean(), rel=0.05), zone


def test_daily_swing_is_recognisable(real, synthetic):
    """Same shape of the average day (by UTC hour) and a similar size of swing."""
    for zone in synthetic.columns:
        r = real[zone].groupby(real.index.hour).mean()
        s = synthetic[zone].groupby(synthetic.index.hour).mean()
        assert np.corrcoef(r, s)[0, 1] > 0.95, zone
        assert (s.max() - s.min()) == pytest.approx(r.max() - r.min(), rel=0.2), zone
        # Typical within-day range of single days, not only of the average day.
        day_range_r = (real[zone].resample("D").max() - real[zone].resample("D").min()).mean()
        day_range_s = (
            synthetic[zone].resample("D").max() - synthetic[zone].resample("D").min()
        ).mean()
        assert 0.7 < day_range_s / day_range_r < 1.5, zone


def test_spread_is_similar(real, synthetic):
    for zone in synthetic.columns:
        assert synthetic[zone].std() == pytest.approx(real[zone].std(), rel=0.2), zone
