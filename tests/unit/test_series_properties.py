"""Property tests: resampling and alignment keep what they promise."""

from datetime import timedelta

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from lowcarb import IntensitySeries, align

values = st.lists(st.floats(min_value=0, max_value=2000, allow_nan=False), min_size=1, max_size=48)


def hourly(vals: list[float], start: str = "2024-03-30T20:00") -> IntensitySeries:
    index = pd.date_range(start, periods=len(vals), freq="h", tz="UTC")
    return IntensitySeries(pd.DataFrame({"Z": vals}, index=index), timedelta(hours=1))


@settings(max_examples=60, deadline=None)
@given(values, st.sampled_from([2, 3, 4, 6]))
def test_refine_then_coarsen_is_identity(vals, parts):
    s = hourly(vals)
    fine = s.resample(timedelta(hours=1) / parts)
    assert len(fine) == len(s) * parts
    back = fine.resample(timedelta(hours=1))
    assert np.allclose(back.values["Z"].to_numpy(), s.values["Z"].to_numpy())


@settings(max_examples=60, deadline=None)
@given(values)
def test_coarsening_preserves_energy_weighted_mean_of_full_blocks(vals):
    vals = vals[: len(vals) - len(vals) % 4] or [1.0, 2.0, 3.0, 4.0]
    s = hourly(vals, start="2024-01-01T00:00")
    coarse = s.resample(timedelta(hours=4))
    assert np.isclose(coarse.values["Z"].mean(), np.mean(vals))


@settings(max_examples=60, deadline=None)
@given(values, values, st.integers(min_value=-10, max_value=10))
def test_inner_align_gives_one_common_index(a, b, shift):
    sa = hourly(a)
    sb = hourly(b, start=str(pd.Timestamp("2024-03-30T20:00") + pd.Timedelta(hours=shift)))
    out = align(sa, sb)
    assert out[0].values.index.equals(out[1].values.index)
    assert set(out[0].values.index) <= set(sa.values.index) & set(sb.values.index)
