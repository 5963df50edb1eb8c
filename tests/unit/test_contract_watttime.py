from datetime import UTC, datetime

import httpx
from _watttime_api import PASSWORD, USERNAME, FakeWattTimeAPI

from lowcarb.backends._watttime import WattTimeProvider
from lowcarb.testing import ManualClock, ProviderContract


class TestWattTimeContract(ProviderContract):
    """Zones found through region-from-loc, one of them fixed by the regions option."""

    now = datetime(2024, 6, 1, 12, 10, tzinfo=UTC)
    zones = ["US-CAL-CISO", "US-TEX-ERCO", "SITE-A"]
    secrets = (PASSWORD,)

    def make_provider(self, clock: ManualClock) -> WattTimeProvider:
        api = FakeWattTimeAPI(clock)
        return WattTimeProvider(
            username=USERNAME,
            password=PASSWORD,
            regions=["SITE-A=PSCO"],
            transport=httpx.MockTransport(api),
            clock=clock,
        )


class TestWattTimeNoCacheContract(ProviderContract):
    """Two zones in one region (one request for both), no response cache."""

    now = datetime(2024, 12, 31, 23, 57, tzinfo=UTC)
    zones = ["US-MIDA-PJM", "US-NY-NYIS"]
    secrets = (PASSWORD,)

    def make_provider(self, clock: ManualClock) -> WattTimeProvider:
        api = FakeWattTimeAPI(clock)
        return WattTimeProvider(
            username=USERNAME,
            password=PASSWORD,
            transport=httpx.MockTransport(api),
            clock=clock,
            cache_ttl_s=0,
        )
