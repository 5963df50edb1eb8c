"""A fake of the GB Carbon Intensity API for httpx.MockTransport, shaped like real answers.

It serves every endpoint the ``ukcarbon`` provider uses, for any window, with
deterministic values; ``actual`` is published for half-hours before the fake's clock.
Shaped after answers other projects captured:

* A window answers the half-hours that **end** in ``[from, to]``: the first is the one
  ending at ``from`` (``/intensity/2020-05-21T21:00Z/fw24h`` answered 49 half-hours,
  20:30-21:00 .. 20:30-21:00 the next day: emoncms/demandshaper's docs; the duplicate of
  carbon-intensity/api-definitions#17 came from the half-hour ending at ``from``). The
  provider must cut the first away.
* Regional answers carry the API's own names: ``dnoregion`` and ``shortname`` of region
  ids 1-18 as in captured ``/regional`` answers of 2019, 2020 and 2025 (6 is "North Wales
  and Merseyside", 11 "South West England", 12 "South England", 18 "GB").

Knobs let tests break it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import datetime, timedelta

import httpx

from lowcarb import ManualClock

HALF_HOUR = timedelta(minutes=30)
POSTCODES = {"RG10": 12, "SW1": 13, "M1": 3, "EH1": 2}
#: Region id -> (dnoregion, shortname), as captured answers of /regional name them.
NAMES: dict[int, tuple[str, str]] = {
    1: ("Scottish Hydro Electric Power Distribution", "North Scotland"),
    2: ("SP Distribution", "South Scotland"),
    3: ("Electricity North West", "North West England"),
    4: ("NPG North East", "North East England"),
    5: ("NPG Yorkshire", "Yorkshire"),
    6: ("SP Manweb", "North Wales and Merseyside"),
    7: ("WPD South Wales", "South Wales"),
    8: ("WPD West Midlands", "West Midlands"),
    9: ("WPD East Midlands", "East Midlands"),
    10: ("UKPN East", "East England"),
    11: ("WPD South West", "South West England"),
    12: ("SSE South", "South England"),
    13: ("UKPN London", "London"),
    14: ("UKPN South East", "South East England"),
    15: ("England", "England"),
    16: ("Scotland", "Scotland"),
    17: ("Wales", "Wales"),
    18: ("GB", "GB"),
}


def stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%MZ")


def national_value(start: datetime) -> int:
    hour = start.hour + start.minute / 60
    return round(180 + 70 * math.sin(2 * math.pi * (hour - 6) / 24) + (start.day % 7) * 3)


def regional_value(start: datetime, region: int) -> int:
    return max(0, national_value(start) - 60 + 9 * region)


class FakeUKCarbonAPI:
    """``handler(request) -> response`` for ``httpx.MockTransport``.

    Attributes:
        requests: Every request received.
        script: Responses (or exceptions) returned before normal service, in order.
        pad: Answer the half-hour ending at ``{from}`` too, as the real API does.
        names: Region id -> (dnoregion, shortname) in every regional answer.
        object_data: Answer region-id endpoints with ``data`` as an object (else a list).
        drop: Interval starts left out of every answer.
        tamper: Applied to each JSON payload before it is sent.
    """

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.requests: list[httpx.Request] = []
        self.script: list[httpx.Response | Exception] = []
        self.pad = True
        self.names: dict[int, tuple[str, str]] = dict(NAMES)
        self.object_data = True
        self.drop: set[datetime] = set()
        self.tamper: Callable[[dict], dict] | None = None

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
        parts = request.url.path.strip("/").split("/")
        if parts[0] == "intensity":
            payload = {"data": [self._national(t) for t in self._window(parts[1], parts[2])]}
        elif parts[:2] == ["regional", "intensity"] and "regionid" in parts:
            region = int(parts[-1])
            periods = [self._period(t, region) for t in self._window(parts[2], parts[3])]
            item = {**self._names(region), "data": periods}
            payload = {"data": item if self.object_data else [item]}
        elif parts == ["regional"]:  # the current half-hour, every region
            slot = self.slot()
            payload = {
                "data": [
                    {**self._times(slot), "regions": [self._region(slot, r) for r in self.names]}
                ]
            }
        elif parts[:2] == ["regional", "intensity"]:
            payload = {
                "data": [
                    {**self._times(t), "regions": [self._region(t, r) for r in self.names]}
                    for t in self._window(parts[2], parts[3])
                ]
            }
        elif parts[:2] == ["regional", "postcode"]:
            region = POSTCODES.get(parts[2])
            if region is None:
                return error(400, "Please enter a valid postcode.")
            payload = {
                "data": [
                    {
                        **self._names(region),
                        "postcode": parts[2],
                        "data": [self._period(self.slot(), region)],
                    }
                ]
            }
        else:
            return error(400, "Unknown endpoint")
        if self.tamper:
            payload = self.tamper(payload)
        return httpx.Response(200, json=payload)

    def slot(self) -> datetime:
        now = self.clock.now()
        return now.replace(minute=now.minute // 30 * 30, second=0, microsecond=0)

    def _window(self, first: str, last: str) -> list[datetime]:
        start = datetime.fromisoformat(first)
        end = start + timedelta(hours=48) if last == "fw48h" else datetime.fromisoformat(last)
        if self.pad:  # the half-hours that end in [from, to]: one starts before from
            start -= HALF_HOUR
        out = []
        t = start
        while t < end:
            if t not in self.drop:
                out.append(t)
            t += HALF_HOUR
        return out

    def _times(self, start: datetime) -> dict:
        return {"from": stamp(start), "to": stamp(start + HALF_HOUR)}

    def _national(self, start: datetime) -> dict:
        value = national_value(start)
        actual = value - 4 if start < self.slot() else None
        return {
            **self._times(start),
            "intensity": {"forecast": value, "actual": actual, "index": "moderate"},
        }

    def _names(self, region: int) -> dict:
        dno, short = self.names.get(region, ("DNO", f"region {region}"))
        return {"regionid": region, "dnoregion": dno, "shortname": short}

    def _region(self, start: datetime, region: int) -> dict:
        return {
            **self._names(region),
            "intensity": {"forecast": regional_value(start, region), "index": "low"},
            "generationmix": [{"fuel": "wind", "perc": 40.0}, {"fuel": "gas", "perc": 60.0}],
        }

    def _period(self, start: datetime, region: int) -> dict:
        return {
            **self._times(start),
            "intensity": {"forecast": regional_value(start, region), "index": "low"},
            "generationmix": [{"fuel": "wind", "perc": 40.0}],
        }


def error(status: int, message: str, headers: dict[str, str] | None = None) -> httpx.Response:
    """The API's error body: ``{"error": {"code": "...", "message": "..."}}``."""
    code = {400: "400 Bad Request", 500: "500 Internal Server Error"}.get(status, str(status))
    body = json.dumps({"error": {"code": code, "message": message}})
    return httpx.Response(
        status, content=body, headers={"content-type": "application/json", **(headers or {})}
    )
