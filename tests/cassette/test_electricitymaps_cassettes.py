"""electricitymaps replayed from cassettes/electricitymaps/: the library (sync and async), the CLI.

Expectations are read from the cassette's own bodies, and the clock is set from them, so
that the tests still hold after the cassettes are re-recorded from the live API (then the
clock is the real one and the key comes from ``LOWCARB_ELECTRICITYMAPS_TOKEN``). Fault
cassettes are ``handmade`` and assert exact behaviour.
"""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from test_cassette_hygiene import problems
from vcr.cassette import Cassette

from lowcarb import ManualClock
from lowcarb.backends._electricitymaps import (
    INTENSITY_ROUTES,
    MAX_DEFAULT_ZONES,
    TOKEN_ENV,
    ElectricityMapsProvider,
)
from lowcarb.cli import main
from lowcarb.exceptions import (
    AuthenticationError,
    InvalidInputError,
    NoDataError,
    ResponseParseError,
)

CASSETTES = "electricitymaps"
pytestmark = pytest.mark.vcr

HOUR = timedelta(hours=1)
#: Replays send this; a re-recording sends the real key from the environment.
DUMMY_KEY = "dummy-em-key-for-replay"
#: The fixed range of the past-range cassette (older than 24 h: past-range, two requests).
PAST_START = datetime(2024, 5, 1, tzinfo=UTC)
PAST_END = datetime(2024, 5, 11, 3, tzinfo=UTC)


def key() -> str:
    return os.environ.get(TOKEN_ENV) or DUMMY_KEY


def provider(clock: ManualClock, **options: Any) -> ElectricityMapsProvider:
    return ElectricityMapsProvider(token=options.pop("token", key()), clock=clock, **options)


def body(cassette: Cassette, path: str, **params: str) -> Any:
    """The JSON body of the cassette's last 200 answer to ``path`` with ``params``.

    The last: when re-recording, the new answers follow the loaded ones.
    """
    pairs = list(zip(cassette.requests, cassette.responses, strict=True))
    for request, response in reversed(pairs):
        if (
            request.path.endswith(path)
            and set(params.items()) <= set(request.query)
            and response["status"]["code"] == 200
        ):
            return json.loads(response["body"]["string"])
    raise AssertionError(f"no 200 answer for {path} {params} in the cassette")


def recording(cassette: Cassette) -> bool:
    return cassette.record_mode == "all" or not cassette.responses


def when(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def clock_at(cassette: Cassette, path: str, pick: Any, **params: str) -> ManualClock:
    """Ten minutes into the hour ``pick(body)`` names; the real time when recording."""
    if recording(cassette):
        return ManualClock(datetime.now(UTC))
    return ManualClock(when(pick(body(cassette, path, **params))) + timedelta(minutes=10))


def latest_clock(cassette: Cassette) -> ManualClock:
    return clock_at(cassette, "/latest", lambda b: b["datetime"], zone="DE")


def history_clock(cassette: Cassette) -> ManualClock:
    return clock_at(cassette, "/history", lambda b: b["history"][-1]["datetime"])


def forecast_clock(cassette: Cassette) -> ManualClock:
    """Ten minutes into the forecast's hour of issue.

    v4 answers from that hour; v3 from the next one, and lowcarb then reads the hour of
    issue from ``/latest`` (which the cassette holds).
    """
    v3 = any(request.path.endswith("/latest") for request in cassette.requests)
    if v3 and not recording(cassette):
        return clock_at(cassette, "/latest", lambda b: b["datetime"], zone="DE")
    return clock_at(cassette, "/forecast", lambda b: b["forecast"][0]["datetime"])


def intensity_zones(cassette: Cassette) -> list[str]:
    """The zones whose /zones entry lists a carbon-intensity route lowcarb reads."""
    return [
        zone
        for zone, entry in body(cassette, "/zones").items()
        if any(a in ("*", *INTENSITY_ROUTES) for a in entry.get("access", ["*"]))
    ]


# -- zones and lookup -----------------------------------------------------------------------


@pytest.mark.vcr("zones")
def test_zones_from_the_api(vcr_cassette):
    p = provider(ManualClock(datetime.now(UTC)))
    listed = body(vcr_cassette, "/zones")
    assert p.served_zones() == list(listed)
    names = {z.zone: z.name for z in p.zones()}
    for zone, entry in listed.items():
        assert zone in names and (names[zone] == entry["zoneName"] or zone in ("DE", "FR"))
    assert vcr_cassette.play_count == 1


@pytest.mark.vcr("zones")
def test_default_zones_are_bounded(vcr_cassette):
    # A 2026 free key lists far more zones than lowcarb asks for unasked.
    reachable = intensity_zones(vcr_cassette)
    p = provider(ManualClock(datetime.now(UTC)))
    if len(reachable) <= MAX_DEFAULT_ZONES:
        assert p.default_zones() == reachable
    else:
        with pytest.raises(InvalidInputError, match=f"for {len(reachable)} zones"):
            p.default_zones()
    assert vcr_cassette.play_count == 1


@pytest.mark.vcr("location_lookup")
def test_lat_lon_lookup(vcr_cassette):
    found = provider(ManualClock(datetime.now(UTC))).resolve("52.52,13.405")
    assert (
        found.zone == body(vcr_cassette, "/latest", lat="52.52")["zone"]
        and found.method == "provider"
    )
    assert vcr_cassette.all_played


# -- latest, history, forecast --------------------------------------------------------------


@pytest.mark.vcr("latest")
def test_latest(vcr_cassette):
    clock = latest_clock(vcr_cassette)
    series = provider(clock).latest(["DE"])
    answer = body(vcr_cassette, "/latest", zone="DE")
    start = when(answer["datetime"])
    assert list(series.values.index) == [start]
    assert series.values.at[start, "DE"] == answer["carbonIntensity"]
    assert bool(series.estimated_mask().at[start, "DE"]) is answer["isEstimated"]
    assert (series.provider, series.signal, series.basis) == (
        "electricitymaps",
        "average",
        answer["emissionFactorType"],
    )
    assert vcr_cassette.all_played


@pytest.mark.vcr("history")
def test_history_last_24_hours(vcr_cassette):
    clock = history_clock(vcr_cassette)
    end = clock.now().replace(minute=0) + HOUR
    series = provider(clock).history(["DE"], end - 24 * HOUR, end)
    items = {when(i["datetime"]): i for i in body(vcr_cassette, "/history")["history"]}
    assert len(series) == 24
    for start in series.values.index:
        assert series.values.at[start, "DE"] == items[start]["carbonIntensity"]
        assert bool(series.estimated_mask().at[start, "DE"]) is items[start]["isEstimated"]
    assert not series.is_forecast and vcr_cassette.all_played


@pytest.mark.vcr("past_range")
def test_past_range_split_at_ten_days(vcr_cassette):
    series = provider(ManualClock(datetime(2024, 6, 1, 12, 10, tzinfo=UTC))).history(
        ["DE"], PAST_START, PAST_END
    )
    assert len(series) == 243 and not series.values["DE"].isna().any()
    items: dict[datetime, dict[str, Any]] = {}
    for request, response in zip(vcr_cassette.requests, vcr_cassette.responses, strict=True):
        if "/past-range" in request.uri:
            for item in json.loads(response["body"]["string"])["data"]:
                items[when(item["datetime"])] = item  # the later answer wins, as in lowcarb
    for start in series.values.index:
        assert series.values.at[start, "DE"] == items[start]["carbonIntensity"]
        assert bool(series.estimated_mask().at[start, "DE"]) is items[start]["isEstimated"]
    assert not any("twice" in note for note in series.notes)  # each answer cut to its window
    assert vcr_cassette.play_count == 3 and vcr_cassette.all_played


def forecast_items(cassette: Cassette) -> dict[datetime, Any]:
    """Each hour's value: the forecast's, and the hour of issue from /latest (v3)."""
    items = {when(i["datetime"]): i for i in body(cassette, "/forecast")["forecast"]}
    if any(request.path.endswith("/latest") for request in cassette.requests):
        latest = body(cassette, "/latest", zone="DE")
        items.setdefault(when(latest["datetime"]), latest)
    return items


@pytest.mark.vcr("forecast")
def test_forecast_sync_and_async_agree(vcr_cassette):
    # v3: the forecast starts at the next hour; the current one comes from /latest.
    clock = forecast_clock(vcr_cassette)
    sync = provider(clock, gaps="error").forecast(["DE"], horizon=timedelta(hours=24))
    items = forecast_items(vcr_cassette)
    assert sync.is_forecast and sync.issued_at == clock.now() and len(sync) == 24
    for start in sync.values.index:
        assert sync.values.at[start, "DE"] == items[start]["carbonIntensity"]
    assert vcr_cassette.all_played

    async def run():
        async with provider(clock).to_async() as p:
            return await p.forecast(["DE"], horizon=timedelta(hours=24))

    vcr_cassette.allow_playback_repeats = True  # a second provider asks again
    assert asyncio.run(run()).values.equals(sync.values)


@pytest.mark.vcr("forecast_v4")
def test_forecast_from_v4_starts_at_the_current_hour(vcr_cassette):
    clock = forecast_clock(vcr_cassette)
    p = provider(clock, base_url="https://api.electricitymaps.com/v4", gaps="error")
    series = p.forecast(["DE"], horizon=timedelta(hours=24))
    items = forecast_items(vcr_cassette)
    assert len(items) == 25 and len(series) == 24  # horizonHours + 1 rows; the 25th cut
    for start in series.values.index:
        assert series.values.at[start, "DE"] == items[start]["carbonIntensity"]
    assert not any("/latest" in request.path for request in vcr_cassette.requests)
    assert vcr_cassette.all_played


# -- faults ---------------------------------------------------------------------------------


@pytest.mark.vcr("bad_credentials")
def test_bad_key_fails_at_once_naming_the_variable(vcr_cassette):
    with pytest.raises(AuthenticationError) as info:
        provider(ManualClock(datetime.now(UTC)), token="not-a-valid-key").latest(["DE"])
    assert TOKEN_ENV in str(info.value) and "not-a-valid-key" not in str(info.value)
    assert info.value.status_code == 401 and vcr_cassette.play_count == 1


@pytest.mark.handmade
@pytest.mark.vcr("plan_refused")
def test_a_route_the_key_lacks_is_refused_before_asking(vcr_cassette):
    clock = ManualClock(datetime(2024, 6, 1, 12, 10, tzinfo=UTC))
    with pytest.raises(AuthenticationError) as info:
        provider(clock).history(["DE"], clock.now() - 72 * HOUR, clock.now())
    assert str(info.value) == (
        "electricitymaps: this key may not read carbon-intensity/past-range for DE: its "
        "/zones entry lists carbon-intensity latest, history, forecast (and 76 other routes); "
        "/carbon-intensity/history reaches back to 2024-05-31T13:00Z only"
    )
    assert vcr_cassette.play_count == 1  # /zones only


@pytest.mark.handmade
@pytest.mark.vcr("route_refused")
def test_a_route_the_api_refuses_is_the_plan_not_the_key(vcr_cassette):
    clock = ManualClock(datetime(2024, 6, 1, 12, 10, tzinfo=UTC))
    with pytest.raises(AuthenticationError) as info:
        provider(clock).history(
            ["DE"], datetime(2024, 5, 29, tzinfo=UTC), datetime(2024, 5, 30, tzinfo=UTC)
        )
    message = str(info.value)
    assert (
        "-> 401: this key's plan does not cover the request (Request unauthorized for " in message
    )
    assert "(You do not have access to this specific endpoint for this specific zone)" in message
    assert TOKEN_ENV not in message and info.value.status_code == 401
    assert vcr_cassette.play_count == 2  # not retried


@pytest.mark.handmade
@pytest.mark.vcr("error_429_then_ok")
def test_rate_limited_then_answered(vcr_cassette):
    clock = latest_clock(vcr_cassette)
    before = clock.now()
    assert len(provider(clock).latest(["DE"])) == 1
    assert clock.now() == before + timedelta(seconds=3)  # Retry-After, on the clock
    assert vcr_cassette.play_count == 3


@pytest.mark.handmade
@pytest.mark.vcr("error_5xx_then_ok")
def test_server_errors_then_answered(vcr_cassette):
    clock = history_clock(vcr_cassette)
    before = clock.now()
    end = before.replace(minute=0)
    series = provider(clock).history(["DE"], end - 6 * HOUR, end)
    assert len(series) == 6 and vcr_cassette.play_count == 4
    waited = (clock.now() - before).total_seconds()
    assert 0.25 + 0.5 <= waited <= 0.5 + 1.0  # two backoffs with jitter


@pytest.mark.handmade
@pytest.mark.vcr("error_empty_data")
def test_empty_history_is_no_data(vcr_cassette):
    clock = ManualClock(datetime(2024, 6, 1, 12, 10, tzinfo=UTC))
    with pytest.raises(NoDataError, match="no data for DE"):
        provider(clock).history(["DE"], clock.now() - 6 * HOUR, clock.now())


@pytest.mark.handmade
@pytest.mark.vcr("error_malformed")
def test_truncated_body_names_the_request(vcr_cassette):
    clock = ManualClock(datetime(2024, 6, 1, 12, 10, tzinfo=UTC))
    with pytest.raises(ResponseParseError, match="not valid JSON") as info:
        provider(clock).forecast(["DE"], horizon=timedelta(hours=6))
    assert (
        "GET https://api.electricitymaps.com/v3/carbon-intensity/forecast?zone=DE"
        "&emissionFactorType=lifecycle&horizonHours=24" in str(info.value)
    )


def test_hygiene_catches_an_electricitymaps_key():
    # An Electricity Maps key is an opaque string sent as the auth-token header; the
    # scanner must flag it in a header, a query parameter or a JSON body.
    leaked = "Xk3v9QpL2mZt8RwY"
    cassette = f"""# Written by hand (not recorded)
interactions:
- request:
    body: '{{"auth-token": "{leaked}"}}'
    headers:
      Auth-Token:
      - {leaked}
    method: GET
    uri: https://api.electricitymaps.com/v3/zones?auth-token={leaked}
  response:
    body:
      string: '{{}}'
    headers: {{}}
    status: {{code: 200, message: OK}}
version: 1
"""
    found = "\n".join(problems(cassette))
    assert "request header Auth-Token is not REDACTED" in found
    assert "query parameter auth-token is not REDACTED" in found
    assert found.count("credential field") >= 2
    assert problems(cassette.replace(leaked, "REDACTED")) == []


# -- the command line -----------------------------------------------------------------------


@pytest.fixture
def run(capsys, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, key())

    def invoke(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return invoke


def now_text(clock: ManualClock) -> str:
    return clock.now().strftime("%Y-%m-%dT%H:%MZ")


@pytest.mark.vcr("latest")
def test_cli_latest(run, vcr_cassette):
    clock = latest_clock(vcr_cassette)
    code, out, err = run(
        "latest", "-p", "electricitymaps", "-z", "DE", "--now", now_text(clock), "--json"
    )
    assert code == 0, err
    payload = json.loads(out)
    answer = body(vcr_cassette, "/latest", zone="DE")
    assert payload["provider"] == "electricitymaps" and payload["basis"] == "lifecycle"
    (row,) = payload["data"]["DE"]
    assert row["value"] == answer["carbonIntensity"] and row["estimated"] is answer["isEstimated"]


@pytest.mark.vcr("history")
def test_cli_history(run, vcr_cassette):
    clock = history_clock(vcr_cassette)
    code, out, err = run(
        "history", "-p", "electricitymaps", "-z", "DE", "--hours", "6", "--now", now_text(clock)
    )
    assert code == 0, err
    assert "provider electricitymaps, average signal, lifecycle basis" in out
    assert f"{clock.now():%Y-%m-%d %H}:00" in out and "DE" in out


@pytest.mark.vcr("forecast")
def test_cli_forecast(run, vcr_cassette):
    clock = forecast_clock(vcr_cassette)
    code, out, err = run(
        "forecast",
        "-p",
        "electricitymaps",
        "-z",
        "DE",
        "--hours",
        "6",
        "--now",
        now_text(clock),
        "--json",
    )
    assert code == 0, err
    payload = json.loads(out)
    items = forecast_items(vcr_cassette)
    assert payload["is_forecast"] is True
    assert [r["value"] for r in payload["data"]["DE"]] == [
        items[when(r["start"])]["carbonIntensity"] for r in payload["data"]["DE"]
    ]
    assert len(payload["data"]["DE"]) == 6


@pytest.mark.vcr("zones")
def test_cli_latest_without_zones_asks_none_of_many(run, vcr_cassette):
    reachable = intensity_zones(vcr_cassette)
    if len(reachable) <= MAX_DEFAULT_ZONES:
        pytest.skip("this key reads few zones: latest asks them all")
    code, out, err = run("latest", "-p", "electricitymaps")
    assert code != 0 and out == "" and "Traceback" not in err
    assert f"this key reads carbon intensity for {len(reachable)} zones" in err
    assert "LOWCARB_ELECTRICITYMAPS_ZONES" in err
    assert vcr_cassette.play_count == 1  # /zones only, not one request per zone


@pytest.mark.vcr("zones")
def test_cli_zones(run, vcr_cassette):
    code, out, err = run("zones", "-p", "electricitymaps", "--json")
    assert code == 0, err
    zones = json.loads(out)["zones"]
    assert [z["zone"] for z in zones] == list(body(vcr_cassette, "/zones"))


@pytest.mark.vcr("bad_credentials")
def test_cli_bad_key_is_one_line(run, vcr_cassette, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, "not-a-valid-key")
    code, out, err = run("latest", "-p", "electricitymaps", "-z", "DE")
    assert code == 1 and out == "" and "Traceback" not in err
    assert err.startswith("error: electricitymaps: GET https://api.electricitymaps.com/v3/zones")
    assert TOKEN_ENV in err and "not-a-valid-key" not in err
