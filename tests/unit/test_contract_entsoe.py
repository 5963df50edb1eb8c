from datetime import UTC, datetime, timedelta

from _entsoe_api import TOKEN, FakeEntsoeAPI, session_for

from lowcarb.backends._entsoe import EntsoeProvider
from lowcarb.testing import ManualClock, ProviderContract


class TestEntsoeHourlyContract(ProviderContract):
    now = datetime(2024, 6, 1, 12, 10, tzinfo=UTC)
    zones = ["DE", "SE-SE3"]
    secrets = (TOKEN,)

    def make_provider(self, clock: ManualClock) -> EntsoeProvider:
        return EntsoeProvider(token=TOKEN, session=session_for(FakeEntsoeAPI(clock)), clock=clock)


class TestEntsoeQuarterHourContract(ProviderContract):
    """15-minute market time units (most areas since 2025), direct factors, no cache."""

    now = datetime(2025, 12, 31, 23, 50, tzinfo=UTC)
    zones = ["IT-NO", "DK-DK1", "NO-NO2"]
    secrets = (TOKEN,)

    def make_provider(self, clock: ManualClock) -> EntsoeProvider:
        api = FakeEntsoeAPI(clock, step=timedelta(minutes=15))
        return EntsoeProvider(
            token=TOKEN,
            session=session_for(api),
            clock=clock,
            emission_factor_type="direct",
            cache_ttl_s=0,
        )
