"""``watttime`` provider: marginal (or average) emissions from the WattTime API v3.

Upstream: https://docs.watttime.org (base URL ``https://api.watttime.org``). Signal:
``co2_moer`` by default, the **marginal** operating emission rate: the emissions of the
plants that respond to one more kWh of demand, combustion only (basis ``direct``), in
lbs CO2/MWh, converted here to gCO2/kWh (x 0.45359237). Five-minute resolution;
forecasts reach 72 hours. ``signal_type="co2_aoer"`` asks the **average** rate instead
(hourly; WattTime publishes it as history only, so no forecasts). The percentile index
(0 = cleanest, 100 = dirtiest of the next 24 hours) is :meth:`WattTimeProvider.signal_index`.

Credentials. ``GET /login`` with HTTP Basic auth (``LOWCARB_WATTTIME_USERNAME`` and
``LOWCARB_WATTTIME_PASSWORD``, or ``<VAR>_FILE``) returns a token valid for 30 minutes,
sent as ``Authorization: Bearer``. The token is kept on the provider and reused until
two minutes before it expires (by the provider's clock), then renewed; a 401 (or an
HTML 403 page, which nginx serves for a stale token) triggers one fresh login and one
more try, then an :class:`AuthenticationError`. Rejected credentials fail at once,
without retries. The token is added to the redaction list the moment it arrives, so it
never shows in a message, a log line or a repr; the login itself is never cached.

Zones. lowcarb zones are Electricity Maps keys; WattTime answers for its own regions
(balancing authorities such as ``CAISO_NORTH`` or ``PSCO``). A zone becomes a region by,
in order:

1. the ``regions`` option, entries ``"ZONE=REGION"`` (``"US-CAL-CISO=CAISO_NORTH"``);
   a ZONE not in lowcarb's catalog becomes a zone of this provider;
2. ``GET /v3/region-from-loc`` at the zone's representative point (its main load
   centre, :data:`lowcarb.ZONE_CATALOG`), remembered for the provider's life.

Every series says in its notes which region (and model) each zone used.
:meth:`WattTimeProvider.region_for` answers the same question for a zone or for a
``LAT,LON`` site (asking ``region-from-loc`` at exactly those coordinates).

Endpoints used: ``/login``, ``/v3/region-from-loc``, ``/v3/forecast`` (``latest`` is its
first point with ``horizon_hours=0``, "the current five-minute period"; forecasts start
at the current five minutes, earlier intervals are gaps), ``/v3/historical`` (ranges
split into 30-day requests; its ``end`` is inclusive; imputed points are flagged
estimated) and ``/v3/signal-index``.

Free accounts may use region ``CAISO_NORTH`` only; elsewhere WattTime answers 403
"Invalid scope", raised as an :class:`AuthenticationError` that says so. Units other
than lbs CO2/MWh, another region or signal than asked, a period other than the
resolution, and malformed JSON raise :class:`ResponseParseError` naming the (redacted)
request; gaps, duplicates and disorder follow :func:`~lowcarb.backends.toolkit.assemble`.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import httpx
import pandas as pd

from lowcarb.backends.toolkit import (
    ZONE_CATALOG,
    AsyncHttpProvider,
    Call,
    Capabilities,
    Credential,
    Flow,
    HttpOptions,
    HttpProvider,
    IntensitySeries,
    Point,
    ZoneInfo,
    assemble,
    ceil_time,
    floor_time,
    format_duration,
    intensity_value,
    lbs_per_mwh_to_g_per_kwh,
    parse_location,
    timestamp,
)
from lowcarb.exceptions import (
    AuthenticationError,
    ConfigurationError,
    MissingCredentialError,
    NoDataError,
    ResponseParseError,
)

__all__ = ["AsyncWattTimeProvider", "SignalIndex", "WattTimeProvider", "WattTimeRegion"]

BASE_URL = "https://api.watttime.org"
FIVE_MINUTES = timedelta(minutes=5)
#: Lifetime of a login token (WattTime: "a JWT valid for 30 minutes").
TOKEN_LIFETIME = timedelta(minutes=30)
#: A token is renewed this long before it expires, so no request carries a dying one.
TOKEN_MARGIN = timedelta(minutes=2)
#: How far ahead ``/v3/forecast`` reaches (``horizon_hours`` at most 72).
FORECAST_REACH = timedelta(hours=72)
#: The longest range asked of ``/v3/historical`` at once (what WattTime's SDK uses).
HISTORY_CHUNK = timedelta(days=30)
#: Region lookups are kept this long in the response cache (regions do not move).
LOOKUP_TTL = timedelta(days=1)
#: The one region any account, free ones included, may read.
FREE_REGION = "CAISO_NORTH"
#: The zone whose load centre WattTime places in :data:`FREE_REGION`; the default zone.
FREE_ZONE = "US-CAL-CISO"
UNITS = "lbs_co2_per_mwh"

SignalType = Literal["co2_moer", "co2_aoer"]
#: signal_type -> (lowcarb signal, resolution, forecast reach)
_SIGNALS: dict[str, tuple[Literal["marginal", "average"], timedelta, timedelta | None]] = {
    "co2_moer": ("marginal", FIVE_MINUTES, FORECAST_REACH),
    "co2_aoer": ("average", timedelta(hours=1), None),
}
_REGION_ID = re.compile(r"^[A-Za-z0-9_.-]+$")

Responses = list[httpx.Response]


@dataclass(frozen=True)
class WattTimeRegion:
    """The WattTime region that answers for a zone or a site.

    Attributes:
        query: The zone or ``LAT,LON`` asked about.
        region: WattTime's region id (a balancing authority, e.g. ``CAISO_NORTH``).
        name: WattTime's full name of the region ("" when it came from config).
        method: ``config`` (the ``regions`` option), ``load-centre`` (``region-from-loc``
            at the zone's representative point) or ``coordinates`` (at the given site).
        lat: Latitude asked of ``region-from-loc``, degrees (None for ``config``).
        lon: Longitude asked of ``region-from-loc``, degrees (None for ``config``).
    """

    query: str
    region: str
    name: str
    method: Literal["config", "load-centre", "coordinates"]
    lat: float | None = None
    lon: float | None = None

    def describe(self) -> str:
        """One line, e.g. ``LAB -> WattTime region PSCO (regions option)``."""
        full = f", {self.name}" if self.name and self.name != self.region else ""
        if self.method == "config":
            how = "regions option"
        else:
            how = f"region-from-loc at {self.lat:.2f},{self.lon:.2f}"
        return f"{self.query} -> WattTime region {self.region}{full} ({how})"


@dataclass(frozen=True)
class SignalIndex:
    """WattTime's percentile of the current marginal rate against the next 24 hours.

    Attributes:
        zone: The lowcarb zone.
        region: The WattTime region it was read for.
        start: Start of the five-minute interval it describes (UTC).
        percentile: 0 (cleanest) to 100 (dirtiest).
        signal_type: The WattTime signal it ranks (``co2_moer``).
    """

    zone: str
    region: str
    start: datetime
    percentile: float
    signal_type: str


@dataclass
class _Token:
    value: str
    expires: datetime


def _iso(when: datetime) -> str:
    return when.isoformat()


def _parse_regions(entries: Sequence[str]) -> dict[str, str]:
    """``("ZONE=REGION", ...)`` -> ``{zone: region}``, zone ids in catalog spelling."""
    if isinstance(entries, str):
        entries = [e for e in entries.split(",") if e.strip()]
    catalog = {z.upper(): z for z in ZONE_CATALOG}
    out: dict[str, str] = {}
    for entry in entries:
        zone, sep, region = str(entry).partition("=")
        zone, region = zone.strip(), region.strip()
        if not sep or not zone or not _REGION_ID.match(region) or "," in zone:
            raise ConfigurationError(
                f"providers.watttime.regions entry {entry!r} must look like ZONE=REGION, "
                'e.g. "US-CAL-CISO=CAISO_NORTH" (a WattTime region id)'
            )
        out[catalog.get(zone.upper(), zone)] = region
    return out


class WattTimeProvider(HttpProvider):
    """Marginal CO2 emission rates (MOER) from WattTime's API v3, five-minute resolution.

    Upstream docs: https://docs.watttime.org. Needs a WattTime account (free accounts
    see region ``CAISO_NORTH`` only). Rate limits: 3,000 requests per 5 minutes, and
    100 logins per 5 minutes, which the token cache and the response cache keep far off.

    Args:
        username: WattTime user name (``LOWCARB_WATTTIME_USERNAME``).
        password: WattTime password (``LOWCARB_WATTTIME_PASSWORD``).
        signal_type: ``co2_moer`` (marginal, default) or ``co2_aoer`` (average, history
            only).
        regions: ``"ZONE=REGION"`` entries fixing a zone's WattTime region (skips the
            lookup; a new ZONE becomes a served zone).
        **options: See :class:`HttpOptions` (``base_url``, ``timeout_s``,
            ``max_attempts``, ``max_retry_time_s``, ``cache_ttl_s``, ``max_concurrency``,
            ``gaps``, ``max_gap_hours``) and :class:`HttpProvider` (``transport``,
            ``client``, ``cache``, ``rng``, ``clock``).

    Raises:
        MissingCredentialError: If the user name or password is empty.
        ConfigurationError: For an unknown signal type or a malformed ``regions`` entry.

    Example:
        >>> p = WattTimeProvider(username="ada", password="s3cret",
        ...                      regions=["US-CAL-CISO=CAISO_NORTH"])
        >>> p.default_zones(), p.capabilities.signal
        (['US-CAL-CISO'], 'marginal')
    """

    name = "watttime"
    default_base_url = BASE_URL
    credentials = (
        Credential(
            "username",
            "LOWCARB_WATTTIME_USERNAME",
            help="register with WattTime: POST https://api.watttime.org/register",
        ),
        Credential(
            "password",
            "LOWCARB_WATTTIME_PASSWORD",
            help="the password you registered with WattTime",
        ),
    )

    @dataclass(frozen=True)
    class Options(HttpOptions):
        """Config keys of the ``watttime`` provider (``[providers.watttime]``).

        Attributes:
            signal_type: ``co2_moer`` (marginal) or ``co2_aoer`` (average, history only).
            regions: ``"ZONE=REGION"`` entries fixing zones' WattTime regions.
        """

        base_url: str = BASE_URL
        signal_type: SignalType = "co2_moer"
        regions: tuple[str, ...] = field(default=())

    def __init__(
        self,
        *,
        username: str = "",
        password: str = "",
        signal_type: SignalType = "co2_moer",
        regions: Sequence[str] = (),
        **options: Any,
    ) -> None:
        if not (isinstance(username, str) and username.strip()) or not (
            isinstance(password, str) and password.strip()
        ):
            raise MissingCredentialError(
                "watttime needs an account: set LOWCARB_WATTTIME_USERNAME and "
                "LOWCARB_WATTTIME_PASSWORD (or their _FILE variants); register with "
                "POST https://api.watttime.org/register"
            )
        if signal_type not in _SIGNALS:
            raise ConfigurationError(
                f"signal_type={signal_type!r}: must be 'co2_moer' (marginal) or 'co2_aoer'"
            )
        self.username = username.strip()
        self.password = password.strip()
        self.signal_type: str = signal_type
        self.region_map = _parse_regions(regions)
        basic = f"{self.username}:{self.password}".encode()
        self._basic = "Basic " + base64.b64encode(basic).decode("ascii")
        self._token: _Token | None = None
        #: zone -> its region, once looked up (regions do not move).
        self._found: dict[str, WattTimeRegion] = {}
        #: Logins sent, for tests and for keeping an eye on WattTime's login limit.
        self.logins = 0
        super().__init__(**options)

    # -- description ----------------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        """Marginal (``co2_moer``, 5 min, 72 h ahead) or average (``co2_aoer``, hourly)."""
        signal, resolution, reach = _SIGNALS[self.signal_type]
        return Capabilities(
            signal=signal,
            basis="direct",
            resolution=resolution,
            forecast_horizon=reach,
            history=True,
        )

    def served_zones(self) -> list[str]:
        """Every catalog zone (found through its load centre), then zones only in ``regions``."""
        return [*ZONE_CATALOG, *(z for z in self.region_map if z not in ZONE_CATALOG)]

    def default_zones(self) -> list[str]:
        """The zones of the ``regions`` option, else ``US-CAL-CISO`` (the free region)."""
        return list(self.region_map) or [FREE_ZONE]

    def zones(self) -> list[ZoneInfo]:
        """Catalog zones, named with their WattTime region where the config fixes it."""
        infos = []
        for zone in self.served_zones():
            region = self.region_map.get(zone)
            info = ZONE_CATALOG.get(zone)
            if info is None:
                nan = float("nan")
                info = ZoneInfo(zone, f"WattTime region {region}", "", "", nan, nan, "UTC")
            elif region:
                info = ZoneInfo(
                    zone,
                    f"{info.name} (WattTime {region})",
                    info.country,
                    info.continent,
                    info.lat,
                    info.lon,
                    info.timezone,
                )
            infos.append(info)
        return infos

    def secret_values(self) -> tuple[str, ...]:
        """Values scrubbed from messages: the password and the Basic header.

        Not the user name, which is no secret and may be an everyday word. The token is
        added once logged in (see ``_login``).
        """
        basic = getattr(self, "_basic", "")
        return tuple(v for v in (self.password, basic, basic.removeprefix("Basic ")) if v)

    def __repr__(self) -> str:
        return (
            f"WattTimeProvider(signal_type={self.signal_type!r}, "
            f"regions={len(self.region_map)}, base_url={self._redact(self.base_url)!r})"
        )

    # -- the async face -------------------------------------------------------------------

    def to_async(
        self,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        client: httpx.AsyncClient | None = None,
        max_concurrency: int | None = None,
    ) -> AsyncWattTimeProvider:
        """The async face: same options, clock, token and response cache."""
        return AsyncWattTimeProvider(
            self,
            transport=transport,
            client=client,
            max_concurrency=max_concurrency or self.max_concurrency,
        )

    # -- public extras --------------------------------------------------------------------

    def verify_credentials(self) -> None:
        """Log in now, so that bad credentials fail here rather than mid-training.

        Raises:
            AuthenticationError: If WattTime rejects the user name or password.
        """
        self._driver.run(self._login_flow())

    def region_for(self, location: str) -> WattTimeRegion:
        """The WattTime region of a zone id or of a ``LAT,LON`` site.

        Raises:
            UnknownZoneError: If ``location`` is neither a served zone nor coordinates.
            NoDataError: If WattTime covers no region there.
        """
        return self._driver.run(self._region_for_flow(location))

    def signal_index(self, zones: Sequence[str]) -> dict[str, SignalIndex]:
        """The current percentile (0 cleanest .. 100 dirtiest) of each zone's region."""
        return self._driver.run(self._index_flow(self._check_zones(zones)))

    # -- authentication -------------------------------------------------------------------

    def _login(self) -> Generator[list[Call], Responses, str]:
        """Log in, keep the token and return it; rejected credentials raise (no retries)."""
        call = Call("/login", headers={"Authorization": self._basic}, label="log in")
        self.logins += 1
        (response,) = yield [call]
        where = self._where(response)
        try:
            payload = json.loads(response.content)
        except (ValueError, UnicodeDecodeError):
            # Never quote this body: it may hold a (truncated) token.
            raise ResponseParseError(
                f"{where} (log in) answered with a body that is not valid JSON "
                f"({len(response.content)} bytes)",
                provider=self.name,
                status_code=response.status_code,
            ) from None
        token = payload.get("token") if isinstance(payload, dict) else None
        if not isinstance(token, str) or not token.strip():
            raise ResponseParseError(
                f"{where} (log in) answered without a token", provider=self.name
            )
        fresh = _Token(token.strip(), self.clock.now() + TOKEN_LIFETIME)
        self._token = fresh
        self._session_secrets(fresh.value)
        return fresh.value

    def _login_flow(self) -> Flow[None]:
        yield from self._login()

    def _fresh_token(self) -> str | None:
        # Read once: another thread using this provider may replace or drop it meanwhile.
        token = self._token
        if token is not None and self.clock.now() < token.expires - TOKEN_MARGIN:
            return token.value
        return None

    def _bearer(self, call: Call, token: str) -> Call:
        headers = {**call.headers, "Authorization": f"Bearer {token}"}
        return Call(
            call.path,
            call.params,
            headers=headers,
            cache_ttl=call.cache_ttl,
            label=call.label,
            accept=call.accept | {401, 403},
        )

    def _authed(self, calls: list[Call]) -> Generator[list[Call], Responses, Responses]:
        """Send ``calls`` with a fresh token: log in first if needed, and once more on 401."""
        if not calls:
            return []
        token = self._fresh_token()
        if token is None:
            token = yield from self._login()
        responses = yield [self._bearer(c, token) for c in calls]
        stale = [i for i, r in enumerate(responses) if self._token_refused(r)]
        if stale:
            held = self._token
            if held is not None and held.value == token:
                self._token = None  # not one another thread has fetched since
            token = yield from self._login()
            again = yield [self._bearer(calls[i], token) for i in stale]
            for i, response in zip(stale, again, strict=True):
                if self._token_refused(response):
                    raise AuthenticationError(
                        f"{self._where(response)} -> {response.status_code}: WattTime "
                        "refused a token it had just issued; check that the account "
                        "(LOWCARB_WATTTIME_USERNAME) is active",
                        provider=self.name,
                        status_code=response.status_code,
                    )
                responses[i] = response
        return responses

    def _token_refused(self, response: httpx.Response) -> bool:
        """Whether ``response`` refuses the token: a 401, or a 403 page that is not JSON.

        Raises:
            AuthenticationError: For WattTime's JSON 403 ("Invalid scope"): the plan, not
                the token, is the problem, so logging in again would not help.
        """
        if response.status_code == 401:
            return True
        if response.status_code != 403:
            return False
        if self._json_error(response) is not None:
            self._no_access(response)
        return True

    def _json_error(self, response: httpx.Response) -> dict[str, Any] | None:
        try:
            payload = json.loads(response.content)
        except (ValueError, UnicodeDecodeError):
            return None
        return payload if isinstance(payload, dict) else None

    def _no_access(self, response: httpx.Response) -> None:
        params = response.request.url.params
        region = params.get("region", "")
        region_text = f"region {region}" if region else "this request"
        signal = params.get("signal_type", self.signal_type)
        raise AuthenticationError(
            f"{self._where(response)} -> 403: your WattTime plan does not cover "
            f"{region_text} (signal {signal}): "
            f"{self.error_detail(response).rstrip('.') or 'no access'}. "
            f"Free accounts may read only region {FREE_REGION} (zone {FREE_ZONE}); "
            "forecasts and history elsewhere need a WattTime subscription "
            "(see https://docs.watttime.org)",
            provider=self.name,
            status_code=403,
        )

    # -- regions --------------------------------------------------------------------------

    def _lookup_call(self, lat: float, lon: float) -> Call:
        return Call(
            "/v3/region-from-loc",
            {
                "latitude": f"{lat:.4f}",
                "longitude": f"{lon:.4f}",
                "signal_type": self.signal_type,
            },
            cache_ttl=self._ttl(LOOKUP_TTL),
            label=f"region at {lat:.2f},{lon:.2f}",
            accept=frozenset({404}),
        )

    def _regions_flow(self, zones: list[str]) -> Generator[list[Call], Responses, None]:
        """Find the region of every zone not fixed by config nor looked up before."""
        todo: dict[str, tuple[float, float]] = {}
        for zone in zones:
            if zone in self.region_map:
                self._found[zone] = WattTimeRegion(zone, self.region_map[zone], "", "config")
            elif zone not in self._found:
                info = ZONE_CATALOG[zone]
                todo[zone] = (info.lat, info.lon)
        calls = [self._lookup_call(lat, lon) for lat, lon in todo.values()]
        responses = yield from self._authed(calls)
        for (zone, (lat, lon)), response in zip(todo.items(), responses, strict=True):
            region, name = self._lookup_answer(response, zone)
            self._found[zone] = WattTimeRegion(zone, region, name, "load-centre", lat, lon)

    def _lookup_answer(self, response: httpx.Response, query: str) -> tuple[str, str]:
        where = self._where(response)
        if response.status_code == 404:
            zone = "SITE" if parse_location(query) else query
            raise NoDataError(
                f"{where} -> 404: WattTime covers no region for {query} with "
                f"{self.signal_type} ({self.error_detail(response)}); if a WattTime region "
                f'covers it, fix it with the regions option: regions = ["{zone}=REGION"]',
                provider=self.name,
                status_code=404,
            )
        payload = self._payload(response)
        region = payload.get("region")
        if not isinstance(region, str) or not _REGION_ID.match(region):
            raise ResponseParseError(
                f"{where}: 'region' is {region!r}, not a WattTime region id", provider=self.name
            )
        name = payload.get("region_full_name")
        return region, name if isinstance(name, str) else ""

    def _region_for_flow(self, location: str) -> Flow[WattTimeRegion]:
        coords = parse_location(location) if isinstance(location, str) else None
        if coords is None:
            zone = self.resolve(location).zone
            yield from self._regions_flow([zone])
            return self._found[zone]
        lat, lon = coords
        (response,) = yield from self._authed([self._lookup_call(lat, lon)])
        region, name = self._lookup_answer(response, location)
        return WattTimeRegion(location, region, name, "coordinates", lat, lon)

    def _by_region(self, zones: list[str]) -> dict[str, list[str]]:
        """Region -> the zones it answers for (one request per region, not per zone)."""
        out: dict[str, list[str]] = {}
        for zone in zones:
            out.setdefault(self._found[zone].region, []).append(zone)
        return out

    # -- flows ----------------------------------------------------------------------------

    def _data_call(
        self, path: str, region: str, purpose: str, ttl: timedelta | None, **params: str
    ) -> Call:
        return Call(
            path,
            {"region": region, "signal_type": self.signal_type, **params},
            cache_ttl=ttl,
            label=f"{purpose} {region}",
        )

    def _latest_flow(self, zones: list[str]) -> Flow[IntensitySeries]:
        yield from self._regions_flow(zones)
        groups = self._by_region(zones)
        step = self.capabilities.resolution
        if self.capabilities.forecast_horizon is None:
            # co2_aoer: no forecast endpoint; the newest published hour of the last day.
            now = self.clock.now()
            first = floor_time(now, step) - timedelta(days=1)
            calls = [self._history_call(r, first, floor_time(now, step) + step) for r in groups]
        else:
            calls = [
                self._data_call("/v3/forecast", r, "latest", self._short_ttl(), horizon_hours="0")
                for r in groups
            ]
        responses = yield from self._authed(calls)
        chosen: dict[str, Point] = {}
        notes: list[str] = []
        for (region, members), response in zip(groups.items(), responses, strict=True):
            points, found = self._points(response, region, members)
            notes += found
            usable = [p for p in points if p.value is not None and p.start <= self.clock.now()]
            if not usable:
                raise NoDataError(
                    f"{self._where(response)} holds no current value for {', '.join(members)}",
                    provider=self.name,
                )
            current = max(usable, key=lambda p: p.start)
            for zone in members:
                chosen[zone] = current
        index = pd.DatetimeIndex(sorted({p.start for p in chosen.values()}), tz="UTC")
        values = pd.DataFrame(index=index, columns=zones, dtype=float)
        flags = pd.DataFrame(False, index=index, columns=zones)
        for zone, point in chosen.items():
            values.loc[pd.Timestamp(point.start), zone] = point.value
            flags.loc[pd.Timestamp(point.start), zone] = point.estimated
        return self._series(values, flags, notes)

    def _history_call(self, region: str, first: datetime, stop: datetime) -> Call:
        step = self.capabilities.resolution
        return self._data_call(
            "/v3/historical",
            region,
            "history",
            self._ttl(),
            start=_iso(first),
            # WattTime's end is inclusive: stop at the last interval wanted.
            end=_iso(stop - step),
            include_imputed_marker="true",
        )

    def _history_flow(
        self, zones: list[str], start: datetime, end: datetime
    ) -> Flow[IntensitySeries]:
        step = self.capabilities.resolution
        first, stop = ceil_time(start, step), ceil_time(end, step)
        limit = floor_time(self.clock.now(), step) + step
        if first >= limit or end > limit:
            raise NoDataError(
                f"history ends with the current interval ({_iso(limit - step)}); "
                "ask forecast() for later ones",
                provider=self.name,
            )
        if first >= stop:
            empty = pd.DataFrame(index=pd.DatetimeIndex([], tz="UTC"), columns=zones, dtype=float)
            return self._series(empty, None, [])
        yield from self._regions_flow(zones)
        groups = self._by_region(zones)
        asks: list[tuple[str, Call]] = []
        chunk = first
        while chunk < stop:
            chunk_end = min(chunk + HISTORY_CHUNK, stop)
            asks += [(r, self._history_call(r, chunk, chunk_end)) for r in groups]
            chunk = chunk_end
        responses = yield from self._authed([call for _, call in asks])
        return self._assembled(zones, groups, asks, responses, first, stop)

    def _forecast_flow(
        self, zones: list[str], start: datetime, horizon: timedelta
    ) -> Flow[IntensitySeries]:
        issued = self.clock.now()
        step = self.capabilities.resolution
        now_slot = floor_time(issued, step)
        stop = start + horizon
        if stop <= now_slot:
            raise NoDataError(
                f"WattTime forecasts start at the current interval ({_iso(now_slot)}); "
                "ask history() for earlier ones",
                provider=self.name,
            )
        hours = min(72, max(1, math.ceil((stop - now_slot) / timedelta(hours=1))))
        # The answer starts at the current interval and reaches `hours` past it; reused in
        # a later interval it would end short of that request. Keep it this interval only.
        ttl = self._short_ttl()
        yield from self._regions_flow(zones)
        groups = self._by_region(zones)
        asks = [
            (r, self._data_call("/v3/forecast", r, "forecast", ttl, horizon_hours=str(hours)))
            for r in groups
        ]
        responses = yield from self._authed([call for _, call in asks])
        series = self._assembled(zones, groups, asks, responses, start, stop)
        notes = list(series.notes)
        if start < now_slot:
            notes.append(
                f"intervals before {_iso(now_slot)} lie in the past, which WattTime's "
                "forecast does not cover; they are gaps"
            )
        return series.with_values(
            series.values, is_forecast=True, issued_at=issued, notes=tuple(notes)
        )

    def _index_flow(self, zones: list[str]) -> Flow[dict[str, SignalIndex]]:
        yield from self._regions_flow(zones)
        groups = self._by_region(zones)
        calls = [
            # The index ranks the marginal rate whatever signal the provider reads.
            Call(
                "/v3/signal-index",
                {"region": r, "signal_type": "co2_moer"},
                cache_ttl=self._short_ttl(),
                label=f"signal index {r}",
            )
            for r in groups
        ]
        responses = yield from self._authed(calls)
        out: dict[str, SignalIndex] = {}
        for (region, members), response in zip(groups.items(), responses, strict=True):
            where = self._where(response)
            payload = self._payload(response)
            self._meta(payload, where, region, "co2_moer", units="percentile")
            items = self._items(payload, where)
            if not items:
                raise NoDataError(f"{where} holds no index value", provider=self.name)
            item = self._object(items[-1], f"{where}: data[{len(items) - 1}]")
            start = timestamp(
                item.get("point_time"), where=f"{where}: point_time", provider=self.name
            )
            value = item.get("value")
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not 0 <= value <= 100
            ):
                raise ResponseParseError(
                    f"{where}: value is {value!r}, not a percentile 0-100", provider=self.name
                )
            for zone in members:
                out[zone] = SignalIndex(zone, region, start, float(value), "co2_moer")
        return out

    # -- parsing --------------------------------------------------------------------------

    def _short_ttl(self) -> timedelta | None:
        """Answers about the current five minutes are kept until those five minutes end."""
        if self.cache_ttl is None:
            return None
        now = self.clock.now()
        return min(self.cache_ttl, floor_time(now, FIVE_MINUTES) + FIVE_MINUTES - now)

    def _assembled(
        self,
        zones: list[str],
        groups: dict[str, list[str]],
        asks: list[tuple[str, Call]],
        responses: Responses,
        start: datetime,
        stop: datetime,
    ) -> IntensitySeries:
        by_region: dict[str, list[Point]] = {r: [] for r in groups}
        notes: list[str] = []
        for (region, _), response in zip(asks, responses, strict=True):
            points, found = self._points(response, region, groups[region])
            by_region[region] += points
            notes += found
        values, flags, repairs = assemble(
            {zone: by_region[self._found[zone].region] for zone in zones},
            start=start,
            end=stop,
            resolution=self.capabilities.resolution,
            provider=self.name,
            gaps=self.gaps,
            max_gap=self.max_gap,
        )
        return self._series(values, flags, notes + repairs)

    def _payload(self, response: httpx.Response) -> dict[str, Any]:
        where = self._where(response)
        if not response.content.strip():
            raise ResponseParseError(
                f"{where} answered {response.status_code} with an empty body where JSON "
                "was expected",
                provider=self.name,
            )
        try:
            payload = json.loads(response.content)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ResponseParseError(
                f"{where} answered with a body that is not valid JSON ({exc})",
                provider=self.name,
            ) from exc
        return self._object(payload, f"{where}: the body")

    def _meta(
        self, payload: dict[str, Any], where: str, region: str, signal: str, units: str
    ) -> dict[str, Any]:
        meta = payload.get("meta")
        if meta is None:
            return {}
        meta = self._object(meta, f"{where}: meta")
        checks = (("region", region), ("signal_type", signal), ("units", units))
        for key, expected in checks:
            got = meta.get(key)
            if got is not None and str(got).lower() != expected.lower():
                hint = "; a wrong unit?" if key == "units" else ""
                raise ResponseParseError(
                    f"{where}: meta.{key} is {got!r}, but {expected!r} was expected{hint}",
                    provider=self.name,
                )
        return meta

    def _items(self, payload: dict[str, Any], where: str) -> list[Any]:
        if "data" not in payload:
            raise ResponseParseError(
                f"{where} answered with JSON that has no 'data' field", provider=self.name
            )
        data = payload["data"]
        if data is None:
            return []
        if not isinstance(data, list):
            raise ResponseParseError(
                f"{where}: 'data' is a {type(data).__name__}, not a list", provider=self.name
            )
        return data

    def _points(
        self, response: httpx.Response, region: str, members: list[str]
    ) -> tuple[list[Point], list[str]]:
        """The points of one data answer, in g/kWh, and notes naming the region and model."""
        where = self._where(response)
        payload = self._payload(response)
        meta = self._meta(payload, where, region, self.signal_type, units=UNITS)
        period = meta.get("data_point_period_seconds")
        step = self.capabilities.resolution
        if period is not None and period != step.total_seconds():
            raise ResponseParseError(
                f"{where}: meta.data_point_period_seconds is {period!r}, but lowcarb reads "
                f"{self.signal_type} at {format_duration(step)}",
                provider=self.name,
            )
        points = []
        for i, item in enumerate(self._items(payload, where)):
            here = f"{where}: data[{i}]"
            self._object(item, here)
            start = timestamp(
                item.get("point_time"), where=f"{here}.point_time", provider=self.name
            )
            value = intensity_value(
                item.get("value"),
                where=f"{here}.value",
                provider=self.name,
                factor=lbs_per_mwh_to_g_per_kwh(1.0),
            )
            points.append(Point(start, value, item.get("imputed_data_used") is True))
        model = meta.get("model")
        model_date = model.get("date") if isinstance(model, dict) else None
        notes = []
        for zone in members:
            found = self._found[zone]
            notes.append(
                f"{found.describe()}; {self.signal_type} "
                f"({self.capabilities.signal}, lbs/MWh converted to g/kWh)"
                + (f", model {model_date}" if model_date else "")
            )
        for warning in meta.get("warnings") or []:
            if isinstance(warning, dict):
                text = warning.get("message") or warning.get("type")
                notes.append(f"WattTime warning for {region}: {text}")
        if any(p.estimated for p in points):
            notes.append(f"{region}: values WattTime imputed are flagged estimated")
        return points, notes


class AsyncWattTimeProvider(AsyncHttpProvider):
    """The async face of :class:`WattTimeProvider` (build it with ``to_async()``).

    Shares the provider's token, regions found, clock and response cache; the requests
    of one call (regions, history chunks) go out concurrently.
    """

    provider: WattTimeProvider

    async def verify_credentials(self) -> None:
        """See :meth:`WattTimeProvider.verify_credentials`."""
        await self._run(self.provider._login_flow())

    async def region_for(self, location: str) -> WattTimeRegion:
        """See :meth:`WattTimeProvider.region_for`."""
        return await self._run(self.provider._region_for_flow(location))

    async def signal_index(self, zones: Sequence[str]) -> dict[str, SignalIndex]:
        """See :meth:`WattTimeProvider.signal_index`."""
        checked = self.provider._check_zones(zones)
        return await self._run(self.provider._index_flow(checked))
