from datetime import UTC, datetime

import httpx
from _electricitymaps_api import TOKEN, FakeElectricityMapsAPI

from lowcarb.backends._electricitymaps import ElectricityMapsProvider
from lowcarb.testing import ManualClock, ProviderContract


class TestElectricityMapsContract(ProviderContract):
    now = datetime(2024, 6, 1, 12, 10, tzinfo=UTC)
    zones = ["DE", "FR"]
    secrets = (TOKEN,)

    def make_provider(self, clock: ManualClock) -> ElectricityMapsProvider:
        api = FakeElectricityMapsAPI(clock)
        return ElectricityMapsProvider(token=TOKEN, transport=httpx.MockTransport(api), clock=clock)


class TestElectricityMapsDirectContract(ProviderContract):
    """Direct factors, no cache, a zone table without ``access`` fields, at a year's end."""

    now = datetime(2024, 12, 31, 23, 45, tzinfo=UTC)
    zones = ["US-CAL-CISO", "DE"]
    secrets = (TOKEN,)

    def make_provider(self, clock: ManualClock) -> ElectricityMapsProvider:
        api = FakeElectricityMapsAPI(clock)
        api.access = None
        return ElectricityMapsProvider(
            token=TOKEN,
            emission_factor_type="direct",
            transport=httpx.MockTransport(api),
            clock=clock,
            cache_ttl_s=0,
        )
