"""The contract checks each provider's real async face, so a broken one fails it.

The contract classes are reached through their modules: a ``Test*`` class imported by
name would be collected (and run) here a second time.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import test_contract_default as default_contract
import test_contract_electricitymaps as em_contract
import test_contract_ukcarbon as uk_contract
from _electricitymaps_api import TOKEN, FakeElectricityMapsAPI
from _ukcarbon_api import FakeUKCarbonAPI

from lowcarb import ManualClock, ThreadedAsyncProvider
from lowcarb.backends import ElectricityMapsProvider, UKCarbonIntensityProvider
from lowcarb.backends.toolkit import AsyncHttpProvider, IntensitySeries
from lowcarb.testing import ProviderContract

NOW = datetime(2024, 6, 1, 12, 10, tzinfo=UTC)


def run_check(contract: ProviderContract) -> None:
    contract.test_async_matches_sync(contract.make_provider(ManualClock(contract.now)))


@pytest.mark.parametrize(
    "contract",
    [uk_contract.TestUKCarbonNationalContract, em_contract.TestElectricityMapsContract],
)
@pytest.mark.parametrize("operation", ["latest", "history", "forecast", "served_zones"])
def test_a_broken_async_face_fails_the_contract(monkeypatch, contract, operation):
    run_check(contract())  # sound as built

    async def broken(self, *args, **kwargs):
        raise RuntimeError(f"async {operation} is broken")

    monkeypatch.setattr(AsyncHttpProvider, operation, broken)
    with pytest.raises(RuntimeError, match="is broken"):
        run_check(contract())


def test_an_async_face_that_answers_differently_fails_the_contract(monkeypatch):
    real = AsyncHttpProvider.history

    async def shifted(self, zones, start, end) -> IntensitySeries:
        series = await real(self, zones, start, end)
        return series.with_values(series.values + 1.0)

    monkeypatch.setattr(AsyncHttpProvider, "history", shifted)
    with pytest.raises(AssertionError, match="history"):
        run_check(uk_contract.TestUKCarbonNationalContract())


def test_network_providers_have_a_native_async_face_and_local_ones_a_thread():
    clock = ManualClock(NOW)
    uk = UKCarbonIntensityProvider(transport=httpx.MockTransport(FakeUKCarbonAPI(clock)))
    em = ElectricityMapsProvider(
        token=TOKEN, transport=httpx.MockTransport(FakeElectricityMapsAPI(clock)), clock=clock
    )
    assert type(uk.to_async()) is AsyncHttpProvider
    assert type(em.to_async()) is AsyncHttpProvider  # no per-provider async subclass
    local = default_contract.TestDefaultContract().make_provider(clock)
    assert isinstance(local.to_async(), ThreadedAsyncProvider)


def test_the_async_face_shares_a_mock_transport_and_its_zone_table(monkeypatch):
    clock = ManualClock(NOW)
    api = FakeElectricityMapsAPI(clock)
    p = ElectricityMapsProvider(token=TOKEN, transport=httpx.MockTransport(api), clock=clock)

    async def run() -> list[str]:
        async with p.to_async() as face:  # no transport given: the provider's own serves
            zones = await face.served_zones()
            await face.forecast(["DE"], horizon=timedelta(hours=3))
            return zones

    zones = asyncio.run(run())
    assert zones == p.served_zones() and api.paths.count("/zones") == 1
    assert p._driver._client is None  # the sync client never ran
