"""What providers and the zone resolver say when something is wrong: once, and about the
data the user gave."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import httpx
import pytest

from lowcarb import ManualClock
from lowcarb._zones import resolve_zone
from lowcarb.backends._electricitymaps import ElectricityMapsProvider
from lowcarb.exceptions import NoDataError, ProviderError, UnknownZoneError
from lowcarb.simulation import Scenario, simulate


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


def test_a_catalog_zone_the_provider_lacks_gets_its_neighbours_not_its_spelling():
    from lowcarb import get_provider_class

    served = get_provider_class("default")().served_zones()
    assert "FR" not in served
    for query in ("FR", "france"):
        with pytest.raises(UnknownZoneError) as info:
            resolve_zone(query, served, where="default")
        assert info.value.suggestions[:2] == ["GB", "DE"], info.value.suggestions
        assert "France" in str(info.value)
        assert "ZA" not in info.value.suggestions and "KR" not in info.value.suggestions


def _csv(tmp_path):
    csv = tmp_path / "ci.csv"
    rows = ["datetime_utc,DE,GB"] + [
        f"2024-01-{1 + h // 24:02d}T{h % 24:02d}:00:00Z,{300 + h % 24},{200 + h % 7}"
        for h in range(24 * 20)
    ]
    csv.write_text("\n".join(rows) + "\n")
    return csv


SMALL = {"hours": 6, "clients": 4, "per_round": 2, "learning": "none", "policies": ("random",)}


def test_an_unknown_zone_in_given_data_lists_that_data_and_not_lowcarb_zones(tmp_path):
    scenario = Scenario(**SMALL, zones=("DE", "SG"), data=_csv(tmp_path))
    with pytest.raises(UnknownZoneError) as info:
        simulate(scenario)
    message = str(info.value)
    assert "the data has DE, GB" in message
    assert "lowcarb zones" not in message
    with pytest.raises(UnknownZoneError, match=r"lowcarb zones -p default"):
        simulate(Scenario(**SMALL, zones=("DE", "XX")))


def test_a_window_outside_the_data_names_start_hours_and_the_datas_range(tmp_path):
    scenario = Scenario(
        **SMALL, zones=("DE", "GB"), data=_csv(tmp_path), start=datetime(2023, 6, 1, tzinfo=UTC)
    )
    with pytest.raises(NoDataError) as info:
        simulate(scenario)
    message = str(info.value)
    assert "--start" in message and "--hours" in message
    assert "2024-01-01T00:00:00Z .. 2024-01-21T00:00:00Z" in message
