"""The ``entsoe`` provider against a fake ENTSO-E (a requests adapter): the intensity math,
the forecast heuristic, zones, errors, retries, redaction and the repair policy.

Expected intensities are computed here from the fake's own MW profiles and the factors
written out below (not read from the module), so a changed table or formula fails.
"""

from __future__ import annotations

import asyncio
import logging
import re
import warnings
from datetime import UTC, datetime, timedelta

import pytest
import requests
from _entsoe_api import (
    PROFILES,
    TOKEN,
    FakeEntsoeAPI,
    Series,
    acknowledgement,
    gl_document,
    mw,
    session_for,
)
from entsoe.exceptions import InvalidBusinessParameterError, NoMatchingDataError, PaginationError
from entsoe.mappings import PSRTYPE_MAPPINGS, lookup_area

from lowcarb import ManualClock
from lowcarb._config import load_settings
from lowcarb._zones import ZONE_CATALOG
from lowcarb.backends._entsoe import ZONE_AREAS, EntsoeProvider
from lowcarb.backends._entsoe_factors import FACTORS, SOURCES, STORAGE, factor_for
from lowcarb.backends._entsoe_gateway import ScrubTokens, scrub
from lowcarb.exceptions import (
    AuthenticationError,
    ConfigurationError,
    MissingCredentialError,
    NoDataError,
    ProviderError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RateLimitedError,
    ResponseParseError,
    UnknownZoneError,
)

NOW = datetime(2024, 6, 1, 12, 10, tzinfo=UTC)
HOUR = timedelta(hours=1)
SLOT = datetime(2024, 6, 1, 12, tzinfo=UTC)

# The factors of the fake's types, written out: gas, lignite, nuclear, wind onshore, solar.
LIFECYCLE = {"B04": 490, "B02": 820, "B14": 12, "B19": 11, "B16": 45}
DIRECT = {"B04": 370, "B02": 760, "B14": 0, "B19": 0, "B16": 0}
GENERATING = list(LIFECYCLE)  # B10 (pumped storage) is left out of the mix


def expected(when: datetime, factors=LIFECYCLE, step=timedelta(minutes=60)) -> float:
    """The mix's intensity over the hour starting at ``when`` (MW averaged per type first)."""
    n = HOUR // step
    mean = {p: sum(mw(p, when + i * step) for i in range(n)) / n for p in GENERATING}
    return sum(mean[p] * factors[p] for p in GENERATING) / sum(mean.values())


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def api(clock) -> FakeEntsoeAPI:
    return FakeEntsoeAPI(clock)


def make(api: FakeEntsoeAPI, clock: ManualClock, **options) -> EntsoeProvider:
    return EntsoeProvider(token=TOKEN, session=session_for(api), clock=clock, **options)


# -- the emission-factor table ---------------------------------------------------------------


def test_every_generating_type_has_a_factor_under_entsoe_pys_name():
    generating = {f"B{i:02d}" for i in range(1, 21)} - {"B10"}
    for code in generating:
        factor = FACTORS[PSRTYPE_MAPPINGS[code]]
        assert factor.psr == code
        assert 0 <= factor.direct <= factor.lifecycle
        assert factor.lifecycle_source in SOURCES and factor.direct_source in SOURCES
    assert {PSRTYPE_MAPPINGS["B10"], PSRTYPE_MAPPINGS["B25"]} == STORAGE
    assert factor_for("Hydro Pumped Storage") is None
    assert factor_for("Mixed") is FACTORS["Other"]


def test_ipcc_medians_where_ipcc_gives_them():
    lifecycle = {name: f.lifecycle for name, f in FACTORS.items()}
    assert lifecycle["Fossil Hard coal"] == 820 and lifecycle["Fossil Gas"] == 490
    assert lifecycle["Nuclear"] == 12 and lifecycle["Wind Onshore"] == 11
    assert lifecycle["Wind Offshore"] == 12 and lifecycle["Hydro Water Reservoir"] == 24
    assert FACTORS["Fossil Hard coal"].direct == 760 and FACTORS["Fossil Gas"].direct == 370
    assert FACTORS["Solar"].direct == 0 and FACTORS["Biomass"].direct == 0


# -- zones --------------------------------------------------------------------------------


def test_every_zone_maps_to_an_entsoe_area_with_a_name(api, clock):
    p = make(api, clock)
    assert p.served_zones() == sorted(ZONE_AREAS)
    for area in ZONE_AREAS.values():
        assert lookup_area(area).name == area and lookup_area(area).tz.startswith("Europe/")
    infos = {z.zone: z for z in p.zones()}
    assert infos["SE-SE3"] == ZONE_CATALOG["SE-SE3"]
    assert infos["XK"].name == "Kosovo" and all(i.continent == "Europe" for i in infos.values())


def test_the_area_code_is_what_is_sent(api, clock):
    make(api, clock).latest(["SE-SE3", "it-no"])
    assert [api.params(i)["in_Domain"] for i in range(2)] == [
        "10Y1001A1001A46L",
        "10Y1001A1001A73I",
    ]


def test_unknown_zones_are_refused_with_suggestions_before_any_request(api, clock):
    p = make(api, clock)
    with pytest.raises(UnknownZoneError, match="since Brexit.*ukcarbon"):
        p.latest(["GB"])
    with pytest.raises(UnknownZoneError, match="not in ENTSO-E's area"):
        p.latest(["US-CAL-CISO"])
    with pytest.raises(UnknownZoneError) as info:
        p.latest(["SE-SE9"])
    assert "SE-SE3" in info.value.suggestions
    assert api.requests == []


def test_zones_option_sets_the_default_zones(api, clock):
    assert make(api, clock, zones=("fr", "DE")).default_zones() == ["FR", "DE"]
    assert make(api, clock).default_zones() == sorted(ZONE_AREAS)
    with pytest.raises(ConfigurationError, match="providers.entsoe.zones"):
        make(api, clock, zones=("GB",))


# -- the intensity computed from the mix ------------------------------------------------------


def test_history_is_the_mix_weighed_by_lifecycle_factors(api, clock):
    series = make(api, clock).history(["DE"], SLOT - 6 * HOUR, SLOT)
    assert list(series.values.index) == [SLOT - (6 - i) * HOUR for i in range(6)]
    for start, value in series.values["DE"].items():
        assert value == pytest.approx(expected(start))
    assert series.signal == "average" and series.basis == "lifecycle"
    assert not series.estimated_mask().to_numpy().any()
    assert any("generation-based" in n and "lifecycle" in n for n in series.notes)
    assert api.params()["documentType"] == "A75" and api.params()["processType"] == "A16"
    assert (api.params()["periodStart"], api.params()["periodEnd"]) == (
        "202406010600",
        "202406011200",
    )


def test_direct_factors(api, clock):
    series = make(api, clock, emission_factor_type="direct").history(["DE"], SLOT - HOUR, SLOT)
    assert series.values["DE"].iloc[0] == pytest.approx(expected(SLOT - HOUR, DIRECT))
    assert series.basis == "direct" and series.metadata()["basis"] == "direct"


def test_quarter_hours_are_averaged_per_hour_before_weighing(clock):
    api = FakeEntsoeAPI(clock, step=timedelta(minutes=15))
    series = make(api, clock).history(["NL"], SLOT - 3 * HOUR, SLOT)
    quarter = timedelta(minutes=15)
    for start, value in series.values["NL"].items():
        assert value == pytest.approx(expected(start, step=quarter))
    assert len(series) == 3 and series.resolution == HOUR


@pytest.mark.parametrize("step", [timedelta(minutes=15), HOUR])
def test_curve_type_a03_with_left_out_positions_reads_as_a01(clock, step):
    # 2025 documents are A03: a repeated value's position is left out and holds over;
    # a missing interval splits the series into Periods. Same mix, same intensities.
    bodies: list[str] = []
    a03 = FakeEntsoeAPI(clock, step=step)
    a03.tamper = lambda body: bodies.append(body) or body
    a01 = FakeEntsoeAPI(clock, step=step, curve="A01")
    for api in (a03, a01):
        # Lignite missing for the hour from 10:00: a gap, under either curve type.
        api.drop = {("B02", SLOT - 2 * HOUR + k * step) for k in range(HOUR // step)}
    answers = []
    for api in (a03, a01):
        p = make(api, clock)
        answers.append(
            [
                p.history(["DE"], SLOT - 6 * HOUR, SLOT),
                p.latest(["DE"]),
                p.forecast(["DE"], horizon=6 * HOUR),
            ]
        )
    for got, want in zip(*answers, strict=True):
        assert got.values.equals(want.values)
        assert got.estimated_mask().equals(want.estimated_mask())
    history = answers[0][0]
    assert history.estimated_mask().at[SLOT - 2 * HOUR, "DE"]  # the gap stayed a gap
    assert history.values.at[SLOT - 3 * HOUR, "DE"] == pytest.approx(
        expected(SLOT - 3 * HOUR, step=step)
    )
    a75 = next(b for b in bodies if "<type>A75</type>" in b)
    assert "<curveType>A03</curveType>" in a75
    nuclear = a75[a75.index("<psrType>B14</psrType>") :].split("</TimeSeries>")[0]
    assert nuclear.count("<Point>") == 1  # constant all day: one position given
    lignite = a75[a75.index("<psrType>B02</psrType>") :].split("</TimeSeries>")[0]
    assert lignite.count("<Period>") == 2  # split around the missing hour


def test_history_starting_inside_an_hour_begins_at_the_next(api, clock):
    series = make(api, clock).history(["DE"], SLOT - 150 * timedelta(minutes=1), SLOT)
    assert series.start == SLOT - 2 * HOUR and len(series) == 2


def test_history_beyond_the_current_hour_is_refused(api, clock):
    with pytest.raises(NoDataError, match="ask forecast"):
        make(api, clock).history(["DE"], SLOT, SLOT + 3 * HOUR)
    assert api.requests == []


# -- latest ---------------------------------------------------------------------------------


def test_latest_is_the_current_hour_when_published(api, clock):
    series = make(api, clock).latest(["DE"])
    assert list(series.values.index) == [SLOT]
    assert series.values.at[SLOT, "DE"] == pytest.approx(expected(SLOT))
    assert (api.params()["periodStart"], api.params()["periodEnd"]) == (
        "202405311300",
        "202406011300",
    )


def test_latest_falls_back_to_the_newest_complete_hour(api, clock):
    # ENTSO-E publishes with a delay: gas and lignite of the current hour are not there yet.
    api.drop = {("B04", SLOT), ("B02", SLOT)}
    series = make(api, clock).latest(["DE"])
    assert list(series.values.index) == [SLOT - HOUR]
    assert series.values.iloc[0, 0] == pytest.approx(expected(SLOT - HOUR))
    assert any("current hour (2024-06-01T12:00Z) is not published" in n for n in series.notes)


def test_a_minor_missing_type_is_estimated_a_major_one_is_a_gap(api, clock):
    # Nuclear (2000 MW of ~48000) missing at 09:00: computed without it, flagged estimated.
    # Lignite (12000 MW) missing at 10:00: a gap, interpolated by the default policy.
    api.drop = {("B14", SLOT - 3 * HOUR), ("B02", SLOT - 2 * HOUR)}
    series = make(api, clock).history(["DE"], SLOT - 4 * HOUR, SLOT)
    values, flags = series.values["DE"], series.estimated_mask()["DE"]
    nine, ten = SLOT - 3 * HOUR, SLOT - 2 * HOUR
    without_nuclear = {p: f for p, f in LIFECYCLE.items() if p != "B14"}
    mean = {p: mw(p, nine) for p in without_nuclear}
    assert values[nine] == pytest.approx(
        sum(mean[p] * without_nuclear[p] for p in mean) / sum(mean.values())
    )
    assert flags[nine] and flags[ten]
    assert values[ten] == pytest.approx((values[nine] + values[SLOT - HOUR]) / 2)
    assert not flags[SLOT - 4 * HOUR] and not flags[SLOT - HOUR]
    assert any("treated as gaps" in n for n in series.notes)
    assert any("interpolated" in n for n in series.notes)
    with pytest.raises(NoDataError, match="gaps='error'"):
        make(api, clock, gaps="error").history(["DE"], SLOT - 4 * HOUR, SLOT)


def test_a_zone_without_any_data_is_no_data(api, clock):
    api.drop = {(p, SLOT - i * HOUR) for p in PROFILES for i in range(1, 4)}
    with pytest.raises(NoDataError, match=r"no actual generation \(A75\) for DE"):
        make(api, clock).history(["DE"], SLOT - 3 * HOUR, SLOT)


# -- forecast ---------------------------------------------------------------------------------


def recent_residual_intensity(anchor: datetime) -> float:
    """The other types' mix (gas, lignite, nuclear) over the 24 hours up to ``anchor``."""
    hours = [anchor - i * HOUR for i in range(24)]
    residual = ("B04", "B02", "B14")
    energy = {p: sum(mw(p, t) for t in hours) for p in residual}
    return sum(energy[p] * LIFECYCLE[p] for p in residual) / sum(energy.values())


def test_forecast_weighs_day_ahead_wind_solar_and_the_recent_residual_mix(api, clock):
    series = make(api, clock).forecast(["DE"], horizon=6 * HOUR)
    r = recent_residual_intensity(SLOT)
    assert series.is_forecast and series.issued_at == NOW and len(series) == 6
    for start, value in series.values["DE"].items():
        wind, solar = mw("B19", start), mw("B16", start)
        total = sum(mw(p, start) for p in PROFILES)  # the fake's A71: every type
        rest = total - wind - solar
        assert value == pytest.approx((wind * 11 + solar * 45 + rest * r) / total)
    assert any("a heuristic" in n and f"({r:.0f} gCO2eq/kWh)" in n for n in series.notes)
    assert api.documents == ["A75", "A71", "A69"]
    a71 = api.params(1)
    assert (a71["processType"], a71["periodStart"], a71["periodEnd"]) == (
        "A01",
        "202406011200",
        "202406031200",
    )


def test_forecasts_in_the_same_hour_share_cached_answers(api, clock):
    p = make(api, clock)
    p.forecast(["DE"], horizon=6 * HOUR)
    p.latest(["DE"])  # the same A75 window as the forecast's recent mix
    clock.advance(timedelta(minutes=20))
    p.forecast(["DE"], horizon=12 * HOUR)
    assert p.requests_sent == 3
    clock.advance(timedelta(minutes=31))  # a new hour and past the TTL
    p.forecast(["DE"], horizon=6 * HOUR)
    assert p.requests_sent == 6


def test_forecast_without_a_wind_solar_forecast_takes_the_whole_recent_mix(api, clock):
    api.no_wind_solar = True
    series = make(api, clock).forecast(["DE"], horizon=2 * HOUR)
    hours = [SLOT - i * HOUR for i in range(24)]
    energy = {p: sum(mw(p, t) for t in hours) for p in GENERATING}
    whole = sum(energy[p] * LIFECYCLE[p] for p in GENERATING) / sum(energy.values())
    assert series.values["DE"].to_numpy() == pytest.approx([whole, whole])
    assert any("no day-ahead wind and solar forecast" in n for n in series.notes)


def test_forecast_from_a_past_start_uses_the_mix_before_it(api, clock):
    start = SLOT - 6 * HOUR
    series = make(api, clock).forecast(["DE"], start=start, horizon=2 * HOUR)
    assert series.start == start
    assert any(f"({recent_residual_intensity(start):.0f} gCO2eq/kWh)" in n for n in series.notes)
    assert api.params(0)["periodEnd"] == "202406010700"


def test_forecast_beyond_the_reach_is_refused(api, clock):
    with pytest.raises(ValueError, match="beyond what 'entsoe' forecasts"):
        make(api, clock).forecast(["DE"], horizon=timedelta(hours=60))


def test_async_face_matches_sync(api, clock):
    p = make(api, clock)
    sync = p.forecast(["DE"], horizon=3 * HOUR)

    async def run():
        async with make(FakeEntsoeAPI(clock), clock).to_async() as face:
            return await face.forecast(["DE"], horizon=3 * HOUR)

    assert asyncio.run(run()).values.equals(sync.values)


# -- credentials and configuration ------------------------------------------------------------


def test_token_comes_from_the_environment_or_a_file(tmp_path, clock):
    settings = load_settings(environ={"LOWCARB_ENTSOE_TOKEN": TOKEN}, config_file=None)
    assert isinstance(settings.open_provider("entsoe", clock=clock), EntsoeProvider)
    secret = tmp_path / "token"
    secret.write_text(TOKEN + "\n")
    settings = load_settings(environ={"LOWCARB_ENTSOE_TOKEN_FILE": str(secret)}, config_file=None)
    provider = settings.open_provider("entsoe", clock=clock)
    assert provider._token == TOKEN
    with pytest.raises(MissingCredentialError, match="LOWCARB_ENTSOE_TOKEN"):
        load_settings(environ={}, config_file=None).open_provider("entsoe")


def test_options_are_checked():
    with pytest.raises(ConfigurationError, match="lifecycle' or 'direct"):
        EntsoeProvider.Options(emission_factor_type="marginal")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="timeout_s"):
        EntsoeProvider.Options(timeout_s=0)
    with pytest.raises(ConfigurationError, match="LOWCARB_ENTSOE_TOKEN"):
        EntsoeProvider(token="  ")
    settings = load_settings(
        environ={"LOWCARB_ENTSOE_TOKEN": TOKEN, "LOWCARB_ENTSOE_EMISSION_FACTOR_TYPE": "direct"},
        config_file=None,
    )
    assert settings.open_provider("entsoe").capabilities.basis == "direct"


# -- errors, retries, redaction ---------------------------------------------------------------


def test_a_bad_token_fails_at_once_naming_the_variable(api, clock):
    p = EntsoeProvider(token="0f0f0f0f-1111-2222-3333-444444444444", session=session_for(api),
                       clock=clock)  # fmt: skip
    with pytest.raises(AuthenticationError) as info:
        p.latest(["DE"])
    message = str(info.value)
    assert "LOWCARB_ENTSOE_TOKEN" in message and "Missing or invalid security token" in message
    assert "0f0f0f0f" not in message and "securityToken=REDACTED" in message
    assert len(api.requests) == 1 and clock.now() == NOW


def test_429_waits_as_asked_then_succeeds(api, clock):
    api.script = [(429, "slow down", {"Retry-After": "7"})]
    series = make(api, clock).latest(["DE"])
    assert len(api.requests) == 2 and clock.now() == NOW + timedelta(seconds=7)
    assert series.values.at[SLOT, "DE"] == pytest.approx(expected(SLOT))


def test_retry_after_as_an_http_date(api, clock):
    api.script = [(503, "", {"Retry-After": "Sat, 01 Jun 2024 12:10:30 GMT"})]
    make(api, clock).latest(["DE"])
    assert clock.now() == NOW + timedelta(seconds=30) and len(api.requests) == 2


def test_a_ban_beyond_the_retry_budget_is_rate_limited_at_once(api, clock):
    page = "<html><body><p>Requester banned until '2024-06-01T12:20:00.000Z'.</p></body></html>"
    api.script = [(429, page, {"content-type": "text/html"})]
    with pytest.raises(RateLimitedError) as info:
        make(api, clock).latest(["DE"])
    assert info.value.retry_after == pytest.approx(600)
    assert "beyond the retry budget" in str(info.value) and "banned until" in str(info.value)
    assert len(api.requests) == 1


@pytest.mark.parametrize("status", [502, 503, 504])
def test_transient_server_errors_are_retried_then_succeed(api, clock, status):
    api.script = [(status, "", {}), (status, "", {})]
    make(api, clock).latest(["DE"])
    assert len(api.requests) == 3 and clock.now() > NOW


def test_retries_are_bounded(api, clock):
    api.script = [(503, "", {})] * 10
    with pytest.raises(ProviderUnavailableError, match="gave up after 3 attempts"):
        make(api, clock, max_attempts=3).latest(["DE"])
    assert len(api.requests) == 3


def test_500_and_400_are_not_retried(api, clock):
    api.script = [(500, "boom", {})]
    with pytest.raises(ProviderUnavailableError, match="500"):
        make(api, clock).latest(["DE"])
    body = acknowledgement("Invalid parameter periodEnd")
    api.script = [(400, body, {"content-type": "application/xml"})]
    with pytest.raises(ProviderError, match="Invalid parameter periodEnd"):
        make(api, clock).latest(["FR"])
    assert len(api.requests) == 2


def test_timeouts_are_retried_and_never_show_the_token(api, clock):
    url = f"https://web-api.tp.entsoe.eu/api?securityToken={TOKEN}"
    api.script = [requests.ReadTimeout(f"Read timed out. (url: {url})")] * 4
    with pytest.raises(ProviderTimeoutError) as info:
        make(api, clock, timeout_s=2.5).latest(["DE"])
    assert "timed out after 2.5 s" in str(info.value) and "gave up after 4" in str(info.value)
    assert TOKEN not in str(info.value) and info.value.__cause__ is None
    assert len(api.requests) == 4


def test_a_connection_error_is_redacted(api, clock):
    url = f"/api?documentType=A75&securityToken={TOKEN}"
    api.script = [requests.ConnectionError(f"Max retries exceeded with url: {url}")] * 4
    with pytest.raises(ProviderUnavailableError) as info:
        make(api, clock).latest(["DE"])
    assert TOKEN not in str(info.value) and info.value.__cause__ is None


@pytest.mark.parametrize("status", [400, 503, 200])
def test_a_body_that_echoes_the_token_is_scrubbed(api, clock, caplog, status):
    # A proxy's error page (or a broken answer) quoting the token bare, not as a parameter.
    page = f"<html><body>Request for {TOKEN} failed, try again later.</body></html>"
    api.script = [(status, page, {"content-type": "text/html"})] * 4
    caplog.set_level(logging.WARNING)
    with pytest.raises(ProviderError) as info:
        make(api, clock).latest(["DE"])
    assert "Request for REDACTED failed" in str(info.value)
    assert TOKEN not in str(info.value) and TOKEN not in caplog.text
    assert status != 503 or "REDACTED failed" in caplog.text  # the retry warning


@pytest.mark.parametrize("status", [200, 400])
def test_the_no_data_acknowledgement_is_no_data(api, clock, status):
    body = acknowledgement("No matching data found for Data item ... and interval ...")
    # ENTSO-E sends "text/xml; charset=UTF-8" too, which entsoe-py alone does not recognise.
    api.script = [(status, body, {"content-type": "text/xml; charset=UTF-8"})]
    with pytest.raises(NoDataError, match="no actual generation"):
        make(api, clock).latest(["DE"])


@pytest.mark.parametrize(
    ("tamper", "match"),
    [
        (lambda body: body[: len(body) // 2], "not well-formed XML"),
        (lambda body: "", "empty body"),
        (lambda body: "<html><body>maintenance</body></html>", "not an ENTSO-E market document"),
        (lambda body: body.replace("<quantity>", "<quantity>x", 1), "could not read"),
        (lambda body: body.replace("PT60M", "PT5M"), "could not read"),
        (lambda body: body.replace(":00Z</start><end>", ":07Z</start><end>"), "off the 15-minute"),
    ],
    ids=["truncated", "empty", "html", "not-a-number", "unknown-resolution", "off-grid"],
)
def test_unreadable_answers_name_the_redacted_request(api, clock, tamper, match):
    api.tamper = tamper
    with pytest.raises(ResponseParseError, match=match) as info:
        make(api, clock).latest(["DE"])
    assert "documentType=A75" in str(info.value) and "securityToken=REDACTED" in str(info.value)
    assert TOKEN not in str(info.value)


def test_a_document_without_time_series_is_no_data(api, clock):
    api.script = [(200, gl_document("A75", "A16", "10Y1001A1001A83F", []), {})]
    with pytest.raises(NoDataError, match="no time series for DE") as info:
        make(api, clock).latest(["DE"])
    assert "documentType=A75" in str(info.value) and TOKEN not in str(info.value)


def test_points_out_of_order_give_the_same_result(api, clock):
    plain = make(api, clock).history(["DE"], SLOT - 4 * HOUR, SLOT)

    def shuffle(body: str) -> str:
        def reverse(match: re.Match[str]) -> str:
            return "".join(reversed(re.findall(r"<Point>.*?</Point>", match.group(0))))

        return re.sub(r"(<Point>.*?</Point>)+", reverse, body)

    api.tamper = shuffle
    assert make(api, clock).history(["DE"], SLOT - 4 * HOUR, SLOT).values.equals(plain.values)


def test_negative_generation_is_read_as_zero(clock):
    api = FakeEntsoeAPI(clock)
    series_list = [
        Series("B04", SLOT - HOUR, HOUR, [1000.0]),
        Series("B16", SLOT - HOUR, HOUR, [-5.0]),
    ]
    body = gl_document("A75", "A16", "10Y1001A1001A83F", series_list)
    api.script = [(200, body, {"content-type": "text/xml"})]
    series = make(api, clock).history(["DE"], SLOT - HOUR, SLOT)
    assert series.values.iloc[0, 0] == pytest.approx(490)
    assert any("negative generation value(s) read as 0" in n for n in series.notes)


def test_a_type_split_over_two_time_series_is_joined(clock):
    # ENTSO-E splits a type's series at gaps; entsoe-py joins them with a call pandas 3
    # deprecates (Pandas4Warning), which the provider silences (filterwarnings=error here).
    api = FakeEntsoeAPI(clock)
    first, second = SLOT - 2 * HOUR, SLOT - HOUR
    series_list = [
        Series("B04", first, HOUR, [1000.0]),
        Series("B14", first, HOUR, [1000.0]),
        Series("B04", second, HOUR, [3000.0]),
        Series("B14", second, HOUR, [1000.0]),
    ]
    body = gl_document("A75", "A16", "10Y1001A1001A83F", series_list)
    api.script = [(200, body, {"content-type": "text/xml"})]
    series = make(api, clock).history(["DE"], first, SLOT)
    assert series.values["DE"].to_numpy() == pytest.approx(
        [(1000 * 490 + 1000 * 12) / 2000, (3000 * 490 + 1000 * 12) / 4000]
    )


def test_an_unknown_production_type_counts_as_other(clock):
    api = FakeEntsoeAPI(clock)
    series_list = [Series("A03", SLOT - HOUR, HOUR, [100.0])]  # "Mixed"
    body = gl_document("A75", "A16", "10Y1001A1001A83F", series_list)
    api.script = [(200, body, {"content-type": "text/xml"})]
    series = make(api, clock).history(["DE"], SLOT - HOUR, SLOT)
    assert series.values.iloc[0, 0] == pytest.approx(FACTORS["Other"].lifecycle)
    assert any("unknown production type 'Mixed'" in n for n in series.notes)


def test_log_records_never_carry_the_token(api, clock, caplog):
    caplog.set_level(logging.DEBUG)
    make(api, clock).latest(["DE"])
    assert "Performing request" in caplog.text  # entsoe-py's own DEBUG line, scrubbed
    assert TOKEN not in caplog.text and "securityToken': 'REDACTED'" in caplog.text


def test_the_log_filter_scrubs_urllib3_style_records():
    record = logging.LogRecord(
        "urllib3.connectionpool", logging.DEBUG, __file__, 1,
        '%s://%s:%s "%s %s %s" %s %s',
        ("https", "web-api.tp.entsoe.eu", 443, "GET", f"/api?securityToken={TOKEN}&a=1",
         "HTTP/1.1", 200, None),
        None,
    )  # fmt: skip
    assert ScrubTokens().filter(record)
    assert TOKEN not in record.getMessage() and "securityToken=REDACTED&a=1" in record.getMessage()
    assert scrub(f"{{'securityToken': '{TOKEN}'}}") == "{'securityToken': 'REDACTED'}"


def test_warnings_are_silenced_only_inside_the_provider(api, clock):
    before = list(warnings.filters)
    make(api, clock).latest(["DE"])
    assert warnings.filters == before


def test_no_token_in_repr_or_async_repr(api, clock):
    p = make(api, clock)
    assert TOKEN not in repr(p) and TOKEN not in repr(p.to_async())


@pytest.mark.parametrize(
    ("raised", "expected", "match"),
    [
        (NoMatchingDataError(), NoDataError, "no A75 for DE"),
        (InvalidBusinessParameterError(), NoDataError, "not applicable to this area"),
        (PaginationError("too many"), ProviderError, "ask a shorter range"),
        (
            requests.HTTPError(f"401 Client Error for url: /api?securityToken={TOKEN}"),
            ProviderUnavailableError,
            "securityToken=REDACTED",
        ),
        (KeyError("B99"), ResponseParseError, "could not read A75 for DE"),
    ],
    ids=["no-data", "business-parameter", "pagination", "http-error", "parser-bug"],
)
def test_entsoe_py_exceptions_map_to_ours(api, clock, raised, expected, match):
    def method(*args, **kwargs):
        raise raised

    with pytest.raises(expected, match=match) as info:
        make(api, clock)._query("A75", "DE", method, SLOT - HOUR, SLOT)
    assert TOKEN not in str(info.value)
