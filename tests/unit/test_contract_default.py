from datetime import UTC, datetime

from lowcarb.backends import DefaultProvider
from lowcarb.testing import ManualClock, ProviderContract


class TestDefaultContract(ProviderContract):
    now = datetime(2024, 6, 1, 12, 30, tzinfo=UTC)
    zones = ["DE", "US-CAL-CISO"]

    def make_provider(self, clock: ManualClock) -> DefaultProvider:
        return DefaultProvider(clock=clock)


class TestDefaultDirectContract(TestDefaultContract):
    def make_provider(self, clock: ManualClock) -> DefaultProvider:
        return DefaultProvider(basis="direct", seed=3, clock=clock)
