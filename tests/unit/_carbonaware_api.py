"""A fake Carbon Aware SDK WebAPI for httpx.MockTransport, shaped like its answers.

It serves ``/emissions/bylocation``, ``/emissions/forecasts/current``,
``/emissions/forecasts/batch`` and ``/locations`` with deterministic values. Shaped after
the SDK's quickstart output (casdk-docs, ``GET /emissions/bylocation?location=westus&
time=2022-08-23T14:00&toTime=2022-08-23T14:30``, a WattTime source): ``bylocation``
answers **newest first**, with the source's *region* in every item's ``location``
(``eastus`` and ``eastus2`` both become ``PJM_DC``), and holds points **outside** the
window asked: the one at ``toTime`` (the bounds are inclusive) and the interval before
``time`` (13:55 for 14:00). ``/locations`` uses the camelCase keys System.Text.Json
writes (``latitude``); ``pascal_locations`` switches to the PascalCase of the SDK's
documentation and location files (``Latitude``). Unknown locations get the SDK's 400
problem body; ``empty`` turns every data answer into a 204. Knobs let tests break it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx

from lowcarb import ManualClock
from lowcarb._zones import ZONE_CATALOG
from lowcarb.backends._carbonaware import DEFAULT_LOCATIONS

#: The fake's WattTime-style region of each SDK location (several share one).
REGIONS = {"eastus": "PJM_DC", "eastus2": "PJM_DC", "westus": "CAISO_NORTH", "uksouth": "UK"}


def region_of(location: str) -> str:
    return REGIONS.get(location, location.upper() + "_BA")


def value(location: str, start: datetime) -> float:
    """Deterministic g/kWh for ``location`` at ``start``: a daily wave around a per-site base."""
    base = 150 + sum(map(ord, location)) % 300
    hour = start.hour + start.minute / 60
    return round(base + 60 * math.sin(2 * math.pi * (hour - 6) / 24), 3)


def forecast_value(location: str, start: datetime) -> float:
    return round(value(location, start) + 7.5, 3)


def timespan(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def iso(when: datetime) -> str:
    return when.isoformat()


def problem(status: int, title: str, detail: str) -> httpx.Response:
    """The SDK's HttpValidationProblemDetails body."""
    body = {
        "type": "https://tools.ietf.org/html/rfc9110#section-15.5.1",
        "title": title,
        "status": status,
        "detail": detail,
        "errors": {},
        "traceId": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
    }
    return httpx.Response(
        status, content=json.dumps(body), headers={"content-type": "application/problem+json"}
    )


class FakeCarbonAwareAPI:
    """``handler(request) -> response`` for ``httpx.MockTransport``.

    Attributes:
        requests: Every request received.
        script: Responses (or exceptions) returned before normal service, in order.
        native: Interval length of the data (WattTime: 5 minutes; Electricity Maps: 1 h).
        horizon: Length of a forecast.
        echo_requested: Echo the requested name in items (Electricity Maps source) instead
            of the region (WattTime source).
        empty: Answer every data request with 204 No Content.
        drop: Interval starts left out of every answer.
        tamper: Applied to each JSON array before it is sent.
        known: The locations the SDK knows: name -> (lat, lon).
        prefix: The route prefix the fake is served under.
        pascal_locations: ``/locations`` entries with ``Latitude``/``Longitude``/``Name``.
    """

    def __init__(self, clock: ManualClock, *, native: timedelta = timedelta(hours=1)) -> None:
        self.clock = clock
        self.native = native
        self.horizon = timedelta(hours=24)
        self.requests: list[httpx.Request] = []
        self.script: list[httpx.Response | Exception] = []
        self.echo_requested = False
        self.empty = False
        self.drop: set[datetime] = set()
        self.tamper: Callable[[list], list] | None = None
        self.prefix = ""
        self.pascal_locations = False
        self.known: dict[str, tuple[float, float]] = {
            location: (ZONE_CATALOG[zone].lat, ZONE_CATALOG[zone].lon)
            for zone, location in DEFAULT_LOCATIONS.items()
        }
        self.known["eastus2"] = (36.6681, -78.3889)
        self.known["frankfurt-dc"] = (50.11, 8.68)

    @property
    def paths(self) -> list[str]:
        return [r.url.path for r in self.requests]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        assert request.extensions.get("timeout"), "every request carries a timeout"
        if self.script:
            item = self.script.pop(0)
            if isinstance(item, Exception):
                raise item
            return item
        path = request.url.path
        if not path.startswith(self.prefix + "/"):
            return httpx.Response(404)
        path = path[len(self.prefix) :]
        params = request.url.params
        if path == "/locations":
            keys = (
                ("Latitude", "Longitude", "Name")
                if self.pascal_locations
                else ("latitude", "longitude", "name")
            )
            return httpx.Response(
                200,
                json={
                    name: dict(zip(keys, (lat, lon, name), strict=True))
                    for name, (lat, lon) in self.known.items()
                },
            )
        if path == "/emissions/bylocation" and request.method == "GET":
            location = params.get("location", "")
            if location not in self.known:
                return self.unknown(location)
            start = datetime.fromisoformat(params["time"])
            end = datetime.fromisoformat(params["toTime"])
            # The interval before the window too, and newest first, as the quickstart shows.
            steps = self._steps(start - self.native, end, True)
            payload = [self._emission(location, t) for t in reversed(steps)]
            return self._answer(payload)
        if path == "/emissions/forecasts/current" and request.method == "GET":
            locations = params.get_list("location")
            for location in locations:
                if location not in self.known:
                    return self.unknown(location)
            now = self.clock.now()
            return self._answer([self._forecast(loc, now, now) for loc in locations])
        if path == "/emissions/forecasts/batch" and request.method == "POST":
            items = json.loads(request.content)
            for item in items:
                if item["location"] not in self.known:
                    return self.unknown(item["location"])
            return self._answer(
                [
                    self._forecast(
                        item["location"],
                        datetime.fromisoformat(item["requestedAt"]),
                        self.clock.now(),
                    )
                    for item in items
                ]
            )
        return httpx.Response(404)

    def unknown(self, location: str) -> httpx.Response:
        return problem(400, "ArgumentException", f"Unknown Location: '{location}' not found")

    def _answer(self, payload: list) -> httpx.Response:
        if self.empty:
            return httpx.Response(204)
        if self.tamper:
            payload = self.tamper(payload)
        return httpx.Response(200, json=payload)

    def _floor(self, when: datetime) -> datetime:
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        return epoch + (when - epoch) // self.native * self.native

    def _steps(self, start: datetime, end: datetime, published: bool) -> list[datetime]:
        out, t = [], self._floor(start)
        while t <= end:  # inclusive, like the SDK's filters
            if t not in self.drop and (not published or t <= self.clock.now()):
                out.append(t)
            t += self.native
        return out

    def _emission(self, location: str, start: datetime) -> dict:
        return {
            "location": location if self.echo_requested else region_of(location),
            "time": iso(start),
            "rating": value(location, start),
            "duration": timespan(self.native),
        }

    def _forecast(self, location: str, requested: datetime, generated: datetime) -> dict:
        first = self._floor(requested)
        steps = self._steps(first, first + self.horizon - self.native, False)
        echoed = location if self.echo_requested else region_of(location)
        data = [
            {
                "location": echoed,
                "timestamp": iso(t),
                "duration": int(self.native.total_seconds() // 60),
                "value": forecast_value(location, t),
            }
            for t in steps
        ]
        return {
            "requestedAt": iso(requested),
            "generatedAt": iso(min(requested, generated)),
            "location": location,
            "dataStartAt": iso(first),
            "dataEndAt": iso(first + self.horizon),
            "windowSize": 5,
            "optimalDataPoints": [min(data, key=lambda d: d["value"])] if data else [],
            "forecastData": data,
        }
