"""The carbon-aware-sdk provider over a fake WebAPI (httpx.MockTransport): requests, parsing, faults."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import pytest
from _carbonaware_api import FakeCarbonAwareAPI, forecast_value, problem, value

import lowcarb
from lowcarb import ManualClock, load_settings
from lowcarb.backends._carbonaware import DEFAULT_LOCATIONS, CarbonAwareSDKProvider
from lowcarb.exceptions import (
    AuthenticationError,
    ConfigurationError,
    InvalidInputError,
    NoDataError,
    ProviderError,
    ProviderUnavailableError,
    ResponseParseError,
    UnknownZoneError,
)

BASE = "http://sdk.test:8080"
NOW = datetime(2024, 6, 1, 12, 10, tzinfo=UTC)
SLOT = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
FIVE = timedelta(minutes=5)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def api(clock: ManualClock) -> FakeCarbonAwareAPI:
    return FakeCarbonAwareAPI(clock)


def make(api: FakeCarbonAwareAPI, clock: ManualClock, **options) -> CarbonAwareSDKProvider:
    options.setdefault("base_url", BASE)
    return CarbonAwareSDKProvider(transport=httpx.MockTransport(api), clock=clock, **options)


def params(api: FakeCarbonAwareAPI, k: int = -1) -> dict[str, list[str]]:
    query = api.requests[k].url.params
    return {key: query.get_list(key) for key in query}


# -- zones, options, configuration ------------------------------------------------------------


def test_zones_capabilities_and_registry(api, clock):
    p = make(api, clock)
    assert lowcarb.get_provider_class("carbon-aware-sdk") is CarbonAwareSDKProvider
    assert p.served_zones() == list(DEFAULT_LOCATIONS)
    assert p.locations["US-MIDA-PJM"] == "eastus" and p.locations["IE"] == "northeurope"
    names = {z.zone: z.name for z in p.zones()}
    assert names["DE"] == "Germany (SDK: germanywestcentral)"
    caps = p.capabilities
    assert (caps.signal, caps.basis, caps.resolution) == ("average", "lifecycle", HOUR)
    assert caps.forecast_horizon == timedelta(hours=24)
    assert api.requests == []  # none of this touches the network


@pytest.mark.parametrize(
    ("signal", "basis", "expected"),
    [
        ("marginal", "auto", ("marginal", "direct")),
        ("average", "auto", ("average", "lifecycle")),
        ("average", "direct", ("average", "direct")),
        ("unknown", "auto", ("average", "lifecycle")),
    ],
)
def test_declared_signal_labels_every_series(api, clock, signal, basis, expected):
    series = make(api, clock, signal=signal, basis=basis).latest(["DE"])
    assert (series.signal, series.basis) == expected
    unverified = any("labelled 'average' unverified" in n for n in series.notes)
    assert unverified is (signal == "unknown")


def test_location_table_from_options(api, clock):
    p = make(api, clock, locations=["DE=frankfurt-dc", "site-a=eastus2"], builtin_locations=False)
    assert p.served_zones() == ["DE", "site-a"]
    assert p.zones()[1].name == "SDK location eastus2"
    p.latest(["SITE-A"])
    assert params(api) == {
        "location": ["eastus2"],
        "time": ["2024-06-01T11:00:00Z"],
        "toTime": ["2024-06-01T13:00:00Z"],
    }


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"base_url": ""}, "needs base_url"),
        ({"base_url": "localhost:8080"}, "must start with http"),
        ({"locations": ["DE"]}, "must look like ZONE=sdk-location"),
        ({"locations": ["DE=a b"]}, "must look like ZONE=sdk-location"),
        ({"locations": [], "builtin_locations": False}, "no zones"),
        ({"resolution_minutes": 7}, "must divide a day"),
        ({"resolution_minutes": 0}, "integer >= 1"),
        ({"forecast_hours": 0}, "integer >= 1"),
        ({"auth_header": "X Key"}, "HTTP header name"),
        ({"signal": "moer"}, "signal="),
        ({"forecasts": "history"}, "forecasts="),
    ],
)
def test_bad_options_are_configuration_errors(options, match):
    with pytest.raises(ConfigurationError, match=match):
        CarbonAwareSDKProvider(**{"base_url": BASE, **options})


def test_base_url_is_required_from_configuration(tmp_path):
    with pytest.raises(ConfigurationError, match="LOWCARB_CARBON_AWARE_SDK_BASE_URL"):
        load_settings({"provider": "carbon-aware-sdk"}, environ={}, cwd=tmp_path)


def test_options_and_key_from_the_environment(tmp_path, api, clock):
    environ = {
        "LOWCARB_CARBON_AWARE_SDK_BASE_URL": BASE,
        "LOWCARB_CARBON_AWARE_SDK_ROUTE_PREFIX": "/casdk",
        "LOWCARB_CARBON_AWARE_SDK_LOCATIONS": "DE=frankfurt-dc, site-a=eastus2",
        "LOWCARB_CARBON_AWARE_SDK_SIGNAL": "marginal",
        "LOWCARB_CARBON_AWARE_SDK_AUTH_HEADER": "x-api-key",
        "LOWCARB_CARBON_AWARE_SDK_API_KEY": "gw-secret-123456",
    }
    settings = load_settings({"provider": "carbon-aware-sdk"}, environ=environ, cwd=tmp_path)
    p = settings.open_provider("carbon-aware-sdk", clock=clock)
    assert isinstance(p, CarbonAwareSDKProvider)
    assert p.base_url == BASE and p.route_prefix == "/casdk"
    assert p.locations["DE"] == "frankfurt-dc" and p.locations["site-a"] == "eastus2"
    assert p.capabilities.signal == "marginal"
    assert "gw-secret" not in repr(p)
    rows = {r["key"]: r for r in settings.display()}
    assert rows["providers.carbon-aware-sdk.api_key"]["value"] == "<redacted>"
    # The key is sent in the chosen header, never as a bearer token then.
    api.prefix = "/casdk"
    p._driver._transport = httpx.MockTransport(api)
    p.latest(["DE"])
    assert api.requests[-1].headers["x-api-key"] == "gw-secret-123456"
    assert "authorization" not in api.requests[-1].headers
    assert api.paths == ["/casdk/emissions/bylocation"]


def test_the_key_never_goes_in_a_project_file(tmp_path):
    (tmp_path / "lowcarb.toml").write_text(
        '[providers.carbon-aware-sdk]\nbase_url = "http://x:8080"\napi_key = "abc"\n'
    )
    with pytest.raises(ConfigurationError, match="LOWCARB_CARBON_AWARE_SDK_API_KEY"):
        load_settings(environ={}, cwd=tmp_path)


# -- attribution: the requested location, never the echoed one --------------------------------


def test_results_are_tied_to_the_requested_location_not_the_echo(api, clock):
    # eastus and eastus2 are both PJM_DC to a WattTime-backed SDK: the echo cannot tell
    # them apart, so one request per location, each answer tagged with its own zone.
    p = make(api, clock, locations=["site-a=eastus", "site-b=eastus2"], builtin_locations=False)
    series = p.latest(["site-a", "site-b"])
    assert [params(api, k)["location"] for k in range(2)] == [["eastus"], ["eastus2"]]
    assert series.at("site-a", NOW) == value("eastus", SLOT)
    assert series.at("site-b", NOW) == value("eastus2", SLOT)
    assert value("eastus", SLOT) != value("eastus2", SLOT)
    (note,) = [n for n in series.notes if "named its data source's regions" in n]
    assert "site-a asked as eastus, named PJM_DC" in note
    assert "site-b asked as eastus2, named PJM_DC" in note


def test_an_echo_that_matches_adds_no_note(api, clock):
    api.echo_requested = True  # an Electricity Maps source keeps the requested name
    series = make(api, clock).history(["DE"], SLOT - 3 * HOUR, SLOT)
    assert not any("named its data source's regions" in n for n in series.notes)


def test_batch_forecasts_are_tagged_by_position(api, clock):
    api.tamper = lambda dtos: [{**d, "location": "SOMEWHERE_ELSE"} for d in dtos]
    p = make(api, clock, forecasts="batch")
    series = p.forecast(["GB", "DE"], horizon=3 * HOUR)
    (request,) = api.requests
    assert request.method == "POST" and request.url.path == "/emissions/forecasts/batch"
    assert json.loads(request.content) == [
        {"requestedAt": "2024-06-01T12:00:00Z", "location": "uksouth"},
        {"requestedAt": "2024-06-01T12:00:00Z", "location": "germanywestcentral"},
    ]
    assert series.at("GB", SLOT + HOUR) == forecast_value("uksouth", SLOT + HOUR)
    assert series.at("DE", SLOT + HOUR) == forecast_value("germanywestcentral", SLOT + HOUR)
    assert any("GB asked as uksouth, named SOMEWHERE_ELSE/UK" in n for n in series.notes)


def test_batch_answer_of_the_wrong_length_is_an_error(api, clock):
    api.tamper = lambda dtos: dtos[:1]
    with pytest.raises(ResponseParseError, match="1 forecasts for 2 locations asked"):
        make(api, clock, forecasts="batch").forecast(["GB", "DE"], horizon=HOUR)


# -- latest and history -------------------------------------------------------------------------


def test_latest_is_the_current_interval(api, clock):
    series = make(api, clock).latest(["DE", "GB"])
    assert api.paths == ["/emissions/bylocation"] * 2
    assert list(series.values.index) == [SLOT]
    assert series.at("GB", NOW) == value("uksouth", SLOT)
    assert not series.is_forecast and not series.estimated_mask().to_numpy().any()


def test_latest_falls_back_to_the_newest_interval(api, clock):
    api.drop = {SLOT}
    series = make(api, clock).latest(["DE"])
    assert list(series.values.index) == [SLOT - HOUR]
    assert any("has no value yet" in n for n in series.notes)


def test_latest_averages_five_minute_data_published_so_far(clock):
    api = FakeCarbonAwareAPI(clock, native=FIVE)
    series = make(api, clock).latest(["DE"])
    published = [value("germanywestcentral", SLOT + k * FIVE) for k in range(3)]  # :00 .. :10
    assert series.at("DE", NOW) == pytest.approx(sum(published) / 3)
    assert series.estimated_mask().loc[SLOT, "DE"]  # an incomplete hour
    assert any("5 min intervals averaged into 1 h ones" in n for n in series.notes)


def test_five_minute_resolution_keeps_the_native_grid(clock):
    api = FakeCarbonAwareAPI(clock, native=FIVE)
    p = make(api, clock, resolution_minutes=5)
    series = p.history(["DE"], SLOT - HOUR, SLOT)
    assert len(series) == 12 and series.resolution == FIVE
    assert series.at("DE", SLOT - FIVE) == value("germanywestcentral", SLOT - FIVE)


def test_hourly_data_spread_on_a_finer_grid(api, clock):
    series = make(api, clock, resolution_minutes=15).history(["DE"], SLOT - HOUR, SLOT)
    assert len(series) == 4 and series.values["DE"].nunique() == 1
    assert any("each 1 h value spread over its 15 min intervals" in n for n in series.notes)


def test_history_splits_long_ranges_and_cuts_inclusive_bounds(api, clock):
    start = SLOT - timedelta(days=25)
    series = make(api, clock).history(["DE"], start, SLOT)
    assert [params(api, k)["time"] for k in range(3)] == [
        ["2024-05-07T12:00:00Z"],
        ["2024-05-17T12:00:00Z"],
        ["2024-05-27T12:00:00Z"],
    ]
    assert params(api, 2)["toTime"] == ["2024-06-01T12:00:00Z"]
    assert len(series) == 25 * 24 and not series.values.isna().to_numpy().any()
    # The SDK's inclusive toTime repeats each chunk's last hour: cut, not a duplicate.
    assert not any("twice" in n for n in series.notes)
    t = datetime(2024, 5, 20, 8, tzinfo=UTC)
    assert series.at("DE", t) == value("germanywestcentral", t)


def test_history_stops_at_the_current_interval(api, clock):
    p = make(api, clock)
    assert list(p.history(["DE"], SLOT - HOUR, NOW).values.index) == [SLOT - HOUR, SLOT]
    with pytest.raises(NoDataError, match="ask forecast"):
        p.history(["DE"], SLOT, SLOT + 3 * HOUR)


def test_history_is_cached(api, clock):
    p = make(api, clock)
    p.history(["DE"], SLOT - 6 * HOUR, SLOT)
    clock.advance(timedelta(minutes=10))
    p.history(["DE"], SLOT - 6 * HOUR, SLOT)
    assert len(api.requests) == 1 and p.requests_sent == 1


# -- forecast -----------------------------------------------------------------------------------


def test_current_forecast_one_request_per_location_shared_by_any_window(api, clock):
    p = make(api, clock)
    series = p.forecast(["DE", "GB"], horizon=6 * HOUR)
    assert series.is_forecast and series.issued_at == NOW and len(series) == 6
    assert series.at("DE", SLOT + 5 * HOUR) == forecast_value("germanywestcentral", SLOT + 5 * HOUR)
    assert api.paths == ["/emissions/forecasts/current"] * 2
    assert [params(api, k) for k in range(2)] == [
        {"location": ["germanywestcentral"]},
        {"location": ["uksouth"]},
    ]
    p.forecast(["DE"], SLOT + 10 * HOUR, 12 * HOUR)
    assert len(api.requests) == 2  # the cached answer covers it


def test_current_forecast_is_not_reused_in_a_later_interval(api, clock):
    # The SDK's forecast reaches a fixed span past its "now": an answer of 12:50 ends an
    # hour short of a 24-hour forecast asked at 13:10.
    clock.set(SLOT + timedelta(minutes=50))
    p = make(api, clock)
    p.forecast(["DE"])
    clock.advance(timedelta(minutes=20))
    later = p.forecast(["DE"])
    assert later.values["DE"].notna().all() and len(later) == 24
    assert api.paths == ["/emissions/forecasts/current"] * 2


def test_forecast_beyond_the_reach_is_refused_before_any_request(api, clock):
    with pytest.raises(InvalidInputError, match="beyond what 'carbon-aware-sdk' forecasts"):
        make(api, clock).forecast(["DE"], horizon=timedelta(hours=25))
    assert make(api, clock, forecast_hours=72).capabilities.forecast_horizon == timedelta(days=3)
    assert api.requests == []


def test_a_short_forecast_leaves_the_tail_missing(api, clock):
    api.horizon = 4 * HOUR
    series = make(api, clock).forecast(["DE"], horizon=6 * HOUR)
    assert int(series.values["DE"].isna().sum()) == 2
    assert any("without data, left as NaN" in n for n in series.notes)


def test_batch_forecast_replays_as_of_the_clock(clock):
    api = FakeCarbonAwareAPI(clock, native=FIVE)
    p = make(api, clock, forecasts="batch", signal="marginal")
    series = p.forecast(["DE"], horizon=2 * HOUR)
    hour = [forecast_value("germanywestcentral", SLOT + HOUR + k * FIVE) for k in range(12)]
    assert series.at("DE", SLOT + HOUR) == pytest.approx(sum(hour) / 12)
    assert not series.estimated_mask().to_numpy().any()
    assert json.loads(api.requests[0].content)[0]["requestedAt"] == "2024-06-01T12:00:00Z"


def test_batch_against_an_em_source_says_what_to_do(api, clock):
    api.script = [
        problem(501, "NotImplementedException", "The method or operation is not implemented.")
    ]
    with pytest.raises(NoDataError, match="forecasts='batch' a WattTime one") as info:
        make(api, clock, forecasts="batch").forecast(["DE"], horizon=HOUR)
    assert info.value.status_code == 501 and len(api.requests) == 1


# -- no data, unknown locations, bad routes ------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda p: p.latest(["DE"]), "no data for DE"),
        (lambda p: p.history(["DE"], SLOT - 3 * HOUR, SLOT), "no data for DE"),
        (lambda p: p.forecast(["DE"], horizon=HOUR), "answered with no forecast"),
    ],
)
def test_204_is_no_data(api, clock, call, match):
    api.empty = True
    with pytest.raises(NoDataError, match=match):
        call(make(api, clock))
    assert len(api.requests) == 1  # not retried


def test_empty_array_and_empty_forecast_are_no_data(api, clock):
    api.tamper = lambda payload: []
    with pytest.raises(NoDataError, match="no data for DE"):
        make(api, clock).history(["DE"], SLOT - 3 * HOUR, SLOT)
    api.tamper = lambda dtos: [{**d, "forecastData": []} for d in dtos]
    with pytest.raises(NoDataError, match="no data for DE"):
        make(api, clock).forecast(["DE"], horizon=HOUR)


def test_unknown_location_suggests_what_the_sdk_knows(api, clock):
    p = make(api, clock, locations=["DE=germanywestcentrl"])
    with pytest.raises(UnknownZoneError) as info:
        p.latest(["DE"])
    assert info.value.zone == "DE"
    assert info.value.suggestions[0] == "germanywestcentral"
    assert "Unknown Location: 'germanywestcentrl' not found" in str(info.value)
    assert 'locations = ["DE=<name>"]' in str(info.value)
    assert api.paths == ["/emissions/bylocation", "/locations"]


def test_unknown_location_in_a_batch_names_the_culprit(api, clock):
    p = make(api, clock, forecasts="batch", locations=["GB=uksouthh"])
    with pytest.raises(UnknownZoneError) as info:
        p.forecast(["DE", "GB"], horizon=HOUR)
    assert info.value.zone == "GB" and "uksouth" in info.value.suggestions


def test_unknown_location_without_a_lookup_still_raises_clearly(api, clock):
    api.script = [api.unknown("nowhere"), httpx.Response(503)]
    with pytest.raises(UnknownZoneError) as info:
        make(api, clock).latest(["DE"])
    assert info.value.suggestions == []


def test_other_bad_requests_are_provider_errors(api, clock):
    api.script = [problem(400, "ArgumentException", "toTime must be after time")]
    with pytest.raises(ProviderError, match="rejected as invalid the request: toTime") as info:
        make(api, clock).latest(["DE"])
    assert not isinstance(info.value, UnknownZoneError) and len(api.requests) == 1
    api.script = [problem(404, "NotFound", "no emissions for this period")]
    with pytest.raises(NoDataError, match="has no data for the request: no emissions"):
        make(api, clock).latest(["DE"])


def test_a_missing_route_points_at_base_url_and_prefix(api, clock):
    api.prefix = "/casdk"
    with pytest.raises(ProviderError, match="no such route; check base_url") as info:
        make(api, clock).latest(["DE"])
    assert info.value.status_code == 404
    assert len(make(api, clock, route_prefix="casdk/").latest(["DE"])) == 1


# -- resolving -------------------------------------------------------------------------------


def test_resolve_names_cloud_regions_and_the_lookup(api, clock):
    p = make(api, clock)
    assert p.resolve("northeurope").zone == "IE"
    assert p.resolve("azure:uksouth").method == "cloud-region"
    assert p.resolve("aws:eu-central-1").zone == "DE"
    assert api.requests == []
    found = p.resolve("frankfurt-dc")  # known to the SDK, not mapped: its coordinates
    assert (found.zone, found.method) == ("DE", "provider")
    assert p.resolve("Frankfurt-DC").zone == "DE"
    assert api.paths == ["/locations"]  # cached
    with pytest.raises(UnknownZoneError, match="nor a location the SDK"):
        p.resolve("no-such-dc")
    with pytest.raises(UnknownZoneError):
        p.resolve("gcp:nowhere1")  # not a bare name: no lookup
    assert api.paths == ["/locations"]


def test_the_location_table_in_pascal_case_as_the_sdk_documents_it(api, clock):
    # /locations writes camelCase keys; the SDK's docs and location files use PascalCase.
    api.pascal_locations = True
    found = make(api, clock).resolve("frankfurt-dc")
    assert (found.zone, found.method) == ("DE", "provider")
    p = make(api, clock, locations=["DE=germanywestcentrl"])
    with pytest.raises(UnknownZoneError, match="germanywestcentral"):
        p.latest(["DE"])  # the suggestions come from the PascalCase table too


def test_a_malformed_location_table_is_a_parse_error(api, clock):
    api.script = [httpx.Response(200, json={"x": {"latitude": "north", "longitude": 3}})]
    with pytest.raises(ResponseParseError, match="no valid latitude/longitude"):
        make(api, clock).resolve("some-dc")


# -- malformed answers and repairs ------------------------------------------------------------


def change_second(change):
    def apply(payload):
        items = json.loads(json.dumps(payload))
        change(items[1])
        return items

    return apply


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda i: i.update(rating="high"), r"\[1\].rating is 'high', not a number"),
        (lambda i: i.update(rating=-3), "not a plausible carbon intensity"),
        (lambda i: i.update(rating=820000), "a wrong unit"),
        (lambda i: i.update(time="noon"), r"\[1\].time is 'noon', not an ISO 8601"),
        (lambda i: i.update(time="2024-06-01T10:00:00"), "without a UTC offset"),
        (lambda i: i.update(duration="5 minutes"), "not a duration hh:mm:ss"),
        (lambda i: i.update(duration="00:00:00"), "not a positive duration"),
        (lambda i: i.update(duration="00:30:00"), "have different durations"),
        (lambda i: i.update(time="2024-06-01T10:20:00+00:00"), "off the 1 h grid"),
    ],
)
def test_malformed_items_name_the_request_and_field(api, clock, change, match):
    api.tamper = change_second(change)
    with pytest.raises(ResponseParseError, match=match) as info:
        make(api, clock).history(["DE"], SLOT - 6 * HOUR, SLOT)
    assert f"GET {BASE}/emissions/bylocation?location=germanywestcentral" in str(info.value)


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b'[{"location": "DE", "time": "2024-06-01T10:00:00+00:00", "rat', "not valid JSON"),
        (b"", "empty body"),
        (b'{"location": "DE"}', "a JSON dict, not an array"),
        (b"[7]", r"\[0\] is int, not an object"),
    ],
)
def test_malformed_bodies(api, clock, body, match):
    api.script = [httpx.Response(200, content=body, headers={"content-type": "application/json"})]
    with pytest.raises(ResponseParseError, match=match):
        make(api, clock).history(["DE"], SLOT - 6 * HOUR, SLOT)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda d: d.update(forecastData={"a": 1}), "forecastData is dict, not a list"),
        (lambda d: d["forecastData"][0].update(duration="10"), "not a positive number of minutes"),
        (lambda d: d["forecastData"][0].update(value=None, timestamp=5), "not a timestamp"),
    ],
)
def test_malformed_forecasts(api, clock, change, match):
    def apply(dtos):
        dtos = json.loads(json.dumps(dtos))
        change(dtos[0])
        return dtos

    api.tamper = apply
    with pytest.raises(ResponseParseError, match=match):
        make(api, clock).forecast(["DE"], horizon=HOUR)


@pytest.mark.parametrize("native", [FIVE, HOUR])
def test_newest_first_answers_with_points_outside_the_window_need_no_repair(clock, native):
    # The SDK answers newest first and includes the interval before `time` and the one at
    # `toTime`: its normal answer, not something lowcarb repaired.
    api = FakeCarbonAwareAPI(clock, native=native)
    p = make(api, clock)
    series = p.history(["DE"], SLOT - 6 * HOUR, SLOT)
    assert len(series) == 6 and series.values["DE"].notna().all()
    assert not series.estimated_mask().any().any()
    for note in series.notes:
        assert "order" not in note and "twice" not in note and "estimated" not in note, note
    latest = p.latest(["DE"])
    assert list(latest.values.index) == [SLOT]
    assert not any("order" in note for note in latest.notes)


def test_out_of_order_duplicates_and_gaps_are_repaired(api, clock):
    def shuffle(payload):
        items = list(reversed(payload))
        other = dict(items[4], rating=items[4]["rating"] + 10)
        return [*items, dict(items[3]), other]

    api.tamper = shuffle
    api.drop = {SLOT - 3 * HOUR}
    series = make(api, clock).history(["DE"], SLOT - 8 * HOUR, SLOT)
    notes = " | ".join(series.notes)
    assert "out of time order; sorted" in notes
    assert "1 interval given twice with equal values" in notes
    assert "given twice with different values; their mean is used" in notes
    assert "1 missing interval interpolated" in notes
    assert not series.values.isna().to_numpy().any()
    assert int(series.estimated_mask()["DE"].sum()) == 2


def test_gap_policy_error(api, clock):
    api.drop = {SLOT - 3 * HOUR}
    with pytest.raises(NoDataError, match="gaps='error'"):
        make(api, clock, gaps="error").history(["DE"], SLOT - 8 * HOUR, SLOT)


def test_missing_duration_means_the_grid(api, clock):
    api.tamper = lambda payload: [{k: v for k, v in i.items() if k != "duration"} for i in payload]
    series = make(api, clock).history(["DE"], SLOT - 3 * HOUR, SLOT)
    assert len(series) == 3 and not series.values.isna().to_numpy().any()


# -- faults over HTTP, credentials ---------------------------------------------------------------


def test_rate_limited_then_answered(api, clock):
    api.script = [problem(429, "TooManyRequests", "slow down")]
    api.script[0].headers["Retry-After"] = "7"
    assert len(make(api, clock).latest(["DE"])) == 1
    assert len(api.requests) == 2 and clock.now() == NOW + timedelta(seconds=7)


def test_gateway_errors_then_answered_and_500_not_retried(api, clock):
    api.script = [httpx.Response(502), httpx.Response(503)]
    assert len(make(api, clock).latest(["DE"])) == 1 and len(api.requests) == 3
    api.script = [problem(500, "InternalServerError", "")]
    with pytest.raises(ProviderUnavailableError, match="-> 500"):
        make(api, clock).latest(["DE"])
    assert len(api.requests) == 4


def test_bad_gateway_key_fails_at_once_naming_the_variable(api, clock):
    api.script = [httpx.Response(401, json={"message": "invalid key gw-secret-123456"})]
    p = make(api, clock, api_key="gw-secret-123456")
    with pytest.raises(AuthenticationError) as info:
        p.latest(["DE"])
    text = str(info.value)
    assert "LOWCARB_CARBON_AWARE_SDK_API_KEY" in text and "gateway" in text
    assert "gw-secret" not in text and len(api.requests) == 1
    assert api.requests[0].headers["authorization"] == "Bearer gw-secret-123456"


def test_no_key_no_auth_header(api, clock):
    make(api, clock).latest(["DE"])
    assert "authorization" not in api.requests[0].headers


def test_timeouts_are_provider_timeouts(api, clock):
    api.script = [httpx.ReadTimeout("slow") for _ in range(4)]
    with pytest.raises(lowcarb.ProviderTimeoutError, match="timed out after 3 s"):
        make(api, clock, timeout_s=3).latest(["DE"])


# -- the async face ------------------------------------------------------------------------------


def test_async_face_matches_sync_and_shares_the_cache(api, clock):
    p = make(api, clock)
    zones = ["DE", "GB", "US-MIDA-PJM"]
    expected = p.forecast(zones, horizon=4 * HOUR)
    sent = len(api.requests)

    async def run():
        async with p.to_async(transport=httpx.MockTransport(api)) as ap:
            f = await ap.forecast(zones, horizon=4 * HOUR)
            latest = await ap.latest(["IE"])
            where = await ap.resolve("frankfurt-dc")
            return f, latest, where

    f, latest, where = asyncio.run(run())
    assert f.values.equals(expected.values)
    assert len(api.requests) == sent + 2  # latest IE and the lookup; the forecast was cached
    assert latest.at("IE", NOW) == value("northeurope", SLOT) and where.zone == "DE"


def test_many_locations_are_fetched_concurrently_within_the_bound(clock):
    api = FakeCarbonAwareAPI(clock)
    state = {"active": 0, "peak": 0}

    async def handler(request):
        state["active"] += 1
        state["peak"] = max(state["peak"], state["active"])
        for _ in range(3):
            await asyncio.sleep(0)
        state["active"] -= 1
        return api(request)

    p = CarbonAwareSDKProvider(base_url=BASE, clock=clock, max_concurrency=4)
    zones = p.served_zones()

    async def run():
        async with p.to_async(transport=httpx.MockTransport(handler)) as ap:
            return await ap.forecast(zones, horizon=2 * HOUR), ap.peak_concurrency

    series, peak = asyncio.run(run())
    assert len(api.requests) == len(zones) == len(DEFAULT_LOCATIONS) == 28
    assert state["peak"] == peak == 4
    for zone in zones:
        location = p.locations[zone]
        assert series.at(zone, NOW) == forecast_value(location, SLOT)


def test_async_face_validates_like_the_sync_one(api, clock):
    p = make(api, clock)

    async def run():
        async with p.to_async(transport=httpx.MockTransport(api)) as ap:
            await ap.latest(["DX"])

    with pytest.raises(UnknownZoneError, match="Did you mean") as info:
        asyncio.run(run())
    assert "DE" in info.value.suggestions and api.requests == []


def test_a_fallback_chain_takes_over(api, clock):
    from lowcarb import ProviderChain
    from lowcarb.backends import DefaultProvider

    api.empty = True
    chain = ProviderChain([make(api, clock), DefaultProvider(clock=clock)])
    series = chain.latest(["DE"])
    assert series.provider == "default"
    assert any("carbon-aware-sdk failed" in n for n in series.notes)


def test_block_mean_of_an_all_missing_block_is_nan(clock):
    api = FakeCarbonAwareAPI(clock, native=FIVE)
    api.drop = {SLOT - 3 * HOUR + k * FIVE for k in range(12)}
    series = make(api, clock, gaps="keep").history(["DE"], SLOT - 5 * HOUR, SLOT)
    assert np.isnan(series.at("DE", SLOT - 3 * HOUR)) and len(series) == 5
