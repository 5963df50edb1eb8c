from datetime import UTC, datetime

import httpx
from _ukcarbon_api import FakeUKCarbonAPI

from lowcarb.backends import UKCarbonIntensityProvider
from lowcarb.testing import ManualClock, ProviderContract


class TestUKCarbonNationalContract(ProviderContract):
    now = datetime(2024, 6, 1, 12, 10, tzinfo=UTC)
    zones = ["GB", "GB-R13"]

    def make_provider(self, clock: ManualClock) -> UKCarbonIntensityProvider:
        api = FakeUKCarbonAPI(clock)
        return UKCarbonIntensityProvider(transport=httpx.MockTransport(api), clock=clock)


class TestUKCarbonRegionsContract(ProviderContract):
    """Several regions: the all-regions endpoints, list-shaped data, no cache."""

    now = datetime(2024, 12, 31, 23, 45, tzinfo=UTC)
    zones = ["GB-R17", "GB-R3", "GB-R1"]

    def make_provider(self, clock: ManualClock) -> UKCarbonIntensityProvider:
        api = FakeUKCarbonAPI(clock)
        api.object_data = False
        api.pad = False
        return UKCarbonIntensityProvider(
            transport=httpx.MockTransport(api), clock=clock, cache_ttl_s=0
        )
