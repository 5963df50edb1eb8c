"""A fake ENTSO-E Transparency Platform, as a ``requests`` transport adapter.

Mount it on a ``requests.Session`` and hand the session to ``EntsoeProvider(session=...)``:
entsoe-py's real request path (the gateway, requests, entsoe-py's parser) runs unchanged,
only the socket is replaced. Answers follow the documented XML formats
(GL_MarketDocument for A75/A71/A69, Acknowledgement_MarketDocument for "no data"; see
reference/providers.md section 4), for any window, with deterministic values. Actual
generation (A75) is published for every market time unit that has started by the fake's
clock; the day-ahead documents (A71, A69) for any window. Knobs let tests break it.

Curve types, as ENTSO-E's documents use them: by default **A03** (variable sized
blocks), the form of 2025 generation documents: a position whose value repeats the one
before is **left out** (the value holds until the next position), and a series with
missing intervals is split into one Period per run of published ones (a left-out
position cannot mean "missing" in A03). ``curve="A01"`` gives every position (the older
documents, and the examples in ENTSO-E's implementation guide); missing values are then
left out. Shaped after ENTSO-E's "Introduction of different time series possibilities
(curve types)" guide (v1.4) as entsoe-py's parser cites it, and the 2025 documents
reported to use A03 (electricitymaps-contrib and entsoe-py both parse it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import requests
from requests.adapters import BaseAdapter

from lowcarb import ManualClock

GL_NS = "urn:iec62325.351:tc57wg16:451-6:generationloaddocument:3:0"
ACK_NS = "urn:iec62325.351:tc57wg16:451-1:acknowledgementdocument:7:0"
TOKEN = "8f1b2c3d-4e5f-4a6b-9c7d-0e1f2a3b4c5d"


def stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


def parse_period(text: str) -> datetime:
    """``YYYYMMDDHHMM`` (entsoe-py's periodStart/periodEnd) as aware UTC."""
    return datetime.strptime(text, "%Y%m%d%H%M").replace(tzinfo=UTC)


@dataclass
class Series:
    """One TimeSeries element: a production type's values from ``start`` every ``step``."""

    psr: str | None
    start: datetime
    step: timedelta
    values: list[float | None]
    consumption: bool = False

    @property
    def end(self) -> datetime:
        return self.start + self.step * len(self.values)


def _runs(values: list[float | None]) -> list[tuple[int, int]]:
    """``(first, stop)`` index ranges of the consecutive published (not None) values."""
    runs, first = [], None
    for i, v in enumerate([*values, None]):
        if v is not None and first is None:
            first = i
        elif v is None and first is not None:
            runs.append((first, i))
            first = None
    return runs


def _period(start: datetime, step: timedelta, values: list[float], curve: str) -> str:
    minutes = int(step.total_seconds() // 60)
    end = start + step * len(values)
    points = "".join(
        f"<Point><position>{i}</position><quantity>{v:g}</quantity></Point>"
        for i, v in enumerate(values, 1)
        # A03: a repeated value is left out; it holds from the position before.
        if curve == "A01" or i == 1 or v != values[i - 2]
    )
    return (
        f"<Period><timeInterval><start>{stamp(start)}</start><end>{stamp(end)}</end>"
        f"</timeInterval><resolution>PT{minutes}M</resolution>{points}</Period>"
    )


def gl_document(
    doc_type: str, process: str, area: str, series: list[Series], curve: str = "A03"
) -> str:
    """A GL_MarketDocument (A75, A71, A69) holding ``series`` in curve type ``curve``.

    None values are missing intervals: left out under A01, a new Period under A03.
    """
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<GL_MarketDocument xmlns="{GL_NS}">',
        "<mRID>fake-document</mRID>",
        "<revisionNumber>1</revisionNumber>",
        f"<type>{doc_type}</type>",
        f"<process.processType>{process}</process.processType>",
    ]
    if series:
        first = min(s.start for s in series)
        last = max(s.end for s in series)
        parts.append(
            f"<time_Period.timeInterval><start>{stamp(first)}</start>"
            f"<end>{stamp(last)}</end></time_Period.timeInterval>"
        )
    for number, s in enumerate(series, 1):
        domain = "outBiddingZone_Domain.mRID" if s.consumption else "inBiddingZone_Domain.mRID"
        psr = f"<MktPSRType><psrType>{s.psr}</psrType></MktPSRType>" if s.psr else ""
        if curve == "A01":
            minutes = int(s.step.total_seconds() // 60)
            points = "".join(
                f"<Point><position>{i}</position><quantity>{v:g}</quantity></Point>"
                for i, v in enumerate(s.values, 1)
                if v is not None
            )
            periods = (
                f"<Period><timeInterval><start>{stamp(s.start)}</start>"
                f"<end>{stamp(s.end)}</end></timeInterval><resolution>PT{minutes}M</resolution>"
                f"{points}</Period>"
            )
        else:
            periods = "".join(
                _period(
                    s.start + a * s.step, s.step, [v for v in s.values[a:b] if v is not None], curve
                )
                for a, b in _runs(s.values)
            )
        parts.append(
            f"<TimeSeries><mRID>{number}</mRID><businessType>A01</businessType>"
            f"<objectAggregation>A08</objectAggregation>"
            f'<{domain} codingScheme="A01">{area}</{domain}>'
            f"<quantity_Measure_Unit.name>MAW</quantity_Measure_Unit.name>"
            f"<curveType>{curve}</curveType>{psr}{periods}</TimeSeries>"
        )
    parts.append("</GL_MarketDocument>")
    return "\n".join(parts)


def acknowledgement(reason: str) -> str:
    """ENTSO-E's Acknowledgement_MarketDocument with one Reason."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<Acknowledgement_MarketDocument xmlns="{ACK_NS}">'
        "<mRID>fake-ack</mRID><createdDateTime>2024-06-01T12:10:00Z</createdDateTime>"
        "<Reason><code>999</code>"
        f"<text>{reason}</text></Reason></Acknowledgement_MarketDocument>"
    )


def no_data(area: str) -> str:
    return acknowledgement(
        f"No matching data found for Data item ACTUAL_GENERATION_PER_PRODUCTION_TYPE "
        f"[16.1.B&amp;C] ({area}) and interval ."
    )


# Production types of every fake area and their MW at hour h (deterministic).
def _solar(h: float) -> float:
    return max(0.0, 9000 * math.sin(math.pi * (h - 6) / 12)) if 6 <= h <= 18 else 0.0


PROFILES: dict[str, Callable[[float], float]] = {
    "B04": lambda h: 9000 + 3000 * math.sin(2 * math.pi * (h - 8) / 24),  # Fossil Gas
    "B02": lambda h: 12000 + 1000 * math.cos(2 * math.pi * h / 24),  # Lignite
    "B14": lambda h: 2000.0,  # Nuclear (about 4 % of the mix: a "minor" type)
    "B19": lambda h: 15000 + 6000 * math.sin(2 * math.pi * h / 24),  # Wind Onshore
    "B16": _solar,  # Solar
    "B10": lambda h: 800.0,  # Hydro Pumped Storage (also pumps, see below)
}
WIND_SOLAR = ("B16", "B19")


def mw(psr: str, when: datetime) -> float:
    hour = when.hour + when.minute / 60
    return round(PROFILES[psr](hour), 1)


@dataclass
class FakeEntsoeAPI(BaseAdapter):
    """A ``requests`` adapter that answers like the ENTSO-E API.

    Attributes:
        clock: Actual generation is published for intervals started by this clock's time.
        step: Market time unit of every area (15, 30 or 60 minutes).
        requests: Every request received.
        script: Answers (``(status, body, headers)``) or exceptions returned first, in order.
        drop: ``(psrType, interval start)`` pairs left out of every answer.
        no_wind_solar: Answer A69 with the "no data" acknowledgement.
        tamper: Applied to each body before it is sent.
        token: The token the fake accepts (anything else: 401).
        curve: ``A03`` (repeated values left out; 2025 documents) or ``A01`` (every one).
    """

    clock: ManualClock
    step: timedelta = timedelta(minutes=60)
    requests: list[requests.PreparedRequest] = field(default_factory=list)
    script: list[tuple[int, str, dict[str, str]] | Exception] = field(default_factory=list)
    drop: set[tuple[str, datetime]] = field(default_factory=set)
    no_wind_solar: bool = False
    tamper: Callable[[str], str] | None = None
    token: str = TOKEN
    curve: str = "A03"

    def __post_init__(self) -> None:
        super().__init__()

    def params(self, number: int = -1) -> dict[str, str]:
        query = parse_qs(urlsplit(self.requests[number].url).query)
        return {k: v[0] for k, v in query.items()}

    @property
    def documents(self) -> list[str]:
        return [self.params(i)["documentType"] for i in range(len(self.requests))]

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        self.requests.append(request)
        assert timeout, "every request carries a timeout"
        if self.script:
            item = self.script.pop(0)
            if isinstance(item, Exception):
                raise item
            return self._response(request, *item)
        params = self.params()
        if params.get("securityToken") != self.token:
            page = "<html><body>Unauthorized. Missing or invalid security token</body></html>"
            return self._response(request, 401, page, {"content-type": "text/html"})
        start, end = parse_period(params["periodStart"]), parse_period(params["periodEnd"])
        area, doc = params["in_Domain"], params["documentType"]
        if doc == "A75":
            limit = min(end, self.clock.now())
            series = self._types(PROFILES, start, end, until=limit)
            series.append(self._one("B10", start, end, limit, consumption=True))
        elif doc == "A71":
            first, values = self._values(self._sum, start, end, end)
            series = [Series(None, first, self.step, values)]
        elif doc == "A69" and not self.no_wind_solar:
            ws = {p: PROFILES[p] for p in WIND_SOLAR}
            series = self._types(ws, start, end, until=end)
        else:
            series = []
        series = [s for s in series if any(v is not None for v in s.values)]
        if not series:
            return self._response(request, 200, no_data(area), {"content-type": "text/xml"})
        body = gl_document(doc, params.get("processType", "A16"), area, series, self.curve)
        return self._response(request, 200, body, {"content-type": "text/xml"})

    def _sum(self, when: datetime) -> float:
        return sum(mw(p, when) for p in PROFILES)

    def _types(self, profiles, start, end, *, until) -> list[Series]:
        return [self._one(psr, start, end, until) for psr in profiles]

    def _one(self, psr, start, end, until, consumption=False) -> Series:
        first, values = self._values(lambda t: mw(psr, t), start, end, until, psr)
        if consumption:
            values = [None if v is None else 300.0 for v in values]
        return Series(psr, first, self.step, values, consumption)

    def _values(self, value, start, end, until, psr=None):
        values: list[float | None] = []
        t = start
        while t < end:
            published = t <= until and (psr, t) not in self.drop
            values.append(value(t) if published else None)
            t += self.step
        return start, values

    def _response(self, request, status: int, body: str, headers: dict[str, str]):
        if self.tamper is not None:
            body = self.tamper(body)
        response = requests.Response()
        response.status_code = status
        response.headers = requests.structures.CaseInsensitiveDict(headers)
        response._content = body.encode()
        response.encoding = "utf-8"
        response.url = request.url
        response.request = request
        return response

    def close(self) -> None:
        pass


def session_for(api: FakeEntsoeAPI) -> requests.Session:
    """A session whose every request goes to ``api``."""
    session = requests.Session()
    session.mount("https://", api)
    session.mount("http://", api)
    return session
