"""The electricitymaps provider over a fake of the API (httpx.MockTransport)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import pytest
from _electricitymaps_api import (
    FREE_2025,
    FREE_2026,
    HOUR,
    REFUSED,
    TOKEN,
    ZONE_KEYS,
    FakeElectricityMapsAPI,
    error,
    value,
)

import lowcarb
from lowcarb import ManualClock, load_settings
from lowcarb.backends._electricitymaps import ElectricityMapsProvider
from lowcarb.exceptions import (
    AuthenticationError,
    ConfigurationError,
    InvalidInputError,
    MissingCredentialError,
    NoDataError,
    ProviderError,
    ProviderUnavailableError,
    RateLimitedError,
    ResponseParseError,
    UnknownZoneError,
)

NOW = datetime(2024, 6, 1, 12, 10, tzinfo=UTC)
SLOT = datetime(2024, 6, 1, 12, tzinfo=UTC)
BASE = "https://api.electricitymaps.com/v3"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def api(clock: ManualClock) -> FakeElectricityMapsAPI:
    return FakeElectricityMapsAPI(clock)


def make(api: FakeElectricityMapsAPI, clock: ManualClock, **options) -> ElectricityMapsProvider:
    options.setdefault("token", TOKEN)
    return ElectricityMapsProvider(transport=httpx.MockTransport(api), clock=clock, **options)


def json_response(body: bytes, status: int = 200) -> httpx.Response:
    return httpx.Response(status, content=body, headers={"content-type": "application/json"})


# -- credentials, zones, capabilities -------------------------------------------------------


def test_registry_capabilities_and_auth_header(api, clock):
    p = make(api, clock)
    assert lowcarb.get_provider_class("electricitymaps") is ElectricityMapsProvider
    caps = p.capabilities
    assert (caps.signal, caps.basis, caps.resolution) == ("average", "lifecycle", HOUR)
    assert caps.forecast_horizon == timedelta(hours=72)
    assert api.requests == []  # nothing is asked before it is needed
    assert p.served_zones() == ZONE_KEYS  # a 2026 key lists about 350 zones
    assert api.requests[0].headers["auth-token"] == TOKEN
    assert str(api.requests[0].url) == f"{BASE}/zones"


def test_zones_are_asked_once_and_described(api, clock):
    p = make(api, clock)
    infos = {z.zone: z for z in p.zones()}
    assert infos["DE"].name == "Germany" and infos["DE"].continent == "Europe"  # catalog
    assert (infos["XX-TEST"].name, infos["XX-TEST"].country) == ("Test zone", "Testland")
    p.served_zones()
    p.latest(["DE"])
    assert api.paths.count("/zones") == 1


def test_missing_key_names_the_variable():
    with pytest.raises(MissingCredentialError, match="LOWCARB_ELECTRICITYMAPS_TOKEN"):
        ElectricityMapsProvider(token=" ")
    with pytest.raises(MissingCredentialError, match="LOWCARB_ELECTRICITYMAPS_TOKEN_FILE"):
        load_settings({"provider": "electricitymaps"}, environ={})


def test_key_from_a_file_and_options_from_the_environment(tmp_path):
    secret = tmp_path / "em.key"
    secret.write_text(TOKEN + "\n")
    environ = {
        "LOWCARB_ELECTRICITYMAPS_TOKEN_FILE": str(secret),
        "LOWCARB_ELECTRICITYMAPS_EMISSION_FACTOR_TYPE": "direct",
        "LOWCARB_ELECTRICITYMAPS_ZONES": "DE,FR",
    }
    settings = load_settings({"provider": "electricitymaps"}, environ=environ, cwd=tmp_path)
    p = settings.open_provider("electricitymaps")
    assert isinstance(p, ElectricityMapsProvider)
    assert p.token == TOKEN and p.capabilities.basis == "direct"
    assert p.default_zones() == ["DE", "FR"]
    assert TOKEN not in repr(p)
    assert settings.credential_status("electricitymaps") == {
        "token": "set (LOWCARB_ELECTRICITYMAPS_TOKEN_FILE)"
    }


def test_the_key_is_never_an_option_in_the_project_file(tmp_path):
    (tmp_path / "lowcarb.toml").write_text(
        'provider = "electricitymaps"\n[providers.electricitymaps]\ntoken = "abc"\n'
    )
    with pytest.raises(ConfigurationError, match="LOWCARB_ELECTRICITYMAPS_TOKEN"):
        load_settings(environ={"LOWCARB_ELECTRICITYMAPS_TOKEN": TOKEN}, cwd=tmp_path)


@pytest.mark.parametrize(
    "options",
    [{"emission_factor_type": "marginal"}, {"timeout_s": 0}, {"gaps": "fill"}],
)
def test_bad_options_are_configuration_errors(options):
    with pytest.raises(ConfigurationError):
        ElectricityMapsProvider(token=TOKEN, **options)


def test_invalid_key_fails_at_once_and_names_the_variable(api, clock):
    p = make(api, clock, token="wrong-key-123456")
    with pytest.raises(AuthenticationError) as info:
        p.latest(["DE"])
    message = str(info.value)
    assert "Invalid auth-token" in message and "set LOWCARB_ELECTRICITYMAPS_TOKEN" in message
    assert "wrong-key-123456" not in message
    assert len(api.requests) == 1 and clock.now() == NOW  # no retry, no wait


def test_unknown_zone_suggests_served_ones(api, clock):
    with pytest.raises(UnknownZoneError, match="Did you mean") as info:
        make(api, clock).latest(["DX"])
    assert "DE" in info.value.suggestions
    assert api.paths == ["/zones"]


def test_default_zones_of_a_key_that_reads_350_zones_are_refused_not_all_asked(api, clock):
    # A 2026 free key lists ~350 zones: `lowcarb latest` without -z sent ~350 requests.
    api.access = FREE_2026
    with pytest.raises(InvalidInputError) as info:
        make(api, clock).default_zones()
    message = str(info.value)
    assert "this key reads carbon intensity for 350 zones" in message
    assert "-z DE" in message and "LOWCARB_ELECTRICITYMAPS_ZONES" in message
    assert api.paths == ["/zones"]


def test_default_zones_are_configured_or_the_few_the_key_reaches(api, clock):
    assert make(api, clock, zones=("FR", "DE")).default_zones() == ["FR", "DE"]
    assert api.requests == []  # configured zones need no /zones
    api.zones, api.access = ["DE"], FREE_2025  # a 2025 free key: one zone
    assert make(api, clock).default_zones() == ["DE"]
    api.zones = ["DE", "FR", "XX-TEST"]

    def no_intensity_for_fr(payload):
        if "FR" in payload and "zoneKey" in payload["FR"]:
            payload["FR"] = {**payload["FR"], "access": ["price-day-ahead/latest"]}
        return payload

    api.tamper = no_intensity_for_fr
    assert make(api, clock).default_zones() == ["DE", "XX-TEST"]
    api.access = ["price-day-ahead/latest"]
    api.tamper = None
    with pytest.raises(NoDataError, match="no carbon-intensity route for any of its 3 zones"):
        make(api, clock).default_zones()


# -- resolving locations --------------------------------------------------------------------


def test_lat_lon_is_looked_up_by_the_api_and_cached(api, clock):
    p = make(api, clock)
    found = p.resolve("52.52, 13.405")
    assert (found.zone, found.method) == ("DE", "provider")
    assert p.resolve("52.52,13.405").zone == "DE"
    lookups = [r for r in api.requests if r.url.path.endswith("/latest")]
    assert len(lookups) == 1
    assert dict(lookups[0].url.params) == {"lat": "52.52", "lon": "13.405"}


def test_lat_lon_outside_any_zone(api, clock):
    with pytest.raises(UnknownZoneError, match="No zone at this location"):
        make(api, clock).resolve("0,0")


def test_lat_lon_in_a_zone_the_key_may_not_read(api, clock):
    api.zones = ["DE", "FR"]
    api.tamper = lambda payload: {**payload, "zone": "IT-NO"} if "zone" in payload else payload
    with pytest.raises(UnknownZoneError, match="IT-NO, which this key may not read"):
        make(api, clock).resolve("48.85,2.35")


def test_ids_and_cloud_regions_resolve_locally(api, clock):
    p = make(api, clock)
    assert p.resolve("de").zone == "DE"
    assert p.resolve("gcp:europe-west3").zone == "DE"
    assert api.paths == ["/zones"]


# -- latest ---------------------------------------------------------------------------------


def test_latest_values_flags_and_parameters(api, clock):
    series = make(api, clock).latest(["DE", "FR"])
    assert list(series.values.index) == [SLOT]
    assert series.at("DE", NOW) == value("DE", SLOT)
    assert series.estimated_mask().loc[SLOT].all()  # the fake marks recent hours estimated
    asked = [r for r in api.requests if r.url.path.endswith("/latest")]
    assert [dict(r.url.params) for r in asked] == [
        {"zone": "DE", "emissionFactorType": "lifecycle"},
        {"zone": "FR", "emissionFactorType": "lifecycle"},
    ]
    assert (series.signal, series.basis, series.provider) == (
        "average",
        "lifecycle",
        "electricitymaps",
    )


def test_direct_factors_are_asked_for_and_labelled(api, clock):
    series = make(api, clock, emission_factor_type="direct").latest(["DE"])
    assert series.basis == "direct"
    assert series.at("DE", NOW) == value("DE", SLOT, "direct")
    assert api.requests[-1].url.params["emissionFactorType"] == "direct"


def test_an_answer_in_the_other_basis_is_refused(api, clock):
    api.tamper = lambda p: {**p, "emissionFactorType": "lifecycle"} if "zone" in p else p
    with pytest.raises(ResponseParseError, match="emissionFactorType is 'lifecycle'"):
        make(api, clock, emission_factor_type="direct").latest(["DE"])


def test_stale_latest_gets_a_note(api, clock):
    clock.advance(timedelta(hours=5))
    api.clock = ManualClock(NOW)  # the API is five hours behind
    series = make(api, clock).latest(["DE"])
    assert series.notes[0] == "DE: the latest value is from 2024-06-01T12:00Z"


def test_latest_null_value_is_no_data(api, clock):
    api.tamper = lambda p: {**p, "carbonIntensity": None} if "zone" in p else p
    with pytest.raises(NoDataError, match="carbonIntensity is null"):
        make(api, clock).latest(["DE"])


# -- history --------------------------------------------------------------------------------


def test_recent_history_reads_the_24_hour_endpoint(api, clock):
    series = make(api, clock).history(["DE"], SLOT - timedelta(hours=6), NOW)
    assert series.start == SLOT - timedelta(hours=6) and len(series) == 7  # up to now
    for start in series.values.index:
        assert series.values.at[start, "DE"] == value("DE", start)
    mask = series.estimated_mask()["DE"]
    assert list(mask[mask].index) == [SLOT - HOUR, SLOT]  # isEstimated kept
    assert any("flagged estimated" in n for n in series.notes)
    assert api.paths == ["/zones", "/carbon-intensity/history"]


def test_older_history_reads_past_range_split_into_10_day_requests(api, clock):
    start = SLOT - timedelta(days=25)
    series = make(api, clock).history(["FR"], start, SLOT)
    assert len(series) == 25 * 24 and not series.values["FR"].isna().any()
    ranges = [
        (r.url.params["start"], r.url.params["end"])
        for r in api.requests
        if r.url.path.endswith("/past-range")
    ]
    # The last 23 hours and the current one come from /history, which serves them.
    assert ranges == [
        ("2024-05-07T12:00:00Z", "2024-05-17T12:00:00Z"),
        ("2024-05-17T12:00:00Z", "2024-05-27T12:00:00Z"),
        ("2024-05-27T12:00:00Z", "2024-05-31T13:00:00Z"),
    ]
    assert api.paths.count("/carbon-intensity/history") == 1
    assert series.values.at[start, "FR"] == value("FR", start)


def test_history_from_24_hours_back_reads_the_hour_history_does_not_serve(api, clock):
    # /history serves the current hour and the 23 before it; the hour before those came
    # back as NaN with a note (an error with gaps="error").
    p = make(api, clock, gaps="error")
    series = p.history(["DE"], SLOT - timedelta(hours=24), SLOT)
    assert len(series) == 24 and series.values["DE"].notna().all()
    first = SLOT - timedelta(hours=24)
    assert series.values.at[first, "DE"] == value("DE", first)
    ranges = [
        (r.url.params["start"], r.url.params["end"])
        for r in api.requests
        if r.url.path.endswith("/past-range")
    ]
    assert ranges == [("2024-05-31T12:00:00Z", "2024-05-31T13:00:00Z")]
    assert api.paths.count("/carbon-intensity/history") == 1
    assert not any("NaN" in note or "without data" in note for note in series.notes)


def test_history_older_than_history_serves_is_refused_to_a_key_without_past_range(api, clock):
    api.access = FREE_2026
    p = make(api, clock)
    assert len(p.history(["DE"], SLOT - timedelta(hours=23), SLOT)) == 23
    with pytest.raises(AuthenticationError, match="reaches back to 2024-05-31T13:00Z only"):
        p.history(["DE"], SLOT - timedelta(hours=24), SLOT)
    assert not any("past-range" in path for path in api.paths)


def test_history_beyond_the_current_hour_is_refused(api, clock):
    with pytest.raises(NoDataError, match="ask forecast"):
        make(api, clock).history(["DE"], SLOT, SLOT + timedelta(hours=3))


def test_history_without_a_whole_hour_is_empty(api, clock):
    series = make(api, clock).history(["DE"], SLOT - timedelta(minutes=50), SLOT - HOUR / 2)
    assert len(series) == 0


def test_a_2025_free_key_is_refused_past_range_and_forecast_before_asking(api, clock):
    api.zones, api.access = ["DE"], FREE_2025
    p = make(api, clock)
    assert len(p.history(["DE"], SLOT - timedelta(hours=3), SLOT)) == 3
    with pytest.raises(AuthenticationError, match="may not read carbon-intensity/past-range"):
        p.history(["DE"], SLOT - timedelta(days=3), SLOT)
    with pytest.raises(AuthenticationError) as info:
        p.forecast(["DE"])
    assert str(info.value) == (
        "electricitymaps: this key may not read carbon-intensity/forecast for DE: its "
        "/zones entry lists carbon-intensity latest, history"
    )
    assert not any("forecast" in path or "past-range" in path for path in api.paths)


def test_a_2026_free_key_reads_forecasts_and_is_refused_past_range_briefly(api, clock):
    # 79 routes per zone: the refusal quotes the carbon-intensity ones and counts the rest,
    # rather than print all 79 (2,676 characters), and claims nothing about plans.
    api.access = FREE_2026
    p = make(api, clock)
    assert p.forecast(["DE"], horizon=timedelta(hours=6)).values["DE"].notna().all()
    with pytest.raises(AuthenticationError) as info:
        p.history(["DE", "FR"], SLOT - timedelta(days=3), SLOT)
    message = str(info.value)
    assert message == (
        "electricitymaps: this key may not read carbon-intensity/past-range for DE, FR: its "
        "/zones entry lists carbon-intensity latest, history, forecast (and 76 other routes); "
        "/carbon-intensity/history reaches back to 2024-05-31T13:00Z only"
    )
    assert "paid" not in message and "free" not in message
    assert not any("past-range" in path for path in api.paths)


def test_a_refusal_names_a_few_zones_and_counts_the_rest(api, clock):
    api.access = FREE_2025
    p = make(api, clock, zones=())
    with pytest.raises(AuthenticationError, match=r"for AE, AT, AU-NSW, AU-QLD, AU-SA and 3 more:"):
        p.forecast(ZONE_KEYS[:8], horizon=timedelta(hours=2))


def test_route_refused_by_the_api_explains_the_plan(api, clock):
    body = {"error": "Request unauthorized for zoneKey=DE,requestType=forecast"}
    p = make(api, clock)
    p.served_zones()
    api.script = [error(401, body)]
    with pytest.raises(AuthenticationError, match="plan does not cover the request"):
        p.forecast(["DE"])
    assert len(api.requests) == 2


def test_a_refusal_with_error_and_message_is_the_plan_not_the_key(api, clock):
    # The 2026 answer carries both fields; "message" alone says nothing of what was refused.
    body = {k: v.format(zone="DE", kind="forecast") for k, v in REFUSED.items()}
    p = make(api, clock)
    p.served_zones()
    api.script = [error(401, body)]
    with pytest.raises(AuthenticationError) as info:
        p.forecast(["DE"])
    message = str(info.value)
    assert "plan does not cover the request (Request unauthorized for zoneKey=DE" in message
    assert "You do not have access to this specific endpoint" in message
    assert "lists carbon-intensity latest, history, forecast, past, past-range" in message
    assert "rejected the key" not in message and "LOWCARB_ELECTRICITYMAPS_TOKEN" not in message
    assert len(api.requests) == 2  # not retried


# -- forecast -------------------------------------------------------------------------------


def test_forecast_values_horizon_and_shared_cache(api, clock):
    p = make(api, clock)
    series = p.forecast(["DE"], horizon=timedelta(hours=6))
    assert series.is_forecast and series.issued_at == NOW and len(series) == 6
    for start in series.values.index:
        assert series.values.at[start, "DE"] == value("DE", start)
    assert p.forecast(["DE"], horizon=timedelta(hours=20)).values.iloc[:6].equals(series.values)
    forecasts = [r for r in api.requests if r.url.path.endswith("/forecast")]
    assert len(forecasts) == 1 and forecasts[0].url.params["horizonHours"] == "24"
    p.forecast(["DE"], horizon=timedelta(hours=50))
    forecasts = [r for r in api.requests if r.url.path.endswith("/forecast")]
    assert forecasts[-1].url.params["horizonHours"] == "72"


def test_a_v3_forecast_from_the_next_hour_takes_the_current_hour_from_latest(api, clock):
    # v3 answers from the next hour: a forecast from now began with a gap nothing fills.
    p = make(api, clock, gaps="error")
    series = p.forecast(["DE", "FR"], horizon=timedelta(hours=6))
    assert series.start == SLOT and len(series) == 6
    assert series.values.notna().all().all()
    assert series.values.at[SLOT, "DE"] == value("DE", SLOT)
    mask = series.estimated_mask()
    assert mask.loc[SLOT].all() and not mask.iloc[1:].any().any()  # /latest's isEstimated
    assert any("DE, FR: the forecast starts after the current hour" in n for n in series.notes)
    assert api.paths.count("/carbon-intensity/latest") == 2
    # A forecast that starts later needs no /latest.
    later = p.forecast(["DE"], start=SLOT + 3 * HOUR, horizon=timedelta(hours=3))
    assert later.values["DE"].notna().all() and api.paths.count("/carbon-intensity/latest") == 2


def test_a_v4_forecast_from_the_current_hour_needs_no_latest(api, clock):
    p = make(api, clock, base_url="https://api.electricitymaps.com/v4", gaps="error")
    series = p.forecast(["DE"], horizon=timedelta(hours=24))  # the API sends 25 rows
    assert len(series) == 24 and series.values["DE"].notna().all()
    assert not series.estimated_mask().any().any()
    assert "/carbon-intensity/latest" not in api.paths
    assert str(api.requests[-1].url).startswith("https://api.electricitymaps.com/v4/")


def test_latest_forecast_and_history_answers_are_not_reused_in_the_next_hour(api, clock):
    # They answer from the API's current hour: one of 12:50 lacks what 13:10 asks for.
    clock.set(SLOT + timedelta(minutes=50))
    p = make(api, clock)
    p.latest(["DE"])
    p.forecast(["DE"])
    p.history(["DE"], SLOT - 3 * HOUR, SLOT + HOUR)
    clock.advance(timedelta(minutes=20))
    latest = p.latest(["DE"])
    forecast = p.forecast(["DE"])
    history = p.history(["DE"], SLOT - 2 * HOUR, SLOT + 2 * HOUR)
    assert latest.start == SLOT + HOUR
    assert forecast.values["DE"].notna().all() and len(forecast) == 24
    assert history.values["DE"].notna().all() and history.end == SLOT + 2 * HOUR
    for route in ("/forecast", "/history"):
        assert sum(r.url.path.endswith(route) for r in api.requests) == 2
    # /latest: the hour's forecast reads it too (v3 starts at the next hour), from cache.
    assert sum(r.url.path.endswith("/latest") for r in api.requests) == 2


def test_forecast_beyond_72_hours_is_refused_before_any_request(api, clock):
    with pytest.raises(InvalidInputError, match="beyond what 'electricitymaps' forecasts"):
        make(api, clock).forecast(["DE"], horizon=timedelta(hours=80))
    assert api.paths == ["/zones"]


# -- gaps, duplicates, disorder, malformed answers ------------------------------------------


def test_short_gap_is_interpolated_and_flagged(api, clock):
    api.drop = {SLOT - 3 * HOUR}
    series = make(api, clock).history(["DE"], SLOT - timedelta(hours=6), SLOT)
    gap = SLOT - 3 * HOUR
    neighbours = [value("DE", gap - HOUR), value("DE", gap + HOUR)]
    assert series.values.at[gap, "DE"] == pytest.approx(np.mean(neighbours))
    assert series.estimated_mask().at[gap, "DE"]
    assert any("1 missing interval interpolated" in n for n in series.notes)


def test_gap_policy_error(api, clock):
    api.drop = {SLOT - 3 * HOUR}
    with pytest.raises(NoDataError, match="gaps='error'"):
        make(api, clock, gaps="error").history(["DE"], SLOT - timedelta(hours=6), SLOT)


def test_out_of_order_and_duplicated_hours_are_repaired(api, clock):
    def shuffle(payload):
        if "history" not in payload:
            return payload
        items = payload["history"]
        payload["history"] = [*reversed(items), items[-2], {**items[-3], "carbonIntensity": 1}]
        return payload

    api.tamper = shuffle
    series = make(api, clock).history(["DE"], SLOT - timedelta(hours=4), SLOT)
    notes = " | ".join(series.notes)
    assert "out of time order; sorted" in notes
    assert "1 interval given twice with equal values" in notes
    assert "1 interval given twice with different values" in notes
    odd = SLOT - 2 * HOUR  # items[-3] of 24 hours ending with SLOT
    assert series.values.at[odd, "DE"] == pytest.approx((value("DE", odd) + 1) / 2)
    assert series.estimated_mask().at[odd, "DE"]


def tamper_first(change):
    def apply(payload):
        if "history" in payload:
            change(payload["history"][-3])
        return payload

    return apply


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda i: i.update(carbonIntensity="high"), "carbonIntensity is 'high', not a number"),
        (lambda i: i.update(carbonIntensity=-5), "not a plausible carbon intensity"),
        (lambda i: i.update(carbonIntensity=380000), "a wrong unit"),
        (lambda i: i.update(unit="lbs/MWh"), "unit is 'lbs/MWh', not gCO2eq/kWh"),
        (lambda i: i.update(datetime="2024-06-01T09:00:00"), "without a UTC offset"),
        (lambda i: i.update(datetime="2024-06-01T09:30:00Z"), "off the 1 h grid"),
        (lambda i: i.update(isEstimated="yes"), "isEstimated is 'yes'"),
        (lambda i: i.update(zone="FR"), "zone is 'FR', but 'DE' was asked for"),
        (lambda i: i.update(temporalGranularity="5_minutes"), "not 'hourly'"),
        (lambda i: i.update(flowTraced=False), "flowTraced is False: production-based"),
    ],
)
def test_malformed_items_name_the_request_and_field(api, clock, change, match):
    api.tamper = tamper_first(change)
    with pytest.raises(ResponseParseError, match=match) as info:
        make(api, clock).history(["DE"], SLOT - timedelta(hours=6), SLOT)
    text = str(info.value)
    if "grid" not in match:
        assert f"GET {BASE}/carbon-intensity/history?zone=DE&emissionFactorType=lifecycle" in text
        assert "history[21]" in text
    assert TOKEN not in text


@pytest.mark.parametrize(
    ("body", "error_type", "match"),
    [
        (b'{"zone": "DE", "history": [{"zone": "DE", "carbonIn', ResponseParseError, "valid JSON"),
        (b"", ResponseParseError, "empty body"),
        (b'{"zone": "DE"}', ResponseParseError, "'history' is missing, not a list"),
        (b'{"zone": "DE", "history": 3}', ResponseParseError, "'history' is int"),
        (b"[1, 2]", ResponseParseError, "is list, not an object"),
        (b'{"zone": "DE", "history": [7]}', ResponseParseError, r"history\[0\] is int"),
        (b'{"status": "error", "message": "Bad zone"}', ProviderError, "Bad zone"),
        (b'{"zone": "DE", "history": []}', NoDataError, "no data for DE"),
        (b'{"zone": "DE", "history": null}', NoDataError, "no data for DE"),
    ],
)
def test_malformed_bodies(api, clock, body, error_type, match):
    p = make(api, clock)
    p.served_zones()
    api.script = [json_response(body)]
    with pytest.raises(error_type, match=match) as info:
        p.history(["DE"], SLOT - timedelta(hours=6), SLOT)
    assert TOKEN not in str(info.value)


def test_malformed_zone_tables(api, clock):
    for body, match in (
        (b"[]", "not a mapping of zones"),
        (b'{"DE": "Germany"}', "is str, not an object"),
        (b'{"DE": {"access": "all"}}', "not a list of routes"),
        (b"{}", "lists no zone"),
    ):
        api.script = [json_response(body)]
        with pytest.raises(ProviderError, match=match):
            make(api, clock).zones()


# -- faults over HTTP -----------------------------------------------------------------------


def test_rate_limit_then_success_honours_retry_after(api, clock):
    p = make(api, clock)
    p.served_zones()
    api.script = [error(429, {"error": "Too many requests"}, {"Retry-After": "7"})]
    assert len(p.latest(["DE"])) == 1
    assert clock.now() == NOW + timedelta(seconds=7)


def test_rate_limit_reported_as_401_is_retried(api, clock, caplog):
    p = make(api, clock)
    p.served_zones()
    api.script = [error(401, {"error": "Rate limit exceeded for your plan"})]
    with caplog.at_level(logging.WARNING, logger="lowcarb.backends.http"):
        assert len(p.latest(["DE"])) == 1
    assert "rate limiting" in caplog.text and TOKEN not in caplog.text
    api.script = [error(401, {"error": "Rate limit exceeded"}) for _ in range(2)]
    with pytest.raises(RateLimitedError, match="gave up after 2 attempts"):
        make(api, clock, max_attempts=2).forecast(["FR"])


def test_server_errors_then_success_and_500_not_retried(api, clock):
    p = make(api, clock, cache_ttl_s=0)
    p.served_zones()
    api.script = [error(503, {"error": "down"}), error(502, {"error": "down"})]
    assert len(p.latest(["DE"])) == 1
    sent = len(api.requests)
    api.script = [error(500, {"status": "error", "message": "Internal"})]
    with pytest.raises(ProviderUnavailableError, match="Internal"):
        p.latest(["DE"])
    assert len(api.requests) == sent + 1


def test_timeouts_are_provider_timeout_errors(api, clock):
    api.script = [httpx.ReadTimeout("slow") for _ in range(4)]
    with pytest.raises(lowcarb.ProviderTimeoutError, match="timed out after 2 s"):
        make(api, clock, timeout_s=2).zones()


def test_a_failing_zone_list_surfaces_from_the_call_once(api, clock):
    p = make(api, clock, token="wrong-key-123456")
    assert "DE" in p.served_zones()  # the catalog stands in for the failed /zones
    with pytest.raises(AuthenticationError, match="Invalid auth-token"):
        p.latest(["DE"])
    assert api.paths == ["/zones"]  # raised again, not asked again
    clock.advance(timedelta(minutes=2))
    api.token = "wrong-key-123456"  # the key was activated meanwhile
    assert p.served_zones() == ZONE_KEYS
    assert make(api, clock, token="k", zones=("FR",)).served_zones() == ["FR"]  # stand-in


def test_a_fallback_chain_takes_over_when_the_key_is_refused(api, clock):
    from lowcarb import ProviderChain
    from lowcarb.backends import DefaultProvider

    chain = ProviderChain([make(api, clock, token="bad-key-0000"), DefaultProvider(clock=clock)])
    series = chain.latest([chain.resolve("DE").zone])
    assert series.provider == "default"
    assert any("electricitymaps failed" in n and "Invalid auth-token" in n for n in series.notes)
    assert api.paths == ["/zones"]


def test_a_fallback_chain_takes_over_on_bad_credentials(api, clock):
    from lowcarb import ProviderChain
    from lowcarb.backends import DefaultProvider

    em = make(api, clock)
    em.served_zones()
    api.token = "rotated"
    chain = ProviderChain([em, DefaultProvider(clock=clock)])
    series = chain.latest(["DE"])
    assert series.provider == "default"
    assert any("electricitymaps failed" in note for note in series.notes)


# -- the async face -------------------------------------------------------------------------


def test_async_face_matches_sync_and_fetches_zones_asynchronously(api, clock):
    transport = httpx.MockTransport(api)
    sync = make(api, clock).forecast(["DE", "FR"], horizon=timedelta(hours=5))
    p = make(api, clock)

    async def run():
        async with p.to_async(transport=transport) as face:
            zones = await face.served_zones()
            series = await face.forecast(["DE", "FR"], horizon=timedelta(hours=5))
            history = await face.history(["FR"], SLOT - timedelta(days=12), SLOT)
            return zones, series, history, face.peak_concurrency

    zones, series, history, peak = asyncio.run(run())
    assert zones == p.served_zones() and series.values.equals(sync.values)
    assert len(history) == 12 * 24 and peak >= 1
    assert p._driver._client is None  # the sync client never ran: /zones went async too


def test_async_face_refuses_bad_input_like_the_sync_one(api, clock):
    p = make(api, clock)

    async def run():
        async with p.to_async(transport=httpx.MockTransport(api)) as face:
            with pytest.raises(UnknownZoneError):
                await face.latest(["DX"])
            with pytest.raises(InvalidInputError, match="naive"):
                await face.history(["DE"], datetime(2024, 6, 1), NOW)
            assert (await face.resolve("52.52,13.405")).zone == "DE"
            with pytest.raises(InvalidInputError, match="350 zones"):
                await face.default_zones()

    asyncio.run(run())


def test_async_face_with_a_refused_key_fails_once_without_the_sync_client(api, clock):
    p = make(api, clock, token="bad-key-0000")

    async def run():
        async with p.to_async(transport=httpx.MockTransport(api)) as face:
            with pytest.raises(AuthenticationError, match="LOWCARB_ELECTRICITYMAPS_TOKEN"):
                await face.forecast(["DE"])

    asyncio.run(run())
    assert api.paths == ["/zones"] and p._driver._client is None
