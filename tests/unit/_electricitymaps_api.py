"""A fake of the Electricity Maps API (v3 and v4) for httpx.MockTransport, shaped like 2026 answers.

It checks the ``auth-token`` header, serves ``/zones``, ``/carbon-intensity/latest``
(by zone or lat/lon), ``/history`` (the current hour and the 23 before it), ``/past-range``
(at most 10 days a request, like the real API) and ``/forecast``, with deterministic
values that depend on ``emissionFactorType``. Knobs let tests break it.

Shaped after what keys met in 2026 (see docs/providers/electricitymaps.md, "Free tier"):

* ``/zones`` lists about 350 zones, each with ``zoneKey``, ``countryCode``, ``tier``,
  ``isCommerciallyAvailable`` ... and an **explicit** ``access`` list of routes: a free key
  had 79 routes, identical for every zone, with ``forecast`` but no ``past``/``past-range``
  (a project's live check of 2026-08-22 with a free key). Keys beyond lowcarb's zone
  catalog are placeholders (``ZZ-P001`` ...), standing in for the zones lowcarb does not
  describe; their number is what matters.
* A route outside the key's plan answers 401 with ``error`` and ``message`` (same check).
* ``/forecast`` under ``/v3`` answers from the **next** hour, 48 rows (a v3 answer captured
  in 2023: asked at 19:52, rows 20:00 .. +47 h); under ``/v4`` from the current hour,
  ``horizonHours + 1`` rows (73 for 72, 25 for 24: the same 2026 check). Items carry only
  ``carbonIntensity`` and ``datetime``; the answer a top-level ``temporalGranularity``.
* Items of latest/history/past-range carry ``flowTraced`` and ``temporalGranularity``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx

from lowcarb import ManualClock
from lowcarb.backends.toolkit import ZONE_CATALOG

HOUR = timedelta(hours=1)
TOKEN = "em-test-key-7Hq2Zp9Lw4"


def _routes(temporalities: tuple[str, ...]) -> list[str]:
    """The ``access`` routes of a plan: each signal with the given temporalities."""
    signals = [
        "carbon-intensity",
        "carbon-intensity-fossil-only",
        "renewable-energy",
        "carbon-free-energy",
        "electricity-mix",
        "electricity-flows",
        "power-breakdown",
        "total-load",
        "total-reported-load",
        "net-load",
        *(
            f"electricity-source-{s}"
            for s in (
                "solar", "wind", "hydro", "nuclear", "gas", "coal", "oil", "biomass",
                "geothermal", "unknown", "battery", "hydro-discharge", "battery-discharge",
            )
        ),
    ]  # fmt: skip
    routes = [f"{s}/{t}" for s in signals for t in temporalities]
    routes += ["price-day-ahead/latest", "price-day-ahead/history", "price-day-ahead/combined"]
    routes += ["price-day-ahead/actual", "price-day-ahead/forecast"]
    routes += ["locational-marginal-price-day-ahead/latest", "carbon-intensity-level/latest"]
    routes += ["carbon-intensity-level/history", "renewable-percentage-level/latest"]
    routes += ["carbon-free-percentage-level/latest"]
    return routes


#: A 2026 free key's routes: 79, the same for every zone; forecasts, no past-range.
FREE_2026 = _routes(("latest", "history", "forecast"))
assert len(FREE_2026) == 79
#: A paid plan's routes: the free ones plus ``past`` and ``past-range``.
PAID = _routes(("latest", "history", "forecast", "past", "past-range"))
#: A free key of 2025 and before: latest and history only (one zone).
FREE_2025 = ["carbon-intensity/latest", "carbon-intensity/history"]

#: The zones tests name, with the API's names (the rest of the table is filler).
NAMED: dict[str, dict[str, Any]] = {
    "DE": {"zoneName": "Germany", "countryName": "Germany", "countryCode": "DE"},
    "FR": {"zoneName": "France", "countryName": "France", "countryCode": "FR"},
    "US-CAL-CISO": {
        "zoneName": "CAISO",
        "countryName": "USA",
        "countryCode": "US",
        "zoneParentKey": "US",
    },
    "XX-TEST": {"zoneName": "Test zone", "countryName": "Testland", "countryCode": "XX"},
}
#: Every zone key ``/zones`` lists: 350, sorted as the API sorts them.
ZONE_KEYS = sorted(
    {*NAMED, *ZONE_CATALOG}
    | {f"ZZ-P{n:03d}" for n in range(1, 1 + 350 - len({*NAMED, *ZONE_CATALOG}))}
)
assert len(ZONE_KEYS) == 350
#: Points the fake places in a zone (``lat,lon`` as the provider sends them).
LOCATIONS = {("52.52", "13.405"): "DE", ("48.85", "2.35"): "FR"}
#: The 401 of a route outside the key's plan (``requestType`` and zone filled in).
REFUSED = {
    "error": "Request unauthorized for zoneKey={zone},requestType={kind},"
    "dataType=carbon-intensity.",
    "message": "You do not have access to this specific endpoint for this specific zone.",
}


def zone_entry(key: str) -> dict[str, Any]:
    """The descriptive fields of one ``/zones`` entry (``access`` is added per key)."""
    named = NAMED.get(key)
    if named is None:
        info = ZONE_CATALOG.get(key)
        name = info.name if info else f"Placeholder zone {key[-3:]}"
        named = {"zoneName": name, "countryName": info.country if info else "Placeholdia"}
        named["countryCode"] = key[:2]
    return {
        "zoneKey": key,
        **named,
        "subZoneKeys": [],
        "isCommerciallyAvailable": not key.startswith("ZZ-"),
        "tier": "TIER_A" if key in NAMED or key in ZONE_CATALOG else "TIER_C",
    }


def stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def value(zone: str, start: datetime, basis: str = "lifecycle") -> float:
    """The fake's intensity: a daily wave per zone, direct 80% of lifecycle."""
    base = {"DE": 380, "FR": 60, "US-CAL-CISO": 250}.get(zone, 500)
    wave = base + 0.3 * base * math.sin(2 * math.pi * (start.hour - 6) / 24) + start.day % 5
    return round(wave * (0.8 if basis == "direct" else 1.0))


class FakeElectricityMapsAPI:
    """``handler(request) -> response`` for ``httpx.MockTransport``.

    Attributes:
        requests: Every request received.
        script: Responses (or exceptions) returned before normal service, in order.
        zones: The zone keys ``/zones`` lists (default: the 350 of :data:`ZONE_KEYS`).
        access: Routes each zone lists in ``/zones`` (None: no ``access`` field); a route
            it does not list answers 401 like the API (default: :data:`PAID`).
        drop: Interval starts left out of every answer.
        estimated_from: Hours at or after this are ``isEstimated`` (default: the last 2).
        tamper: Applied to each JSON payload before it is sent.
    """

    def __init__(self, clock: ManualClock, token: str = TOKEN) -> None:
        self.clock = clock
        self.token = token
        self.requests: list[httpx.Request] = []
        self.script: list[httpx.Response | Exception] = []
        self.zones: list[str] = list(ZONE_KEYS)
        self.access: list[str] | None = list(PAID)
        self.drop: set[datetime] = set()
        self.estimated_from: datetime | None = None
        self.tamper: Callable[[Any], Any] | None = None

    @property
    def paths(self) -> list[str]:
        return [r.url.path.removeprefix("/v3").removeprefix("/v4") for r in self.requests]

    def now_hour(self) -> datetime:
        return self.clock.now().replace(minute=0, second=0, microsecond=0)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        assert request.extensions.get("timeout"), "every request carries a timeout"
        if self.script:
            item = self.script.pop(0)
            if isinstance(item, Exception):
                raise item
            return item
        if request.headers.get("auth-token") != self.token:
            return error(401, {"error": "Invalid auth-token"})
        version, _, path = request.url.path.lstrip("/").partition("/")
        path = "/" + path
        q = request.url.params
        basis = q.get("emissionFactorType", "lifecycle")
        zone = q.get("zone", "")
        route = path.removeprefix("/")
        if path == "/zones":
            payload: Any = {
                key: {
                    **zone_entry(key),
                    **({"access": self.access} if self.access is not None else {}),
                }
                for key in self.zones
            }
        elif zone and zone not in self.zones:
            return error(400, {"status": "error", "message": f"Zone '{zone}' does not exist."})
        elif self.access is not None and route not in self.access and "*" not in self.access:
            kind = route.rpartition("/")[2]
            body = {k: v.format(zone=zone or "?", kind=kind) for k, v in REFUSED.items()}
            return error(401, body)
        elif path == "/carbon-intensity/latest":
            if not zone:
                zone = LOCATIONS.get((q.get("lat", ""), q.get("lon", "")), "")
                if not zone:
                    return error(404, {"status": "error", "message": "No zone at this location"})
            payload = self._item(zone, self.now_hour(), basis)
        elif path == "/carbon-intensity/history":
            first = self.now_hour() - 23 * HOUR
            payload = {
                "zone": zone,
                "history": self._items(zone, first, first + 24 * HOUR, basis),
                "temporalGranularity": "hourly",
            }
        elif path == "/carbon-intensity/past-range":
            start = datetime.fromisoformat(q["start"])
            end = datetime.fromisoformat(q["end"])
            if end - start > timedelta(days=10):
                return error(400, {"status": "error", "message": "Range exceeds 10 days"})
            payload = {
                "zone": zone,
                "data": self._items(zone, start, end, basis),
                "temporalGranularity": "hourly",
            }
        elif path == "/carbon-intensity/forecast":
            hours = int(q.get("horizonHours", "24"))
            if version == "v4":
                first, rows = self.now_hour(), hours + 1
            else:
                first, rows = self.now_hour() + HOUR, max(hours, 48)
            items = [
                {"carbonIntensity": value(zone, t, basis), "datetime": stamp(t)}
                for t in self._hours(first, first + rows * HOUR)
            ]
            payload = {
                "zone": zone,
                "forecast": items,
                "updatedAt": stamp(self.now_hour() + 5 * timedelta(minutes=1)),
                "temporalGranularity": "hourly",
            }
        else:
            return error(404, {"status": "error", "message": "Not found"})
        if self.tamper:
            payload = self.tamper(payload)
        return httpx.Response(200, json=payload)

    def _hours(self, start: datetime, end: datetime) -> list[datetime]:
        out, t = [], start
        while t < end:
            if t not in self.drop:
                out.append(t)
            t += HOUR
        return out

    def _items(self, zone: str, start: datetime, end: datetime, basis: str) -> list[dict]:
        return [self._item(zone, t, basis) for t in self._hours(start, end)]

    def _item(self, zone: str, start: datetime, basis: str) -> dict[str, Any]:
        recent = self.estimated_from or self.now_hour() - HOUR
        estimated = start >= recent
        return {
            "zone": zone,
            "carbonIntensity": value(zone, start, basis),
            "datetime": stamp(start),
            "updatedAt": stamp(start + HOUR),
            "createdAt": stamp(start - 72 * HOUR),
            "emissionFactorType": basis,
            "flowTraced": True,
            "isEstimated": estimated,
            "estimationMethod": "FORECASTS_HIERARCHY" if estimated else None,
            "temporalGranularity": "hourly",
        }


def error(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    """An error answer with a JSON body (the API's shapes: ``error`` or ``status/message``)."""
    return httpx.Response(
        status,
        content=json.dumps(body),
        headers={"content-type": "application/json", **(headers or {})},
    )
