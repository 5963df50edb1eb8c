"""Test helpers for lowcarb and for third-party providers.

:class:`ProviderContract` is a conformance suite: subclass it in a pytest module, say how
to build your provider and at what time its data exists, and pytest runs every check of
the provider interface against it::

    from lowcarb.testing import ProviderContract

    class TestMyGridContract(ProviderContract):
        now = datetime(2024, 6, 1, 12, tzinfo=UTC)
        zones = ["DE"]

        def make_provider(self, clock):
            return MyGridProvider(clock=clock)

The checks cover both faces: the provider, and its own async face (``to_async()``).
``make_provider`` is called once per face, so each sends its own requests. Requires
pytest (the ``dev`` extra).
"""

from __future__ import annotations

import asyncio
import math
from datetime import datetime, timedelta
from typing import ClassVar

import pandas as pd
import pytest

from lowcarb._clock import ManualClock
from lowcarb._provider import AsyncCarbonProvider, CarbonProvider
from lowcarb._series import MAX_PLAUSIBLE_G_PER_KWH, IntensitySeries
from lowcarb._time import floor_time
from lowcarb.exceptions import InvalidInputError, UnknownZoneError

__all__ = ["ManualClock", "ProviderContract"]


class ProviderContract:
    """Checks every provider must pass. Subclass, set the attributes, implement the factory.

    Attributes:
        now: A time at which the provider has history behind it and a forecast ahead.
        zones: A few zones the provider serves.
        secrets: Credential values that must never appear in a repr or an error.
    """

    now: ClassVar[datetime]
    zones: ClassVar[list[str]]
    secrets: ClassVar[tuple[str, ...]] = ()

    def make_provider(self, clock: ManualClock) -> CarbonProvider:
        """Build the provider under test, reading time from ``clock``."""
        raise NotImplementedError

    @pytest.fixture
    def provider(self) -> CarbonProvider:
        """The provider under test, at ``now``."""
        return self.make_provider(ManualClock(self.now))

    # -- helpers ------------------------------------------------------------------------

    def check_series(self, series: IntensitySeries, provider: CarbonProvider) -> None:
        """Invariants every returned series satisfies."""
        assert isinstance(series, IntensitySeries)
        index = series.values.index
        assert isinstance(index, pd.DatetimeIndex)
        assert str(index.tz) == "UTC"
        assert set(series.zones) <= set(provider.served_zones())
        assert series.provider == provider.name
        assert series.signal in ("average", "marginal")
        assert series.basis in ("lifecycle", "direct")
        values = series.values.to_numpy(dtype=float)
        finite = values[~pd.isna(values)]
        assert (finite >= 0).all() and (finite <= MAX_PLAUSIBLE_G_PER_KWH).all()
        assert series.estimated_mask().shape == series.values.shape

    # -- the contract -------------------------------------------------------------------

    def test_served_zones(self, provider: CarbonProvider) -> None:
        """Served zones are unique strings and include the sample zones."""
        served = provider.served_zones()
        assert served and all(isinstance(z, str) and z for z in served)
        assert len(served) == len(set(served))
        assert set(self.zones) <= set(served)
        assert [z.zone for z in provider.zones()] == served

    def test_capabilities(self, provider: CarbonProvider) -> None:
        """Capabilities are well-formed."""
        caps = provider.capabilities
        assert caps.resolution > timedelta(0)
        assert caps.forecast_horizon is None or caps.forecast_horizon > timedelta(0)

    def test_latest(self, provider: CarbonProvider) -> None:
        """Latest covers the current time."""
        series = provider.latest(self.zones)
        self.check_series(series, provider)
        assert len(series) >= 1
        assert series.start is not None and series.start <= self.now
        assert series.end is not None and series.end > self.now

    def test_history(self, provider: CarbonProvider) -> None:
        """History returns exactly the intervals asked for."""
        step = provider.capabilities.resolution
        end = floor_time(self.now, step)
        start = end - 6 * step
        series = provider.history(self.zones, start, end)
        self.check_series(series, provider)
        assert len(series) == 6
        assert series.start == start and series.end == end
        assert not series.is_forecast

    def test_forecast(self, provider: CarbonProvider) -> None:
        """A forecast of N intervals holds N intervals from the current one, issued now."""
        if provider.capabilities.forecast_horizon is None:
            pytest.skip("provider gives no forecasts")
        step = provider.capabilities.resolution
        series = provider.forecast(self.zones, horizon=3 * step)
        self.check_series(series, provider)
        assert len(series) == 3
        assert series.is_forecast and series.issued_at == self.now
        assert series.start is not None and series.start <= self.now < series.start + step

    def test_unknown_zone_suggests(self, provider: CarbonProvider) -> None:
        """Unknown zones raise with close matches."""
        typo = self.zones[0][:-1] + ("X" if not self.zones[0].endswith("X") else "Y")
        with pytest.raises(UnknownZoneError) as info:
            provider.latest([typo])
        assert self.zones[0] in info.value.suggestions

    def test_bad_times(self, provider: CarbonProvider) -> None:
        """Naive datetimes and empty ranges are rejected before any work."""
        naive = self.now.replace(tzinfo=None)
        with pytest.raises(InvalidInputError, match="naive"):
            provider.history(self.zones, naive, self.now)
        with pytest.raises(InvalidInputError, match="before"):
            provider.history(self.zones, self.now, self.now)
        with pytest.raises(InvalidInputError):
            provider.forecast(self.zones, horizon=timedelta(0))

    def test_async_matches_sync(self, provider: CarbonProvider) -> None:
        """The provider's own async face (``to_async()``) answers as the sync one does.

        The face comes from a second provider built like the first, so that it sends its
        own requests (through its own client) rather than reading the first one's cache.
        """
        step = provider.capabilities.resolution
        end = floor_time(self.now, step)
        start = end - 6 * step
        forecasts = provider.capabilities.forecast_horizon is not None
        expected = {
            "latest": provider.latest(self.zones),
            "history": provider.history(self.zones, start, end),
        }
        if forecasts:
            expected["forecast"] = provider.forecast(self.zones, horizon=3 * step)

        async def run() -> tuple[list[str], dict[str, IntensitySeries]]:
            face = self.make_provider(ManualClock(self.now)).to_async()
            assert isinstance(face, AsyncCarbonProvider)
            async with face:
                served = await face.served_zones()
                got = {
                    "latest": await face.latest(self.zones),
                    "history": await face.history(self.zones, start, end),
                }
                if forecasts:
                    got["forecast"] = await face.forecast(self.zones, horizon=3 * step)
            return served, got

        served, got = asyncio.run(run())
        assert served == provider.served_zones()
        for call, series in expected.items():
            self.check_series(got[call], provider)
            assert got[call].values.equals(series.values), call
            assert got[call].estimated_mask().equals(series.estimated_mask()), call
            assert got[call].metadata() == series.metadata(), call

    def test_no_secret_in_repr(self, provider: CarbonProvider) -> None:
        """Credentials never show in a repr."""
        text = repr(provider)
        for secret in self.secrets:
            assert secret not in text

    def test_values_are_numbers(self, provider: CarbonProvider) -> None:
        """Values are floats in gCO2eq/kWh (not strings, not objects)."""
        series = provider.latest(self.zones)
        for value in series.values.to_numpy().ravel():
            assert isinstance(value, float) and (math.isnan(value) or value >= 0)
