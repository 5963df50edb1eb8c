"""ukcarbon replayed from cassettes/ukcarbon/: the library (sync and async) and the CLI.

Expectations are read from the cassette's own bodies where possible, so that the tests
still hold after the cassettes are re-recorded from the live API. Fault cassettes are
``handmade`` and assert exact behaviour.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from vcr.cassette import Cassette

from lowcarb import ManualClock
from lowcarb.backends import UKCarbonIntensityProvider
from lowcarb.cli import main
from lowcarb.exceptions import (
    NoDataError,
    ProviderUnavailableError,
    ResponseParseError,
    UnknownZoneError,
)

CASSETTES = "ukcarbon"
pytestmark = pytest.mark.vcr

NOW = datetime(2024, 6, 1, 12, 10, tzinfo=UTC)
NOW_TEXT = "2024-06-01T12:10Z"
SLOT = datetime(2024, 6, 1, 12, tzinfo=UTC)
DAY_BEFORE = SLOT - timedelta(days=1)
ALL_ZONES = ["GB", *(f"GB-R{i}" for i in range(1, 18))]
HALF = timedelta(minutes=30)


def provider(clock: ManualClock | None = None) -> UKCarbonIntensityProvider:
    return UKCarbonIntensityProvider(clock=clock or ManualClock(NOW))


def body(cassette: Cassette, path_end: str) -> Any:
    """The JSON body of the cassette's answer whose URI ends with ``path_end``."""
    for request, response in zip(cassette.requests, cassette.responses, strict=True):
        if request.uri.endswith(path_end) and response["status"]["code"] == 200:
            return json.loads(response["body"]["string"])
    raise AssertionError(f"no 200 answer for ...{path_end} in the cassette")


def periods(payload: Any) -> list[dict[str, Any]]:
    """Half-hour items of a national or single-region answer, whatever the data shape."""
    data = payload["data"]
    data = [data] if isinstance(data, dict) else data
    if data and "regionid" in data[0]:
        inner = data[0]["data"]
        return [inner] if isinstance(inner, dict) else inner
    return data


def measured(item: dict[str, Any]) -> tuple[float, bool]:
    """The value lowcarb reports for a history item, and whether it is flagged estimated."""
    intensity = item["intensity"]
    if intensity.get("actual") is not None:
        return float(intensity["actual"]), False
    return float(intensity["forecast"]), True


def stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%MZ")


# -- latest -----------------------------------------------------------------------------------


@pytest.mark.vcr("latest_national")
def test_latest_national(vcr_cassette):
    series = provider().latest(["GB"])
    (item,) = [i for i in periods(body(vcr_cassette, "12:30Z")) if i["from"] == stamp(SLOT)]
    value, estimated = measured(item)
    assert list(series.values.index) == [SLOT]
    assert series.at("GB", NOW) == value
    assert bool(series.estimated_mask().loc[SLOT, "GB"]) is estimated
    assert (series.provider, series.signal, series.basis) == ("ukcarbon", "average", "direct")
    assert vcr_cassette.all_played


@pytest.mark.vcr("latest_region")
def test_latest_one_region(vcr_cassette):
    series = provider().latest(["GB-R13"])
    (item,) = [i for i in periods(body(vcr_cassette, "regionid/13")) if i["from"] == stamp(SLOT)]
    assert series.at("GB-R13", NOW) == item["intensity"]["forecast"]
    assert series.estimated_mask().loc[SLOT, "GB-R13"]
    assert vcr_cassette.all_played


@pytest.mark.vcr("latest_all")
def test_latest_every_zone_in_two_requests(vcr_cassette):
    series = provider().latest(ALL_ZONES)
    assert series.zones == ALL_ZONES and list(series.values.index) == [SLOT]
    regions = body(vcr_cassette, "/regional/intensity/2024-06-01T11:00Z/2024-06-01T12:30Z")
    (current,) = [i for i in regions["data"] if i["from"] == stamp(SLOT)]
    by_id = {r["regionid"]: r["intensity"]["forecast"] for r in current["regions"]}
    for region_id in range(1, 18):
        assert series.at(f"GB-R{region_id}", NOW) == by_id[region_id]
    assert vcr_cassette.play_count == 2 and vcr_cassette.all_played


# -- history --------------------------------------------------------------------------------


@pytest.mark.vcr("history_national")
def test_history_national(vcr_cassette):
    series = provider().history(["GB"], DAY_BEFORE, SLOT)
    assert series.start == DAY_BEFORE and series.end == SLOT and len(series) == 48
    items = {i["from"]: i for i in periods(body(vcr_cassette, "2024-06-01T12:00Z"))}
    for start in series.values.index:
        value, estimated = measured(items[stamp(start)])
        assert series.values.at[start, "GB"] == value
        assert bool(series.estimated_mask().at[start, "GB"]) is estimated
    assert not series.is_forecast and vcr_cassette.all_played


@pytest.mark.vcr("history_region")
def test_history_one_region(vcr_cassette):
    series = provider().history(["GB-R13"], DAY_BEFORE, SLOT)
    answered = periods(body(vcr_cassette, "regionid/13"))
    items = {i["from"]: i for i in answered}
    # The API's first half-hour is the one ending at {from}: cut away, not a 49th value.
    assert answered[0]["to"] == stamp(DAY_BEFORE)
    assert len(series) == 48 and series.start == DAY_BEFORE
    for start in series.values.index:
        assert series.values.at[start, "GB-R13"] == items[stamp(start)]["intensity"]["forecast"]
    assert series.estimated_mask()["GB-R13"].all()


# -- forecast -------------------------------------------------------------------------------


@pytest.mark.vcr("forecast_national")
def test_forecast_national_48h(vcr_cassette):
    series = provider().forecast(["GB"], horizon=timedelta(hours=48))
    answered = periods(body(vcr_cassette, "fw48h"))
    items = {i["from"]: i for i in answered}
    assert series.is_forecast and series.issued_at == NOW
    assert len(series) == 96 and series.start == SLOT and series.values["GB"].notna().all()
    # 97 half-hours, those ending at {from} .. {from} + 48 h: the first is cut away.
    assert answered[0]["to"] == stamp(SLOT) and answered[-1]["to"] == stamp(SLOT + 96 * HALF)
    for start in series.values.index:
        assert series.values.at[start, "GB"] == items[stamp(start)]["intensity"]["forecast"]


@pytest.mark.vcr("forecast_region")
def test_forecast_region_sync_and_async_agree(vcr_cassette):
    sync = provider().forecast(["GB-R13"], horizon=timedelta(hours=12))

    async def run():
        async with provider().to_async() as p:
            return await p.forecast(["GB-R13"], horizon=timedelta(hours=12))

    assert vcr_cassette.play_count == 1
    # A fresh cassette cannot replay the same request twice; a second provider asks again.
    vcr_cassette.allow_playback_repeats = True
    got = asyncio.run(run())
    assert got.values.equals(sync.values) and len(got) == 24


# -- zone lookup ----------------------------------------------------------------------------


@pytest.mark.vcr("regions")
def test_region_names_are_the_apis_own(vcr_cassette):
    p = provider()
    (listed,) = body(vcr_cassette, "/regional")["data"]
    names = {z.zone: z.name for z in p.zones()}
    for region in listed["regions"]:
        if region["regionid"] <= 17:
            zone = f"GB-R{region['regionid']}"
            assert names[zone] == region["shortname"]
            assert p.resolve(region["shortname"]).zone == zone
            assert p.resolve(region["dnoregion"]).zone == zone
    assert vcr_cassette.play_count == 1  # asked once


@pytest.mark.vcr("postcode_lookup")
def test_postcode_lookup(vcr_cassette):
    found = provider().resolve("postcode:RG10 9AB")
    region = body(vcr_cassette, "RG10")["data"]
    region = region[0] if isinstance(region, list) else region
    assert found.zone == f"GB-R{region['regionid']}" and found.method == "provider"


@pytest.mark.vcr("postcode_unknown")
def test_unknown_postcode(vcr_cassette):
    with pytest.raises(UnknownZoneError) as info:
        provider().resolve("postcode:ZZ9")
    assert "ZZ9" in str(info.value) and vcr_cassette.all_played


# -- faults (hand-written) ------------------------------------------------------------------


@pytest.mark.handmade
@pytest.mark.vcr("error_429_then_ok")
def test_rate_limited_then_answered(vcr_cassette):
    clock = ManualClock(NOW)
    series = provider(clock).latest(["GB"])
    assert len(series) == 1
    assert clock.now() == NOW + timedelta(seconds=5)  # Retry-After, on the clock
    assert vcr_cassette.play_count == 2


@pytest.mark.handmade
@pytest.mark.vcr("error_5xx_then_ok")
def test_server_errors_then_answered(vcr_cassette):
    clock = ManualClock(NOW)
    series = provider(clock).history(["GB"], SLOT - timedelta(hours=2), SLOT)
    assert len(series) == 4 and vcr_cassette.play_count == 3
    waited = (clock.now() - NOW).total_seconds()
    assert 0.25 + 0.5 <= waited <= 0.5 + 1.0  # two backoffs with jitter


@pytest.mark.handmade
@pytest.mark.vcr("error_500")
def test_internal_error_is_not_retried(vcr_cassette):
    with pytest.raises(ProviderUnavailableError, match="Requested resource not found") as info:
        provider().latest(["GB"])
    assert info.value.status_code == 500 and vcr_cassette.play_count == 1


@pytest.mark.handmade
@pytest.mark.vcr("error_empty_data")
def test_empty_data_is_no_data(vcr_cassette):
    with pytest.raises(NoDataError, match="no data for GB"):
        provider().forecast(["GB"], horizon=timedelta(hours=6))


@pytest.mark.handmade
@pytest.mark.vcr("error_malformed")
def test_truncated_body_names_the_request(vcr_cassette):
    with pytest.raises(ResponseParseError, match="not valid JSON") as info:
        provider().forecast(["GB"], horizon=timedelta(hours=6))
    assert "GET https://api.carbonintensity.org.uk/intensity/2024-06-01T12:00Z/fw48h" in str(
        info.value
    )


# -- the command line -----------------------------------------------------------------------


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.vcr("latest_all")
def test_cli_latest_every_zone(capsys, vcr_cassette):
    code, out, err = run(capsys, "latest", "-p", "ukcarbon", "--now", NOW_TEXT, "--json")
    assert code == 0, err
    payload = json.loads(out)
    assert payload["provider"] == "ukcarbon" and payload["basis"] == "direct"
    assert list(payload["data"]) == ALL_ZONES
    assert all(len(rows) == 1 for rows in payload["data"].values())
    assert vcr_cassette.play_count == 2


@pytest.mark.vcr("latest_all")
def test_cli_latest_table(capsys, vcr_cassette):
    code, out, err = run(capsys, "latest", "-p", "ukcarbon", "--now", NOW_TEXT)
    assert code == 0, err
    assert "GB-R13" in out and "provider ukcarbon, average signal, direct basis" in out
    assert "* estimated or repaired value" in out


@pytest.mark.vcr("forecast_national")
def test_cli_forecast(capsys, vcr_cassette):
    code, out, err = run(
        capsys, "forecast", "-p", "ukcarbon", "-z", "GB", "--hours", "6", "--now", NOW_TEXT
    )
    assert code == 0, err
    assert "forecast issued 2024-06-01 12:10Z" in out and "2024-06-01 17:30" in out


@pytest.mark.vcr("history_region")
def test_cli_history_by_region_name(capsys, vcr_cassette):
    code, out, err = run(
        capsys,
        "history",
        "-p",
        "ukcarbon",
        "-z",
        "London",
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
    assert payload["resolved"] == [
        {"query": "London", "zone": "GB-R13", "method": "name", "distance_km": None}
    ]
    assert len(payload["data"]["GB-R13"]) == 48


@pytest.mark.vcr("postcode_lookup")
def test_cli_resolve_postcode(capsys, vcr_cassette):
    code, out, err = run(capsys, "resolve", "postcode:RG10", "-p", "ukcarbon", "--json")
    assert code == 0, err
    assert json.loads(out)[0]["method"] == "provider"


@pytest.mark.vcr("regions")
def test_cli_zones_names_regions_as_the_api_does(capsys, vcr_cassette):
    code, out, err = run(capsys, "zones", "-p", "ukcarbon", "--json")
    assert code == 0, err
    zones = json.loads(out)["zones"]
    assert [z["zone"] for z in zones] == ALL_ZONES
    assert {"zone": "GB-R13", "name": "London"}.items() <= zones[ALL_ZONES.index("GB-R13")].items()
    (listed,) = body(vcr_cassette, "/regional")["data"]
    six = next(r["shortname"] for r in listed["regions"] if r["regionid"] == 6)
    assert zones[ALL_ZONES.index("GB-R6")]["name"] == six
    assert vcr_cassette.play_count == 1


@pytest.mark.handmade
@pytest.mark.vcr("error_500")
def test_cli_provider_failure_is_one_line(capsys, vcr_cassette):
    code, out, err = run(capsys, "latest", "-p", "ukcarbon", "-z", "GB", "--now", NOW_TEXT)
    assert code == 1 and out == ""
    assert err.startswith("error: ukcarbon: GET https://api.carbonintensity.org.uk/intensity/")
    assert "-> 500" in err and "Traceback" not in err
