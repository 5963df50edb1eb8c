"""``electricitymaps`` provider: the Electricity Maps API (v3), with an ``auth-token`` key.

Upstream: https://portal.electricitymaps.com/developer-hub/api/reference (base URL
``https://api.electricitymaps.com/v3``). Signal: **average, consumption-based** carbon
intensity (flow-traced through imports) in gCO2eq/kWh, **lifecycle** emission factors by
default or **direct** (combustion only) with ``emission_factor_type = "direct"``. Hourly.

Credential: the API key, sent in the ``auth-token`` header, read from the environment
variable ``LOWCARB_ELECTRICITYMAPS_TOKEN`` (or a file named by
``LOWCARB_ELECTRICITYMAPS_TOKEN_FILE``). A key the API rejects raises
:class:`~lowcarb.exceptions.AuthenticationError` at once, never retried, naming the variable.

Endpoints used (all ``GET``; the data calls also send ``emissionFactorType``)::

    zones     /zones                                  the zones this key may read, and routes
    latest    /carbon-intensity/latest?zone=DE        also ?lat=..&lon=.. (location lookup)
    history   /carbon-intensity/history?zone=DE       the current hour and the 23 before it
    past      /carbon-intensity/past-range?zone=DE&start=..&end=..   at most 10 days a call
    forecast  /carbon-intensity/forecast?zone=DE&horizonHours=24|48|72

What each call returns:

* ``served_zones``: the keys of ``/zones``, asked once (cached a day), with the routes
  each zone lists for the key (``access``). What a plan reads is taken from that list,
  never assumed: a route the key lacks is refused before any request, quoting the
  carbon-intensity routes the key has. (A free key listed one zone until 2025; in 2026
  one lists about 350, with ``forecast`` but no ``past-range``.)
* ``default_zones``: the ``zones`` option; else the zones the key reads carbon intensity
  for, if at most :data:`MAX_DEFAULT_ZONES` (each zone costs a request per call); more
  raise ``InvalidInputError`` asking the caller to name zones.
* ``latest``: the API's newest hourly value (the API's own "now", whatever the clock says;
  a note says when it is more than two hours old).
* ``history``: the hours ``/history`` serves (the current one and the 23 before it) are
  read there; older ones from ``/past-range``, split into 10-day requests, if the key
  lists that route (else refused before asking). Up to the current hour; later ones raise
  ``NoDataError`` (ask ``forecast``).
* ``forecast``: asked for 24, 48 or 72 hours (the smallest that covers the request), so
  forecasts made within the cache TTL and the same hour share one answer (``/forecast``
  and ``/history`` reach from the current hour: the next hour asks again). v3 answers
  from the next hour: the current hour is then ``/latest``'s value, with a note.
* ``resolve("LAT,LON")``: asks the API which zone holds the point (``/latest?lat&lon``).

Values: ``isEstimated`` is kept in the series' estimated mask; ``null`` intensities are
gaps. Malformed bodies, a wrong ``unit``, ``emissionFactorType`` or
``temporalGranularity``, or ``flowTraced: false`` raise ``ResponseParseError`` naming the
(redacted) request; gaps, duplicates and disorder follow
:func:`~lowcarb.backends.toolkit.assemble`.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal

import httpx
import pandas as pd

from lowcarb.backends.toolkit import (
    ZONE_CATALOG,
    Call,
    Capabilities,
    Credential,
    Flow,
    HttpOptions,
    HttpProvider,
    IntensitySeries,
    Point,
    ZoneInfo,
    ZoneResolution,
    assemble,
    ceil_time,
    floor_time,
    intensity_value,
    parse_location,
    timestamp,
)
from lowcarb.exceptions import (
    AuthenticationError,
    ConfigurationError,
    InvalidInputError,
    MissingCredentialError,
    NoDataError,
    ProviderError,
    RateLimitedError,
    ResponseParseError,
    UnknownZoneError,
)

__all__ = ["ElectricityMapsProvider"]

log = logging.getLogger("lowcarb.backends.electricitymaps")

BASE_URL = "https://api.electricitymaps.com/v3"
HOUR = timedelta(hours=1)
#: The variable that holds the API key (``_FILE`` appended: a file that holds it).
TOKEN_ENV = "LOWCARB_ELECTRICITYMAPS_TOKEN"
#: Where a key comes from.
TOKEN_HELP = (
    "get a key at https://portal.electricitymaps.com; free tier: "
    "https://www.electricitymaps.com/free-tier"
)
#: ``/carbon-intensity/history`` answers the current hour and this much before it (24 rows).
HISTORY_REACH = timedelta(hours=23)
#: The longest ``/past-range`` request at hourly granularity (10 days).
MAX_PAST_RANGE = timedelta(days=10)
#: The longest forecast lowcarb asks for (``horizonHours``).
FORECAST_REACH = timedelta(hours=72)
#: ``/zones`` and location answers are kept this long (zones do not move).
LOOKUP_TTL = timedelta(days=1)
#: ``latest`` older than this gets a note.
STALE_AFTER = timedelta(hours=2)
#: The unit the API reports intensities in, when it names one.
UNIT = "gco2eq/kwh"
#: The routes lowcarb reads; a zone whose ``/zones`` entry lists none of them is unusable.
INTENSITY_ROUTES = (
    "carbon-intensity/latest",
    "carbon-intensity/history",
    "carbon-intensity/past-range",
    "carbon-intensity/forecast",
)
#: The most zones :meth:`ElectricityMapsProvider.default_zones` hands out unasked: each
#: costs a request per call, and a 2026 free key reads about 350.
MAX_DEFAULT_ZONES = 10
#: How many refused zones a plan error names before it counts the rest.
NAMED_IN_ERRORS = 5

EmissionFactorType = Literal["lifecycle", "direct"]


def _stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _short(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%MZ")


@dataclass(frozen=True)
class _Zone:
    """One entry of ``/zones``: names and the routes the key may use (None: not listed)."""

    name: str
    country: str
    access: tuple[str, ...] | None

    def allows(self, route: str) -> bool:
        if self.access is None:
            return True
        return any(fnmatch.fnmatchcase(route, pattern) for pattern in self.access)

    def describe_access(self) -> str:
        """The carbon-intensity routes of ``access``, briefly (a plan lists ~80 routes)."""
        if self.access is None:
            return "its /zones entry lists no routes"
        if "*" in self.access:
            return "its /zones entry allows every route"
        prefix = "carbon-intensity/"
        mine = [a.removeprefix(prefix) for a in self.access if a.startswith(prefix)]
        others = len(self.access) - len(mine)
        listed = f"carbon-intensity {', '.join(mine)}" if mine else "no carbon-intensity route"
        more = f" (and {others} other route{'s' * (others != 1)})" if others else ""
        return f"its /zones entry lists {listed}{more}"


class ElectricityMapsProvider(HttpProvider):
    """Carbon intensity from the Electricity Maps API: average, consumption-based, hourly.

    Upstream docs: https://portal.electricitymaps.com/developer-hub/api/reference. Zones
    are Electricity Maps zone keys (``DE``, ``FR``, ``US-CAL-CISO``), those ``/zones``
    lists for the key. Lifecycle emission factors by default, direct on request. What a
    key may read is whatever its ``/zones`` entries list (as of 2026-08, a free key:
    about 350 zones, ``latest``, 24 hours of ``history`` and ``forecast``, no
    ``past-range``; see docs/providers/electricitymaps.md). No published rate limit.

    Args:
        token: The API key (sent as the ``auth-token`` header). From the configuration it
            is read only from ``LOWCARB_ELECTRICITYMAPS_TOKEN`` or ``..._FILE``.
        emission_factor_type: ``lifecycle`` (supply chain included, the API's default) or
            ``direct`` (combustion only, the GHG Protocol scope 2 boundary).
        zones: Zones used when a caller names none (default: those the key reads carbon
            intensity for, if at most :data:`MAX_DEFAULT_ZONES`).
        **options: See :class:`HttpOptions` (``base_url``, ``timeout_s``, ``max_attempts``,
            ``max_retry_time_s``, ``cache_ttl_s``, ``max_concurrency``, ``gaps``,
            ``max_gap_hours`` ...) and :class:`HttpProvider` (``transport``, ``client``,
            ``cache``, ``rng``, ``clock``).

    Example:
        >>> p = ElectricityMapsProvider(token="...")  # doctest: +SKIP
        >>> p.forecast(["DE", "FR"]).values.round()  # doctest: +SKIP
    """

    name = "electricitymaps"
    default_base_url = BASE_URL
    credentials: ClassVar[tuple[Credential, ...]] = (
        Credential("token", TOKEN_ENV, required=True, help=TOKEN_HELP),
    )

    @dataclass(frozen=True)
    class Options(HttpOptions):
        """Config keys of the ``electricitymaps`` provider (``[providers.electricitymaps]``).

        Attributes:
            emission_factor_type: ``lifecycle`` (default) or ``direct``.
            zones: Zones used when a command names none (default: those the key reads,
                if at most ten).
        """

        base_url: str = BASE_URL
        emission_factor_type: EmissionFactorType = "lifecycle"
        zones: tuple[str, ...] = ()

    def __init__(
        self,
        *,
        token: str = "",
        emission_factor_type: EmissionFactorType = "lifecycle",
        zones: tuple[str, ...] | list[str] = (),
        **options: Any,
    ) -> None:
        if not isinstance(token, str) or not token.strip():
            raise MissingCredentialError(
                f"provider 'electricitymaps' needs an API key: set {TOKEN_ENV} or "
                f"{TOKEN_ENV}_FILE ({TOKEN_HELP})"
            )
        if emission_factor_type not in ("lifecycle", "direct"):
            raise ConfigurationError(
                f"emission_factor_type={emission_factor_type!r}: must be 'lifecycle' or 'direct'"
            )
        self.token = token.strip()
        self.emission_factor_type: EmissionFactorType = emission_factor_type
        self.preferred_zones = tuple(zones)
        super().__init__(**options)
        # A failed /zones is logged once: every zone check after it would repeat it.
        self._zones_failure_logged = False

    @property
    def capabilities(self) -> Capabilities:
        """Average signal, the configured basis, hourly, forecasts up to 72 h ahead."""
        return Capabilities(
            signal="average",
            basis=self.emission_factor_type,
            resolution=HOUR,
            forecast_horizon=FORECAST_REACH,
            history=True,
        )

    # -- hooks ----------------------------------------------------------------------------

    def request_headers(self) -> dict[str, str]:
        """The common headers plus ``auth-token`` (redacted everywhere)."""
        return {**super().request_headers(), "auth-token": self.token}

    def classify_error(self, response: httpx.Response) -> ProviderError | None:
        """Electricity Maps' quirks: every refusal is a 401, whatever the reason.

        A bad key, a zone or route outside the key's plan, and (reported by users, by
        design per tier) a rate limit all come back as 401. Only the last is retried.
        """
        if response.status_code != 401:
            return None
        detail = self._redact(self.error_detail(response))
        where = f"{self._where(response)} -> 401"
        lowered = detail.lower()
        # A plan refusal first: its text ("requestType=...") could pass for a rate limit.
        if "unauthorized for" in lowered or "do not have access" in lowered:
            entry = self._known_entry(response.request.url.params.get("zone", ""))
            return AuthenticationError(
                f"{where}: this key's plan does not cover the request ({detail})"
                + (f"; {entry.describe_access()}" if entry else ""),
                provider=self.name,
                status_code=401,
            )
        if "rate" in lowered or "too many" in lowered or "limit" in lowered:
            return RateLimitedError(
                f"{where}: the provider is rate limiting us: {detail}",
                provider=self.name,
                status_code=401,
                retry_after=self._retry_after(response),
            )
        return AuthenticationError(
            f"{where}: the provider rejected the key"
            + (f": {detail}" if detail else "")
            + f"; set {TOKEN_ENV} (or {TOKEN_ENV}_FILE) to a valid Electricity Maps key",
            provider=self.name,
            status_code=401,
        )

    def error_detail(self, response: httpx.Response) -> str:
        """``error`` and ``message`` of a refusal together: the first says what was refused.

        A route outside the plan answers ``{"error": "Request unauthorized for zoneKey=DE,
        requestType=past-range,...", "message": "You do not have access to this specific
        endpoint ..."}``; the generic reader would keep only the vaguer ``message``.
        """
        try:
            payload = json.loads(response.content)
        except (ValueError, UnicodeDecodeError):
            payload = None
        if isinstance(payload, dict):
            both = [payload.get("error"), payload.get("message")]
            texts = [t.strip() for t in both if isinstance(t, str) and t.strip()]
            if len(texts) == 2:
                return f"{texts[0]} ({texts[1].rstrip('.')})"[:400]
        return super().error_detail(response)

    # -- zones ----------------------------------------------------------------------------

    def served_zones(self) -> list[str]:
        """The zones ``/zones`` lists for this key (one request, cached a day).

        If ``/zones`` fails, the ``zones`` option or lowcarb's zone catalog stands in, so
        that the failure surfaces from the data call itself, where a fallback chain
        catches it, rather than from a zone check outside it.
        """
        try:
            return list(self._zones_table())
        except ProviderError as exc:
            level = logging.DEBUG if self._zones_failure_logged else logging.WARNING
            self._zones_failure_logged = True
            log.log(level, "%s; assuming the configured or catalog zones", exc)
            return list(self.preferred_zones) or list(ZONE_CATALOG)

    def default_zones(self) -> list[str]:
        """The ``zones`` option; else the zones the key reads carbon intensity for, if few.

        A free key listed one zone until 2025 and lists about 350 in 2026; each zone
        costs a request per call, so beyond :data:`MAX_DEFAULT_ZONES` the caller names them.

        Raises:
            InvalidInputError: If no ``zones`` option is set and the key reads carbon
                intensity for more than :data:`MAX_DEFAULT_ZONES` zones.
            NoDataError: If the key reads carbon intensity for no zone.
            ProviderError: If ``/zones`` fails.
        """
        if self.preferred_zones:
            return list(self.preferred_zones)
        table = self._zones_table()
        reachable = [
            zone for zone, entry in table.items() if any(map(entry.allows, INTENSITY_ROUTES))
        ]
        if not reachable:
            raise NoDataError(
                f"this key's /zones entries list no carbon-intensity route for any of its "
                f"{len(table)} zones",
                provider=self.name,
            )
        if len(reachable) > MAX_DEFAULT_ZONES:
            raise InvalidInputError(
                f"{self.name}: this key reads carbon intensity for {len(reachable)} zones, "
                f"too many to ask unasked (one request per zone and call); name the zones "
                f"(lowcarb ... -z DE -z FR) or set providers.{self.name}.zones "
                f"({TOKEN_ENV.removesuffix('TOKEN')}ZONES)"
            )
        return reachable

    def zones(self) -> list[ZoneInfo]:
        """The served zones, with lowcarb's catalog entry where known, else the API's names."""
        infos = []
        for key, entry in self._zones_table().items():
            known = ZONE_CATALOG.get(key)
            infos.append(
                known or ZoneInfo(key, entry.name, entry.country, "", math.nan, math.nan, "UTC")
            )
        return infos

    def _zones_table(self) -> dict[str, _Zone]:
        """The ``/zones`` table, asked once (both faces: see :meth:`_zones_flow`)."""
        table: dict[str, _Zone] = self._fetched_zones()
        return table

    def _zones_flow(self) -> Flow[dict[str, _Zone]]:
        """``/zones``: the zones this key may read, and the routes of each."""
        call = Call("/zones", cache_ttl=self._ttl(LOOKUP_TTL), label="zones")
        (response,) = yield [call]
        where = self._where(response)
        payload = self._payload(response, call)
        if isinstance(payload, dict) and isinstance(payload.get("zones"), dict):
            payload = payload["zones"]  # the SDK model's wrapper, should the API adopt it
        if not isinstance(payload, dict):
            raise ResponseParseError(
                f"{where} answered with a {type(payload).__name__}, not a mapping of zones",
                provider=self.name,
            )
        table: dict[str, _Zone] = {}
        for key, item in payload.items():
            entry = self._object(item, f"{where}: {key!r}")
            access = entry.get("access")
            if access is not None and not (
                isinstance(access, list) and all(isinstance(a, str) for a in access)
            ):
                raise ResponseParseError(
                    f"{where}: {key!r}.access is {access!r}, not a list of routes",
                    provider=self.name,
                )
            table[key] = _Zone(
                str(entry.get("zoneName") or key),
                str(entry.get("countryName") or entry.get("zoneName") or ""),
                tuple(access) if access is not None else None,
            )
        if not table:
            raise NoDataError(f"{where} lists no zone this key may read", provider=self.name)
        return table

    def _require(self, zones: list[str], route: str, hint: str = "") -> None:
        """Refuse, before any request, a route the key's ``/zones`` entry does not allow.

        The message quotes the key's own list (its carbon-intensity routes, the others
        counted), never a guess about plans.
        """
        table = self._zones_table()
        refused = [z for z in zones if z in table and not table[z].allows(route)]
        if refused:
            named = ", ".join(refused[:NAMED_IN_ERRORS])
            if len(refused) > NAMED_IN_ERRORS:
                named += f" and {len(refused) - NAMED_IN_ERRORS} more"
            raise AuthenticationError(
                f"this key may not read {route} for {named}: "
                f"{table[refused[0]].describe_access()}{hint}",
                provider=self.name,
            )

    def _known_entry(self, zone: str) -> _Zone | None:
        """The zone's ``/zones`` entry if the table was fetched already (never fetches)."""
        if not self._zone_data_fetched or not isinstance(self._zone_data, dict):
            return None
        entry = self._zone_data.get(zone)
        return entry if isinstance(entry, _Zone) else None

    # -- resolving ------------------------------------------------------------------------

    def _resolve_flow(self, location: str) -> Flow[ZoneResolution] | None:
        coords = parse_location(location.strip())
        if coords is None:
            return None
        return self._location_flow(location, *coords)

    def _location_flow(self, query: str, lat: float, lon: float) -> Flow[ZoneResolution]:
        call = Call(
            "/carbon-intensity/latest",
            params={"lat": f"{lat:g}", "lon": f"{lon:g}"},
            cache_ttl=self._ttl(LOOKUP_TTL),
            label=f"zone at {lat:g},{lon:g}",
            accept=frozenset({400, 404}),
        )
        (response,) = yield [call]
        if response.status_code in call.accept:
            raise self._lookup_refused(query, response, "no zone at this location")
        where = self._where(response)
        payload = self._object(self._payload(response, call), where)
        zone = payload.get("zone")
        if not isinstance(zone, str) or not zone:
            raise ResponseParseError(
                f"{where}: 'zone' is {zone!r}, not a zone key", provider=self.name
            )
        if zone not in self._zones_table():
            raise UnknownZoneError(
                query,
                [],
                where=self.name,
                detail=f"{where} places it in {zone}, which this key may not read",
            )
        return ZoneResolution(query, zone, "provider")

    # -- flows ----------------------------------------------------------------------------

    def _params(self, zone: str, **extra: str) -> dict[str, str]:
        return {"zone": zone, "emissionFactorType": self.emission_factor_type, **extra}

    def _latest_call(self, zone: str, accept: frozenset[int] = frozenset()) -> Call:
        return Call(
            "/carbon-intensity/latest",
            params=self._params(zone),
            cache_ttl=self._this_hour(self.clock.now()),
            label=f"latest {zone}",
            accept=accept,
        )

    def _latest_flow(self, zones: list[str]) -> Flow[IntensitySeries]:
        self._require(zones, "carbon-intensity/latest")
        calls = [self._latest_call(zone) for zone in zones]
        responses = yield calls
        now = self.clock.now()
        chosen: dict[str, Point] = {}
        notes: list[str] = []
        for zone, call, response in zip(zones, calls, responses, strict=True):
            where = self._where(response)
            payload = self._object(self._payload(response, call), where)
            self._check_meta(payload, zone, where)
            point = self._point(payload, zone, where)
            if point.value is None:
                raise NoDataError(
                    f"{where}: no value for {zone} (carbonIntensity is null)", provider=self.name
                )
            chosen[zone] = point
            if now - point.start > STALE_AFTER:
                notes.append(f"{zone}: the latest value is from {_short(point.start)}")
        index = pd.DatetimeIndex(sorted({p.start for p in chosen.values()}), tz="UTC")
        values = pd.DataFrame(index=index, columns=zones, dtype=float)
        flags = pd.DataFrame(False, index=index, columns=zones)
        for zone, point in chosen.items():
            values.loc[pd.Timestamp(point.start), zone] = point.value
            flags.loc[pd.Timestamp(point.start), zone] = point.estimated
        return self._series(values, flags, notes + self._estimated_note(flags))

    def _history_flow(
        self, zones: list[str], start: datetime, end: datetime
    ) -> Flow[IntensitySeries]:
        first, stop = ceil_time(start, HOUR), ceil_time(end, HOUR)
        current = floor_time(self.clock.now(), HOUR)
        if first > current or end > current + HOUR:
            raise NoDataError(
                f"history ends with the current hour ({_short(current)}); ask forecast() for "
                "later ones",
                provider=self.name,
            )
        if first >= stop:
            empty = pd.DataFrame(index=pd.DatetimeIndex([], tz="UTC"), columns=zones, dtype=float)
            return self._series(empty, None, [])
        # (call, zone, window): each answer is cut to its own window, so overlaps are harmless.
        asks: list[tuple[Call, str, datetime, datetime]] = []
        ttl = self._ttl()
        # /history serves the current hour and the 23 before it: those hours are read
        # there (any key), older ones from /past-range (if the key lists it).
        reach = current - HISTORY_REACH
        if first < reach:
            self._require(
                zones,
                "carbon-intensity/past-range",
                f"; /carbon-intensity/history reaches back to {_short(reach)} only",
            )
        if stop > reach:
            self._require(zones, "carbon-intensity/history")
            for zone in zones:
                call = Call(
                    "/carbon-intensity/history",
                    params=self._params(zone),
                    cache_ttl=self._this_hour(self.clock.now()),
                    label=f"history {zone}",
                )
                asks.append((call, zone, max(first, reach), stop))
        if first < reach:
            older_end = min(stop, reach)
            chunk = first
            while chunk < older_end:
                chunk_end = min(chunk + MAX_PAST_RANGE, older_end)
                for zone in zones:
                    call = Call(
                        "/carbon-intensity/past-range",
                        params=self._params(zone, start=_stamp(chunk), end=_stamp(chunk_end)),
                        cache_ttl=ttl,
                        label=f"past-range {zone}",
                    )
                    asks.append((call, zone, chunk, chunk_end))
                chunk = chunk_end
        responses = yield [ask[0] for ask in asks]
        points: dict[str, list[Point]] = {zone: [] for zone in zones}
        for (call, zone, lo, hi), response in zip(asks, responses, strict=True):
            key = "history" if call.path.endswith("/history") else "data"
            found = self._items(response, call, zone, key)
            points[zone] += [p for p in found if lo <= p.start < hi]
        values, flags, notes = assemble(
            points,
            start=first,
            end=stop,
            resolution=HOUR,
            provider=self.name,
            gaps=self.gaps,
            max_gap=self.max_gap,
        )
        return self._series(values, flags, notes + self._estimated_note(flags))

    def _forecast_flow(
        self, zones: list[str], start: datetime, horizon: timedelta
    ) -> Flow[IntensitySeries]:
        self._require(zones, "carbon-intensity/forecast")
        issued = self.clock.now()
        stop = start + horizon
        # 24, 48 or 72 hours: the smallest that covers the request, so forecasts asked
        # within one cache TTL (and hour, see _this_hour) share one answer.
        needed = (stop - floor_time(issued, HOUR)) / HOUR
        hours = min(72, max(24, 24 * math.ceil(needed / 24)))
        calls = [
            Call(
                "/carbon-intensity/forecast",
                params=self._params(zone, horizonHours=str(hours)),
                cache_ttl=self._this_hour(issued),
                label=f"forecast {zone}",
            )
            for zone in zones
        ]
        responses = yield calls
        points = {
            zone: [
                Point(p.start, p.value)  # forecasts are never "estimated" measurements
                for p in self._items(response, call, zone, "forecast")
            ]
            for zone, call, response in zip(zones, calls, responses, strict=True)
        }
        notes = yield from self._current_hour_flow(points, start, stop, issued)
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

    def _current_hour_flow(
        self, points: dict[str, list[Point]], start: datetime, stop: datetime, issued: datetime
    ) -> Flow[list[str]]:
        """Add ``/latest``'s value where a forecast lacks the current hour; the notes.

        v3 forecasts start at the next hour (v4 ones at the current hour), so a forecast
        from now would begin with a gap that nothing can interpolate. ``/latest`` is the
        API's own value for that hour (usually estimated, and flagged so).
        """
        current = floor_time(issued, HOUR)
        if not start <= current < stop:
            return []
        missing = [
            zone
            for zone, found in points.items()
            if not any(p.start == current and p.value is not None for p in found)
            and self._allowed(zone, "carbon-intensity/latest")
        ]
        if not missing:
            return []
        # A refused or absent nowcast leaves the gap as it was, rather than fail the forecast.
        calls = [self._latest_call(zone, frozenset({400, 401, 403, 404})) for zone in missing]
        responses = yield calls
        filled = []
        for zone, call, response in zip(missing, calls, responses, strict=True):
            if response.status_code in call.accept:
                continue
            where = self._where(response)
            payload = self._object(self._payload(response, call), where)
            self._check_meta(payload, zone, where)
            point = self._point(payload, zone, where)
            if point.start == current and point.value is not None:
                points[zone].append(point)
                filled.append(zone)
        if not filled:
            return []
        return [
            f"{', '.join(filled)}: the forecast starts after the current hour "
            f"({_short(current)}); that hour is /carbon-intensity/latest's value"
        ]

    def _allowed(self, zone: str, route: str) -> bool:
        entry = self._zones_table().get(zone)
        return entry is None or entry.allows(route)

    def _this_hour(self, now: datetime) -> timedelta | None:
        """The cache TTL of an answer that ends relative to the current hour.

        ``/latest``, ``/history`` and ``/forecast`` answer from the current hour, whatever was
        asked: reused in the next hour, an answer would lack that hour's value (the newest,
        or the farthest forecast).
        """
        ttl = self._ttl()
        if ttl is None:
            return None
        return min(ttl, floor_time(now, HOUR) + HOUR - now)

    # -- parsing --------------------------------------------------------------------------

    def _payload(self, response: httpx.Response, call: Call) -> Any:
        payload = self._json(response, call.label)
        # 200 answers that carry an error (the API's InputError/NoDataError shapes).
        if isinstance(payload, dict) and (
            payload.get("status") == "error" or ("error" in payload and len(payload) == 1)
        ):
            raise ProviderError(
                f"{self._where(response)} answered with an error: "
                f"{self.error_detail(response) or payload!r}",
                provider=self.name,
                status_code=response.status_code,
            )
        return payload

    def _items(self, response: httpx.Response, call: Call, zone: str, key: str) -> list[Point]:
        """The points of a list answer: ``{"zone", <key>: [{"carbonIntensity", ...}]}``."""
        where = self._where(response)
        payload = self._object(self._payload(response, call), where)
        self._check_meta(payload, zone, where)
        items = payload.get(key)
        if items is None and key in payload:
            items = []
        if not isinstance(items, list):
            raise ResponseParseError(
                f"{where}: {key!r} is {type(items).__name__ if key in payload else 'missing'}, "
                "not a list",
                provider=self.name,
            )
        points = []
        for i, item in enumerate(items):
            here = f"{where}: {key}[{i}]"
            entry = self._object(item, here)
            self._check_meta(entry, zone, here)
            points.append(self._point(entry, zone, here))
        return points

    def _point(self, item: Mapping[str, Any], zone: str, where: str) -> Point:
        start = timestamp(item.get("datetime"), where=f"{where}.datetime", provider=self.name)
        value = intensity_value(
            item.get("carbonIntensity"), where=f"{where}.carbonIntensity", provider=self.name
        )
        estimated = item.get("isEstimated", False)
        if estimated is None:
            estimated = False
        if not isinstance(estimated, bool):
            raise ResponseParseError(
                f"{where}.isEstimated is {estimated!r}, not true or false", provider=self.name
            )
        return Point(start, value, estimated)

    def _check_meta(self, item: Mapping[str, Any], zone: str, where: str) -> None:
        """The fields that say what the numbers are must agree with what was asked."""
        found = item.get("zone")
        if found is not None and found != zone:
            raise ResponseParseError(
                f"{where}: zone is {found!r}, but {zone!r} was asked for", provider=self.name
            )
        basis = item.get("emissionFactorType")
        if basis is not None and basis != self.emission_factor_type:
            raise ResponseParseError(
                f"{where}: emissionFactorType is {basis!r}, but "
                f"{self.emission_factor_type!r} was asked for",
                provider=self.name,
            )
        granularity = item.get("temporalGranularity")
        if granularity is not None and granularity != "hourly":
            raise ResponseParseError(
                f"{where}: temporalGranularity is {granularity!r}, not 'hourly'",
                provider=self.name,
            )
        traced = item.get("flowTraced")
        if traced is not None and traced is not True:
            raise ResponseParseError(
                f"{where}: flowTraced is {traced!r}: production-based values, but lowcarb "
                "reads the consumption-based (flow-traced) signal",
                provider=self.name,
            )
        unit = item.get("unit")
        if unit is not None and str(unit).replace(" ", "").lower() != UNIT:
            raise ResponseParseError(
                f"{where}: unit is {unit!r}, not gCO2eq/kWh", provider=self.name
            )

    def _estimated_note(self, flags: pd.DataFrame) -> list[str]:
        count = int(flags.to_numpy().sum())
        if not count:
            return []
        return [
            f"{count} value{'s' * (count != 1)} flagged estimated (Electricity Maps' "
            "isEstimated, or repaired by lowcarb)"
        ]
