from datetime import UTC, datetime, timedelta

import httpx
from _carbonaware_api import FakeCarbonAwareAPI

from lowcarb.backends._carbonaware import CarbonAwareSDKProvider
from lowcarb.testing import ManualClock, ProviderContract

BASE = "http://sdk.test:8080"


class TestCarbonAwareHourlyContract(ProviderContract):
    """An Electricity Maps-backed SDK: hourly data, current forecasts, a gateway key."""

    now = datetime(2024, 6, 1, 12, 10, tzinfo=UTC)
    zones = ["DE", "US-MIDA-PJM"]
    secrets = ("gw-contract-secret",)

    def make_provider(self, clock: ManualClock) -> CarbonAwareSDKProvider:
        api = FakeCarbonAwareAPI(clock)
        api.echo_requested = True
        return CarbonAwareSDKProvider(
            base_url=BASE,
            signal="average",
            api_key="gw-contract-secret",
            transport=httpx.MockTransport(api),
            clock=clock,
        )


class TestCarbonAwareWattTimeContract(ProviderContract):
    """A WattTime-backed SDK: 5-minute data echoing regions, batch forecasts, no cache."""

    now = datetime(2024, 12, 31, 23, 45, tzinfo=UTC)
    zones = ["GB", "IE", "NL"]

    def make_provider(self, clock: ManualClock) -> CarbonAwareSDKProvider:
        api = FakeCarbonAwareAPI(clock, native=timedelta(minutes=5))
        return CarbonAwareSDKProvider(
            base_url=BASE,
            signal="marginal",
            forecasts="batch",
            cache_ttl_s=0,
            transport=httpx.MockTransport(api),
            clock=clock,
        )
