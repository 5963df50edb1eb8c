"""carbon-aware-sdk replayed from cassettes/carbon-aware-sdk/: the library (sync and async) and the CLI.

The cassettes stand for a deployment at ``http://localhost:8080`` (the SDK container's
port), which is also where a re-recording looks for one. Expectations are read from the
cassettes' own bodies where possible, so the tests still hold after re-recording; fault
cassettes are ``handmade`` and assert exact behaviour.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from vcr.cassette import Cassette

from lowcarb import ManualClock
from lowcarb.backends._carbonaware import CarbonAwareSDKProvider
from lowcarb.cli import main
from lowcarb.exceptions import (
    AuthenticationError,
    NoDataError,
    ResponseParseError,
    UnknownZoneError,
)

CASSETTES = "carbon-aware-sdk"
pytestmark = pytest.mark.vcr

BASE = "http://localhost:8080"
NOW = datetime(2024, 6, 1, 12, 10, tzinfo=UTC)
NOW_TEXT = "2024-06-01T12:10Z"
SLOT = datetime(2024, 6, 1, 12, tzinfo=UTC)
HOUR = timedelta(hours=1)


def provider(clock: ManualClock | None = None, **options: Any) -> CarbonAwareSDKProvider:
    return CarbonAwareSDKProvider(base_url=BASE, clock=clock or ManualClock(NOW), **options)


@pytest.fixture
def forecast_now(request: pytest.FixtureRequest) -> datetime:
    """NOW when replaying; the real time when re-recording (the SDK forecasts from now)."""
    if request.config.getoption("--vcr-record") in (None, "none"):
        return NOW
    return datetime.now(UTC).replace(second=0, microsecond=0)


def body(cassette: Cassette, needle: str) -> Any:
    """The JSON body of the cassette's 200 answer to the request whose URI contains ``needle``."""
    for request, response in zip(cassette.requests, cassette.responses, strict=True):
        if needle in request.uri and response["status"]["code"] == 200:
            return json.loads(response["body"]["string"])
    raise AssertionError(f"no 200 answer for ...{needle} in the cassette")


def hourly_means(items: list[dict[str, Any]], field: str, stamp: str) -> dict[datetime, float]:
    """The mean of each hour's values, as lowcarb puts finer intervals on its hourly grid."""
    hours: dict[datetime, list[float]] = {}
    for item in items:
        start = datetime.fromisoformat(item[stamp]).astimezone(UTC)
        hours.setdefault(start.replace(minute=0), []).append(item[field])
    return {hour: sum(v) / len(v) for hour, v in hours.items()}


# -- latest, history, forecasts ---------------------------------------------------------------


@pytest.mark.vcr("latest")
def test_latest_is_tied_to_the_requested_location(vcr_cassette):
    series = provider(signal="marginal").latest(["DE", "US-MIDA-PJM"])
    assert list(series.values.index) == [SLOT]
    for zone, location in (("DE", "germanywestcentral"), ("US-MIDA-PJM", "eastus")):
        items = body(vcr_cassette, f"location={location}&")
        # The SDK names WattTime's regions (DE, PJM_DC), never the location asked ...
        assert {i["location"] for i in items} != {location}
        # ... yet each value is the one answered to that zone's own request.
        expected = hourly_means(items, "rating", "time")[SLOT]
        assert series.at(zone, NOW) == pytest.approx(expected)
    (note,) = [n for n in series.notes if "named its data source's regions" in n]
    assert "US-MIDA-PJM asked as eastus, named PJM_DC" in note
    assert (series.signal, series.basis) == ("marginal", "direct")
    # Newest first is the SDK's own order, not a disorder lowcarb repaired.
    assert not any("order" in n for n in series.notes)
    assert vcr_cassette.all_played


@pytest.mark.vcr("history")
def test_history(vcr_cassette):
    series = provider(signal="average").history(["DE"], SLOT - timedelta(days=1), SLOT)
    items = {datetime.fromisoformat(i["time"]): i["rating"] for i in body(vcr_cassette, "")}
    assert len(series) == 24 and series.start == SLOT - timedelta(days=1) and series.end == SLOT
    for start in series.values.index:
        assert series.values.at[start, "DE"] == items[start]
    assert not series.notes or not any("twice" in n for n in series.notes)
    # Newest first, with hours outside the window: the SDK's normal answer, nothing repaired.
    assert not any("order" in n for n in series.notes)
    assert not series.estimated_mask().any().any()
    assert not series.is_forecast and vcr_cassette.all_played


@pytest.mark.vcr("forecast_current")
def test_current_forecast(vcr_cassette, forecast_now):
    series = provider(ManualClock(forecast_now)).forecast(["DE"], horizon=6 * HOUR)
    (dto,) = body(vcr_cassette, "forecasts/current")
    values = {datetime.fromisoformat(i["timestamp"]): i["value"] for i in dto["forecastData"]}
    assert series.is_forecast and series.issued_at == forecast_now and len(series) == 6
    for start in series.values.index:
        assert series.values.at[start, "DE"] == values[start]


@pytest.mark.vcr("forecast_batch")
def test_batch_forecast_sync_and_async_agree(vcr_cassette):
    p = provider(forecasts="batch", signal="marginal")
    sync = p.forecast(["GB", "US-MIDA-PJM"], horizon=3 * HOUR)
    dtos = body(vcr_cassette, "forecasts/batch")
    for zone, dto in zip(["GB", "US-MIDA-PJM"], dtos, strict=True):
        means = hourly_means(dto["forecastData"], "value", "timestamp")
        for start in sync.values.index:
            assert sync.values.at[start, zone] == pytest.approx(means[start])
    sent = json.loads(vcr_cassette.requests[0].body)
    assert [e["location"] for e in sent] == ["uksouth", "eastus"]

    async def run():
        async with provider(forecasts="batch", signal="marginal").to_async() as ap:
            return await ap.forecast(["GB", "US-MIDA-PJM"], horizon=3 * HOUR)

    vcr_cassette.allow_playback_repeats = True  # a second provider asks again
    got = asyncio.run(run())
    assert got.values.equals(sync.values)


# -- locations --------------------------------------------------------------------------------


@pytest.mark.vcr("location_lookup")
def test_location_lookup(vcr_cassette):
    found = provider().resolve("ukwest")
    assert "ukwest" in body(vcr_cassette, "/locations")
    assert (found.zone, found.method) == ("GB", "provider")


@pytest.mark.vcr("location_lookup_documented")
def test_location_lookup_in_the_documented_pascal_case(vcr_cassette):
    found = provider().resolve("ukwest")
    assert "Latitude" in body(vcr_cassette, "/locations")["ukwest"]
    assert (found.zone, found.method) == ("GB", "provider")


@pytest.mark.vcr("unknown_location")
def test_unknown_location_suggests_known_ones(vcr_cassette):
    p = provider(locations=["DE=germanywestcentrl"])
    with pytest.raises(UnknownZoneError) as info:
        p.latest(["DE"])
    assert info.value.zone == "DE" and info.value.suggestions[0] == "germanywestcentral"
    assert "Unknown Location: 'germanywestcentrl' not found" in str(info.value)
    assert vcr_cassette.play_count == 2


@pytest.mark.handmade
@pytest.mark.vcr("no_data_204")
def test_204_is_no_data(vcr_cassette):
    with pytest.raises(NoDataError, match="no data for DE"):
        provider().latest(["DE"])
    assert vcr_cassette.play_count == 1


# -- faults (hand-written) ------------------------------------------------------------------


@pytest.mark.handmade
@pytest.mark.vcr("error_429_then_ok")
def test_rate_limited_then_answered(vcr_cassette):
    clock = ManualClock(NOW)
    assert len(provider(clock).latest(["DE"])) == 1
    assert clock.now() == NOW + timedelta(seconds=5) and vcr_cassette.play_count == 2


@pytest.mark.handmade
@pytest.mark.vcr("error_5xx_then_ok")
def test_server_errors_then_answered(vcr_cassette):
    clock = ManualClock(NOW)
    series = provider(clock).history(["DE"], SLOT - 6 * HOUR, SLOT)
    assert len(series) == 6 and vcr_cassette.play_count == 3
    waited = (clock.now() - NOW).total_seconds()
    assert 0.25 + 0.5 <= waited <= 0.5 + 1.0  # two backoffs with jitter


@pytest.mark.handmade
@pytest.mark.vcr("error_empty_data")
def test_empty_forecast_is_no_data(vcr_cassette):
    with pytest.raises(NoDataError, match="no data for DE"):
        provider().forecast(["DE"], horizon=6 * HOUR)


@pytest.mark.handmade
@pytest.mark.vcr("error_malformed")
def test_truncated_body_names_the_request(vcr_cassette):
    with pytest.raises(ResponseParseError, match="not valid JSON") as info:
        provider().latest(["DE"])
    assert f"GET {BASE}/emissions/bylocation?location=germanywestcentral" in str(info.value)


@pytest.mark.handmade
@pytest.mark.vcr("error_401_gateway")
def test_bad_gateway_key(vcr_cassette):
    with pytest.raises(AuthenticationError) as info:
        provider(api_key="wrong-gateway-key-42").latest(["DE"])
    text = str(info.value)
    assert "LOWCARB_CARBON_AWARE_SDK_API_KEY" in text and "invalid subscription key" in text
    assert "wrong-gateway-key-42" not in text and vcr_cassette.play_count == 1


# -- the command line -------------------------------------------------------------------------


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.vcr("latest")
def test_cli_latest(capsys, vcr_cassette):
    code, out, err = run(
        capsys,
        "latest",
        "-p",
        "carbon-aware-sdk",
        "-o",
        f"base_url={BASE}",
        "-o",
        "signal=marginal",
        "-z",
        "DE",
        "-z",
        "azure:eastus",
        "--now",
        NOW_TEXT,
        "--json",
    )
    assert code == 0, err
    payload = json.loads(out)
    assert payload["provider"] == "carbon-aware-sdk" and payload["signal"] == "marginal"
    assert list(payload["data"]) == ["DE", "US-MIDA-PJM"]
    assert payload["resolved"][1]["method"] == "cloud-region"
    assert vcr_cassette.play_count == 2


@pytest.mark.vcr("history")
def test_cli_history_base_url_from_the_environment(capsys, monkeypatch, vcr_cassette):
    monkeypatch.setenv("LOWCARB_CARBON_AWARE_SDK_BASE_URL", BASE)
    code, out, err = run(
        capsys,
        "history",
        "-p",
        "carbon-aware-sdk",
        "-z",
        "germanywestcentral",
        "--start",
        "2024-05-31T12:00Z",
        "--end",
        "2024-06-01T12:00Z",
        "--now",
        NOW_TEXT,
        "--json",
    )
    assert code == 0, err
    payload = json.loads(out)
    assert payload["resolved"][0]["zone"] == "DE" and payload["resolved"][0]["method"] == "name"
    assert len(payload["data"]["DE"]) == 24


@pytest.mark.vcr("forecast_current")
def test_cli_forecast(capsys, vcr_cassette, forecast_now):
    code, out, err = run(
        capsys,
        "forecast",
        "-p",
        "carbon-aware-sdk",
        "-o",
        f"base_url={BASE}",
        "-z",
        "DE",
        "--hours",
        "6",
        "--now",
        forecast_now.isoformat(),
    )
    assert code == 0, err
    last = forecast_now.replace(minute=0) + 5 * HOUR
    assert f"forecast issued {forecast_now:%Y-%m-%d %H:%M}Z" in out
    assert f"{last:%Y-%m-%d %H:%M}" in out and "labelled 'average' unverified" in out


@pytest.mark.vcr("no_http")
def test_cli_zones_needs_no_http(capsys, vcr_cassette):
    code, out, err = run(
        capsys, "zones", "-p", "carbon-aware-sdk", "-o", f"base_url={BASE}", "--json"
    )
    assert code == 0, err
    zones = {z["zone"]: z for z in json.loads(out)["zones"]}
    assert zones["DE"]["name"] == "Germany (SDK: germanywestcentral)"
    assert vcr_cassette.play_count == 0


def test_cli_without_base_url_says_what_to_set(capsys):
    code, out, err = run(capsys, "zones", "-p", "carbon-aware-sdk")
    assert code == 2 and out == ""
    assert "LOWCARB_CARBON_AWARE_SDK_BASE_URL" in err


@pytest.mark.handmade
@pytest.mark.vcr("error_401_gateway")
def test_cli_bad_key_is_one_line(capsys, monkeypatch, vcr_cassette):
    monkeypatch.setenv("LOWCARB_CARBON_AWARE_SDK_API_KEY", "wrong-gateway-key-42")
    code, out, err = run(
        capsys,
        "latest",
        "-p",
        "carbon-aware-sdk",
        "-o",
        f"base_url={BASE}",
        "-z",
        "DE",
        "--now",
        NOW_TEXT,
    )
    assert code == 1 and out == "" and "Traceback" not in err
    assert err.startswith("error: carbon-aware-sdk: GET http://localhost:8080/emissions/")
    assert "wrong-gateway-key-42" not in err
