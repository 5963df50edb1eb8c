"""A fake of the Electricity Maps API (v3) for httpx.MockTransport, shaped like the docs.

It checks the ``auth-token`` header, serves ``/zones``, ``/carbon-intensity/latest``
(by zone or lat/lon), ``/history`` (the last 24 hours), ``/past-range`` (at most 10
days a request, like the real API) and ``/forecast``, with deterministic values that
depend on ``emissionFactorType``. Knobs let tests break it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx

from lowcarb import ManualClock

HOUR = timedelta(hours=1)
TOKEN = "em-test-key-7Hq2Zp9Lw4"
ZONES: dict[str, dict[str, Any]] = {
    "DE": {"zoneName": "Germany"},
    "FR": {"zoneName": "France"},
    "US-CAL-CISO": {"countryName": "USA", "zoneName": "CAISO"},
    "XX-TEST": {"countryName": "Testland", "zoneName": "Test zone"},
}
#: Points the fake places in a zone (``lat,lon`` as the provider sends them).
LOCATIONS = {("52.52", "13.405"): "DE", ("48.85", "2.35"): "FR"}


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
        access: Routes each zone lists in ``/zones`` (None: no ``access`` field).
        drop: Interval starts left out of every answer.
        estimated_from: Hours at or after this are ``isEstimated`` (default: the last 2).
        tamper: Applied to each JSON payload before it is sent.
    """

    def __init__(self, clock: ManualClock, token: str = TOKEN) -> None:
        self.clock = clock
        self.token = token
        self.requests: list[httpx.Request] = []
        self.script: list[httpx.Response | Exception] = []
        self.access: list[str] | None = ["*"]
        self.drop: set[datetime] = set()
        self.estimated_from: datetime | None = None
        self.tamper: Callable[[Any], Any] | None = None

    @property
    def paths(self) -> list[str]:
        return [r.url.path.removeprefix("/v3") for r in self.requests]

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
        path = request.url.path.removeprefix("/v3")
        q = request.url.params
        basis = q.get("emissionFactorType", "lifecycle")
        zone = q.get("zone", "")
        if path == "/zones":
            payload: Any = {
                key: {**entry, **({"access": self.access} if self.access is not None else {})}
                for key, entry in ZONES.items()
            }
        elif zone and zone not in ZONES:
            return error(400, {"status": "error", "message": f"Zone '{zone}' does not exist."})
        elif path == "/carbon-intensity/latest":
            if not zone:
                zone = LOCATIONS.get((q.get("lat", ""), q.get("lon", "")), "")
                if not zone:
                    return error(404, {"status": "error", "message": "No zone at this location"})
            payload = {**self._item(zone, self.now_hour(), basis), "temporalGranularity": "hourly"}
        elif path == "/carbon-intensity/history":
            first = self.now_hour() - 23 * HOUR
            payload = {"zone": zone, "history": self._items(zone, first, first + 24 * HOUR, basis)}
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
            first = self.now_hour()
            hours = int(q.get("horizonHours", "24"))
            items = [
                {"carbonIntensity": value(zone, t, basis), "datetime": stamp(t)}
                for t in self._hours(first, first + hours * HOUR)
            ]
            payload = {"zone": zone, "forecast": items, "updatedAt": stamp(first)}
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
            "isEstimated": estimated,
            "estimationMethod": "TIME_SLICER_AVERAGE" if estimated else None,
        }


def error(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    """An error answer with a JSON body (the API's shapes: ``error`` or ``status/message``)."""
    return httpx.Response(
        status,
        content=json.dumps(body),
        headers={"content-type": "application/json", **(headers or {})},
    )
