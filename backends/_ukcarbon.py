"""``ukcarbon`` provider: the GB Carbon Intensity API of NESO (National Energy System Operator).

Upstream: https://carbon-intensity.github.io/api-definitions/ (base URL
``https://api.carbonintensity.org.uk``). Signal: **average**, generation-based, in
gCO2/kWh, from NESO's operational emission factors (combustion only, imports included),
so lowcarb labels it basis ``direct``; it is not comparable with life-cycle numbers. No
key, no documented rate limit, licence CC BY 4.0. Half-hourly; forecasts reach 48 hours.

Zones. ``GB`` is the national series (Great Britain: England, Scotland and Wales; not
Northern Ireland). The API's regions become ``GB-R<id>`` with the API's region id, 1-17.
Their names are the API's own: ``/regional`` lists them (asked once, when a name is
needed: ``zones()``, resolving a name; the async face asks before its first call), and a
region's short name (``London``) or DNO name (``UKPN London``) resolves to its zone. If
the list cannot be read, lowcarb's copy of it stands in (:data:`REGIONS`, the names of
captured answers of 2019-2025: 1 North Scotland, 2 South Scotland, 3 North West England,
4 North East England, 5 Yorkshire, 6 North Wales and Merseyside, 7 South Wales, 8 West
Midlands, 9 East Midlands, 10 East England, 11 South West England, 12 South England,
13 London, 14 South East England, 15 England, 16 Scotland, 17 Wales). ``postcode:RG10``
asks the API which region an outward postcode lies in.

Endpoints used (``{from}``/``{to}`` are ``YYYY-MM-DDThh:mmZ``, on the half hour)::

    national   /intensity/{from}/{to}        /intensity/{from}/fw48h
    1 region   /regional/intensity/{from}/{to}/regionid/{id}   .../{from}/fw48h/regionid/{id}
    2+ regions /regional/intensity/{from}/{to}                 /regional/intensity/{from}/fw48h
    lookup     /regional/postcode/{outward postcode}
    names      /regional                       (the current half-hour of every region)

Several regions cost one request (the all-regions endpoint), not one each. A window
answers the half-hours that *end* in ``[from, to]``, so its first one ends at ``{from}``;
each answer is cut to the half-hours that start in its window.

What each call returns:

* ``latest``: the current half-hour, from a window that also covers the hour before it;
  if the current half-hour is not published yet, the newest one that is (with a note).
  Dated, rather than ``/intensity``, so that ``--now`` replays the past and so that the
  answer is the *current* half-hour (``/intensity`` gives the last complete one,
  carbon-intensity/api-definitions#6).
* ``history``: ranges longer than the API's 14 days are split; up to the current
  half-hour (later ones raise ``NoDataError``: ask ``forecast``).
* ``forecast``: always asked from the current half-hour (or from ``start`` when it lies
  in the past), so every forecast made in one half-hour hits the same cached answer.

Values. Nationally, ``actual`` where published, else ``forecast`` flagged estimated (in
``latest`` and ``history``); forecasts use ``forecast``. Regional values are NESO's
modelled estimates (the API publishes no measured regional value), so they are flagged
estimated in ``latest`` and ``history``. ``data`` is accepted as a list or as a single
object (real responses use both). Malformed bodies raise ``ResponseParseError`` naming
the request; gaps, duplicates and disorder follow :func:`~lowcarb.backends.toolkit.assemble`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import httpx
import pandas as pd

from lowcarb.backends.toolkit import (
    ZONE_CATALOG,
    Call,
    Capabilities,
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
    InvalidInputError,
    NoDataError,
    ProviderError,
    ResponseParseError,
)

__all__ = ["UKCarbonIntensityProvider"]

log = logging.getLogger("lowcarb.backends.ukcarbon")

BASE_URL = "https://api.carbonintensity.org.uk"
HALF_HOUR = timedelta(minutes=30)
#: How far ahead the API forecasts (the ``fw48h`` endpoints).
FORECAST_REACH = timedelta(hours=48)
#: The longest ``{from}/{to}`` range the API answers.
MAX_RANGE = timedelta(days=14)
#: ``latest`` also asks this far back, to fall back on when the current slot is missing.
LATEST_LOOKBACK = timedelta(hours=1)
#: Postcode -> region answers are kept this long (regions do not move).
LOOKUP_TTL = timedelta(days=1)

NATIONAL = "GB"

#: Region id -> (name, representative point: lat, lon). The names are the API's, as
#: captured ``/regional`` answers of 2019, 2020 and 2025 spell them; they stand in when the
#: API's own list cannot be read. Points are approximate load centres, for ``lowcarb
#: zones`` and maps, not borders.
REGIONS: dict[int, tuple[str, float, float]] = {
    1: ("North Scotland", 57.48, -4.22),
    2: ("South Scotland", 55.86, -4.25),
    3: ("North West England", 53.48, -2.24),
    4: ("North East England", 54.97, -1.61),
    5: ("Yorkshire", 53.80, -1.55),
    6: ("North Wales and Merseyside", 53.41, -2.98),
    7: ("South Wales", 51.48, -3.18),
    8: ("West Midlands", 52.49, -1.89),
    9: ("East Midlands", 52.95, -1.15),
    10: ("East England", 52.63, 1.30),
    11: ("South West England", 50.72, -3.53),
    12: ("South England", 51.45, -0.97),
    13: ("London", 51.51, -0.13),
    14: ("South East England", 51.28, 1.08),
    15: ("England", 52.50, -1.50),
    16: ("Scotland", 56.40, -3.90),
    17: ("Wales", 52.30, -3.70),
}

_ZONE_ID = re.compile(r"^GB(-R\d+)?$", re.IGNORECASE)
_OUTWARD = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]?$")
_FULL_POSTCODE = re.compile(r"^([A-Z]{1,2}[0-9][A-Z0-9]?)\s*([0-9][A-Z]{2})$")


def region_zone(region_id: int) -> str:
    """The lowcarb zone id of API region ``region_id`` (``13`` -> ``GB-R13``)."""
    return f"{NATIONAL}-R{region_id}"


_ZONE_REGION = {region_zone(r): r for r in REGIONS}


def _stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%MZ")


def _name_key(text: str) -> str:
    """A region name as compared: case, spacing and ``&`` for ``and`` do not matter."""
    return " ".join(text.replace("&", " and ").lower().split())


def outward_postcode(text: str) -> str:
    """The outward part of a UK postcode (``rg10 9ab`` -> ``RG10``).

    Raises:
        InvalidInputError: If ``text`` is not a UK postcode or outward code.
    """
    cleaned = " ".join(text.upper().split())
    full = _FULL_POSTCODE.match(cleaned)
    if full:
        return full.group(1)
    if _OUTWARD.match(cleaned):
        return cleaned
    raise InvalidInputError(
        f"{text!r} is not a UK postcode; give the outward part (e.g. postcode:RG10) or a "
        "full postcode (postcode:RG10 9AB)"
    )


@dataclass(frozen=True)
class _Ask:
    """A call plus what its answer holds, so the flow knows how to read it."""

    call: Call
    kind: Literal["national", "region", "regions"]
    regions: tuple[int, ...]
    first: datetime
    end: datetime


class UKCarbonIntensityProvider(HttpProvider):
    """GB carbon intensity, national and for 17 regions, from NESO's Carbon Intensity API.

    Upstream docs: https://carbon-intensity.github.io/api-definitions/. Average signal,
    generation-based, operational (direct) emission factors; half-hourly; forecasts 48 h
    ahead; history as far back as the API keeps it. No credentials; no documented rate
    limit (be polite: the response cache keeps repeated questions off the network).
    Data licence CC BY 4.0: credit "Carbon Intensity API, NESO" when you publish it.

    Args:
        **options: See :class:`HttpOptions` (``base_url``, ``timeout_s``,
            ``max_attempts``, ``max_retry_time_s``, ``cache_ttl_s``, ``max_concurrency``,
            ``gaps``, ``max_gap_hours``) and :class:`HttpProvider` (``transport``,
            ``client``, ``cache``, ``rng``, ``clock``).

    Example:
        >>> p = UKCarbonIntensityProvider()
        >>> p.served_zones()[:3]
        ['GB', 'GB-R1', 'GB-R2']
        >>> p.resolve("London").zone
        'GB-R13'
    """

    name = "ukcarbon"
    default_base_url = BASE_URL
    # /regional only names the regions: no zone check waits for it.
    zones_flow_checks_zones = False

    @dataclass(frozen=True)
    class Options(HttpOptions):
        """Config keys of the ``ukcarbon`` provider (``[providers.ukcarbon]``)."""

        base_url: str = BASE_URL

    @property
    def capabilities(self) -> Capabilities:
        """Average signal, direct basis, 30-minute resolution, forecasts 48 h ahead."""
        return Capabilities(
            signal="average",
            basis="direct",
            resolution=HALF_HOUR,
            forecast_horizon=FORECAST_REACH,
            history=True,
        )

    def served_zones(self) -> list[str]:
        """``GB`` and ``GB-R1`` .. ``GB-R17``."""
        return [NATIONAL, *(region_zone(r) for r in REGIONS)]

    def zones(self) -> list[ZoneInfo]:
        """The national zone and the 17 regions, named as the API names them."""
        names = self.region_names()
        infos = [ZONE_CATALOG[NATIONAL]]
        for region_id, (_, lat, lon) in REGIONS.items():
            infos.append(
                ZoneInfo(
                    region_zone(region_id),
                    names[region_id][0],
                    "Great Britain",
                    "Europe",
                    lat,
                    lon,
                    "Europe/London",
                )
            )
        return infos

    def region_names(self) -> dict[int, tuple[str, str]]:
        """Region id -> (short name, DNO name): the API's list, else lowcarb's copy.

        The API's list is ``/regional``, asked once (see the module docstring); if it
        cannot be read, :data:`REGIONS` stands in (without DNO names) and a warning says so.
        """
        try:
            listed: dict[int, tuple[str, str]] = self._fetched_zones()
        except ProviderError as exc:
            log.warning("%s; the region names are lowcarb's own", exc)
            listed = {}
        return {
            region_id: listed.get(region_id, (name, ""))
            for region_id, (name, _, _) in REGIONS.items()
        }

    def _zones_flow(self) -> Flow[dict[int, tuple[str, str]]]:
        """``/regional``: the API's own names of its regions (ids outside 1-17 ignored)."""
        call = Call("/regional", cache_ttl=self._ttl(LOOKUP_TTL), label="region names")
        (response,) = yield [call]
        where = self._where(response)
        names: dict[int, tuple[str, str]] = {}
        for i, item in enumerate(self._data(self._payload(response, call), where)[:1]):
            regions = self._list(
                self._object(item, f"{where}: data[{i}]").get("regions"),
                f"{where}: data[{i}].regions",
            )
            for k, region in enumerate(regions):
                region = self._object(region, f"{where}: data[{i}].regions[{k}]")
                region_id, short = region.get("regionid"), region.get("shortname")
                dno = region.get("dnoregion")
                # 18 is GB, served as the national zone.
                if region_id in REGIONS and isinstance(short, str) and short.strip():
                    names[region_id] = (short.strip(), dno.strip() if isinstance(dno, str) else "")
        if not names:
            raise ResponseParseError(f"{where} names none of regions 1-17", provider=self.name)
        return names

    # -- resolving ------------------------------------------------------------------------

    def _resolve_locally(self, location: str) -> ZoneResolution:
        text = location.strip()
        # Ids (served or not), coordinates and cloud regions need no names, nor a request.
        if _ZONE_ID.match(text) or parse_location(text) or ":" in text:
            return super()._resolve_locally(location)
        key = _name_key(text)
        for region_id, (short, dno) in self.region_names().items():
            builtin = REGIONS[region_id][0]
            if key in {_name_key(short), _name_key(builtin)} or (dno and key == _name_key(dno)):
                return ZoneResolution(location, region_zone(region_id), "name")
        return super()._resolve_locally(location)

    def _resolve_flow(self, location: str) -> Flow[ZoneResolution] | None:
        prefix, sep, rest = location.strip().partition(":")
        if not sep or prefix.strip().lower() != "postcode":
            return None
        return self._postcode_flow(location, outward_postcode(rest))

    def _postcode_flow(self, query: str, outward: str) -> Flow[ZoneResolution]:
        call = Call(
            f"/regional/postcode/{outward}",
            cache_ttl=self._ttl(LOOKUP_TTL),
            label=f"region of postcode {outward}",
            accept=frozenset({400, 404}),
        )
        (response,) = yield [call]
        if response.status_code in call.accept:
            # The API answers an unknown postcode with 400 (its error body says why).
            raise self._lookup_refused(query, response, "unknown postcode")
        where = self._where(response)
        items = self._data(self._payload(response, call), where)
        if not items:
            raise NoDataError(f"{where} names no region for {outward}", provider=self.name)
        self._object(items[0], f"{where}: data[0]")
        region_id = items[0].get("regionid")
        if isinstance(region_id, bool) or region_id not in REGIONS:
            raise ResponseParseError(
                f"{where}: data[0].regionid is {region_id!r}, not a region id 1-17",
                provider=self.name,
            )
        return ZoneResolution(query, region_zone(region_id), "provider")

    # -- flows ----------------------------------------------------------------------------

    def _latest_flow(self, zones: list[str]) -> Flow[IntensitySeries]:
        now_slot = floor_time(self.clock.now(), HALF_HOUR)
        first, end = now_slot - LATEST_LOOKBACK, now_slot + HALF_HOUR
        asks = self._asks(zones, first, end, _stamp(end), "latest")
        responses = yield [a.call for a in asks]
        points = self._collect(zones, asks, responses, measured=True)
        chosen: dict[str, Point] = {}
        notes: list[str] = []
        for zone in zones:
            usable = [p for p in points[zone] if p.value is not None and p.start <= now_slot]
            if not usable:
                raise NoDataError(
                    f"no published value for {zone} between {_stamp(first)} and {_stamp(end)}",
                    provider=self.name,
                )
            newest = max(usable, key=lambda p: p.start)
            same = [p for p in usable if p.start == newest.start]
            chosen[zone] = Point(
                newest.start,
                sum(p.value or 0.0 for p in same) / len(same),
                any(p.estimated for p in same),
            )
            if newest.start < now_slot:
                notes.append(
                    f"{zone}: the current half-hour ({_stamp(now_slot)}) is not published "
                    f"yet; the latest is {_stamp(newest.start)}"
                )
        index = pd.DatetimeIndex(sorted({p.start for p in chosen.values()}), tz="UTC")
        values = pd.DataFrame(index=index, columns=zones, dtype=float)
        flags = pd.DataFrame(False, index=index, columns=zones)
        for zone, point in chosen.items():
            values.loc[pd.Timestamp(point.start), zone] = point.value
            flags.loc[pd.Timestamp(point.start), zone] = point.estimated
        return self._series(values, flags, notes + self._provenance(zones, flags))

    def _history_flow(
        self, zones: list[str], start: datetime, end: datetime
    ) -> Flow[IntensitySeries]:
        first, stop = ceil_time(start, HALF_HOUR), ceil_time(end, HALF_HOUR)
        limit = floor_time(self.clock.now(), HALF_HOUR) + HALF_HOUR
        if first >= limit or end > limit:
            raise NoDataError(
                f"history ends with the current half-hour ({_stamp(limit - HALF_HOUR)}); "
                "ask forecast() for later ones",
                provider=self.name,
            )
        if first >= stop:
            empty = pd.DataFrame(index=pd.DatetimeIndex([], tz="UTC"), columns=zones, dtype=float)
            return self._series(empty, None, [])
        asks: list[_Ask] = []
        chunk = first
        while chunk < stop:
            chunk_end = min(chunk + MAX_RANGE, stop)
            asks += self._asks(zones, chunk, chunk_end, _stamp(chunk_end), "history")
            chunk = chunk_end
        responses = yield [a.call for a in asks]
        points = self._collect(zones, asks, responses, measured=True)
        values, flags, notes = assemble(
            points,
            start=first,
            end=stop,
            resolution=HALF_HOUR,
            provider=self.name,
            gaps=self.gaps,
            max_gap=self.max_gap,
        )
        return self._series(values, flags, notes + self._provenance(zones, flags))

    def _forecast_flow(
        self, zones: list[str], start: datetime, horizon: timedelta
    ) -> Flow[IntensitySeries]:
        issued = self.clock.now()
        stop = start + horizon
        # Ask from the current half-hour whatever the start, so every forecast made in
        # this half-hour shares one cached answer; only a start in the past asks earlier.
        window = min(start, floor_time(issued, HALF_HOUR))
        asks: list[_Ask] = []
        while window < stop:
            asks += self._asks(zones, window, window + FORECAST_REACH, "fw48h", "forecast")
            window += FORECAST_REACH
        responses = yield [a.call for a in asks]
        points = self._collect(zones, asks, responses, measured=False)
        values, flags, notes = assemble(
            points,
            start=start,
            end=stop,
            resolution=HALF_HOUR,
            provider=self.name,
            gaps=self.gaps,
            max_gap=self.max_gap,
        )
        return self._series(values, flags, notes, is_forecast=True, issued_at=issued)

    # -- requests -------------------------------------------------------------------------

    def _asks(
        self, zones: list[str], first: datetime, end: datetime, to: str, purpose: str
    ) -> list[_Ask]:
        """The calls that cover ``zones`` over ``[first, end)``; ``to`` is a stamp or fw48h."""
        ttl = self._ttl()
        span = f"{_stamp(first)}/{to}"
        asks: list[_Ask] = []
        if NATIONAL in zones:
            call = Call(f"/intensity/{span}", cache_ttl=ttl, label=f"{purpose} {NATIONAL}")
            asks.append(_Ask(call, "national", (), first, end))
        regions = tuple(_ZONE_REGION[z] for z in zones if z in _ZONE_REGION)
        if len(regions) == 1:
            path = f"/regional/intensity/{span}/regionid/{regions[0]}"
            call = Call(path, cache_ttl=ttl, label=f"{purpose} {region_zone(regions[0])}")
            asks.append(_Ask(call, "region", regions, first, end))
        elif regions:
            call = Call(f"/regional/intensity/{span}", cache_ttl=ttl, label=f"{purpose} regions")
            asks.append(_Ask(call, "regions", regions, first, end))
        return asks

    # -- parsing --------------------------------------------------------------------------

    def _collect(
        self,
        zones: list[str],
        asks: list[_Ask],
        responses: list[httpx.Response],
        *,
        measured: bool,
    ) -> dict[str, list[Point]]:
        """Every zone's points from every answer, each answer cut to its own window."""
        points: dict[str, list[Point]] = {zone: [] for zone in zones}
        for ask, response in zip(asks, responses, strict=True):
            for zone, found in self._parse(ask, response, measured).items():
                points[zone] += [p for p in found if ask.first <= p.start < ask.end]
        return points

    def _payload(self, response: httpx.Response, call: Call) -> Any:
        payload = self._json(response, call.label)
        if isinstance(payload, dict) and "error" in payload and "data" not in payload:
            raise ProviderError(
                f"{self._where(response)} answered with an error: "
                f"{self.error_detail(response) or payload['error']!r}",
                provider=self.name,
                status_code=response.status_code,
            )
        return payload

    def _data(self, payload: Any, where: str) -> list[Any]:
        """``payload["data"]`` as a list: the API sends a list or a single object."""
        if not isinstance(payload, dict) or "data" not in payload:
            raise ResponseParseError(
                f"{where} answered with JSON that has no 'data' field", provider=self.name
            )
        data = payload["data"]
        if isinstance(data, dict):
            return [data]
        if isinstance(data, list):
            return data
        if data is None:
            return []
        raise ResponseParseError(
            f"{where}: 'data' is a {type(data).__name__}, not a list or an object",
            provider=self.name,
        )

    def _parse(self, ask: _Ask, response: httpx.Response, measured: bool) -> dict[str, list[Point]]:
        where = self._where(response)
        items = self._data(self._payload(response, ask.call), where)
        if ask.kind == "national":
            return {NATIONAL: self._periods(items, f"{where}: data", measured)}
        if ask.kind == "region":
            return self._one_region(items, ask.regions[0], where, measured)
        return self._all_regions(items, ask.regions, where, measured)

    def _periods(self, items: list[Any], where: str, measured: bool) -> list[Point]:
        """``[{"from", "to", "intensity"}, ...]``: the national shape, and one region's."""
        return [self._point(item, f"{where}[{i}]", measured) for i, item in enumerate(items)]

    def _one_region(
        self, items: list[Any], region_id: int, where: str, measured: bool
    ) -> dict[str, list[Point]]:
        """``[{"regionid", ..., "data": [periods]}]`` (or ``data`` as an object)."""
        points: list[Point] = []
        for i, item in enumerate(items):
            here = f"{where}: data[{i}]"
            found = self._object(item, here).get("regionid")
            if found != region_id:
                raise ResponseParseError(
                    f"{here}.regionid is {found!r}, but region {region_id} was asked for",
                    provider=self.name,
                )
            inner = item.get("data")
            periods = [inner] if isinstance(inner, dict) else self._list(inner, f"{here}.data")
            points += self._periods(periods, f"{here}.data", measured)
        return {region_zone(region_id): points}

    def _all_regions(
        self, items: list[Any], regions: tuple[int, ...], where: str, measured: bool
    ) -> dict[str, list[Point]]:
        """``[{"from", "to", "regions": [{"regionid", "intensity"}, ...]}]``; other ids ignored."""
        out: dict[str, list[Point]] = {region_zone(r): [] for r in regions}
        for i, item in enumerate(items):
            here = f"{where}: data[{i}]"
            start = self._period(item, here)
            for k, region in enumerate(self._list(item.get("regions"), f"{here}.regions")):
                region_id = self._object(region, f"{here}.regions[{k}]").get("regionid")
                if region_id in regions:
                    value, estimated = self._value(region, f"{here}.regions[{k}]", measured)
                    out[region_zone(region_id)].append(Point(start, value, estimated))
        return out

    def _point(self, item: Any, where: str, measured: bool) -> Point:
        start = self._period(item, where)
        value, estimated = self._value(item, where, measured)
        return Point(start, value, estimated)

    def _period(self, item: Any, where: str) -> datetime:
        self._object(item, where)
        start = timestamp(item.get("from"), where=f"{where}.from", provider=self.name)
        end = timestamp(item.get("to"), where=f"{where}.to", provider=self.name)
        if end - start != HALF_HOUR:
            raise ResponseParseError(
                f"{where} covers {_stamp(start)} .. {_stamp(end)}, not one half-hour",
                provider=self.name,
            )
        if floor_time(start, HALF_HOUR) != start:
            raise ResponseParseError(
                f"{where}.from is {item.get('from')!r}, not on the half hour", provider=self.name
            )
        return start

    def _value(self, item: dict[str, Any], where: str, measured: bool) -> tuple[float | None, bool]:
        intensity = self._object(item.get("intensity"), f"{where}.intensity")
        forecast = intensity_value(
            intensity.get("forecast"), where=f"{where}.intensity.forecast", provider=self.name
        )
        if not measured:
            return forecast, False
        actual = intensity_value(
            intensity.get("actual"), where=f"{where}.intensity.actual", provider=self.name
        )
        if actual is not None:
            return actual, False
        return forecast, True

    def _provenance(self, zones: Iterable[str], flags: pd.DataFrame) -> list[str]:
        notes = []
        if any(z in _ZONE_REGION for z in zones):
            notes.append(
                "regional values are NESO's modelled estimates (the API publishes no "
                "measured regional value); flagged estimated"
            )
        if NATIONAL in flags.columns and bool(flags[NATIONAL].any()):
            count = int(flags[NATIONAL].sum())
            notes.append(
                f"{NATIONAL}: {count} half-hour{'s' * (count != 1)} without a published "
                "actual value; the forecast is used and flagged estimated"
            )
        return notes
