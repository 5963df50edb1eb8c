"""watttime replayed from cassettes/watttime/: the library (sync and async) and the CLI.

Expectations are read from the cassette's own bodies where possible, so that the tests
still hold after re-recording from the live API (with ``LOWCARB_WATTTIME_USERNAME`` and
``LOWCARB_WATTTIME_PASSWORD`` set; the clock is then the real one, because WattTime's
forecast and latest answers are not dated). Fault cassettes are ``handmade``.
"""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from vcr.cassette import Cassette

from lowcarb import ManualClock
from lowcarb._time import floor_time
from lowcarb.backends._watttime import WattTimeProvider
from lowcarb.cli import main
from lowcarb.exceptions import (
    AuthenticationError,
    NoDataError,
    ResponseParseError,
)

CASSETTES = "watttime"
pytestmark = pytest.mark.vcr

REPLAY_NOW = datetime(2024, 6, 1, 12, 10, tzinfo=UTC)
HOUR_START = datetime(2024, 6, 1, 11, tzinfo=UTC)
HOUR_END = datetime(2024, 6, 1, 12, tzinfo=UTC)
LBS = 0.45359237
ZONE = "US-CAL-CISO"
#: Dummy credentials for replay; real ones come from the environment when recording.
DUMMY = {"LOWCARB_WATTTIME_USERNAME": "lowcarb-test", "LOWCARB_WATTTIME_PASSWORD": "pw-dummy"}


@pytest.fixture
def recording(request: pytest.FixtureRequest) -> bool:
    return request.config.getoption("--vcr-record") not in (None, "none")


@pytest.fixture
def now(recording: bool) -> datetime:
    """The replay time, or the real time (on the five minutes) when re-recording."""
    return floor_time(datetime.now(UTC), timedelta(minutes=5)) if recording else REPLAY_NOW


@pytest.fixture
def credentials(recording: bool, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    if not recording:
        for name, value in DUMMY.items():
            monkeypatch.setenv(name, value)
            monkeypatch.delenv(name + "_FILE", raising=False)
    elif not all(os.environ.get(name) for name in DUMMY):
        pytest.skip("set LOWCARB_WATTTIME_USERNAME and LOWCARB_WATTTIME_PASSWORD to re-record")
    return {
        "username": os.environ["LOWCARB_WATTTIME_USERNAME"],
        "password": os.environ["LOWCARB_WATTTIME_PASSWORD"],
    }


@pytest.fixture
def provider(credentials: dict[str, str], now: datetime) -> WattTimeProvider:
    return WattTimeProvider(clock=ManualClock(now), **credentials)


def answer(cassette: Cassette, path: str) -> Any:
    """The JSON body of the cassette's last 200 answer to ``path``."""
    found = None
    for request, response in zip(cassette.requests, cassette.responses, strict=True):
        if request.path == path and response["status"]["code"] == 200:
            found = json.loads(response["body"]["string"])
    assert found is not None, f"no 200 answer to {path} in the cassette"
    return found


def points(payload: Any) -> dict[datetime, float]:
    return {datetime.fromisoformat(p["point_time"]): p["value"] * LBS for p in payload["data"]}


def paths(cassette: Cassette) -> list[str]:
    return [request.path for request in cassette.requests]


# -- login and regions --------------------------------------------------------------------------


@pytest.mark.vcr("login")
def test_login(provider, vcr_cassette):
    provider.verify_credentials()
    assert provider.logins == 1 and provider.requests_sent == len(vcr_cassette) == 1
    assert vcr_cassette.requests[0].headers["authorization"] == "REDACTED"


@pytest.mark.vcr("region_from_loc")
def test_region_from_coordinates(provider, vcr_cassette):
    found = provider.region_for("39.74,-104.99")
    body = answer(vcr_cassette, "/v3/region-from-loc")
    assert (found.region, found.name, found.method) == (
        body["region"],
        body["region_full_name"],
        "coordinates",
    )
    assert paths(vcr_cassette) == ["/login", "/v3/region-from-loc"]


# -- values -------------------------------------------------------------------------------------


@pytest.mark.vcr("latest")
def test_latest(provider, vcr_cassette, now):
    series = provider.latest([ZONE])
    expected = points(answer(vcr_cassette, "/v3/forecast"))
    (start,) = series.values.index
    assert start <= now and series.values.iloc[0, 0] == pytest.approx(expected[start])
    region = answer(vcr_cassette, "/v3/region-from-loc")["region"]
    assert any(f"WattTime region {region}" in note for note in series.notes)
    assert series.signal == "marginal" and provider.requests_sent == len(vcr_cassette) == 3


@pytest.mark.vcr("history")
def test_history(provider, vcr_cassette):
    series = provider.history([ZONE], HOUR_START, HOUR_END)
    payload = answer(vcr_cassette, "/v3/historical")
    expected = points(payload)
    assert len(series) == 12 and not series.is_forecast
    for start, value in series.values[ZONE].items():
        assert value == pytest.approx(expected[start])
    imputed = {
        datetime.fromisoformat(p["point_time"])
        for p in payload["data"]
        if p.get("imputed_data_used")
    }
    flagged = series.estimated_mask()[ZONE]
    assert set(flagged[flagged].index) == imputed


@pytest.mark.vcr("forecast")
def test_forecast_sync_and_async_agree(provider, vcr_cassette, now):
    sync = provider.forecast([ZONE], horizon=timedelta(hours=6))
    expected = points(answer(vcr_cassette, "/v3/forecast"))
    assert len(sync) == 72 and sync.is_forecast and sync.issued_at == now
    for start, value in sync.values[ZONE].items():
        assert value == pytest.approx(expected[start])

    async def run():
        async with provider.to_async() as p:
            return await p.forecast([ZONE], horizon=timedelta(hours=6))

    # The async face shares the token, the region and the response cache: no request.
    got = asyncio.run(run())
    assert got.values.equals(sync.values) and provider.requests_sent == 3


@pytest.mark.vcr("signal_index")
def test_signal_index(provider, vcr_cassette):
    index = provider.signal_index([ZONE])[ZONE]
    body = answer(vcr_cassette, "/v3/signal-index")["data"][-1]
    assert index.percentile == body["value"] and 0 <= index.percentile <= 100
    assert index.start == datetime.fromisoformat(body["point_time"])


# -- faults -------------------------------------------------------------------------------------


@pytest.mark.handmade
@pytest.mark.vcr("bad_credentials")
def test_bad_credentials(provider, vcr_cassette):
    with pytest.raises(AuthenticationError) as info:
        provider.latest([ZONE])
    message = str(info.value)
    assert "LOWCARB_WATTTIME_USERNAME" in message and "LOWCARB_WATTTIME_PASSWORD" in message
    assert "pw-dummy" not in message and vcr_cassette.play_count == 1  # no retries


@pytest.mark.handmade
@pytest.mark.vcr("relogin_401")
def test_401_then_login_again_then_success(provider, vcr_cassette):
    series = provider.latest([ZONE])
    assert len(series) == 1 and provider.logins == 2
    assert paths(vcr_cassette) == [
        "/login",
        "/v3/region-from-loc",
        "/v3/forecast",
        "/login",
        "/v3/forecast",
    ]
    assert vcr_cassette.all_played


@pytest.mark.handmade
@pytest.mark.vcr("free_tier_403")
def test_free_tier_403(provider, vcr_cassette):
    with pytest.raises(AuthenticationError) as info:
        provider.forecast(["US-TEX-ERCO"], horizon=timedelta(hours=6))
    message = str(info.value)
    assert "ERCOT_NORTHCENTRAL" in message and "only region CAISO_NORTH" in message
    assert info.value.status_code == 403 and provider.logins == 1


@pytest.mark.handmade
@pytest.mark.vcr("error_429_then_ok")
def test_rate_limited_then_answered(provider, vcr_cassette, now):
    assert len(provider.latest([ZONE])) == 1
    assert provider.clock.now() == now + timedelta(seconds=2)  # Retry-After, on the clock
    assert vcr_cassette.all_played


@pytest.mark.handmade
@pytest.mark.vcr("error_5xx_then_ok")
def test_server_errors_then_answered(provider, vcr_cassette, now):
    assert len(provider.latest([ZONE])) == 1
    waited = (provider.clock.now() - now).total_seconds()
    assert 0.25 + 0.5 <= waited <= 0.5 + 1.0  # two backoffs with jitter
    assert vcr_cassette.all_played


@pytest.mark.handmade
@pytest.mark.vcr("error_empty_data")
def test_empty_data_is_no_data(provider, vcr_cassette):
    with pytest.raises(NoDataError, match=f"no data for {ZONE}"):
        provider.history([ZONE], HOUR_START, HOUR_END)


@pytest.mark.handmade
@pytest.mark.vcr("error_malformed")
def test_truncated_body_names_the_request(provider, vcr_cassette):
    with pytest.raises(ResponseParseError, match="not valid JSON") as info:
        provider.forecast([ZONE], horizon=timedelta(hours=6))
    assert "GET https://api.watttime.org/v3/forecast?region=CAISO_NORTH" in str(info.value)


# -- the command line ---------------------------------------------------------------------------


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%MZ")


@pytest.mark.vcr("latest")
def test_cli_latest(capsys, vcr_cassette, credentials, now):
    code, out, err = run(capsys, "latest", "-p", "watttime", "--now", stamp(now), "--json")
    assert code == 0, err
    payload = json.loads(out)
    assert payload["provider"] == "watttime" and payload["signal"] == "marginal"
    (record,) = payload["data"][ZONE]
    expected = points(answer(vcr_cassette, "/v3/forecast"))
    start = datetime.fromisoformat(record["start"])
    assert record["value"] == pytest.approx(expected[start], abs=1e-3)
    assert any("WattTime region" in note for note in payload["notes"])


@pytest.mark.vcr("history")
def test_cli_history(capsys, vcr_cassette, credentials, now):
    code, out, err = run(
        capsys,
        "history",
        "-p",
        "watttime",
        "-z",
        ZONE,
        "--start",
        stamp(HOUR_START),
        "--end",
        stamp(HOUR_END),
        "--now",
        stamp(now),
    )
    assert code == 0, err
    assert "Carbon intensity history" in out and "marginal signal" in out
    first = min(points(answer(vcr_cassette, "/v3/historical")).items())
    assert f"{first[1]:.1f}" in out


@pytest.mark.vcr("forecast")
def test_cli_forecast(capsys, vcr_cassette, credentials, now):
    code, out, err = run(
        capsys, "forecast", "-p", "watttime", "--hours", "6", "--now", stamp(now), "--json"
    )
    assert code == 0, err
    payload = json.loads(out)
    assert payload["is_forecast"] and len(payload["data"][ZONE]) == 72


@pytest.mark.vcr("login")
def test_cli_zones_needs_no_http(capsys, vcr_cassette, credentials):
    code, out, err = run(capsys, "zones", "-p", "watttime", "-o", "regions=LAB=PSCO", "--json")
    assert code == 0, err
    zones = {z["zone"]: z["name"] for z in json.loads(out)["zones"]}
    assert zones["LAB"] == "WattTime region PSCO" and ZONE in zones
    assert vcr_cassette.play_count == 0


@pytest.mark.handmade
@pytest.mark.vcr("bad_credentials")
def test_cli_bad_credentials_is_one_line(capsys, vcr_cassette, credentials):
    code, out, err = run(capsys, "latest", "-p", "watttime", "--now", stamp(REPLAY_NOW))
    assert code != 0 and "LOWCARB_WATTTIME_PASSWORD" in err
    assert "Traceback" not in err and "pw-dummy" not in err + out
