"""``entsoe`` provider: intensities computed from the ENTSO-E Transparency Platform's mix.

Upstream: https://transparency.entsoe.eu (REST API ``https://web-api.tp.entsoe.eu/api``),
queried through entsoe-py's :class:`~entsoe.EntsoePandasClient`. ENTSO-E publishes MW per
production type, not carbon, so lowcarb computes the intensity itself:

    I_t = sum_i P_i,t * EF_i / sum_i P_i,t      (gCO2eq/kWh)

with the factors of :mod:`lowcarb.backends._entsoe_factors` (IPCC 2014 medians; option
``emission_factor_type``: ``lifecycle`` or ``direct``). Signal: **average,
generation-based**: imports and exports are ignored, so importers (CH, BE, the Baltics)
differ from Electricity Maps' consumption-based numbers. Hourly: 15- and 30-minute areas
are averaged per hour (MW per type) before the mix is weighed.

What each call asks (per zone; ``periodStart``/``periodEnd`` on whole UTC hours):

* ``latest``: actual generation per type (A75, processType A16) over the 24 hours up to
  the current one; the newest hour with a usable mix (see below). ENTSO-E publishes
  with a delay of up to about an hour, so this is often the hour before (with a note).
* ``history``: A75 over the range, up to the current hour (later: ``NoDataError``).
* ``forecast``: a **heuristic**, ENTSO-E forecasts no intensity. For each hour, the
  day-ahead wind and solar forecast (A69) counts at the wind and solar factors, and the
  rest of the day-ahead total scheduled generation (A71 minus A69, at least 0) counts at
  the intensity of the *other* types' mix over the 24 hours before the forecast (from
  A75, the same answer ``latest`` uses). An area without an A69 forecast takes the whole
  recent mix for all of A71. Reach: what the day-ahead covers (the next day, published
  around 12:00-18:00 CET), at most 48 hours; later hours stay NaN.

A mix is *complete* in an hour when every type that reports in the window has a value.
An hour missing types worth at most 5 % of the window's mean generation is computed from
the others and flagged estimated; a larger hole makes the hour a gap, which then follows
the repair policy of :func:`~lowcarb.backends.toolkit.assemble` (option ``gaps``).
Negative MW are read as 0 (with a note). Duplicated or unordered points within one
ENTSO-E time series are resolved by entsoe-py's parser (sorted; the first of two values
for one interval is kept). A timestamp off the 15-minute grid, a body that is not
well-formed XML (a truncated answer), an unknown resolution, or a shape entsoe-py cannot
read: ``ResponseParseError`` naming the redacted request. ENTSO-E's "No matching data
found" acknowledgement (200 or 400): ``NoDataError``.

HTTP. entsoe-py sends with ``requests``; lowcarb hands it a gateway
(:class:`~lowcarb.backends._entsoe_gateway.EntsoeGateway`)
that sends every request through one ``requests.Session`` with the configured endpoint
and timeout, retries transient failures (timeouts, connection errors, 429 honouring
``Retry-After`` or the ban time in ENTSO-E's 429 page, 502/503/504) with tenacity on the
injected clock, keeps answers in the shared :class:`~lowcarb.backends.toolkit.ResponseCache`
and maps errors to lowcarb's exceptions: a rejected token is an ``AuthenticationError``
at once, naming ``LOWCARB_ENTSOE_TOKEN``. entsoe-py's own retries are switched off
(``retry_count=1``): they sleep on the wall clock.

Secrets. The token travels as the query parameter ``securityToken``. It is scrubbed from
every error lowcarb raises and from the log records of entsoe-py (which logs the request
parameters at DEBUG) and urllib3 (which logs the URL), by a filter on those loggers.
"""

from __future__ import annotations

import logging
import math
import random
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, cast

import pandas as pd
import requests
from bs4 import XMLParsedAsHTMLWarning
from entsoe.entsoe import EntsoePandasClient
from entsoe.exceptions import (
    InvalidBusinessParameterError,
    InvalidParameterError,
    InvalidPSRTypeError,
    NoMatchingDataError,
    PaginationError,
)

from lowcarb.backends._entsoe_factors import FactorType, factor_for
from lowcarb.backends._entsoe_gateway import TOKEN_ENV, EntsoeGateway, install_log_filter, scrub
from lowcarb.backends.toolkit import (
    ZONE_CATALOG,
    Capabilities,
    CarbonProvider,
    Clock,
    Credential,
    GapPolicy,
    HttpOptions,
    IntensitySeries,
    Point,
    ResponseCache,
    RetryPolicy,
    ZoneInfo,
    assemble,
    ceil_time,
    floor_time,
)
from lowcarb.exceptions import (
    ConfigurationError,
    InvalidInputError,
    LowcarbError,
    NoDataError,
    ProviderError,
    ProviderUnavailableError,
    ResponseParseError,
    UnknownZoneError,
)

__all__ = ["ENDPOINT", "TOKEN_ENV", "ZONE_AREAS", "EntsoeProvider", "scrub"]

log = logging.getLogger("lowcarb.backends.entsoe")

ENDPOINT = "https://web-api.tp.entsoe.eu/api"
HOUR = timedelta(hours=1)
#: How far ahead the day-ahead forecasts reach at most (the next day, local time).
FORECAST_REACH = timedelta(hours=48)
#: ``latest`` looks this far back; the forecast takes the recent mix over the same window.
RECENT = timedelta(hours=24)
#: An hour missing types worth more than this share of the mean generation is a gap.
MAX_MISSING_SHARE = 0.05
#: Every ENTSO-E market time unit (15, 30, 60 min) starts on this grid.
MTU_GRID = "15min"
#: A69 production types: their forecast is taken as is; the rest of A71 is "residual".
WIND_SOLAR = ("Solar", "Wind Offshore", "Wind Onshore")

#: lowcarb zone (Electricity Maps key) -> entsoe-py ``Area`` name (bidding zone or, for
#: DE and IE, the control area whose generation ENTSO-E publishes; as Electricity Maps).
ZONE_AREAS: dict[str, str] = {
    "AT": "AT",
    "BA": "BA",
    "BE": "BE",
    "BG": "BG",
    "CH": "CH",
    "CZ": "CZ",
    "DE": "DE",
    "DK-DK1": "DK_1",
    "DK-DK2": "DK_2",
    "EE": "EE",
    "ES": "ES",
    "FI": "FI",
    "FR": "FR",
    "GR": "GR",
    "HR": "HR",
    "HU": "HU",
    "IE": "IE",
    "IT-CNO": "IT_CNOR",
    "IT-CSO": "IT_CSUD",
    "IT-NO": "IT_NORD",
    "IT-SAR": "IT_SARD",
    "IT-SIC": "IT_SICI",
    "IT-SO": "IT_SUD",
    "LT": "LT",
    "LV": "LV",
    "ME": "ME",
    "MK": "MK",
    "NL": "NL",
    "NO-NO1": "NO_1",
    "NO-NO2": "NO_2",
    "NO-NO3": "NO_3",
    "NO-NO4": "NO_4",
    "NO-NO5": "NO_5",
    "PL": "PL",
    "PT": "PT",
    "RO": "RO",
    "RS": "RS",
    "SE-SE1": "SE_1",
    "SE-SE2": "SE_2",
    "SE-SE3": "SE_3",
    "SE-SE4": "SE_4",
    "SI": "SI",
    "SK": "SK",
    "XK": "XK",
}

# Served zones the zone catalog does not describe: name, country, lat, lon, time zone.
_EXTRA_ZONES: dict[str, tuple[str, str, float, float, str]] = {
    "BA": ("Bosnia and Herzegovina", "Bosnia and Herzegovina", 43.86, 18.41, "Europe/Sarajevo"),
    "ME": ("Montenegro", "Montenegro", 42.44, 19.26, "Europe/Podgorica"),
    "MK": ("North Macedonia", "North Macedonia", 42.0, 21.43, "Europe/Skopje"),
    "XK": ("Kosovo", "Kosovo", 42.66, 21.17, "Europe/Belgrade"),
}

# Zones people expect from ENTSO-E that it does not serve, and why.
_NOT_SERVED = {
    "GB": "ENTSO-E has published no GB generation since Brexit (June 2021); use ukcarbon",
}

# pandas 3 deprecates what entsoe-py calls (Pandas4Warning); pandas 2 warns of nothing there.
_PANDAS_DEPRECATION: type[Warning] = getattr(pd.errors, "Pandas4Warning", DeprecationWarning)


@dataclass(frozen=True)
class _Hourly:
    """A zone's intensity per hour, computed from its mix."""

    values: pd.Series
    estimated: pd.Series
    notes: list[str]


class EntsoeProvider(CarbonProvider):
    """Average, generation-based intensity computed from ENTSO-E's generation mix.

    Upstream: https://transparency.entsoe.eu, through entsoe-py. Hourly; forecasts (a
    documented heuristic, see the module docstring) reach as far as the day-ahead, at most
    48 hours. Needs a free API token (``LOWCARB_ENTSOE_TOKEN`` or ``..._FILE``). The
    endpoint allows 400 requests a minute per token and IP, then bans for 10 minutes;
    ``latest`` costs one request per zone, ``forecast`` three, history one per month.
    The async face, ``to_async()``, runs each call in a worker thread (entsoe-py is
    synchronous).

    Args:
        token: The ENTSO-E security token.
        emission_factor_type: ``lifecycle`` (IPCC 2014 life-cycle medians) or ``direct``.
        zones: Zones used when a caller names none (empty: every served zone).
        base_url: The API endpoint (a proxy, a mirror or a test server).
        timeout_s: Timeout of each request, in seconds.
        max_attempts: Tries per request for transient failures, the first included.
        max_retry_time_s: Longest time spent retrying one request, in seconds.
        cache_ttl_s: How long answers are reused, in seconds (0: never).
        gaps: Gap policy: ``interpolate``, ``keep`` or ``error``.
        max_gap_hours: Longest interior gap ``interpolate`` fills, in hours.
        session: A ``requests.Session`` to send with (tests mount a fake adapter on it);
            by default the provider creates one.
        cache: A response cache to share.
        rng: Random source of the retry jitter.
        clock: Time source: "now", the cache's TTL and the retry waits.

    Example:
        >>> p = EntsoeProvider(token="00000000-0000-0000-0000-000000000000")
        >>> p.capabilities.basis, "SE-SE3" in p.served_zones()
        ('lifecycle', True)
    """

    name = "entsoe"
    credentials = (
        Credential(
            "token",
            TOKEN_ENV,
            help="request one from transparency@entsoe.eu, see docs/providers/entsoe.md",
        ),
    )

    @dataclass(frozen=True)
    class Options:
        """Config keys of the ``entsoe`` provider (``[providers.entsoe]``).

        Attributes:
            emission_factor_type: ``lifecycle`` or ``direct`` emission factors.
            zones: Zones used when a command names none (empty: every served zone).
            base_url: The API endpoint.
            timeout_s: Timeout of each request, in seconds.
            max_attempts: Tries per request for transient failures.
            max_retry_time_s: Longest time spent retrying one request, in seconds.
            cache_ttl_s: How long answers are reused, in seconds (0: no cache).
            gaps: ``interpolate``, ``keep`` or ``error``.
            max_gap_hours: Longest interior gap ``interpolate`` fills, in hours.
        """

        emission_factor_type: Literal["lifecycle", "direct"] = "lifecycle"
        zones: tuple[str, ...] = ()
        base_url: str = ENDPOINT
        timeout_s: float = 30.0
        max_attempts: int = 4
        max_retry_time_s: float = 60.0
        cache_ttl_s: float = 1800.0
        gaps: Literal["interpolate", "keep", "error"] = "interpolate"
        max_gap_hours: float = 2.0

        def __post_init__(self) -> None:
            _check_options(self.emission_factor_type, self.base_url, self.timeout_s,
                           self.max_attempts, self.max_retry_time_s, self.cache_ttl_s,
                           self.gaps, self.max_gap_hours)  # fmt: skip

    def __init__(
        self,
        *,
        token: str,
        emission_factor_type: FactorType = "lifecycle",
        zones: tuple[str, ...] | list[str] = (),
        base_url: str = ENDPOINT,
        timeout_s: float = 30.0,
        max_attempts: int = 4,
        max_retry_time_s: float = 60.0,
        cache_ttl_s: float = 1800.0,
        gaps: GapPolicy = "interpolate",
        max_gap_hours: float = 2.0,
        session: Any = None,
        cache: ResponseCache | None = None,
        rng: random.Random | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(clock=clock)
        _check_options(emission_factor_type, base_url, timeout_s, max_attempts,
                       max_retry_time_s, cache_ttl_s, gaps, max_gap_hours)  # fmt: skip
        if not isinstance(token, str) or not token.strip() or any(c.isspace() for c in token):
            raise ConfigurationError(
                f"the ENTSO-E token must be a non-empty string without spaces; check {TOKEN_ENV}"
            )
        self._token = token
        self.emission_factor_type: FactorType = emission_factor_type
        self.base_url = base_url
        self.timeout_s = float(timeout_s)
        self.gaps: GapPolicy = gaps
        self.max_gap = timedelta(hours=max_gap_hours)
        self.cache_ttl = timedelta(seconds=cache_ttl_s) if cache_ttl_s > 0 else None
        self.cache = ResponseCache() if cache is None else cache
        try:
            self._zones = self._check_zones(list(zones)) if zones else []
        except InvalidInputError as exc:
            raise ConfigurationError(f"providers.entsoe.zones: {exc}") from None
        install_log_filter()
        self._owns_session = session is None
        self._gateway = EntsoeGateway(
            provider=self.name,
            endpoint=base_url,
            timeout_s=self.timeout_s,
            retry=RetryPolicy(max_attempts=max_attempts, max_total_s=max_retry_time_s),
            clock=self.clock,
            cache=self.cache,
            ttl=self.cache_ttl,
            secrets=(token,),
            session=requests.Session() if session is None else session,
            rng=rng or random.Random(),
        )
        # entsoe-py's own retries sleep on the wall clock: one try, the gateway retries.
        self._client = EntsoePandasClient(
            api_key=token,
            # Duck-typed: entsoe-py uses only the session's get() and headers.
            session=cast(requests.Session, self._gateway),
            retry_count=1,
            retry_delay=0,
            timeout=math.ceil(self.timeout_s),  # unused: the gateway applies timeout_s
        )

    # -- description ------------------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        """Average signal, the configured basis, hourly, forecasts up to 48 h ahead."""
        return Capabilities(
            signal="average",
            basis=self.emission_factor_type,
            resolution=HOUR,
            forecast_horizon=FORECAST_REACH,
            history=True,
        )

    def served_zones(self) -> list[str]:
        """The zones with an ENTSO-E area (Electricity Maps keys), sorted."""
        return sorted(ZONE_AREAS)

    def default_zones(self) -> list[str]:
        """The ``zones`` option, or every served zone."""
        return list(self._zones) or self.served_zones()

    def zones(self) -> list[ZoneInfo]:
        """The served zones, with names."""
        infos = []
        for zone in self.served_zones():
            info = ZONE_CATALOG.get(zone)
            if info is None:
                name, country, lat, lon, tz = _EXTRA_ZONES[zone]
                info = ZoneInfo(zone, name, country, "Europe", lat, lon, tz)
            infos.append(info)
        return infos

    @property
    def requests_sent(self) -> int:
        """HTTP requests that went to the network (not the cache), retries included."""
        return self._gateway.requests_sent

    def close(self) -> None:
        """Close the HTTP session if the provider created it."""
        if self._owns_session:
            self._gateway.session.close()

    def __repr__(self) -> str:
        return (
            f"EntsoeProvider(base_url={scrub(self.base_url)!r}, "
            f"emission_factor_type={self.emission_factor_type!r}, timeout_s={self.timeout_s:g})"
        )

    def _check_zones(self, zones: Any) -> list[str]:
        try:
            return super()._check_zones(zones)
        except UnknownZoneError as exc:
            why = _NOT_SERVED.get(exc.zone.strip().upper())
            if why is None and exc.zone.strip().upper() in ZONE_CATALOG:
                why = "not in ENTSO-E's area"
            if why is None:
                raise
            raise UnknownZoneError(exc.zone, exc.suggestions, where=self.name, detail=why) from None

    # -- the three operations ---------------------------------------------------------------

    def _latest(self, zones: list[str]) -> IntensitySeries:
        hour = floor_time(self.clock.now(), HOUR)
        chosen: dict[str, tuple[datetime, float, bool]] = {}
        notes: list[str] = []
        for zone in zones:
            hourly = self._intensity(zone, self._recent(zone, hour, notes), notes)
            usable = hourly.values[(hourly.values.index <= hour) & hourly.values.notna()]
            if usable.empty:
                raise NoDataError(
                    f"no complete generation mix for {zone} in the {RECENT // HOUR} hours "
                    f"to {_stamp(hour + HOUR)}",
                    provider=self.name,
                )
            newest = usable.index[-1]
            chosen[zone] = (newest, float(usable.iloc[-1]), bool(hourly.estimated[newest]))
            if newest < hour:
                notes.append(
                    f"{zone}: the current hour ({_stamp(hour)}) is not published (complete) "
                    f"yet; the latest is {_stamp(newest)}"
                )
        index = pd.DatetimeIndex(sorted({start for start, _, _ in chosen.values()}), name="start")
        values = pd.DataFrame(index=index, columns=zones, dtype=float)
        flags = pd.DataFrame(False, index=index, columns=zones)
        for zone, (start, value, estimated) in chosen.items():
            values.loc[start, zone] = value
            flags.loc[start, zone] = estimated
        return self._series(values, flags, notes)

    def _history(self, zones: list[str], start: datetime, end: datetime) -> IntensitySeries:
        first, stop = ceil_time(start, HOUR), ceil_time(end, HOUR)
        limit = floor_time(self.clock.now(), HOUR) + HOUR
        if first >= limit or end > limit:
            raise NoDataError(
                f"history ends with the current hour ({_stamp(limit - HOUR)}); "
                "ask forecast() for later ones",
                provider=self.name,
            )
        if first >= stop:
            empty = pd.DataFrame(index=pd.DatetimeIndex([], tz="UTC"), columns=zones, dtype=float)
            return self._series(empty, None, [])
        notes: list[str] = []
        points: dict[str, list[Point]] = {}
        for zone in zones:
            raw = self._query(
                "actual generation (A75)", zone, self._client.query_generation, first, stop
            )
            frame = _hour_means(self._generation(raw, zone), notes, zone)
            hourly = self._intensity(zone, frame, notes)
            points[zone] = _points(hourly)
        values, flags, repairs = assemble(
            points,
            start=first,
            end=stop,
            resolution=HOUR,
            provider=self.name,
            gaps=self.gaps,
            max_gap=self.max_gap,
        )
        return self._series(values, flags, notes + repairs)

    def _forecast(self, zones: list[str], start: datetime, horizon: timedelta) -> IntensitySeries:
        issued = self.clock.now()
        hour = floor_time(issued, HOUR)
        stop = start + horizon
        # The mix of the day before the forecast, never after it (no future information),
        # and one window per hour of issue, so that repeated forecasts share cached answers.
        anchor = min(start, hour)
        window_end = max(stop, hour + FORECAST_REACH)
        notes: list[str] = []
        points: dict[str, list[Point]] = {}
        for zone in zones:
            recent = self._recent(zone, anchor, notes)
            recent = recent[recent.index <= anchor]
            total = self._query(
                "day-ahead generation forecast (A71)",
                zone,
                self._client.query_generation_forecast,
                anchor,
                window_end,
            )
            try:
                wind_solar = self._query(
                    "day-ahead wind and solar forecast (A69)",
                    zone,
                    self._client.query_wind_and_solar_forecast,
                    anchor,
                    window_end,
                )
            except NoDataError:
                wind_solar = None
            points[zone] = self._forecast_points(zone, recent, total, wind_solar, notes)
        values, flags, repairs = assemble(
            points,
            start=start,
            end=stop,
            resolution=HOUR,
            provider=self.name,
            gaps=self.gaps,
            max_gap=self.max_gap,
        )
        return self._series(values, flags, notes + repairs, is_forecast=True, issued_at=issued)

    # -- fetching ---------------------------------------------------------------------------

    def _recent(self, zone: str, hour: datetime, notes: list[str]) -> pd.DataFrame:
        """Hourly MW per type over the :data:`RECENT` hours up to ``hour`` (inclusive)."""
        first, stop = hour - RECENT + HOUR, hour + HOUR
        raw = self._query(
            "actual generation (A75)", zone, self._client.query_generation, first, stop
        )
        frame = _hour_means(self._generation(raw, zone), notes, zone)
        return frame[(frame.index >= first) & (frame.index < stop)]

    def _query(
        self,
        what: str,
        zone: str,
        method: Callable[..., Any],
        start: datetime,
        end: datetime,
    ) -> Any:
        """Call an entsoe-py pandas method; map its failures to lowcarb exceptions."""
        area = ZONE_AREAS[zone]
        span = f"{_stamp(start)} .. {_stamp(end)}"
        try:
            with warnings.catch_warnings():
                # entsoe-py parses XML with bs4's html.parser (XMLParsedAsHTMLWarning) and
                # calls sort_index(inplace=True), which pandas 3 deprecates (Pandas4Warning).
                # Neither is ours to fix; both are silenced only around entsoe-py's calls.
                warnings.filterwarnings("ignore", category=XMLParsedAsHTMLWarning)
                warnings.filterwarnings("ignore", category=_PANDAS_DEPRECATION, module=r"entsoe\.")
                return method(area, start=pd.Timestamp(start), end=pd.Timestamp(end))
        except LowcarbError:
            raise
        except NoMatchingDataError as exc:
            raise NoDataError(
                f"ENTSO-E has no {what} for {zone} (area {area}) in {span}", provider=self.name
            ) from exc
        except (InvalidBusinessParameterError, InvalidPSRTypeError, InvalidParameterError) as exc:
            raise NoDataError(
                f"ENTSO-E rejected the query for {what} of {zone} (area {area}) as not "
                f"applicable to this area ({type(exc).__name__})",
                provider=self.name,
            ) from exc
        except PaginationError as exc:
            raise ProviderError(
                f"{what} for {zone} in {span} is more than ENTSO-E answers at once; "
                "ask a shorter range",
                provider=self.name,
            ) from exc
        except requests.RequestException as exc:
            # Not chained: a requests exception's text holds the URL with the token.
            raise ProviderUnavailableError(
                f"{self._gateway.last_request} failed: {type(exc).__name__}: "
                f"{scrub(str(exc), (self._token,))}",
                provider=self.name,
            ) from None
        except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
            # NotImplementedError (an unknown resolution) is a RuntimeError: listed below.
            raise self._unreadable(what, zone, exc) from exc
        except NotImplementedError as exc:
            raise self._unreadable(what, zone, exc) from exc

    def _unreadable(self, what: str, zone: str, exc: Exception) -> ResponseParseError:
        return ResponseParseError(
            f"could not read {what} for {zone} from {self._gateway.last_request}: "
            f"{type(exc).__name__}: {scrub(str(exc), (self._token,))}",
            provider=self.name,
        )

    # -- from entsoe-py's frames to intensities ---------------------------------------------

    def _generation(self, raw: Any, zone: str) -> pd.DataFrame:
        """entsoe-py's A75/A69 answer as MW generated per type (no consumption), UTC."""
        frame = raw.to_frame() if isinstance(raw, pd.Series) else raw
        if not isinstance(frame, pd.DataFrame) or not isinstance(frame.index, pd.DatetimeIndex):
            raise ResponseParseError(
                f"{self._gateway.last_request} gave no time series for {zone}",
                provider=self.name,
            )
        if frame.empty:
            raise NoDataError(
                f"{self._gateway.last_request} answered with no time series for {zone}",
                provider=self.name,
            )
        if isinstance(frame.columns, pd.MultiIndex):
            # (type, "Actual Aggregated" | "Actual Consumption"): pumping is not generation.
            keep = [c for c in frame.columns if c[-1] != "Actual Consumption"]
            frame = frame[keep]
            frame.columns = pd.Index([str(c[0]) for c in keep])
        return self._on_grid(frame.astype(float), zone)

    def _total(self, raw: Any, zone: str) -> pd.Series:
        """entsoe-py's A71 answer (a Series, or a frame with consumption) as total MW, UTC."""
        if isinstance(raw, pd.DataFrame):
            names = [c for c in raw.columns if "Aggregated" in str(c)]
            if not names:
                raise ResponseParseError(
                    f"{self._gateway.last_request}: the A71 answer for {zone} has no "
                    f"aggregated generation (columns {list(map(str, raw.columns))})",
                    provider=self.name,
                )
            raw = raw[names[0]]
        if isinstance(raw, pd.Series) and raw.empty:
            raise NoDataError(
                f"{self._gateway.last_request} answered with no time series for {zone}",
                provider=self.name,
            )
        if not isinstance(raw, pd.Series) or not isinstance(raw.index, pd.DatetimeIndex):
            raise ResponseParseError(
                f"{self._gateway.last_request} gave no time series for {zone}",
                provider=self.name,
            )
        return self._on_grid(raw.astype(float).to_frame("total"), zone)["total"]

    def _on_grid(self, frame: pd.DataFrame, zone: str) -> pd.DataFrame:
        index = pd.DatetimeIndex(frame.index).tz_convert("UTC")
        off = index[index.floor(MTU_GRID) != index]
        if len(off):
            raise ResponseParseError(
                f"{self._gateway.last_request}: interval start {off[0]:%Y-%m-%dT%H:%MZ} for "
                f"{zone} is off the 15-minute grid of ENTSO-E's market time units",
                provider=self.name,
            )
        frame = frame.set_axis(index, axis=0)
        return frame

    def _factors(self, columns: pd.Index, zone: str, notes: list[str]) -> pd.Series:
        """Emission factor per generating column (storage left out), with notes."""
        factors: dict[str, float] = {}
        for name in map(str, columns):
            factor = factor_for(name)
            if factor is None:
                continue
            if factor.name != name:
                notes.append(f"{zone}: unknown production type {name!r} counted as 'Other'")
            factors[name] = factor.value(self.emission_factor_type)
        return pd.Series(factors, dtype=float)

    def _intensity(self, zone: str, hourly: pd.DataFrame, notes: list[str]) -> _Hourly:
        """Intensity per hour from MW per type, with coverage flags (module docstring)."""
        factors = self._factors(hourly.columns, zone, notes)
        mix = hourly[list(factors.index)]
        typical = mix.mean()
        reporting = list(typical.index[typical.notna()])
        mix, factors, typical = mix[reporting], factors[reporting], typical[reporting]
        total = float(typical.sum())
        present = mix.notna()
        if total > 0:
            missing_share = (~present).mul(typical, axis=1).sum(axis=1) / total
        else:
            missing_share = pd.Series(0.0, index=mix.index)
        filled = mix.fillna(0.0)
        generation = filled.sum(axis=1)
        emissions = filled.mul(factors, axis=1).sum(axis=1)
        values = (emissions / generation).where(generation > 0)
        incomplete = missing_share > MAX_MISSING_SHARE
        values = values.where(~incomplete)
        estimated = (missing_share > 0) & values.notna()
        dropped = int((incomplete & present.any(axis=1)).sum())
        if dropped:
            notes.append(
                f"{zone}: {dropped} hour{'s' * (dropped != 1)} with production types missing "
                f"(over {MAX_MISSING_SHARE:.0%} of the mean generation) treated as gaps"
            )
        if int(estimated.sum()):
            count = int(estimated.sum())
            notes.append(
                f"{zone}: {count} hour{'s' * (count != 1)} computed without a minor production "
                "type that did not report; flagged estimated"
            )
        return _Hourly(values, estimated, notes)

    def _forecast_points(
        self,
        zone: str,
        recent: pd.DataFrame,
        total_raw: Any,
        wind_solar_raw: Any,
        notes: list[str],
    ) -> list[Point]:
        """The forecast heuristic of the module docstring, per hour."""
        total = _hour_means(self._total(total_raw, zone).to_frame("total"), notes, zone)["total"]
        factors = self._factors(recent.columns, zone, notes)
        if wind_solar_raw is None:
            forecast_mix = pd.DataFrame(index=total.index)
            notes.append(
                f"{zone}: ENTSO-E has no day-ahead wind and solar forecast (A69); the whole "
                "scheduled generation takes the recent mix"
            )
            residual_types = list(factors.index)
        else:
            forecast_mix = _hour_means(self._generation(wind_solar_raw, zone), notes, zone)
            forecast_mix = forecast_mix[[c for c in forecast_mix.columns if c in WIND_SOLAR]]
            residual_types = [t for t in factors.index if t not in WIND_SOLAR]
        energy = recent[residual_types].sum()
        if float(energy.sum()) <= 0:
            raise NoDataError(
                f"no recent generation mix for {zone} to weigh its day-ahead forecast with",
                provider=self.name,
            )
        residual_intensity = float((energy * factors[residual_types]).sum() / energy.sum())
        ws_factors = self._factors(forecast_mix.columns, zone, notes)
        forecast_mix = forecast_mix.reindex(total.index)
        known = forecast_mix.notna().all(axis=1) & total.notna()
        wind_solar = forecast_mix.fillna(0.0).sum(axis=1)
        residual = (total - wind_solar).clip(lower=0.0)
        clipped = int(((total - wind_solar) < 0)[known].sum())
        if clipped:
            notes.append(
                f"{zone}: {clipped} hour{'s' * (clipped != 1)} with more wind and solar "
                "forecast than total scheduled generation; the rest counted as 0"
            )
        emissions = forecast_mix.fillna(0.0).mul(ws_factors, axis=1).sum(axis=1)
        emissions = emissions + residual * residual_intensity
        generation = wind_solar + residual
        values = (emissions / generation).where(known & (generation > 0))
        notes.append(
            f"{zone}: forecast = day-ahead wind and solar (A69) at their factors + the rest of "
            f"the scheduled generation (A71) at the other types' mix of the previous "
            f"{RECENT // HOUR} hours ({residual_intensity:.0f} gCO2eq/kWh); a heuristic"
        )
        return [
            Point(stamp.to_pydatetime(), None if math.isnan(v) else float(v))
            for stamp, v in zip(pd.DatetimeIndex(values.index), values.to_numpy(float), strict=True)
        ]

    def _series(
        self, values: pd.DataFrame, flags: pd.DataFrame | None, notes: list[str], **meta: Any
    ) -> IntensitySeries:
        values.index.name = "start"
        basis = (
            f"average, generation-based (imports and exports ignored), computed by lowcarb "
            f"from the ENTSO-E mix with {self.emission_factor_type} emission factors"
        )
        return IntensitySeries(
            values,
            HOUR,
            signal="average",
            basis=self.emission_factor_type,
            provider=self.name,
            estimated=flags,
            notes=tuple(dict.fromkeys([basis, *notes])),
            **meta,
        )


def _check_options(
    emission_factor_type: Any,
    base_url: str,
    timeout_s: float,
    max_attempts: int,
    max_retry_time_s: float,
    cache_ttl_s: float,
    gaps: GapPolicy,
    max_gap_hours: float,
) -> None:
    if emission_factor_type not in ("lifecycle", "direct"):
        raise ConfigurationError(
            f"emission_factor_type={emission_factor_type!r}: must be 'lifecycle' or 'direct'"
        )
    # An empty base_url means "the provider's default" to HttpOptions; here the default
    # is in Options already, so an empty one is a mistake.
    if not base_url:
        raise ConfigurationError("base_url must start with http:// or https://, got ''")
    # The HTTP options are those of every network provider (minus max_concurrency and
    # cache_dir: entsoe-py is synchronous, and its gateway caches in memory only).
    HttpOptions(
        base_url=base_url,
        timeout_s=timeout_s,
        max_attempts=max_attempts,
        max_retry_time_s=max_retry_time_s,
        cache_ttl_s=cache_ttl_s,
        gaps=gaps,
        max_gap_hours=max_gap_hours,
    )


def _hour_means(frame: pd.DataFrame, notes: list[str], zone: str) -> pd.DataFrame:
    """Mean MW per type and hour (15/30/60-minute data alike); negatives read as 0."""
    negative = int((frame < 0).sum().sum())
    if negative:
        notes.append(f"{zone}: {negative} negative generation value(s) read as 0")
        frame = frame.clip(lower=0.0)
    if frame.empty:
        return frame
    return frame.resample("1h").mean()


def _points(hourly: _Hourly) -> list[Point]:
    stamps = pd.DatetimeIndex(hourly.values.index)
    values = hourly.values.to_numpy(dtype=float)
    flags = hourly.estimated.to_numpy(dtype=bool)
    return [
        Point(stamp.to_pydatetime(), None if math.isnan(value) else float(value), bool(flag))
        for stamp, value, flag in zip(stamps, values, flags, strict=True)
    ]


def _stamp(when: datetime | pd.Timestamp) -> str:
    return pd.Timestamp(when).strftime("%Y-%m-%dT%H:%MZ")
