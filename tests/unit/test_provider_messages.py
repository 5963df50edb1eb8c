"""What providers and the zone resolver say when something is wrong: once, and about the
data the user gave."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import httpx
import pytest

from lowcarb import ManualClock
from lowcarb.backends._electricitymaps import ElectricityMapsProvider
from lowcarb.exceptions import ProviderError


def test_an_unreachable_provider_warns_once_before_it_fails(caplog):
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    clock = ManualClock(datetime(2024, 6, 1, 12, tzinfo=UTC))
    provider = ElectricityMapsProvider(
        token="a-test-token", transport=httpx.MockTransport(refuse), clock=clock, max_attempts=1
    )
    with caplog.at_level(logging.WARNING), provider:
        assert provider.resolve("DE").zone == "DE"  # the catalog stands in for /zones
        assert provider.resolve("GB").zone == "GB"
        with pytest.raises(ProviderError):
            provider.latest(["DE"])
    warned = [r for r in caplog.records if "assuming the configured" in r.getMessage()]
    assert len(warned) == 1, [r.getMessage() for r in caplog.records]
