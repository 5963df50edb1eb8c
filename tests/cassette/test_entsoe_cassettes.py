"""entsoe replayed from cassettes/entsoe/ through entsoe-py's own requests path, and the CLI.

The provider builds its own ``requests.Session`` here (no fake adapter): vcrpy intercepts
urllib3 under requests, so the request that entsoe-py builds, with the token as
``securityToken`` (filtered to ``REDACTED`` before matching), is what meets the cassette.
Expected intensities are computed from the cassette's own XML with the factor table, so
the tests still hold after a re-recording; fault cassettes are ``handmade``.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from entsoe.mappings import PSRTYPE_MAPPINGS
from vcr.cassette import Cassette

from lowcarb import ManualClock
from lowcarb.backends._entsoe import EntsoeProvider
from lowcarb.backends._entsoe_factors import factor_for
from lowcarb.cli import main
from lowcarb.exceptions import (
    AuthenticationError,
    NoDataError,
    ResponseParseError,
)

CASSETTES = "entsoe"
pytestmark = pytest.mark.vcr

NOW = datetime(2024, 6, 1, 12, 10, tzinfo=UTC)
NOW_TEXT = "2024-06-01T12:10Z"
SLOT = datetime(2024, 6, 1, 12, tzinfo=UTC)
HOUR = timedelta(hours=1)
# Shaped like an ENTSO-E token (a UUID); replay never sends it anywhere. To re-record, the
# real token comes from the environment (read at import: the tests' environment is cleaned).
TOKEN = os.environ.get("LOWCARB_ENTSOE_TOKEN") or "00000000-dead-beef-0000-000000000000"
WIND_SOLAR = {"B16", "B18", "B19"}


def provider(**options) -> EntsoeProvider:
    return EntsoeProvider(token=TOKEN, clock=ManualClock(NOW), **options)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def mix(cassette: Cassette, document: str) -> pd.DataFrame:
    """Hourly mean MW per production type of the cassette's 200 answer to ``document``."""
    for request, response in zip(cassette.requests, cassette.responses, strict=True):
        if f"documentType={document}" in request.uri and response["status"]["code"] == 200:
            root = ET.fromstring(response["body"]["string"])
            break
    else:
        raise AssertionError(f"no 200 answer to {document} in the cassette")
    columns: dict[str, dict[datetime, float]] = defaultdict(dict)
    for series in (e for e in root if _local(e.tag) == "TimeSeries"):
        fields = {_local(e.tag): e for e in series.iter()}
        if "outBiddingZone_Domain.mRID" in fields:
            continue  # consumption (pumping) is not generation
        name = fields["psrType"].text if "psrType" in fields else "total"
        blocks = fields["curveType"].text == "A03"
        for period in series.findall("{*}Period"):
            start = datetime.fromisoformat(period.find(".//{*}start").text)
            end = datetime.fromisoformat(period.find(".//{*}end").text)
            step = timedelta(minutes=int(period.find("{*}resolution").text[2:-1]))
            given = {
                int(point.find("{*}position").text): float(point.find("{*}quantity").text)
                for point in period.findall("{*}Point")
            }
            value = None
            for position in range(1, (end - start) // step + 1):
                # A03: a left-out position repeats the one before; A01: it is missing.
                value = given.get(position, value if blocks else None)
                if value is not None:
                    columns[name][start + (position - 1) * step] = value
    frame = pd.DataFrame(columns).sort_index()
    return frame.resample("1h").mean()


def factor(psr: str, kind: str = "lifecycle") -> float | None:
    found = factor_for(PSRTYPE_MAPPINGS[psr])
    return None if found is None else found.value(kind)


def intensity(row: pd.Series, kind: str = "lifecycle") -> float:
    weights = {p: factor(p, kind) for p in row.index}
    used = [p for p, f in weights.items() if f is not None]
    return sum(row[p] * weights[p] for p in used) / sum(row[p] for p in used)


# -- latest, history, forecast ------------------------------------------------------------------


@pytest.mark.vcr("latest")
def test_latest(vcr_cassette):
    series = provider().latest(["DE"])
    expected = mix(vcr_cassette, "A75")
    assert list(series.values.index) == [SLOT]
    assert series.values.at[SLOT, "DE"] == pytest.approx(intensity(expected.loc[SLOT]))
    assert series.basis == "lifecycle" and series.signal == "average"
    assert vcr_cassette.play_count == 1


@pytest.mark.vcr("latest")
def test_latest_direct(vcr_cassette):
    series = provider(emission_factor_type="direct").latest(["DE"])
    expected = mix(vcr_cassette, "A75").loc[SLOT]
    assert series.values.at[SLOT, "DE"] == pytest.approx(intensity(expected, "direct"))


def left_out_positions(cassette: Cassette) -> int:
    """How many positions the cassette's A03 periods leave out (their value repeats)."""
    count = 0
    for response in cassette.responses:
        body = response["body"]["string"]
        body = body.decode() if isinstance(body, bytes) else body
        if "<curveType>A03</curveType>" not in body:
            continue
        for period in ET.fromstring(body).findall(".//{*}Period"):
            start = datetime.fromisoformat(period.find(".//{*}start").text)
            end = datetime.fromisoformat(period.find(".//{*}end").text)
            step = timedelta(minutes=int(period.find("{*}resolution").text[2:-1]))
            count += (end - start) // step - len(period.findall("{*}Point"))
    return count


@pytest.mark.vcr("history")
def test_history_in_quarter_hours(vcr_cassette):
    series = provider().history(["NL"], SLOT - 6 * HOUR, SLOT)
    expected = mix(vcr_cassette, "A75")
    assert len(series) == 6 and series.resolution == HOUR
    for start, value in series.values["NL"].items():
        assert value == pytest.approx(intensity(expected.loc[start]))
    # A 2025-style A03 document: repeated quarter-hours left out, read as repeated.
    assert left_out_positions(vcr_cassette) > 0 or vcr_cassette.record_mode == "all"
    assert not series.estimated_mask().any().any()


@pytest.mark.vcr("forecast")
def test_forecast(vcr_cassette):
    series = provider().forecast(["DE"], horizon=6 * HOUR)
    recent = mix(vcr_cassette, "A75")
    total = mix(vcr_cassette, "A71")["total"]
    wind_solar = mix(vcr_cassette, "A69")
    others = recent[[p for p in recent if p not in WIND_SOLAR and factor(p) is not None]].sum()
    r = sum(others[p] * factor(p) for p in others.index) / others.sum()
    assert series.is_forecast and series.issued_at == NOW and len(series) == 6
    for start, value in series.values["DE"].items():
        ws = wind_solar.loc[start]
        rest = total[start] - ws.sum()
        expected = (sum(ws[p] * factor(p) for p in ws.index) + rest * r) / total[start]
        assert value == pytest.approx(expected)
    assert vcr_cassette.play_count == 3


@pytest.mark.vcr("forecast")
def test_forecast_past_the_published_day_ahead_is_nan(vcr_cassette):
    series = provider(gaps="keep").forecast(["DE"], horizon=18 * HOUR)
    column = series.values["DE"]
    assert column.iloc[:12].notna().all() and column.iloc[12:].isna().all()
    assert any("6 intervals without data" in n for n in series.notes)


@pytest.mark.vcr("no_data")
def test_zone_without_data_is_no_data(vcr_cassette):
    with pytest.raises(NoDataError, match="no actual generation"):
        provider().latest(["CH"])


# -- faults ---------------------------------------------------------------------------------


@pytest.mark.handmade
@pytest.mark.vcr("bad_token")
def test_bad_token_is_an_authentication_error_at_once(vcr_cassette):
    with pytest.raises(AuthenticationError, match="LOWCARB_ENTSOE_TOKEN") as info:
        provider().latest(["DE"])
    assert TOKEN not in str(info.value) and "securityToken=REDACTED" in str(info.value)
    assert vcr_cassette.play_count == 1


@pytest.mark.handmade
@pytest.mark.vcr("error_429_then_ok")
def test_429_then_ok(vcr_cassette):
    p = provider()
    series = p.latest(["DE"])
    assert vcr_cassette.play_count == 2 and p.clock.now() == NOW + timedelta(seconds=2)
    assert series.values.notna().all().all()


@pytest.mark.handmade
@pytest.mark.vcr("error_5xx_then_ok")
def test_5xx_then_ok(vcr_cassette):
    series = provider().latest(["DE"])
    assert vcr_cassette.play_count == 2 and len(series) == 1


@pytest.mark.handmade
@pytest.mark.vcr("error_empty")
def test_empty_document(vcr_cassette):
    with pytest.raises(NoDataError, match="no time series for DE"):
        provider().latest(["DE"])


@pytest.mark.handmade
@pytest.mark.vcr("error_malformed")
def test_malformed_body(vcr_cassette):
    with pytest.raises(ResponseParseError, match="not well-formed XML") as info:
        provider().latest(["DE"])
    assert "documentType=A75" in str(info.value) and TOKEN not in str(info.value)


# -- the CLI, in process --------------------------------------------------------------------------


@pytest.fixture
def token_env(monkeypatch):
    monkeypatch.setenv("LOWCARB_ENTSOE_TOKEN", TOKEN)


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.vcr("latest")
def test_cli_latest(capsys, token_env, vcr_cassette):
    code, out, err = run(capsys, "latest", "-p", "entsoe", "-z", "DE", "--now", NOW_TEXT, "--json")
    assert code == 0, err
    payload = json.loads(out)
    assert payload["provider"] == "entsoe" and payload["basis"] == "lifecycle"
    (row,) = payload["data"]["DE"]
    assert row["start"] == "2024-06-01T12:00:00Z"
    assert row["value"] == pytest.approx(intensity(mix(vcr_cassette, "A75").loc[SLOT]), abs=1e-3)
    assert any("generation-based" in n for n in payload["notes"])


@pytest.mark.vcr("history")
def test_cli_history(capsys, token_env, vcr_cassette):
    code, out, err = run(
        capsys, "history", "-p", "entsoe", "-z", "NL", "--start", "2024-06-01T06:00Z",
        "--end", "2024-06-01T12:00Z", "--now", NOW_TEXT,
    )  # fmt: skip
    assert code == 0, err
    assert "provider entsoe, average signal, lifecycle basis" in out
    assert out.count("2024-06-01 ") == 6


@pytest.mark.vcr("forecast")
def test_cli_forecast(capsys, token_env, vcr_cassette):
    code, out, err = run(
        capsys, "forecast", "-p", "entsoe", "-z", "DE", "--hours", "6", "--now", NOW_TEXT,
        "--json", "-o", "emission_factor_type=direct",
    )  # fmt: skip
    assert code == 0, err
    payload = json.loads(out)
    assert payload["is_forecast"] and payload["basis"] == "direct"
    assert len(payload["data"]["DE"]) == 6
    assert any("a heuristic" in n for n in payload["notes"])


@pytest.mark.vcr("zones_no_http")
def test_cli_zones(capsys, token_env):
    # Listing zones sends nothing: the (absent) cassette would refuse any request.
    code, out, err = run(capsys, "zones", "-p", "entsoe", "--json")
    assert code == 0, err
    zones = {z["zone"]: z for z in json.loads(out)["zones"]}
    assert {"DE", "FR", "SE-SE3", "IT-NO", "DK-DK1"} <= set(zones) and "GB" not in zones
    assert zones["XK"]["name"] == "Kosovo"


@pytest.mark.handmade
@pytest.mark.vcr("bad_token")
def test_cli_bad_token_exits_non_zero_without_the_token(capsys, token_env, vcr_cassette):
    code, out, err = run(capsys, "latest", "-p", "entsoe", "-z", "DE", "--now", NOW_TEXT)
    assert code != 0 and "LOWCARB_ENTSOE_TOKEN" in err
    assert TOKEN not in out + err
