"""A fake of the WattTime API v3 for httpx.MockTransport, shaped like the documented bodies.

It checks Basic auth on ``/login``, issues JWT-shaped tokens that expire after 30 minutes
of the fake's clock (then answers 401), resolves coordinates to a few regions, and
serves ``/v3/forecast`` (from the current five minutes), ``/v3/historical`` (inclusive
``end``; some points imputed) and ``/v3/signal-index`` with deterministic values in
lbs CO2/MWh. ``/v3/region-from-loc`` answers ``region`` and ``region_full_name`` only,
like the live answer a version of WattTime's v2-to-v3 migration notes prints
(``{"region":"SPP_WESTNE","region_full_name":"SPP Western Nebraska"}``); its static
example adds ``signal_type`` (``echo_signal_type`` restores it). Knobs let tests break it.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable
from datetime import datetime, timedelta

import httpx

from lowcarb import ManualClock

FIVE_MINUTES = timedelta(minutes=5)
USERNAME = "ada"
PASSWORD = "correct-horse-battery"
#: Regions by representative point (lat, lon), like WattTime's balancing authorities.
REGION_POINTS = {
    "CAISO_NORTH": (37.5, -121.0, "California ISO Northern"),
    "PSCO": (39.7, -105.0, "Public Service Co of Colorado"),
    "ERCOT_NORTHCENTRAL": (32.5, -97.0, "ERCOT North Central"),
    "PJM_DC": (39.0, -77.0, "PJM DC"),
}


def fake_jwt(number: int) -> str:
    """A token shaped like a JWT (three base64url parts), unique per login."""
    body = base64.urlsafe_b64encode(f'{{"sub":"ada","n":{number}}}'.encode()).decode()
    return "eyJhbGciOiJIUzI1NiJ9." + body.rstrip("=") + ".c2lnbmF0dXJlLWZha2U"


def moer(start: datetime, region: str) -> float:
    """lbs CO2/MWh for a five-minute interval: a daily wave, offset per region."""
    hour = start.hour + start.minute / 60
    offset = 40 * list(REGION_POINTS).index(region) if region in REGION_POINTS else 0
    return round(900 + 250 * math.sin(2 * math.pi * (hour - 4) / 24) + offset, 3)


class FakeWattTimeAPI:
    """``handler(request) -> response`` for ``httpx.MockTransport``.

    Attributes:
        requests: Every request received.
        script: Responses (or exceptions) returned before normal service, in order.
        allowed: Regions the account may read (None: all; ``{"CAISO_NORTH"}``: free).
        logins: Tokens issued, in order.
        drop: Interval starts left out of every answer.
        tamper: Applied to each JSON payload before it is sent.
        html_403: Answer an expired token with nginx's HTML 403 page instead of 401.
        accept_tokens: False refuses every token, fresh ones included.
        echo_signal_type: region-from-loc also answers ``signal_type`` (the docs' example).
    """

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.requests: list[httpx.Request] = []
        self.script: list[httpx.Response | Exception] = []
        self.allowed: set[str] | None = None
        self.logins: list[str] = []
        self.issued: dict[str, datetime] = {}
        self.drop: set[datetime] = set()
        self.tamper: Callable[[dict], dict] | None = None
        self.html_403 = False
        self.accept_tokens = True
        self.echo_signal_type = False

    @property
    def paths(self) -> list[str]:
        return [r.url.path for r in self.requests]

    def count(self, path: str) -> int:
        return self.paths.count(path)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        assert request.extensions.get("timeout"), "every request carries a timeout"
        if self.script:
            item = self.script.pop(0)
            if isinstance(item, Exception):
                raise item
            return item
        if request.url.path == "/login":
            return self._login(request)
        refused = self._check_token(request)
        if refused is not None:
            return refused
        params = request.url.params
        if request.url.path == "/v3/region-from-loc":
            return self._region(float(params["latitude"]), float(params["longitude"]), params)
        region = params["region"]
        if self.allowed is not None and region not in self.allowed:
            return error(
                403,
                "Invalid query parameters",
                "Invalid scope. You do not have sufficient access to this resource.",
            )
        signal = params["signal_type"]
        if request.url.path == "/v3/forecast":
            first = self._slot()
            count = max(1, int(params.get("horizon_hours", "24")) * 12)
            times = [first + i * FIVE_MINUTES for i in range(count)]
            payload = self._body(times, region, signal, forecast=True)
        elif request.url.path == "/v3/historical":
            start = datetime.fromisoformat(params["start"])
            end = datetime.fromisoformat(params["end"])
            step = timedelta(hours=1) if signal == "co2_aoer" else FIVE_MINUTES
            times = []
            t = start
            while t <= end:  # WattTime's end is inclusive
                times.append(t)
                t += step
            payload = self._body(times, region, signal, forecast=False)
        elif request.url.path == "/v3/signal-index":
            payload = {
                "data": [{"point_time": self._slot().isoformat(), "value": 42.0}],
                "meta": {
                    "data_point_period_seconds": 300,
                    "region": region,
                    "signal_type": signal,
                    "units": "percentile",
                    "warnings": [],
                    "model": {"date": "2022-10-01"},
                },
            }
        else:
            return error(404, "Not found", "unknown endpoint")
        if self.tamper:
            payload = self.tamper(payload)
        return httpx.Response(200, json=payload)

    def _slot(self) -> datetime:
        now = self.clock.now()
        return now.replace(minute=now.minute // 5 * 5, second=0, microsecond=0)

    def _login(self, request: httpx.Request) -> httpx.Response:
        expected = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {expected}":
            return error(401, "Unauthorized", "invalid username or password")
        token = fake_jwt(len(self.logins) + 1)
        self.logins.append(token)
        self.issued[token] = self.clock.now()
        return httpx.Response(200, json={"token": token})

    def _check_token(self, request: httpx.Request) -> httpx.Response | None:
        header = request.headers.get("authorization", "")
        token = header.removeprefix("Bearer ")
        issued = self.issued.get(token)
        alive = issued is not None and self.clock.now() - issued < timedelta(minutes=30)
        if header.startswith("Bearer ") and alive and self.accept_tokens:
            return None
        if self.html_403:
            page = b"<html><head><title>403 Forbidden</title></head><body>nginx</body></html>"
            return httpx.Response(403, content=page, headers={"content-type": "text/html"})
        return error(401, "Unauthorized", "token expired or invalid")

    def _region(self, lat: float, lon: float, params: httpx.QueryParams) -> httpx.Response:
        def distance(item: tuple[str, tuple[float, float, str]]) -> float:
            return math.hypot(item[1][0] - lat, item[1][1] - lon)

        region, (rlat, rlon, name) = min(REGION_POINTS.items(), key=distance)
        if math.hypot(rlat - lat, rlon - lon) > 5:
            body = {
                "error": "No coverage available for these coordinates and signal_type",
                "latitude": str(lat),
                "longitude": str(lon),
                "signal_type": params["signal_type"],
            }
            return httpx.Response(404, json=body)
        body = {"region": region, "region_full_name": name}
        if self.echo_signal_type:
            body["signal_type"] = params["signal_type"]
        return httpx.Response(200, json=body)

    def _body(self, times: list[datetime], region: str, signal: str, forecast: bool) -> dict:
        data = []
        for t in times:
            if t in self.drop:
                continue
            item: dict = {"point_time": t.isoformat(), "value": moer(t, region)}
            if not forecast:
                item["imputed_data_used"] = t.minute == 25
            data.append(item)
        meta: dict = {
            "data_point_period_seconds": 3600 if signal == "co2_aoer" else 300,
            "region": region,
            "signal_type": signal,
            "units": "lbs_co2_per_mwh",
            "warnings": [],
            "model": {"date": "2023-03-01"},
        }
        if forecast:
            meta["generated_at"] = self._slot().isoformat()
        return {"data": data, "meta": meta}


def error(status: int, title: str, message: str) -> httpx.Response:
    """WattTime's JSON error body ``{"error": ..., "message": ...}``."""
    body = json.dumps({"error": title, "message": message})
    return httpx.Response(status, content=body, headers={"content-type": "application/json"})
