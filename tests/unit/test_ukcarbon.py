"""The ukcarbon provider over a fake of the API (httpx.MockTransport): requests, parsing, faults."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import pytest
from _ukcarbon_api import FakeUKCarbonAPI, error, national_value, regional_value, stamp

import lowcarb
from lowcarb import ManualClock, load_settings
from lowcarb.backends import UKCarbonIntensityProvider
from lowcarb.backends._ukcarbon import outward_postcode
from lowcarb.exceptions import (
    ConfigurationError,
    InvalidInputError,
    NoDataError,
    ProviderError,
    ProviderUnavailableError,
    RateLimitedError,
    ResponseParseError,
    UnknownZoneError,
)

NOW = datetime(2024, 6, 1, 12, 10, tzinfo=UTC)
SLOT = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
HALF = timedelta(minutes=30)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def api(clock: ManualClock) -> FakeUKCarbonAPI:
    return FakeUKCarbonAPI(clock)


def make(api: FakeUKCarbonAPI, clock: ManualClock, **options) -> UKCarbonIntensityProvider:
    return UKCarbonIntensityProvider(transport=httpx.MockTransport(api), clock=clock, **options)


# -- zones and capabilities -----------------------------------------------------------------


def test_zones_capabilities_and_registry(api, clock):
    p = make(api, clock)
    assert lowcarb.get_provider_class("ukcarbon") is UKCarbonIntensityProvider
    assert p.served_zones() == ["GB", *(f"GB-R{i}" for i in range(1, 18))]
    caps = p.capabilities
    assert (caps.signal, caps.basis, caps.resolution) == ("average", "direct", HALF)
    assert caps.forecast_horizon == timedelta(hours=48)
    assert api.requests == []  # none of this touches the network
    names = {z.zone: z.name for z in p.zones()}
    assert names["GB"] == "Great Britain" and names["GB-R13"] == "London"
    assert api.paths == ["/regional"]  # the region names are the API's own


def test_region_names_are_the_apis_own(api, clock):
    # lowcarb called region 6 "North Wales & Merseyside", the API "North Wales and
    # Merseyside"; whatever the API calls a region is its name, and resolves.
    api.names[11] = ("WPD South West", "Cornwall, Devon and beyond")
    p = make(api, clock)
    names = {z.zone: z.name for z in p.zones()}
    assert names["GB-R6"] == "North Wales and Merseyside"
    assert names["GB-R11"] == "Cornwall, Devon and beyond"
    assert names["GB-R12"] == "South England"
    found = p.resolve("North Wales and Merseyside")
    assert (found.zone, found.method) == ("GB-R6", "name")
    assert p.resolve("cornwall,  devon and beyond").zone == "GB-R11"
    assert p.resolve("SP Manweb").zone == "GB-R6"  # the DNO's name too
    assert p.resolve("North Wales & Merseyside").zone == "GB-R6"  # "&" reads as "and"
    assert api.paths == ["/regional"]  # asked once


def test_region_names_fall_back_to_lowcarbs_when_the_api_cannot_say(api, clock, caplog):
    api.script = [error(500, "Requested resource not found.")]
    p = make(api, clock)
    with caplog.at_level(logging.WARNING, logger="lowcarb.backends.ukcarbon"):
        names = {z.zone: z.name for z in p.zones()}
    assert (
        names["GB-R6"] == "North Wales and Merseyside" and names["GB-R11"] == "South West England"
    )
    assert "region names" in caplog.text and "lowcarb's own" in caplog.text
    assert p.resolve("London").zone == "GB-R13"
    assert api.paths == ["/regional"]  # the failure is not asked again at once


def test_region_names_resolve_ids_and_places_without_a_request(api, clock):
    p = make(api, clock)
    assert p.resolve("gb-r7").method == "zone"
    assert p.resolve("51.5,-0.1").zone == "GB"  # coordinates: the national zone
    assert p.resolve("aws:eu-west-2").zone == "GB"
    with pytest.raises(UnknownZoneError, match="Did you mean"):
        p.resolve("GB-R99")
    assert api.requests == []
    assert p.resolve("london").zone == "GB-R13"
    assert p.resolve("North  Scotland").zone == "GB-R1"
    assert api.paths == ["/regional"]


def test_postcode_lookup_asks_the_api_once(api, clock):
    p = make(api, clock)
    found = p.resolve("postcode:rg10 9ab")
    assert (found.zone, found.method) == ("GB-R12", "provider")
    assert p.resolve("postcode:RG10").zone == "GB-R12"
    assert api.paths == ["/regional/postcode/RG10"]  # cached


def test_unknown_postcodes(api, clock):
    p = make(api, clock)
    with pytest.raises(UnknownZoneError, match="Please enter a valid postcode") as info:
        p.resolve("postcode:ZZ9")
    assert info.value.zone == "postcode:ZZ9"
    with pytest.raises(InvalidInputError, match="not a UK postcode"):
        p.resolve("postcode:12345")
    assert api.paths == ["/regional/postcode/ZZ9"]


@pytest.mark.parametrize(
    ("text", "outward"),
    [
        ("RG10", "RG10"),
        ("rg10 9ab", "RG10"),
        ("SW1A1AA", "SW1A"),
        ("m1", "M1"),
        ("EC1A 1BB", "EC1A"),
    ],
)
def test_outward_postcode(text, outward):
    assert outward_postcode(text) == outward


# -- latest ---------------------------------------------------------------------------------


def test_latest_national_is_the_current_half_hour(api, clock):
    series = make(api, clock).latest(["GB"])
    assert api.paths == ["/intensity/2024-06-01T11:00Z/2024-06-01T12:30Z"]
    assert list(series.values.index) == [SLOT]
    # The current half-hour has no actual yet: its forecast, flagged estimated.
    assert series.at("GB", NOW) == national_value(SLOT)
    assert bool(series.estimated_mask().loc[SLOT, "GB"])
    assert not series.is_forecast and series.provider == "ukcarbon"


def test_latest_uses_actual_when_published(api, clock):
    api.tamper = lambda payload: {
        "data": [
            {**item, "intensity": {**item["intensity"], "actual": 111}} for item in payload["data"]
        ]
    }
    series = make(api, clock).latest(["GB"])
    assert series.at("GB", NOW) == 111 and not series.estimated_mask().to_numpy().any()


def test_latest_falls_back_to_the_newest_published_half_hour(api, clock):
    api.drop = {SLOT}
    series = make(api, clock).latest(["GB", "GB-R13"])
    assert list(series.values.index) == [SLOT - HALF]
    assert any("not published yet" in note for note in series.notes)


def test_latest_regions_one_request_for_many(api, clock):
    series = make(api, clock).latest(["GB-R3", "GB-R13", "GB"])
    assert sorted(api.paths) == [
        "/intensity/2024-06-01T11:00Z/2024-06-01T12:30Z",
        "/regional/intensity/2024-06-01T11:00Z/2024-06-01T12:30Z",
    ]
    assert series.zones == ["GB-R3", "GB-R13", "GB"]
    assert series.at("GB-R13", NOW) == regional_value(SLOT, 13)
    assert series.estimated_mask().loc[SLOT, "GB-R3"]
    assert any("modelled estimates" in note for note in series.notes)


@pytest.mark.parametrize("object_data", [True, False])
def test_single_region_reads_both_shapes_of_data(api, clock, object_data):
    api.object_data = object_data
    series = make(api, clock).latest(["GB-R13"])
    assert api.paths == ["/regional/intensity/2024-06-01T11:00Z/2024-06-01T12:30Z/regionid/13"]
    assert series.at("GB-R13", NOW) == regional_value(SLOT, 13)


def test_national_data_as_an_object(api, clock):
    def only_current(payload):
        (item,) = [i for i in payload["data"] if i["from"] == stamp(SLOT)]
        return {"data": item}

    api.tamper = only_current
    series = make(api, clock).latest(["GB"])
    assert list(series.values.index) == [SLOT] and series.at("GB", NOW) == national_value(SLOT)


def test_latest_empty_data_is_no_data(api, clock):
    api.tamper = lambda payload: {"data": []}
    with pytest.raises(NoDataError, match="no published value for GB"):
        make(api, clock).latest(["GB"])


# -- history --------------------------------------------------------------------------------


def test_history_splits_long_ranges_into_14_day_requests(api, clock):
    start = datetime(2024, 5, 1, 0, 10, tzinfo=UTC)
    series = make(api, clock).history(["GB", "GB-R1"], start, SLOT)
    national = sorted(p for p in api.paths if p.startswith("/intensity/"))
    assert national == [
        "/intensity/2024-05-01T00:30Z/2024-05-15T00:30Z",
        "/intensity/2024-05-15T00:30Z/2024-05-29T00:30Z",
        "/intensity/2024-05-29T00:30Z/2024-06-01T12:00Z",
    ]
    assert all("/regionid/1" in p for p in api.paths if p.startswith("/regional"))
    assert series.start == datetime(2024, 5, 1, 0, 30, tzinfo=UTC) and series.end == SLOT
    assert len(series) == (SLOT - series.start) // HALF
    assert not series.values.isna().to_numpy().any()
    # Padding at chunk edges is cut away, not reported as duplicates.
    assert not any("twice" in note for note in series.notes)
    # National history: measured actual values.
    t = datetime(2024, 5, 20, 8, 0, tzinfo=UTC)
    assert series.at("GB", t) == national_value(t) - 4
    assert not series.estimated_mask()["GB"].any() and series.estimated_mask()["GB-R1"].all()


def test_history_includes_the_current_half_hour_but_not_later(api, clock):
    p = make(api, clock)
    series = p.history(["GB"], SLOT - 2 * HALF, NOW)
    assert list(series.values.index) == [SLOT - 2 * HALF, SLOT - HALF, SLOT]
    with pytest.raises(NoDataError, match="ask forecast"):
        p.history(["GB"], SLOT, SLOT + 3 * HALF)


def test_history_without_a_whole_interval_is_empty(api, clock):
    series = make(api, clock).history(["GB"], SLOT - HALF + timedelta(minutes=5), SLOT)
    assert len(series) == 0 and series.zones == ["GB"] and api.requests == []


def test_history_is_cached_within_the_half_hour(api, clock):
    p = make(api, clock)
    start = SLOT - timedelta(hours=6)
    p.history(["GB"], start, NOW)
    clock.advance(timedelta(minutes=10))
    p.history(["GB"], start, clock.now())
    assert len(api.requests) == 1 and p.requests_sent == 1


# -- forecast -------------------------------------------------------------------------------


def test_forecast_values_and_a_shared_cached_request(api, clock):
    p = make(api, clock)
    series = p.forecast(["GB", "GB-R13"], horizon=timedelta(hours=6))
    assert series.is_forecast and series.issued_at == NOW and len(series) == 12
    assert series.start == SLOT
    assert series.at("GB", SLOT + 5 * HALF) == national_value(SLOT + 5 * HALF)
    assert not series.estimated_mask().to_numpy().any()
    assert sorted(api.paths) == [
        "/intensity/2024-06-01T12:00Z/fw48h",
        "/regional/intensity/2024-06-01T12:00Z/fw48h/regionid/13",
    ]
    # Any later start and any horizon within the same half-hour: the same answers.
    p.forecast(["GB", "GB-R13"], SLOT + timedelta(hours=20), timedelta(hours=24))
    p.forecast(["GB"], horizon=timedelta(hours=48))
    assert len(api.requests) == 2
    clock.advance(timedelta(minutes=25))  # next half-hour: a new forecast
    p.forecast(["GB"], horizon=timedelta(hours=1))
    assert api.paths[-1] == "/intensity/2024-06-01T12:30Z/fw48h"


def test_forecast_from_the_past_asks_from_its_start(api, clock):
    start = SLOT - timedelta(days=3)
    series = make(api, clock).forecast(["GB"], start, timedelta(hours=72))
    assert api.paths == [
        "/intensity/2024-05-29T12:00Z/fw48h",
        "/intensity/2024-05-31T12:00Z/fw48h",
    ]
    assert len(series) == 144 and not series.values.isna().to_numpy().any()


def test_forecast_beyond_48_hours_is_refused_before_any_request(api, clock):
    with pytest.raises(InvalidInputError, match="beyond what 'ukcarbon' forecasts"):
        make(api, clock).forecast(["GB"], horizon=timedelta(hours=49))
    assert api.requests == []


def test_forecast_missing_tail_stays_nan_with_a_note(api, clock):
    api.drop = {SLOT + timedelta(hours=47, minutes=30)}
    api.pad = False
    series = make(api, clock).forecast(["GB"], horizon=timedelta(hours=48))
    assert np.isnan(series.values["GB"].iloc[-1])
    assert any("without data, left as NaN" in note for note in series.notes)


# -- repairs and malformed answers ----------------------------------------------------------


def test_short_interior_gap_is_interpolated_and_flagged(api, clock):
    gap = SLOT - timedelta(hours=3)
    api.drop = {gap, gap + HALF}
    series = make(api, clock).history(["GB"], SLOT - timedelta(hours=6), SLOT)
    assert not series.values.isna().to_numpy().any()
    assert series.estimated_mask().loc[gap, "GB"] and series.estimated_mask().loc[gap + HALF, "GB"]
    assert any("2 missing intervals interpolated" in note for note in series.notes)


def test_gap_policies_keep_and_error(api, clock):
    api.drop = {SLOT - timedelta(hours=3)}
    series = make(api, clock, gaps="keep").history(["GB"], SLOT - timedelta(hours=6), SLOT)
    assert int(series.values["GB"].isna().sum()) == 1
    with pytest.raises(NoDataError, match="gaps='error'"):
        make(api, clock, gaps="error").history(["GB"], SLOT - timedelta(hours=6), SLOT)


def test_long_gap_is_not_interpolated(api, clock):
    api.drop = {SLOT - timedelta(hours=5) + k * HALF for k in range(6)}  # 3 hours
    series = make(api, clock).history(["GB"], SLOT - timedelta(hours=8), SLOT)
    assert int(series.values["GB"].isna().sum()) == 6


def test_out_of_order_and_duplicated_intervals_are_repaired(api, clock):
    def shuffle(payload):
        items = list(reversed(payload["data"]))
        dup_equal = dict(items[3])
        dup_other = json.loads(json.dumps(items[4]))
        dup_other["intensity"]["actual"] += 10
        return {"data": [*items, dup_equal, dup_other]}

    api.tamper = shuffle
    series = make(api, clock).history(["GB"], SLOT - timedelta(hours=6), SLOT)
    notes = " | ".join(series.notes)
    assert "out of time order; sorted" in notes
    assert "1 interval given twice with equal values" in notes
    assert "given twice with different values; their mean is used" in notes
    assert series.values.index.is_monotonic_increasing and len(series) == 12
    assert int(series.estimated_mask()["GB"].sum()) == 1


def tamper_first(change):
    def apply(payload):
        items = json.loads(json.dumps(payload["data"]))
        change(items[1])
        return {"data": items}

    return apply


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda i: i["intensity"].update(forecast="high"), r"intensity.forecast is 'high'"),
        (lambda i: i["intensity"].update(actual=-5), "not a plausible carbon intensity"),
        (lambda i: i["intensity"].update(actual=250000), "a wrong unit"),
        (lambda i: i["intensity"].update(actual=True), "not a number"),
        (lambda i: i.update(to=i["from"]), "not one half-hour"),
        (
            lambda i: i.update({"from": "2024-06-01T11:15Z", "to": "2024-06-01T11:45Z"}),
            "not on the half hour",
        ),
        (lambda i: i.update({"from": "yesterday"}), "not an ISO 8601 timestamp"),
        (lambda i: i.update({"from": "2024-06-01T11:00"}), "without a UTC offset"),
        (lambda i: i.pop("intensity"), "intensity is NoneType, not an object"),
    ],
)
def test_malformed_items_name_the_request_and_field(api, clock, change, match):
    api.tamper = tamper_first(change)
    with pytest.raises(ResponseParseError, match=match) as info:
        make(api, clock).history(["GB"], SLOT - timedelta(hours=6), SLOT)
    assert (
        "GET https://api.carbonintensity.org.uk/intensity/2024-06-01T06:00Z/2024-06-01T12:00Z"
        in str(info.value)
    )
    assert "data[1]" in str(info.value)


@pytest.mark.parametrize(
    ("body", "error", "match"),
    [
        (
            b'{"data": [{"from": "2024-06-01T11:00Z", "to": "2024-06-01T11:3',
            ResponseParseError,
            "not valid JSON",
        ),
        (b"", ResponseParseError, "empty body"),
        (b'{"items": []}', ResponseParseError, "no 'data' field"),
        (b'{"data": 5}', ResponseParseError, "'data' is a int"),
        (b"[1, 2]", ResponseParseError, "no 'data' field"),
        (b'{"data": [7]}', ResponseParseError, r"data\[0\] is int, not an object"),
        (
            b'{"error": {"code": "400 Bad Request", "message": "Invalid date"}}',
            ProviderError,
            "Invalid date",
        ),
        (b'{"data": null}', NoDataError, "no data for GB"),
    ],
)
def test_malformed_bodies(api, clock, body, error, match):
    api.script = [httpx.Response(200, content=body, headers={"content-type": "application/json"})]
    with pytest.raises(error, match=match):
        make(api, clock).history(["GB"], SLOT - timedelta(hours=6), SLOT)


def test_regional_answer_for_another_region_is_an_error(api, clock):
    api.tamper = lambda payload: {"data": {**payload["data"], "regionid": 4}}
    with pytest.raises(ResponseParseError, match="but region 13 was asked for"):
        make(api, clock).latest(["GB-R13"])


def test_region_missing_from_the_all_regions_answer(api, clock):
    def remove_region_3(payload):
        for item in payload["data"]:
            item["regions"] = [r for r in item["regions"] if r["regionid"] != 3]
        return payload

    api.tamper = remove_region_3
    with pytest.raises(NoDataError, match="no data for GB-R3"):
        make(api, clock).history(["GB-R3", "GB-R4"], SLOT - timedelta(hours=2), SLOT)


# -- faults over HTTP -----------------------------------------------------------------------


def test_rate_limit_then_success(api, clock):
    api.script = [error(429, "Too many requests", {"Retry-After": "4"})]
    series = make(api, clock).latest(["GB"])
    assert len(series) == 1 and len(api.requests) == 2
    assert clock.now() == NOW + timedelta(seconds=4)


def test_server_errors_then_success_and_then_giving_up(api, clock):
    api.script = [error(503, "down"), error(502, "down")]
    assert len(make(api, clock).latest(["GB"])) == 1 and len(api.requests) == 3
    api.script = [error(504, "down") for _ in range(4)]
    with pytest.raises(ProviderUnavailableError, match="gave up after 2 attempts"):
        make(api, clock, max_attempts=2).latest(["GB"])


def test_500_is_not_retried(api, clock):
    # carbon-intensity/api-definitions#19: a 500 "Requested resource not found" outage.
    api.script = [error(500, "Requested resource not found.")]
    with pytest.raises(ProviderUnavailableError, match="Requested resource not found"):
        make(api, clock).latest(["GB"])
    assert len(api.requests) == 1


def test_timeouts_become_provider_timeout_errors(api, clock):
    api.script = [httpx.ReadTimeout("slow") for _ in range(4)]
    with pytest.raises(lowcarb.ProviderTimeoutError, match="timed out after 2 s"):
        make(api, clock, timeout_s=2).latest(["GB"])


def test_rate_limited_beyond_budget(api, clock):
    api.script = [error(429, "Too many requests", {"Retry-After": "3600"})]
    with pytest.raises(RateLimitedError) as info:
        make(api, clock).latest(["GB"])
    assert info.value.retry_after == 3600


def test_a_fallback_chain_takes_over_on_failure(api, clock):
    from lowcarb import ProviderChain
    from lowcarb.backends import DefaultProvider

    api.script = [error(500, "boom")]
    chain = ProviderChain([make(api, clock), DefaultProvider(clock=clock)])
    series = chain.latest(["GB"])
    assert series.provider == "default"
    assert any("ukcarbon failed" in note for note in series.notes)


# -- options, config, async -----------------------------------------------------------------


def test_options_from_config_and_environment(tmp_path):
    settings = load_settings(
        {"provider": "ukcarbon"},
        environ={"LOWCARB_UKCARBON_TIMEOUT_S": "3.5", "LOWCARB_UKCARBON_GAPS": "keep"},
        cwd=tmp_path,
    )
    p = settings.open_provider("ukcarbon")
    assert isinstance(p, UKCarbonIntensityProvider)
    assert p.timeout_s == 3.5 and p.gaps == "keep"
    assert p.base_url == "https://api.carbonintensity.org.uk"
    assert settings.credential_status("ukcarbon") == {}


@pytest.mark.parametrize(
    "options",
    [
        {"timeout_s": 0},
        {"max_attempts": 0},
        {"cache_ttl_s": -1},
        {"gaps": "fill"},
        {"base_url": "ftp://x"},
        {"max_concurrency": 0},
    ],
)
def test_bad_options_are_configuration_errors(options, tmp_path):
    with pytest.raises(ConfigurationError):
        load_settings(
            {"provider": "ukcarbon", "providers": {"ukcarbon": options}}, environ={}, cwd=tmp_path
        )
    with pytest.raises(ConfigurationError):
        UKCarbonIntensityProvider(**options)


def test_repr_and_close(api, clock):
    p = make(api, clock)
    assert repr(p) == (
        "UKCarbonIntensityProvider(base_url='https://api.carbonintensity.org.uk', "
        "timeout_s=10, cache_ttl_s=1800)"
    )
    with p:
        p.latest(["GB"])
    p.close()  # twice is fine


def test_async_face_matches_sync_and_shares_the_cache(api, clock):
    p = make(api, clock)
    expected_f = p.forecast(["GB", "GB-R13", "GB-R3"], horizon=timedelta(hours=4))
    start = SLOT - timedelta(days=20)
    expected_h = p.history(["GB", "GB-R13"], start, SLOT)
    sent = len(api.requests)

    async def run():
        async with p.to_async(transport=httpx.MockTransport(api)) as ap:
            f = await ap.forecast(["GB", "GB-R13", "GB-R3"], horizon=timedelta(hours=4))
            h = await ap.history(["GB", "GB-R13"], start, SLOT)
            latest = await ap.latest(["GB-R1"])
            where = await ap.resolve("postcode:M1")
            return f, h, latest, where, await ap.served_zones()

    f, h, latest, where, served = asyncio.run(run())
    assert f.values.equals(expected_f.values) and h.values.equals(expected_h.values)
    assert len(api.requests) == sent + 2  # forecast and history came from the cache
    assert len(latest) == 1 and where.zone == "GB-R3" and served == p.served_zones()


def test_async_face_asks_region_names_only_to_resolve_a_name(api, clock):
    p = make(api, clock)

    async def run():
        async with p.to_async(transport=httpx.MockTransport(api)) as ap:
            await ap.latest(["GB-R6"])
            await ap.resolve("postcode:M1")
            assert "/regional" not in api.paths  # data calls and postcodes need no names
            return await ap.resolve("North Wales and Merseyside")

    found = asyncio.run(run())
    assert (found.zone, found.method) == ("GB-R6", "name")
    assert api.paths.count("/regional") == 1
    assert p._driver._client is None  # over the async client, not the sync one


def test_async_face_sends_a_batch_concurrently(clock):
    api = FakeUKCarbonAPI(clock)
    state = {"active": 0, "peak": 0}

    async def handler(request):
        state["active"] += 1
        state["peak"] = max(state["peak"], state["active"])
        for _ in range(3):
            await asyncio.sleep(0)
        state["active"] -= 1
        return api(request)

    p = UKCarbonIntensityProvider(clock=clock, max_concurrency=3)

    async def run():
        async with p.to_async(transport=httpx.MockTransport(handler)) as ap:
            return await ap.history(["GB", "GB-R2"], SLOT - timedelta(days=60), SLOT)

    series = asyncio.run(run())
    assert len(api.requests) == 10  # 5 chunks of 14 days, national + region
    assert state["peak"] == 3 and len(series) == 60 * 48


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda p: p.forecast(["GB"], horizon=timedelta(hours=49)), InvalidInputError),
        (lambda p: p.forecast(["GB"], horizon=timedelta(0)), InvalidInputError),
        (lambda p: p.forecast(["GB"], NOW.replace(tzinfo=None)), InvalidInputError),
        (
            lambda p: p.forecast(["GB"], NOW + timedelta(hours=30), timedelta(hours=20)),
            InvalidInputError,
        ),
        (lambda p: p.history(["GB"], NOW, NOW), InvalidInputError),
        (lambda p: p.history(["GB"], NOW.replace(tzinfo=None), NOW), InvalidInputError),
        (lambda p: p.latest(["GB-R18"]), UnknownZoneError),
        (lambda p: p.latest([]), InvalidInputError),
    ],
)
def test_async_face_validates_like_the_sync_one(api, clock, call, error):
    p = make(api, clock)
    with pytest.raises(error) as sync_info:
        call(p)

    async def run():
        async with p.to_async(transport=httpx.MockTransport(api)) as ap:
            await call(ap)

    with pytest.raises(error) as async_info:
        asyncio.run(run())
    assert str(async_info.value) == str(sync_info.value)
    assert api.requests == []


@pytest.mark.slow
def test_core_stays_free_of_http_until_ukcarbon_is_used():
    import subprocess
    import sys

    code = (
        "import sys, lowcarb; lowcarb.available_providers(); "
        "assert 'httpx' not in sys.modules and 'tenacity' not in sys.modules; "
        "lowcarb.get_provider_class('ukcarbon'); "
        "assert 'httpx' in sys.modules and 'tenacity' in sys.modules"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_stamp_helper_matches_the_api_format():
    assert stamp(SLOT) == "2024-06-01T12:00Z"


@pytest.mark.parametrize(("cache_ttl_s", "expected"), [(1800, 8), (0, 24)])
def test_a_training_asks_each_forecast_once_per_half_hour(clock, cache_ttl_s, expected):
    # The core's planning signal, re-planned every 10 minutes for 2 hours over 4 zones.
    import pandas as pd

    from lowcarb import PersistenceForecaster, ProviderChain
    from lowcarb._signal import SignalSource

    api = FakeUKCarbonAPI(clock)
    p = make(api, clock, cache_ttl_s=cache_ttl_s)
    source = SignalSource(ProviderChain([p]), forecaster=PersistenceForecaster())
    zones = ["GB", "GB-R3", "GB-R13", "GB-R1"]
    clock.set(SLOT + HALF)  # 12:30 .. 14:20: four half-hours
    for _ in range(12):
        now = clock.now()
        starts = pd.date_range(now, periods=24, freq="1h")
        signal = source.signal(zones, now, starts, timedelta(hours=1))
        assert signal.intensity.shape == (4, 24) and signal.fallback is None
        clock.advance(timedelta(minutes=10))
    # Per half-hour: one national and one all-regions forecast (with the cache).
    assert len(api.requests) == p.requests_sent == expected
