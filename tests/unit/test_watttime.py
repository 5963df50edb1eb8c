"""The watttime provider over a fake of the API (httpx.MockTransport): auth, regions, parsing."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import pytest
from _watttime_api import PASSWORD, USERNAME, FakeWattTimeAPI, error, moer

import lowcarb
from lowcarb import ManualClock, load_settings
from lowcarb.backends._watttime import WattTimeProvider
from lowcarb.exceptions import (
    AuthenticationError,
    ConfigurationError,
    MissingCredentialError,
    NoDataError,
    ProviderUnavailableError,
    RateLimitedError,
    ResponseParseError,
)

NOW = datetime(2024, 6, 1, 12, 10, tzinfo=UTC)
FIVE = timedelta(minutes=5)
LBS = 0.45359237


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def api(clock: ManualClock) -> FakeWattTimeAPI:
    return FakeWattTimeAPI(clock)


def make(api: FakeWattTimeAPI, clock: ManualClock, **options) -> WattTimeProvider:
    options.setdefault("username", USERNAME)
    options.setdefault("password", PASSWORD)
    return WattTimeProvider(transport=httpx.MockTransport(api), clock=clock, **options)


def g_per_kwh(start: datetime, region: str) -> float:
    return moer(start, region) * LBS


# -- description ------------------------------------------------------------------------------


def test_registry_capabilities_and_zones(api, clock):
    p = make(api, clock, regions=["US-CAL-CISO=CAISO_NORTH", "site-b=PSCO"])
    assert lowcarb.get_provider_class("watttime") is WattTimeProvider
    caps = p.capabilities
    assert (caps.signal, caps.basis, caps.resolution) == ("marginal", "direct", FIVE)
    assert caps.forecast_horizon == timedelta(hours=72)
    served = p.served_zones()
    assert {"US-CAL-CISO", "DE", "site-b"} <= set(served) and len(served) == len(set(served))
    names = {z.zone: z.name for z in p.zones()}
    assert names["US-CAL-CISO"] == "CAISO (WattTime CAISO_NORTH)"
    assert names["site-b"] == "WattTime region PSCO"
    assert p.default_zones() == ["US-CAL-CISO", "site-b"]
    assert make(api, clock).default_zones() == ["US-CAL-CISO"]
    assert api.requests == []  # describing needs no HTTP


def test_average_signal_is_hourly_history_without_forecasts(api, clock):
    p = make(api, clock, signal_type="co2_aoer")
    caps = p.capabilities
    assert (caps.signal, caps.resolution, caps.forecast_horizon) == (
        "average",
        timedelta(hours=1),
        None,
    )
    series = p.history(["US-CAL-CISO"], NOW - timedelta(hours=4), NOW - timedelta(minutes=10))
    assert len(series) == 3 and series.signal == "average"  # 09:00, 10:00, 11:00
    assert api.requests[-1].url.params["signal_type"] == "co2_aoer"
    latest = p.latest(["US-CAL-CISO"])
    assert list(latest.values.index) == [datetime(2024, 6, 1, 12, tzinfo=UTC)]
    with pytest.raises(NoDataError, match="no forecasts"):
        p.forecast(["US-CAL-CISO"])


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"username": ""}, MissingCredentialError, "LOWCARB_WATTTIME_USERNAME"),
        ({"password": "  "}, MissingCredentialError, "LOWCARB_WATTTIME_PASSWORD"),
        ({"signal_type": "co2"}, ConfigurationError, "co2_moer"),
        ({"regions": ["US-CAL-CISO"]}, ConfigurationError, "ZONE=REGION"),
        ({"regions": ["X=bad region"]}, ConfigurationError, "ZONE=REGION"),
    ],
)
def test_bad_arguments(api, clock, options, error, match):
    with pytest.raises(error, match=match):
        make(api, clock, **options)


def test_options_and_credentials_from_config(tmp_path, clock):
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD + "\n")
    env = {
        "LOWCARB_WATTTIME_USERNAME": USERNAME,
        "LOWCARB_WATTTIME_PASSWORD_FILE": str(secret),
        "LOWCARB_WATTTIME_REGIONS": "US-CAL-CISO=CAISO_NORTH,LAB=PSCO",
        "LOWCARB_WATTTIME_SIGNAL_TYPE": "co2_moer",
    }
    settings = load_settings({"provider": "watttime"}, environ=env, cwd=tmp_path)
    p = settings.open_provider("watttime", clock=clock)
    assert isinstance(p, WattTimeProvider)
    assert p.password == PASSWORD and p.region_map == {"US-CAL-CISO": "CAISO_NORTH", "LAB": "PSCO"}
    with pytest.raises(MissingCredentialError, match="LOWCARB_WATTTIME_USERNAME"):
        load_settings({"provider": "watttime"}, environ={"X": "1"}, cwd=tmp_path)


# -- the token ----------------------------------------------------------------------------------


def test_one_login_then_bearer_on_every_call(api, clock):
    p = make(api, clock)
    p.latest(["US-CAL-CISO"])
    p.forecast(["US-CAL-CISO"], horizon=timedelta(hours=1))
    assert api.paths == ["/login", "/v3/region-from-loc", "/v3/forecast", "/v3/forecast"]
    login, *data = api.requests
    assert login.headers["authorization"].startswith("Basic ")
    assert all(r.headers["authorization"] == f"Bearer {api.logins[0]}" for r in data)
    assert p.logins == 1


def test_a_token_dropped_by_another_thread_mid_call_is_no_crash(api, clock):
    # Threads may share a provider (the service adapter): one drops a refused token just
    # after another found it fresh. The clock's read is the moment in between.
    class Meddling(ManualClock):
        provider: WattTimeProvider | None = None

        def now(self) -> datetime:
            if self.provider is not None and self.provider._token is not None:
                self.provider._token = None
            return super().now()

    meddling = Meddling(NOW)
    p = make(FakeWattTimeAPI(meddling), meddling, regions=["US-CAL-CISO=CAISO_NORTH"])
    p.verify_credentials()
    meddling.provider = p
    assert len(p.latest(["US-CAL-CISO"])) == 1


def test_token_is_renewed_shortly_before_it_expires(api, clock):
    p = make(api, clock, cache_ttl_s=0)
    p.latest(["US-CAL-CISO"])
    clock.advance(timedelta(minutes=27, seconds=59))
    p.latest(["US-CAL-CISO"])
    assert api.count("/login") == 1  # still more than 2 minutes left
    clock.advance(timedelta(seconds=2))
    p.latest(["US-CAL-CISO"])
    assert api.count("/login") == 2
    assert api.requests[-1].headers["authorization"] == f"Bearer {api.logins[1]}"
    assert api.count("/v3/region-from-loc") == 1  # the region is remembered


def test_401_logs_in_again_once_and_succeeds(api, clock):
    p = make(api, clock)
    first = p.latest(["US-CAL-CISO"])
    api.issued.clear()  # WattTime forgot the token (e.g. revoked) before it expired
    clock.advance(timedelta(minutes=5))
    second = p.latest(["US-CAL-CISO"])
    assert api.paths[-3:] == ["/v3/forecast", "/login", "/v3/forecast"]
    assert p.logins == 2 and not second.values.equals(first.values)


def test_stale_token_html_403_also_logs_in_again(api, clock):
    api.html_403 = True
    p = make(api, clock)
    p.latest(["US-CAL-CISO"])
    api.issued.clear()
    clock.advance(timedelta(minutes=5))
    p.latest(["US-CAL-CISO"])
    assert api.count("/login") == 2


def test_a_fresh_token_refused_fails_without_a_third_login(api, clock):
    api.accept_tokens = False
    p = make(api, clock)
    with pytest.raises(AuthenticationError, match="just issued") as info:
        p.latest(["US-CAL-CISO"])
    assert api.count("/login") == 2 and info.value.status_code == 401
    for token in api.logins:
        assert token not in str(info.value)


def test_bad_credentials_fail_at_once_naming_the_variables(api, clock):
    p = make(api, clock, password="wrong-password")
    with pytest.raises(AuthenticationError) as info:
        p.latest(["US-CAL-CISO"])
    message = str(info.value)
    assert "LOWCARB_WATTTIME_USERNAME" in message and "LOWCARB_WATTTIME_PASSWORD" in message
    assert "wrong-password" not in message
    assert api.paths == ["/login"]  # no retries


def test_token_never_leaks_into_errors_logs_or_reprs(api, clock, caplog):
    caplog.set_level(logging.DEBUG, logger="lowcarb")
    p = make(api, clock)
    p.latest(["US-CAL-CISO"])
    token = api.logins[0]
    echo = f"upstream said: bad request for token {token} / {token}"
    api.script = [httpx.Response(503, text=echo), httpx.Response(500, text=echo)]
    clock.advance(timedelta(minutes=10))
    with pytest.raises(ProviderUnavailableError) as info:
        p.latest(["US-CAL-CISO"])
    assert "REDACTED" in str(info.value)
    everything = str(info.value) + caplog.text + repr(p) + repr(p.to_async())
    assert token not in everything and PASSWORD not in everything
    assert token.split(".")[1] not in everything


def test_malformed_login_answers(api, clock):
    api.script = [httpx.Response(200, text='{"token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOi')]
    with pytest.raises(ResponseParseError, match="log in") as info:
        make(api, clock).latest(["US-CAL-CISO"])
    assert "eyJ" not in str(info.value)
    api.script = [httpx.Response(200, json={"nothing": 1})]
    with pytest.raises(ResponseParseError, match="without a token"):
        make(api, clock).latest(["US-CAL-CISO"])


# -- regions ------------------------------------------------------------------------------------


def test_regions_from_the_load_centre_config_and_coordinates(api, clock):
    p = make(api, clock, regions=["LAB=ERCOT_NORTHCENTRAL"])
    found = p.region_for("US-CAL-CISO")
    assert (found.region, found.method) == ("CAISO_NORTH", "load-centre")
    params = api.requests[-1].url.params
    assert (params["latitude"], params["longitude"], params["signal_type"]) == (
        "37.0000",
        "-120.0000",
        "co2_moer",
    )
    assert "CAISO_NORTH" in found.describe() and "37.00,-120.00" in found.describe()
    assert p.region_for("CAISO").region == "CAISO_NORTH"  # a zone name resolves first
    site = p.region_for("39.74, -104.99")
    assert (site.region, site.method, site.lat) == ("PSCO", "coordinates", 39.74)
    assert p.region_for("lab").method == "config"
    assert api.count("/v3/region-from-loc") == 2  # the zone's lookup is remembered


def test_each_series_names_the_region_it_used(api, clock):
    p = make(api, clock, regions=["LAB=PSCO"])
    series = p.latest(["US-CAL-CISO", "LAB"])
    notes = " | ".join(series.notes)
    assert "US-CAL-CISO -> WattTime region CAISO_NORTH" in notes
    assert "LAB -> WattTime region PSCO (regions option)" in notes
    assert "marginal" in notes and "model 2023-03-01" in notes


def test_zones_sharing_a_region_share_one_request(api, clock):
    p = make(api, clock)
    series = p.forecast(["US-MIDA-PJM", "US-NY-NYIS"], horizon=timedelta(hours=1))
    assert api.count("/v3/forecast") == 1
    assert series.values["US-MIDA-PJM"].equals(series.values["US-NY-NYIS"].rename("US-MIDA-PJM"))


@pytest.mark.parametrize("echo", [False, True])
def test_region_answers_with_or_without_signal_type(api, clock, echo):
    # Live answers carry region and region_full_name only; the docs' example adds signal_type.
    api.echo_signal_type = echo
    found = make(api, clock).region_for("US-CAL-CISO")
    body = api.requests[-1]
    assert (found.region, found.name) == ("CAISO_NORTH", "California ISO Northern")
    assert body.url.path == "/v3/region-from-loc"


def test_no_coverage_is_no_data_with_a_hint(api, clock):
    with pytest.raises(NoDataError, match="regions option") as info:
        make(api, clock).latest(["DE"])
    assert info.value.status_code == 404 and '"DE=REGION"' in str(info.value)
    with pytest.raises(NoDataError, match='"SITE=REGION"'):
        make(api, clock).region_for("0,0")


def test_region_answer_without_a_region_is_a_parse_error(api, clock):
    p = make(api, clock)
    p.latest(["US-CAL-CISO"])  # logged in
    api.script = [httpx.Response(200, json={"region": None})]
    with pytest.raises(ResponseParseError, match="region-from-loc"):
        p.latest(["US-TEX-ERCO"])


# -- values -------------------------------------------------------------------------------------


def test_latest_is_the_current_five_minutes_in_g_per_kwh(api, clock):
    series = make(api, clock).latest(["US-CAL-CISO"])
    slot = datetime(2024, 6, 1, 12, 10, tzinfo=UTC)
    assert list(series.values.index) == [slot]
    assert series.values.iloc[0, 0] == pytest.approx(g_per_kwh(slot, "CAISO_NORTH"))
    assert series.signal == "marginal" and series.provider == "watttime"
    assert api.requests[-1].url.params["horizon_hours"] == "0"


def test_history_converts_flags_imputed_and_asks_an_inclusive_end(api, clock):
    start, end = NOW - timedelta(hours=1), NOW - timedelta(minutes=10)
    series = make(api, clock).history(["US-CAL-CISO"], start, end)
    assert len(series) == 10  # 11:10 .. 11:55
    params = api.requests[-1].url.params
    assert params["start"] == "2024-06-01T11:10:00+00:00"
    assert params["end"] == "2024-06-01T11:55:00+00:00"
    assert params["include_imputed_marker"] == "true"
    expected = [g_per_kwh(t.to_pydatetime(), "CAISO_NORTH") for t in series.values.index]
    np.testing.assert_allclose(series.values["US-CAL-CISO"], expected)
    imputed = series.estimated_mask()["US-CAL-CISO"]
    assert list(imputed[imputed].index.minute) == [25]


def test_history_splits_long_ranges_into_30_day_requests(api, clock):
    start = NOW - timedelta(days=45)
    make(api, clock).history(["US-CAL-CISO"], start, NOW - timedelta(minutes=10))
    asked = [r.url.params for r in api.requests if r.url.path == "/v3/historical"]
    assert len(asked) == 2
    assert asked[0]["end"] == (start + timedelta(days=30) - FIVE).isoformat()
    assert asked[1]["start"] == (start + timedelta(days=30)).isoformat()


def test_history_stops_at_the_current_interval(api, clock):
    with pytest.raises(NoDataError, match="forecast"):
        make(api, clock).history(["US-CAL-CISO"], NOW, NOW + timedelta(hours=1))


def test_forecast_asks_whole_hours_and_is_cached(api, clock):
    p = make(api, clock)
    series = p.forecast(["US-CAL-CISO"], horizon=timedelta(hours=2, minutes=10))
    assert api.requests[-1].url.params["horizon_hours"] == "3"
    assert len(series) == 26 and series.is_forecast and series.issued_at == NOW
    p.forecast(["US-CAL-CISO"], horizon=timedelta(hours=2, minutes=10))
    assert api.count("/v3/forecast") == 1


def test_a_cached_forecast_is_not_reused_in_a_later_interval(api, clock):
    # The answer reaches `horizon_hours` past the interval it was asked in: reused five
    # minutes later, the request's last interval would be missing.
    p = make(api, clock)
    p.forecast(["US-CAL-CISO"])
    p.latest(["US-CAL-CISO"])
    clock.advance(timedelta(minutes=2))  # still 12:10-12:15: both answers are reused
    p.latest(["US-CAL-CISO"])
    clock.advance(timedelta(minutes=18))
    later = p.forecast(["US-CAL-CISO"])
    assert later.values["US-CAL-CISO"].notna().all() and len(later) == 288
    assert p.latest(["US-CAL-CISO"]).start == NOW + timedelta(minutes=20)
    assert api.count("/v3/forecast") == 4  # a forecast and a latest in each interval


def test_forecast_from_the_past_leaves_a_leading_gap(api, clock):
    start = NOW - timedelta(minutes=20)
    series = make(api, clock).forecast(["US-CAL-CISO"], start=start, horizon=timedelta(hours=1))
    column = series.values["US-CAL-CISO"]
    # 11:50 .. 12:05 lie before the current five minutes (12:10)
    assert column.iloc[:4].isna().all() and column.iloc[4:].notna().all()
    assert any("lie in the past" in n for n in series.notes)
    with pytest.raises(NoDataError, match="history"):
        make(api, clock).forecast(
            ["US-CAL-CISO"], start=NOW - timedelta(hours=3), horizon=timedelta(hours=1)
        )


def test_signal_index_sync_and_async(api, clock):
    p = make(api, clock, regions=["LAB=PSCO"])
    index = p.signal_index(["US-CAL-CISO", "LAB"])
    assert index["LAB"].region == "PSCO" and index["LAB"].percentile == 42.0
    assert index["US-CAL-CISO"].start == datetime(2024, 6, 1, 12, 10, tzinfo=UTC)

    async def run():
        async with p.to_async(transport=httpx.MockTransport(api)) as a:
            return await a.signal_index(["LAB"]), await a.region_for("US-CAL-CISO")

    (again, region) = asyncio.run(run())
    assert again["LAB"] == index["LAB"] and region.region == "CAISO_NORTH"
    assert api.count("/login") == 1  # the async face shares the token


def test_signal_index_must_be_a_percentile(api, clock):
    def tamper(payload):
        payload["data"][0]["value"] = 140
        return payload

    api.tamper = tamper
    with pytest.raises(ResponseParseError, match="percentile"):
        make(api, clock).signal_index(["US-CAL-CISO"])


# -- faults and repairs -------------------------------------------------------------------------


def set_meta(key, value):
    def tamper(payload):
        payload["meta"][key] = value
        return payload

    return tamper


@pytest.mark.parametrize(
    ("tamper", "match"),
    [
        (set_meta("units", "kg_co2_per_mwh"), "wrong unit"),
        (set_meta("region", "PSCO"), "meta.region"),
        (set_meta("signal_type", "co2_aoer"), "meta.signal_type"),
        (set_meta("data_point_period_seconds", 3600), "period"),
        (lambda p: {**p, "data": {"point_time": "x"}}, "not a list"),
        (lambda p: {"meta": p["meta"]}, "no 'data'"),
        (lambda p: {**p, "data": [{"point_time": "2024-06-01T12:10:00", "value": 1}]}, "offset"),
        (lambda p: {**p, "data": [{"point_time": NOW.isoformat(), "value": "9"}]}, "not a number"),
        (lambda p: {**p, "data": [{"point_time": NOW.isoformat(), "value": 9e6}]}, "wrong unit"),
        (lambda p: {**p, "data": ["x"]}, "not an object"),
    ],
)
def test_malformed_answers_name_the_request(api, clock, tamper, match):
    api.tamper = tamper
    with pytest.raises(ResponseParseError, match=match) as info:
        make(api, clock).latest(["US-CAL-CISO"])
    assert "/v3/forecast" in str(info.value)


@pytest.mark.parametrize(
    ("body", "match"),
    [(b"", "empty body"), (b'{"data": [{"point_time": "2024-06', "not valid JSON")],
)
def test_empty_and_truncated_bodies(api, clock, body, match):
    p = make(api, clock)
    p.region_for("US-CAL-CISO")
    api.script = [httpx.Response(200, content=body)]
    with pytest.raises(ResponseParseError, match=match):
        p.latest(["US-CAL-CISO"])


def test_empty_data_is_no_data(api, clock):
    api.tamper = lambda p: {**p, "data": []}
    with pytest.raises(NoDataError):
        make(api, clock).latest(["US-CAL-CISO"])
    with pytest.raises(NoDataError, match="no data for US-CAL-CISO"):
        make(api, clock).history(["US-CAL-CISO"], NOW - timedelta(hours=1), NOW)


def test_gaps_duplicates_and_disorder_are_repaired_with_notes(api, clock):
    api.drop = {datetime(2024, 6, 1, 11, 30, tzinfo=UTC)}

    def shuffle(payload):
        data = payload["data"]
        payload["data"] = [data[3], *data, data[5]][::-1]
        return payload

    api.tamper = shuffle
    series = make(api, clock).history(["US-CAL-CISO"], NOW - timedelta(hours=1), NOW)
    gap = series.values.loc[datetime(2024, 6, 1, 11, 30, tzinfo=UTC), "US-CAL-CISO"]
    assert not np.isnan(gap) and series.estimated_mask().loc["2024-06-01 11:30+00:00"].all()
    notes = " | ".join(series.notes)
    assert "out of time order" in notes and "twice with equal values" in notes
    assert "interpolated" in notes
    with pytest.raises(NoDataError, match="gaps='error'"):
        make(api, clock, gaps="error").history(["US-CAL-CISO"], NOW - timedelta(hours=1), NOW)


def test_free_tier_403_says_what_a_free_account_may_read(api, clock):
    api.allowed = {"CAISO_NORTH"}
    p = make(api, clock)
    assert p.latest(["US-CAL-CISO"]).values.notna().all().all()
    with pytest.raises(AuthenticationError) as info:
        p.forecast(["US-TEX-ERCO"])
    message = str(info.value)
    assert "ERCOT_NORTHCENTRAL" in message and "CAISO_NORTH" in message
    assert "Invalid scope" in message and "subscription" in message
    assert api.count("/login") == 1  # not mistaken for a stale token


def test_429_then_success_and_5xx_then_success(api, clock):
    p = make(api, clock, max_attempts=3)
    p.region_for("US-CAL-CISO")
    api.script = [error(429, "Too Many Requests", "slow down")]
    api.script[0].headers["retry-after"] = "3"
    before = clock.now()
    assert len(p.latest(["US-CAL-CISO"])) == 1
    assert clock.now() - before == timedelta(seconds=3)
    clock.advance(timedelta(minutes=5))
    api.script = [httpx.Response(502), httpx.Response(504)]
    assert len(p.latest(["US-CAL-CISO"])) == 1
    clock.advance(timedelta(minutes=5))
    api.script = [error(429, "Too Many Requests", "slow down")] * 3
    with pytest.raises(RateLimitedError, match="gave up after 3"):
        p.latest(["US-CAL-CISO"])


def test_async_face_matches_sync_and_sends_regions_concurrently(api, clock):
    zones = ["US-CAL-CISO", "US-TEX-ERCO", "US-MIDA-PJM"]
    sync = make(api, clock).forecast(zones, horizon=timedelta(hours=1))

    async def run():
        async with make(api, clock).to_async(transport=httpx.MockTransport(api)) as a:
            return await a.forecast(zones, horizon=timedelta(hours=1)), a.peak_concurrency

    got, peak = asyncio.run(run())
    assert got.values.equals(sync.values) and got.notes == sync.notes
    assert peak >= 1


def test_a_fallback_chain_takes_over_from_the_free_tier_403(api, clock):
    from lowcarb import ProviderChain
    from lowcarb.backends import DefaultProvider

    api.allowed = {"CAISO_NORTH"}
    chain = ProviderChain([make(api, clock), DefaultProvider(clock=clock)])
    series = chain.latest(["US-TEX-ERCO"])
    assert series.provider == "default"
    assert any("watttime failed" in note and "CAISO_NORTH" in note for note in series.notes)
    assert not any(token in " ".join(series.notes) for token in api.logins)
