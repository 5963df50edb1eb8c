"""``carbon-aware-sdk`` provider: the Green Software Foundation Carbon Aware SDK WebAPI.

Upstream: https://github.com/Green-Software-Foundation/carbon-aware-sdk (the WebAPI,
``src/CarbonAware.WebApi``). It is a service **you run yourself** (there is no public
instance), so ``base_url`` is required. It has no authentication of its own; behind a
gateway, a key from ``LOWCARB_CARBON_AWARE_SDK_API_KEY`` is sent in ``auth_header``.

The signal is whatever the SDK is configured to serve, and its answers do not say which:
**marginal** from WattTime (``co2_moer``), **average** from Electricity Maps (or WattTime
``co2_aoer``). The ``signal`` option declares it; left ``unknown``, series are labelled
average and carry a note saying the label is unverified.

Zones. The SDK speaks its own location names (the keys of its location files, Azure
region names by default: ``eastus``, ``northeurope``). lowcarb zones map to them through
:data:`DEFAULT_LOCATIONS` (one Azure region per zone, from :data:`lowcarb.CLOUD_REGIONS`)
and the ``locations`` option (``"ZONE=sdk-location"`` entries, which win).

Endpoints used (``{p}`` is the optional ``route_prefix``)::

    latest, history  GET  {p}/emissions/bylocation?location=L&time=..&toTime=..
    forecast         GET  {p}/emissions/forecasts/current?location=L   (forecasts="current")
                     POST {p}/emissions/forecasts/batch  [{requestedAt, location}, ...]
    lookup           GET  {p}/locations   (camelCase or PascalCase fields)

**Attribution.** With a WattTime source the SDK answers with WattTime's region
(``CAISO_NORTH``) in every item's ``location``, and ``/emissions/bylocations`` simply
concatenates the lists of several locations, so the echoed name cannot tell them apart
(several Azure regions share one balancing authority). lowcarb therefore never reads the
echoed location: it asks ``bylocation`` and ``forecasts/current`` **once per location**
and tags each answer with the zone it asked for; the batch API gets one entry per location
and its answers are tagged by position. A differing echo is reported in the notes.

``bylocation`` answers newest first and holds intervals outside the window asked (the
one at ``toTime``, the one before ``time``: the SDK's quickstart output); each answer is
cut to its window and put in time order without a repair note.

Values are g/kWh already. Intervals carry a duration (a ``"hh:mm:ss"`` TimeSpan in
emissions data, minutes in forecasts); they are put on the ``resolution_minutes`` grid:
finer intervals (WattTime's 5 minutes) are averaged, coarser ones spread over the grid.
A 204 answer means no data (:class:`NoDataError`); an unknown location (the SDK's 400
``Unknown Location``) raises :class:`UnknownZoneError` with the closest names the SDK
knows. Malformed bodies raise :class:`ResponseParseError` naming the request; gaps,
duplicates and disorder follow :func:`~lowcarb.backends.toolkit.assemble`.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import httpx
import numpy as np
import pandas as pd

from lowcarb.backends.toolkit import (
    CLOUD_REGIONS,
    ZONE_CATALOG,
    Call,
    Capabilities,
    Credential,
    EmissionBasis,
    Flow,
    GapPolicy,
    HttpOptions,
    HttpProvider,
    IntensitySeries,
    Point,
    Signal,
    ZoneInfo,
    ZoneResolution,
    assemble,
    ceil_time,
    floor_time,
    format_duration,
    intensity_value,
    parse_location,
    resolve_zone,
    suggest_zones,
    timestamp,
)
from lowcarb.exceptions import (
    ConfigurationError,
    NoDataError,
    ProviderError,
    ResponseParseError,
    UnknownZoneError,
)

__all__ = ["DEFAULT_LOCATIONS", "CarbonAwareSDKProvider", "parse_locations"]


def _azure_defaults() -> dict[str, str]:
    table: dict[str, str] = {}
    for key, zone in CLOUD_REGIONS.items():
        if key.startswith("azure:"):
            table.setdefault(zone, key.removeprefix("azure:"))
    return table


#: Zone -> SDK location: the first Azure region of each zone in lowcarb's cloud-region
#: table. Every name is a key of the SDK's bundled ``azure-regions.json``.
DEFAULT_LOCATIONS: dict[str, str] = _azure_defaults()

#: ``latest`` also asks this far back, to fall back on when the current interval is late.
LATEST_LOOKBACK = timedelta(hours=1)
#: History is asked in pieces of at most this span (Electricity Maps' past-range limit,
#: which an SDK backed by it inherits).
MAX_RANGE = timedelta(days=10)
#: Answers of ``/locations`` are kept this long (a deployment's location files rarely change).
LOOKUP_TTL = timedelta(days=1)

_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.\d+)?$")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_BARE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_locations(entries: Iterable[str], *, builtin: bool = True) -> dict[str, str]:
    """The zone -> SDK location table: the defaults (if ``builtin``) updated by ``entries``.

    Args:
        entries: ``"ZONE=location"`` strings; a zone listed here overrides its default.
        builtin: Start from :data:`DEFAULT_LOCATIONS`.

    Raises:
        ConfigurationError: For an entry that is not ``ZONE=location``, or an empty table.
    """
    table = dict(DEFAULT_LOCATIONS) if builtin else {}
    for entry in entries:
        zone, sep, location = str(entry).partition("=")
        zone, location = zone.strip(), location.strip()
        if not sep or not zone or not location or any(c.isspace() for c in zone + location):
            raise ConfigurationError(
                f"locations: {entry!r} must look like ZONE=sdk-location, e.g. DE=germanywestcentral"
            )
        # "de=..." replaces the default DE rather than adding a second, differently-cased zone.
        table.pop(next((z for z in table if z.upper() == zone.upper()), zone), None)
        table[zone] = location
    if not table:
        raise ConfigurationError(
            "no zones: set locations (ZONE=sdk-location entries) or builtin_locations = true"
        )
    return table


def _check_options(
    *, resolution_minutes: int, forecast_hours: int, auth_header: str, route_prefix: str | None
) -> None:
    for name, value in (
        ("resolution_minutes", resolution_minutes),
        ("forecast_hours", forecast_hours),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigurationError(f"{name} must be an integer >= 1, got {value!r}")
    if 1440 % resolution_minutes:
        raise ConfigurationError(
            f"resolution_minutes must divide a day (5, 15, 30, 60, ...), got {resolution_minutes}"
        )
    if not isinstance(auth_header, str) or not _HEADER_NAME.match(auth_header):
        raise ConfigurationError(f"auth_header must be an HTTP header name, got {auth_header!r}")
    if route_prefix is not None and not re.match(r"^/?[A-Za-z0-9._~/-]*$", route_prefix):
        raise ConfigurationError(f"route_prefix must be a URL path, got {route_prefix!r}")


@dataclass(frozen=True)
class _Raw:
    """One interval as the SDK reported it, before it is put on the grid."""

    start: datetime
    duration: timedelta | None
    value: float | None


@dataclass
class _Answer:
    """What one zone's answers held: its intervals and the names the SDK echoed."""

    raws: list[_Raw] = field(default_factory=list)
    echoed: set[str] = field(default_factory=set)
    where: str = ""


class CarbonAwareSDKProvider(HttpProvider):
    """Carbon intensity from your own deployment of the GSF Carbon Aware SDK WebAPI.

    Upstream docs: https://carbon-aware-sdk.greensoftware.foundation/ (source:
    https://github.com/Green-Software-Foundation/carbon-aware-sdk). Signal: marginal
    (WattTime source) or average (Electricity Maps source), as configured on the server
    and declared here with ``signal``; g/kWh. Auth: none built in (an optional gateway
    key). Limits: those of the data source behind it (WattTime's free tier serves one
    region; Electricity Maps' free tier has no forecasts or past ranges).

    Args:
        base_url: Root of the deployment, e.g. ``http://localhost:8080`` (required).
        route_prefix: The SDK's ``CarbonAwareVars__WebApiRoutePrefix``, if set.
        locations: ``"ZONE=sdk-location"`` entries, added to (and overriding) the defaults.
        builtin_locations: Start from :data:`DEFAULT_LOCATIONS` (Azure regions).
        signal: What the SDK's source serves: ``marginal``, ``average`` or ``unknown``.
        basis: ``lifecycle``, ``direct``, or ``auto`` (marginal: direct, else lifecycle).
        resolution_minutes: The grid of returned series, in minutes.
        forecast_hours: How far ahead the SDK's source forecasts, in hours.
        forecasts: ``current`` (``/emissions/forecasts/current``, every source) or
            ``batch`` (``/emissions/forecasts/batch`` as of the clock's time, WattTime
            sources only; correct for replays in the past).
        auth_header: Header that carries ``api_key``; ``Authorization`` sends ``Bearer``.
        api_key: Gateway key (from ``LOWCARB_CARBON_AWARE_SDK_API_KEY``); never logged.
        **options: See :class:`HttpOptions` and :class:`HttpProvider` (``timeout_s``,
            ``cache_ttl_s``, ``gaps``, ``transport``, ``clock``, ...).

    Example:
        >>> p = CarbonAwareSDKProvider(base_url="http://localhost:8080")
        >>> p.locations["DE"], p.resolve("northeurope").zone
        ('germanywestcentral', 'IE')
    """

    name = "carbon-aware-sdk"
    credentials = (
        Credential(
            "api_key",
            "LOWCARB_CARBON_AWARE_SDK_API_KEY",
            required=False,
            help="only for a gateway in front of the SDK; the SDK itself has no auth",
        ),
    )

    @dataclass(frozen=True)
    class Options(HttpOptions):
        """Config keys of ``[providers.carbon-aware-sdk]`` (``LOWCARB_CARBON_AWARE_SDK_<KEY>``).

        ``base_url`` has no default: the SDK is self-hosted. See the provider's Args.
        """

        # Required here (no default), unlike in HttpOptions; a bare annotation would
        # inherit HttpOptions' default.
        base_url: str = field()
        route_prefix: str | None = None
        locations: tuple[str, ...] = ()
        builtin_locations: bool = True
        signal: Literal["unknown", "average", "marginal"] = "unknown"
        basis: Literal["auto", "lifecycle", "direct"] = "auto"
        resolution_minutes: int = 60
        forecast_hours: int = 24
        forecasts: Literal["current", "batch"] = "current"
        auth_header: str = "Authorization"

        def __post_init__(self) -> None:
            super().__post_init__()
            _check_options(
                resolution_minutes=self.resolution_minutes,
                forecast_hours=self.forecast_hours,
                auth_header=self.auth_header,
                route_prefix=self.route_prefix,
            )
            parse_locations(self.locations, builtin=self.builtin_locations)

    def __init__(
        self,
        *,
        base_url: str = "",
        route_prefix: str | None = None,
        locations: Iterable[str] | Mapping[str, str] = (),
        builtin_locations: bool = True,
        signal: Literal["unknown", "average", "marginal"] = "unknown",
        basis: Literal["auto", "lifecycle", "direct"] = "auto",
        resolution_minutes: int = 60,
        forecast_hours: int = 24,
        forecasts: Literal["current", "batch"] = "current",
        auth_header: str = "Authorization",
        api_key: str | None = None,
        **options: Any,
    ) -> None:
        if not base_url:
            raise ConfigurationError(
                "provider 'carbon-aware-sdk' needs base_url, the root of your own SDK "
                "deployment (e.g. http://localhost:8080); set providers.carbon-aware-sdk."
                "base_url in lowcarb.toml, LOWCARB_CARBON_AWARE_SDK_BASE_URL, or -o base_url=..."
            )
        _check_options(
            resolution_minutes=resolution_minutes,
            forecast_hours=forecast_hours,
            auth_header=auth_header,
            route_prefix=route_prefix,
        )
        if signal not in ("unknown", "average", "marginal"):
            raise ConfigurationError(f"signal={signal!r}: must be unknown, average or marginal")
        if basis not in ("auto", "lifecycle", "direct"):
            raise ConfigurationError(f"basis={basis!r}: must be auto, lifecycle or direct")
        if forecasts not in ("current", "batch"):
            raise ConfigurationError(f"forecasts={forecasts!r}: must be current or batch")
        entries = (
            [f"{z}={loc}" for z, loc in locations.items()]
            if isinstance(locations, Mapping)
            else list(locations)
        )
        #: Zone -> SDK location name, in served order.
        self.locations = parse_locations(entries, builtin=builtin_locations)
        self.route_prefix = "/" + route_prefix.strip("/") if route_prefix else ""
        self.signal_option = signal
        self.basis_option = basis
        self.resolution = timedelta(minutes=resolution_minutes)
        self.forecast_reach = timedelta(hours=forecast_hours)
        self.forecast_mode = forecasts
        self.auth_header = auth_header
        self.api_key = api_key or None  # before super(): headers and redaction read it
        super().__init__(base_url=base_url, **options)

    # -- hooks ----------------------------------------------------------------------------

    def request_headers(self) -> dict[str, str]:
        """Accept/User-Agent, plus the gateway key when one is configured."""
        headers = super().request_headers()
        if self.api_key:
            bearer = self.auth_header.lower() == "authorization"
            headers[self.auth_header] = f"Bearer {self.api_key}" if bearer else self.api_key
        return headers

    def _auth_hint(self) -> str:
        # The SDK has no authentication: a 401/403 comes from whatever stands in front of it.
        return (
            "the Carbon Aware SDK has no authentication of its own, so this comes from a "
            "gateway in front of it: check LOWCARB_CARBON_AWARE_SDK_API_KEY (or "
            f"LOWCARB_CARBON_AWARE_SDK_API_KEY_FILE) and auth_header ({self.auth_header})"
        )

    def classify_error(self, response: httpx.Response) -> ProviderError | None:
        """A 404 without a problem body is a missing route (base URL or prefix); 501 hints."""
        status = response.status_code
        where = self._where(response)
        if status == 404 and not response.content.strip():
            return ProviderError(
                f"{where} -> 404: no such route; check base_url ({self.base_url}) and "
                f"route_prefix (the SDK's CarbonAwareVars__WebApiRoutePrefix)",
                provider=self.name,
                status_code=status,
            )
        if status == 501:
            return NoDataError(
                f"{where} -> 501: the SDK's data source cannot answer this "
                f"({self.error_detail(response) or 'not implemented'}); forecasts need a "
                "WattTime or Electricity Maps source, and forecasts='batch' a WattTime one",
                provider=self.name,
                status_code=status,
            )
        return None

    # -- zones ----------------------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        """The declared signal and basis, ``resolution_minutes``, ``forecast_hours``."""
        return Capabilities(
            signal=self._signal,
            basis=self._basis,
            resolution=self.resolution,
            forecast_horizon=self.forecast_reach,
            history=True,
        )

    @property
    def _signal(self) -> Signal:
        return "marginal" if self.signal_option == "marginal" else "average"

    @property
    def _basis(self) -> EmissionBasis:
        if self.basis_option == "direct":
            return "direct"
        if self.basis_option == "lifecycle":
            return "lifecycle"
        # WattTime's MOER counts combustion at the marginal plant; EM defaults to life cycle.
        return "direct" if self.signal_option == "marginal" else "lifecycle"

    def served_zones(self) -> list[str]:
        """The zones of the location table (defaults plus ``locations``)."""
        return list(self.locations)

    def zones(self) -> list[ZoneInfo]:
        """Each served zone, named with the SDK location it is asked as."""
        infos = []
        for zone, location in self.locations.items():
            known = ZONE_CATALOG.get(zone)
            if known is None:
                infos.append(
                    ZoneInfo(zone, f"SDK location {location}", "", "", math.nan, math.nan, "UTC")
                )
            else:
                infos.append(
                    ZoneInfo(
                        zone,
                        f"{known.name} (SDK: {location})",
                        known.country,
                        known.continent,
                        known.lat,
                        known.lon,
                        known.timezone,
                    )
                )
        return infos

    def _resolve_locally(self, location: str) -> ZoneResolution:
        text = location.strip()
        cloud, colon, region = text.partition(":")
        name = region if colon and cloud.strip().lower() in ("azure", "microsoft") else text
        for zone, sdk_location in self.locations.items():
            if sdk_location.lower() == name.strip().lower():
                return ZoneResolution(location, zone, "cloud-region" if colon else "name")
        return super()._resolve_locally(location)

    def _resolve_flow(self, location: str) -> Flow[ZoneResolution] | None:
        try:
            self._resolve_locally(location)
        except UnknownZoneError:
            text = location.strip()
            if not _BARE_NAME.match(text) or parse_location(text) is not None:
                raise
            return self._lookup_flow(location)
        return None

    def _lookup_flow(self, query: str) -> Flow[ZoneResolution]:
        """Ask the SDK where a location it knows lies, and take the nearest served zone."""
        call = self._locations_call()
        (response,) = yield [call]
        known = self._known_locations(response)
        match = next((v for k, v in known.items() if k.lower() == query.strip().lower()), None)
        if match is None:
            suggestions = suggest_zones(query, [*known, *self.locations])
            raise UnknownZoneError(
                query,
                suggestions,
                where=self.name,
                detail="neither a served zone, a mapped SDK location, nor a location the "
                f"SDK at {self.base_url} knows",
            )
        lat, lon = match
        found = resolve_zone(f"{lat},{lon}", self.served_zones(), where=self.name)
        return ZoneResolution(query, found.zone, "provider", found.distance_km)

    # -- flows ----------------------------------------------------------------------------

    def _latest_flow(self, zones: list[str]) -> Flow[IntensitySeries]:
        now = self.clock.now()
        slot = floor_time(now, self.resolution)
        first = slot - max(LATEST_LOOKBACK, self.resolution)
        end = slot + self.resolution
        asks = [(z, first, end) for z in zones]
        responses = yield [self._emissions_call(*ask, "latest") for ask in asks]
        answers = yield from self._read_emissions(asks, responses)
        values, flags, notes = self._grid(answers, first, end, gaps="keep")
        chosen: dict[str, tuple[pd.Timestamp, float, bool]] = {}
        for zone in zones:
            column = values[zone].loc[: pd.Timestamp(slot)].dropna()
            if column.empty:
                raise NoDataError(
                    f"no value for {zone} (SDK location {self.locations[zone]}) between "
                    f"{_iso(first)} and {_iso(end)}",
                    provider=self.name,
                )
            stamp = column.index[-1]
            chosen[zone] = (stamp, float(column.iloc[-1]), bool(flags.at[stamp, zone]))
            if stamp < pd.Timestamp(slot):
                notes.append(
                    f"{zone}: the current interval ({_iso(slot)}) has no value yet; the "
                    f"latest is {_iso(stamp.to_pydatetime())}"
                )
        # Notes about gaps in the look-back window say nothing about the chosen values.
        notes = [n for n in notes if "without data" not in n]
        index = pd.DatetimeIndex(sorted({s for s, _, _ in chosen.values()}))
        frame = pd.DataFrame(np.nan, index=index, columns=zones, dtype=float)
        mask = pd.DataFrame(False, index=index, columns=zones)
        for zone, (stamp, value, estimated) in chosen.items():
            frame.at[stamp, zone] = value
            mask.at[stamp, zone] = estimated
        return self._series(frame, mask, notes + self._provenance())

    def _history_flow(
        self, zones: list[str], start: datetime, end: datetime
    ) -> Flow[IntensitySeries]:
        first, stop = ceil_time(start, self.resolution), ceil_time(end, self.resolution)
        limit = floor_time(self.clock.now(), self.resolution) + self.resolution
        if first >= limit or end > limit:
            raise NoDataError(
                f"history ends with the current interval ({_iso(limit - self.resolution)}); "
                "ask forecast() for later ones",
                provider=self.name,
            )
        if first >= stop:
            empty = pd.DataFrame(index=pd.DatetimeIndex([], tz="UTC"), columns=zones, dtype=float)
            return self._series(empty, None, self._provenance())
        asks: list[tuple[str, datetime, datetime]] = []
        for zone in zones:
            chunk = first
            while chunk < stop:
                asks.append((zone, chunk, min(chunk + MAX_RANGE, stop)))
                chunk += MAX_RANGE
        responses = yield [self._emissions_call(*ask, "history") for ask in asks]
        answers = yield from self._read_emissions(asks, responses)
        values, flags, notes = self._grid(answers, first, stop, gaps=self.gaps)
        return self._series(values[zones], flags[zones], notes + self._provenance())

    def _forecast_flow(
        self, zones: list[str], start: datetime, horizon: timedelta
    ) -> Flow[IntensitySeries]:
        issued = self.clock.now()
        stop = start + horizon
        if self.forecast_mode == "batch":
            # As of the clock's interval (or the start, if earlier), so that every forecast
            # made in one interval shares one cached answer and replays see the forecast
            # that existed then.
            requested = min(start, floor_time(issued, self.resolution))
            body = [{"requestedAt": _iso(requested), "location": self.locations[z]} for z in zones]
            call = Call(
                f"{self.route_prefix}/emissions/forecasts/batch",
                method="POST",
                headers={"Content-Type": "application/json"},
                body=json.dumps(body).encode(),
                cache_ttl=self._ttl(),
                label=f"forecast batch {', '.join(zones)}",
                accept=frozenset({400, 404}),
            )
            (response,) = yield [call]
            answers = yield from self._read_forecasts(zones, response)
        else:
            # The whole current forecast, unbounded, so that every start and horizon in the
            # cache's lifetime share one answer; it is cut to [start, stop) below. It reaches
            # a fixed span past the SDK's "now": reused in a later interval it would end
            # short of that interval's request, so it is kept for this interval only.
            ttl = self._ttl()
            if ttl is not None:
                ttl = min(ttl, floor_time(issued, self.resolution) + self.resolution - issued)
            calls = [
                Call(
                    f"{self.route_prefix}/emissions/forecasts/current",
                    params={"location": self.locations[z]},
                    cache_ttl=ttl,
                    label=f"forecast {z}",
                    accept=frozenset({400, 404}),
                )
                for z in zones
            ]
            responses = yield calls
            answers = {}
            for zone, response in zip(zones, responses, strict=True):
                found = yield from self._read_forecasts([zone], response)
                answers.update(found)
        values, flags, notes = self._grid(answers, start, stop, gaps=self.gaps)
        return self._series(
            values, flags, notes + self._provenance(), is_forecast=True, issued_at=issued
        )

    # -- requests -------------------------------------------------------------------------

    def _emissions_call(self, zone: str, first: datetime, end: datetime, purpose: str) -> Call:
        # `time`/`toTime` pin the window, so `--now` replays the past and one interval's
        # questions share one cached answer. Always one location per request: see the
        # module docstring (attribution).
        return Call(
            f"{self.route_prefix}/emissions/bylocation",
            params={"location": self.locations[zone], "time": _iso(first), "toTime": _iso(end)},
            cache_ttl=self._ttl(),
            label=f"{purpose} {zone}",
            accept=frozenset({400, 404}),
        )

    def _locations_call(self) -> Call:
        return Call(
            f"{self.route_prefix}/locations",
            cache_ttl=self._ttl(LOOKUP_TTL),
            label="SDK locations",
        )

    # -- parsing --------------------------------------------------------------------------

    def _read_emissions(
        self, asks: list[tuple[str, datetime, datetime]], responses: list[httpx.Response]
    ) -> Flow[dict[str, _Answer]]:
        """``EmissionsData[]`` answers, each tagged with the zone it was asked for.

        Each answer is cut to its own window: the SDK's bounds are inclusive, so
        neighbouring history chunks would otherwise both hold the interval between them.
        """
        answers: dict[str, _Answer] = {zone: _Answer() for zone, _, _ in asks}
        for (zone, first, end), response in zip(asks, responses, strict=True):
            yield from self._check_location([zone], response)
            where = self._where(response)
            answer = answers[zone]
            answer.where = answer.where or where
            raws = []
            for i, item in enumerate(self._items(response)):
                here = f"{where}: [{i}]"
                item = self._object(item, here)
                raw = _Raw(
                    timestamp(item.get("time"), where=f"{here}.time", provider=self.name),
                    self._timespan(item.get("duration"), f"{here}.duration"),
                    intensity_value(item.get("rating"), where=f"{here}.rating", provider=self.name),
                )
                self._echo(answer, item)
                if first <= raw.start < end:
                    raws.append(raw)
            # The SDK answers newest first (its quickstart's output): that order is its
            # normal one, not a disorder to repair (and report). Any other order is left
            # for assemble() to sort and note.
            if all(a.start > b.start for a, b in itertools.pairwise(raws)):
                raws.reverse()
            answer.raws += raws
        return answers

    def _read_forecasts(
        self, zones: list[str], response: httpx.Response
    ) -> Flow[dict[str, _Answer]]:
        """``EmissionsForecastDTO[]``: one per zone asked, tagged by position, never by name."""
        yield from self._check_location(zones, response)
        where = self._where(response)
        items = self._items(response)
        if not items:
            raise NoDataError(f"{where} answered with no forecast", provider=self.name)
        if len(items) != len(zones):
            raise ResponseParseError(
                f"{where} answered with {len(items)} forecasts for {len(zones)} "
                f"location{'s' * (len(zones) != 1)} asked",
                provider=self.name,
            )
        answers: dict[str, _Answer] = {}
        for k, (zone, dto) in enumerate(zip(zones, items, strict=True)):
            here = f"{where}: [{k}]"
            dto = self._object(dto, here)
            answer = answers[zone] = _Answer(where=where)
            self._echo(answer, dto)
            data = dto.get("forecastData")
            if data is None:
                data = []
            if not isinstance(data, list):
                raise ResponseParseError(
                    f"{here}.forecastData is {type(data).__name__}, not a list",
                    provider=self.name,
                )
            for i, item in enumerate(data):
                at = f"{here}.forecastData[{i}]"
                item = self._object(item, at)
                minutes = item.get("duration")
                if minutes is not None and (
                    isinstance(minutes, bool) or not isinstance(minutes, int) or minutes <= 0
                ):
                    raise ResponseParseError(
                        f"{at}.duration is {minutes!r}, not a positive number of minutes",
                        provider=self.name,
                    )
                answer.raws.append(
                    _Raw(
                        timestamp(
                            item.get("timestamp"), where=f"{at}.timestamp", provider=self.name
                        ),
                        timedelta(minutes=minutes) if minutes is not None else None,
                        intensity_value(item.get("value"), where=f"{at}.value", provider=self.name),
                    )
                )
                self._echo(answer, item)
        return answers

    def _check_location(self, zones: list[str], response: httpx.Response) -> Flow[None]:
        """Raise for a 400/404 answer: unknown location (with suggestions) or invalid request."""
        if response.status_code not in (400, 404):
            return
        missing_route = self.classify_error(response)
        if missing_route is not None:
            raise missing_route
        where = self._where(response)
        detail = self._redact(self.error_detail(response))
        if "location" not in detail.lower() and "location" not in _error_keys(response):
            error = NoDataError if response.status_code == 404 else ProviderError
            what = "has no data for" if response.status_code == 404 else "rejected as invalid"
            raise error(
                f"{where} -> {response.status_code}: the provider {what} the request"
                f"{': ' + detail if detail else ''}",
                provider=self.name,
                status_code=response.status_code,
            )
        # A batch names several locations: the one the message quotes is the culprit.
        named = [z for z in zones if self.locations[z].lower() in detail.lower()]
        zone = (named or zones)[0]
        location = self.locations[zone]
        # Best effort: the names the SDK knows, for suggestions; a failing lookup gives none.
        lookup = Call(
            f"{self.route_prefix}/locations",
            cache_ttl=self._ttl(LOOKUP_TTL),
            label="SDK locations",
            accept=frozenset(range(400, 600)),
        )
        (answer,) = yield [lookup]
        try:
            known = list(self._known_locations(answer)) if answer.status_code < 400 else []
        except ProviderError:
            known = []
        raise UnknownZoneError(
            zone,
            suggest_zones(location, known),
            where=self.name,
            detail=f"{where} -> {response.status_code}: {detail or 'unknown location'}; the "
            f"SDK does not know location {location!r}: map the zone to a name it knows with "
            f'locations = ["{zone}=<name>"]',
        )

    def _known_locations(self, response: httpx.Response) -> dict[str, tuple[float, float]]:
        """``GET /locations``: name -> (lat, lon); 204 is an empty table."""
        if response.status_code == 204:
            return {}
        payload = self._json(response)
        where = self._where(response)
        if not isinstance(payload, dict):
            raise ResponseParseError(
                f"{where} answered with a {type(payload).__name__}, not an object of locations",
                provider=self.name,
            )
        out: dict[str, tuple[float, float]] = {}
        for name, entry in payload.items():
            entry = self._object(entry, f"{where}: {name}")
            # camelCase as System.Text.Json writes it; PascalCase as the SDK documents it
            # (and as its location files hold it).
            fields = {str(key).lower(): value for key, value in entry.items()}
            lat, lon = _number(fields.get("latitude")), _number(fields.get("longitude"))
            if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
                raise ResponseParseError(
                    f"{where}: {name} has no valid latitude/longitude", provider=self.name
                )
            out[str(name)] = (lat, lon)
        return out

    def _items(self, response: httpx.Response) -> list[Any]:
        """The JSON array of an answer; 204 (the SDK's "no data") is an empty one."""
        if response.status_code == 204:
            return []
        payload = self._json(response)
        if payload is None:
            return []
        if not isinstance(payload, list):
            raise ResponseParseError(
                f"{self._where(response)} answered with a JSON {type(payload).__name__}, "
                "not an array",
                provider=self.name,
            )
        return payload

    def _timespan(self, raw: Any, where: str) -> timedelta | None:
        """A .NET TimeSpan (``"00:05:00"``, ``"1.00:00:00"``); None when absent."""
        if raw is None:
            return None
        match = _TIMESPAN.match(raw.strip()) if isinstance(raw, str) else None
        if match is None:
            raise ResponseParseError(
                f"{where} is {raw!r}, not a duration hh:mm:ss", provider=self.name
            )
        days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
        span = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
        if span <= timedelta(0):
            raise ResponseParseError(
                f"{where} is {raw!r}, not a positive duration", provider=self.name
            )
        return span

    def _echo(self, answer: _Answer, item: dict[str, Any]) -> None:
        name = item.get("location")
        if isinstance(name, str) and name:
            answer.echoed.add(name)

    # -- onto the grid --------------------------------------------------------------------

    def _grid(
        self,
        answers: Mapping[str, _Answer],
        start: datetime,
        end: datetime,
        *,
        gaps: GapPolicy,
    ) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
        """Each zone's intervals on the ``resolution`` grid over ``[start, end)``."""
        columns: list[pd.DataFrame] = []
        masks: list[pd.DataFrame] = []
        notes: list[str] = []
        echoes: list[str] = []
        for zone, answer in answers.items():
            try:
                values, flags = self._zone_grid(zone, answer, start, end, gaps, notes)
            except ResponseParseError as exc:
                # assemble() names the zone; the user also needs the request that said so.
                message = str(exc).removeprefix(f"{self.name}: ")
                raise ResponseParseError(f"{answer.where}: {message}", provider=self.name) from exc
            columns.append(values)
            masks.append(flags)
            requested = self.locations[zone]
            others = sorted(n for n in answer.echoed if n.lower() != requested.lower())
            if others:
                echoes.append(f"{zone} asked as {requested}, named {'/'.join(others)}")
        if echoes:
            notes.append(
                "the SDK named its data source's regions, not the locations asked ("
                + "; ".join(echoes)
                + "); each value is kept for the zone whose location was asked"
            )
        return pd.concat(columns, axis=1), pd.concat(masks, axis=1), notes

    def _zone_grid(
        self,
        zone: str,
        answer: _Answer,
        start: datetime,
        end: datetime,
        gaps: GapPolicy,
        notes: list[str],
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """One zone on the grid: finer intervals averaged, coarser ones spread."""
        step = self.resolution
        native = self._native_step(zone, answer)
        if native < step and step % native == timedelta(0):
            points = [Point(r.start, r.value) for r in answer.raws]
            fine, fine_flags, more = assemble(
                {zone: points},
                start=start,
                end=end,
                resolution=native,
                provider=self.name,
                gaps=gaps,
                max_gap=self.max_gap,
            )
            values, flags, partial = _block_mean(fine, fine_flags, step // native)
            notes += more
            notes.append(
                f"{zone}: {format_duration(native)} intervals averaged into "
                f"{format_duration(step)} ones"
            )
            if partial:
                notes.append(
                    f"{zone}: {partial} interval{'s' * (partial != 1)} averaged from "
                    "incomplete data; flagged estimated"
                )
            return values, flags
        if native >= step and native % step == timedelta(0):
            # A coarser value holds for each finer interval it covers.
            k = native // step
            points = [Point(r.start + i * step, r.value) for r in answer.raws for i in range(k)]
            values, flags, more = assemble(
                {zone: points},
                start=start,
                end=end,
                resolution=step,
                provider=self.name,
                gaps=gaps,
                max_gap=self.max_gap,
            )
            notes += more
            if k > 1:
                notes.append(
                    f"{zone}: each {format_duration(native)} value spread over its "
                    f"{format_duration(step)} intervals"
                )
            return values, flags
        raise ResponseParseError(
            f"{zone}'s intervals last {format_duration(native)}, which does not fit the "
            f"{format_duration(step)} grid; set resolution_minutes to a multiple or divisor of it",
            provider=self.name,
        )

    def _native_step(self, zone: str, answer: _Answer) -> timedelta:
        """The one interval length of a zone's answers (absent: the grid's)."""
        spans = {r.duration for r in answer.raws if r.duration is not None}
        if len(spans) > 1:
            listed = ", ".join(sorted(format_duration(s) for s in spans))
            raise ResponseParseError(
                f"{answer.where}: {zone}'s intervals have different durations ({listed})",
                provider=self.name,
            )
        return spans.pop() if spans else self.resolution

    def _provenance(self) -> list[str]:
        if self.signal_option != "unknown":
            return []
        return [
            "the SDK does not report its data source: labelled 'average' unverified; set "
            "providers.carbon-aware-sdk.signal (marginal for WattTime co2_moer, average for "
            "Electricity Maps)"
        ]


def _error_keys(response: httpx.Response) -> str:
    """The lower-cased keys of a problem body's ``errors`` (validation failures per field)."""
    try:
        payload = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return ""
    errors = payload.get("errors") if isinstance(payload, dict) else None
    return " ".join(str(k).lower() for k in errors) if isinstance(errors, dict) else ""


def _number(raw: Any) -> float | None:
    # The SDK's location files hold strings ("37.3719"); its /locations answer numbers.
    if isinstance(raw, bool):
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _block_mean(
    values: pd.DataFrame, flags: pd.DataFrame, k: int
) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Average each run of ``k`` rows into one (NaN-aware); flag blocks with missing parts.

    Returns:
        ``(values, flags, partial)``: the coarse frame, its flags, and how many coarse
        intervals were averaged from an incomplete block.
    """
    data = values.to_numpy(dtype=float)
    n = len(data) // k
    blocks = data[: n * k].reshape(n, k, -1)
    known = ~np.isnan(blocks)
    counts = known.sum(axis=1)
    sums = np.where(known, blocks, 0.0).sum(axis=1)
    means = np.full(sums.shape, np.nan)
    np.divide(sums, counts, out=means, where=counts > 0)
    partial = (counts > 0) & (counts < k)
    flagged = flags.to_numpy(dtype=bool)[: n * k].reshape(n, k, -1).any(axis=1) | partial
    index = values.index[: n * k : k]
    return (
        pd.DataFrame(means, index=index, columns=values.columns),
        pd.DataFrame(flagged, index=index, columns=values.columns),
        int(partial.sum()),
    )
