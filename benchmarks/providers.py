"""HTTP cost of a network provider: concurrent fetching and the response cache.

Runs the ``electricitymaps`` provider against a fake Electricity Maps v3 API on loopback
(starlette served by uvicorn in a background thread, on a free port of 127.0.0.1) that
answers every request after an injected latency and counts what it receives. Nothing
leaves the machine.

Usage::

    python benchmarks/providers.py                  # both measurements, a table
    python benchmarks/providers.py --json           # one JSON object
    python benchmarks/providers.py --write-docs     # and the table into docs/benchmarks.md
    python benchmarks/providers.py --zones 5 --clients 6 --rounds 3 --latency-ms 0

Measured:

1. **Forecasts for Z zones** (``--zones``, 100): one ``forecast()`` of all zones through
   the sync provider with ``max_concurrency=1`` (one request after another) against the
   sync provider's thread pool (``max_concurrency=C``) and the async face
   (``provider.to_async(max_concurrency=C)``), the requests of the call in flight
   together, at most C at a time, for each C of ``--concurrency``. Wall time of the call
   alone: a fresh provider each run, its ``/zones`` table fetched before the clock starts,
   so each timed call sends exactly Z requests. Median of ``--repeat`` runs.
2. **Requests of a training**: ``lowcarb.SelectionEngine`` (policy ``lowcarb``, forecaster
   ``best``) over N clients (``--clients``, 100) spread round-robin over
   ``--training-zones`` zones (14), K = N // 10 per round, for ``--rounds`` hourly rounds
   (96: 4 days). A ``ManualClock`` moves one hour per round: ``select()``, an hour later
   ``complete()`` (which fetches the round's actual intensity), next round. Once with the
   response cache (``cache_ttl_s`` 1800, the default) and once without (``cache_ttl_s``
   0). The server counts requests per endpoint; wall time includes the injected latency
   and the planner.

The fake API speaks the documented v3 formats (``../shared/reference/providers.md``
section 2; ``auth-token`` header, ``/zones``, ``/carbon-intensity/{latest,history,
past-range,forecast}``) with synthetic values: a zone's level times a daily cycle.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import socket
import statistics
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import uvicorn
from _docs import DOC, write_section
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from lowcarb import Client, Ledger, ManualClock, SelectionEngine
from lowcarb.backends import ElectricityMapsProvider

BEGIN, END = "<!-- BEGIN providers.py -->", "<!-- END providers.py -->"
TOKEN = "benchmark-token-not-a-secret"
T0 = datetime(2024, 6, 3, tzinfo=UTC)  # a Monday, 00:00 UTC
HOUR = timedelta(hours=1)
LOADAVG = hasattr(os, "getloadavg")  # not on Windows
#: The longest /past-range request at hourly granularity (the API's documented limit).
MAX_PAST_RANGE = timedelta(days=10)
#: Real Electricity Maps zone keys for the training (the seed scenario's 14 zones).
TRAINING_ZONES = (
    "DE", "FR", "GB", "ES", "IT-NO", "PL", "SE-SE3", "NO-NO1",
    "DK-DK1", "NL", "BE", "AT", "CH", "US-CAL-CISO",
)  # fmt: skip


# -- the fake API --------------------------------------------------------------------------


def _stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _hour(when: datetime) -> datetime:
    return when.replace(minute=0, second=0, microsecond=0)


def intensity(zone: str, start: datetime) -> int:
    """Synthetic gCO2eq/kWh of ``zone`` in the hour from ``start``: a level and a daily cycle."""
    level = 60 + zlib.crc32(zone.encode()) % 500
    cycle = math.sin(2 * math.pi * (start.hour - 6) / 24)
    return round(level * (1 + 0.25 * cycle))


@dataclass
class FakeElectricityMaps:
    """State of the fake API: the zones it lists, its clock, its latency and its counters.

    Attributes:
        zones: Zone keys listed by ``/zones``.
        now: The API's "now" (share the provider's ``ManualClock`` so both agree).
        latency_s: Seconds every answer waits before it is sent.
        counts: Requests received, per endpoint (``forecast``, ``history``, ...).
    """

    zones: tuple[str, ...]
    now: Callable[[], datetime]
    latency_s: float = 0.1
    counts: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> Counter[str]:
        """The counts so far; start counting again from zero."""
        with self._lock:
            counts, self.counts = self.counts, Counter()
        return counts

    def app(self) -> Starlette:
        routes = [
            Route("/v3/zones", self.zone_list),
            Route("/v3/carbon-intensity/latest", self.latest),
            Route("/v3/carbon-intensity/history", self.history),
            Route("/v3/carbon-intensity/past-range", self.past_range),
            Route("/v3/carbon-intensity/forecast", self.forecast),
        ]
        return Starlette(routes=routes)

    async def _admit(self, request: Request, endpoint: str) -> JSONResponse | None:
        """Count, wait the latency, check the key and the zone; an error answer or None."""
        with self._lock:
            self.counts[endpoint] += 1
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        if request.headers.get("auth-token") != TOKEN:
            return JSONResponse({"error": "Invalid auth-token"}, status_code=401)
        zone = request.query_params.get("zone")
        if endpoint != "zones" and zone not in self.zones:
            message = f"Zone '{zone}' does not exist."
            return JSONResponse({"status": "error", "message": message}, status_code=400)
        return None

    def _item(self, zone: str, start: datetime, basis: str) -> dict[str, Any]:
        """One ``CarbonIntensity`` object, as in the documented ``latest`` answer."""
        return {
            "zone": zone,
            "carbonIntensity": intensity(zone, start),
            "datetime": _stamp(start),
            "updatedAt": _stamp(self.now()),
            "createdAt": _stamp(start - timedelta(days=3)),
            "emissionFactorType": basis,
            "isEstimated": False,
            "estimationMethod": None,
            "temporalGranularity": "hourly",
        }

    async def zone_list(self, request: Request) -> JSONResponse:
        refused = await self._admit(request, "zones")
        if refused:
            return refused
        body = {z: {"zoneName": f"Zone {z}", "access": ["*"]} for z in self.zones}
        return JSONResponse(body)

    async def latest(self, request: Request) -> JSONResponse:
        refused = await self._admit(request, "latest")
        if refused:
            return refused
        params = request.query_params
        basis = params.get("emissionFactorType", "lifecycle")
        return JSONResponse(self._item(params["zone"], _hour(self.now()), basis))

    async def history(self, request: Request) -> JSONResponse:
        refused = await self._admit(request, "history")
        if refused:
            return refused
        zone = request.query_params["zone"]
        basis = request.query_params.get("emissionFactorType", "lifecycle")
        current = _hour(self.now())
        hours = [current - HOUR * n for n in range(24, -1, -1)]  # the last 24 h and now
        return JSONResponse({"zone": zone, "history": [self._item(zone, h, basis) for h in hours]})

    async def past_range(self, request: Request) -> JSONResponse:
        refused = await self._admit(request, "past-range")
        if refused:
            return refused
        params = request.query_params
        zone, basis = params["zone"], params.get("emissionFactorType", "lifecycle")
        try:
            start = datetime.fromisoformat(params["start"])
            end = datetime.fromisoformat(params["end"])
        except (KeyError, ValueError):
            message = "start and end must be ISO 8601 datetimes"
            return JSONResponse({"status": "error", "message": message}, status_code=400)
        if not start < end <= start + MAX_PAST_RANGE:
            message = "The maximum range is 10 days for hourly granularity"
            return JSONResponse({"status": "error", "message": message}, status_code=400)
        hours, at = [], _hour(start)
        while at < min(end, self.now()):
            hours.append(at)
            at += HOUR
        items = [self._item(zone, h, basis) for h in hours]
        return JSONResponse({"zone": zone, "data": items, "temporalGranularity": "hourly"})

    async def forecast(self, request: Request) -> JSONResponse:
        refused = await self._admit(request, "forecast")
        if refused:
            return refused
        zone = request.query_params["zone"]
        hours = int(request.query_params.get("horizonHours", "24"))
        first = _hour(self.now())
        points = [
            {
                "carbonIntensity": intensity(zone, first + HOUR * n),
                "datetime": _stamp(first + HOUR * n),
            }
            for n in range(hours)
        ]
        return JSONResponse({"zone": zone, "updatedAt": _stamp(self.now()), "forecast": points})


@contextmanager
def serve(api: FakeElectricityMaps) -> Iterator[str]:
    """Serve ``api`` on a free loopback port in a background thread; yields the base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        api.app(),
        log_level="warning",
        access_log=False,
        lifespan="off",
        ws="none",
        backlog=1024,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise SystemExit("the loopback test server did not start")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}/v3"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


# -- measurement 1: sequential against concurrent ----------------------------------------


def provider(
    base_url: str, clock: ManualClock, *, cache_ttl_s: float = 1800, max_concurrency: int = 8
) -> ElectricityMapsProvider:
    """The provider under test, pointed at the fake API; no retries (nothing should fail)."""
    return ElectricityMapsProvider(
        token=TOKEN,
        base_url=base_url,
        clock=clock,
        cache_ttl_s=cache_ttl_s,
        max_attempts=1,
        max_concurrency=max_concurrency,
    )


def time_sync(
    api: FakeElectricityMaps, base_url: str, zones: list[str], concurrency: int = 1
) -> float:
    """Seconds of one sync ``forecast()`` of ``zones``, at most ``concurrency`` in flight."""
    clock = ManualClock(T0)
    api.now = clock.now
    p = provider(base_url, clock, max_concurrency=concurrency)
    try:
        p.served_zones()  # /zones, before the clock starts
        api.reset()
        start = time.perf_counter()
        series = p.forecast(zones)
        elapsed = time.perf_counter() - start
    finally:
        p.close()
    check_fetch(api, series.values.shape[1], len(zones))
    return elapsed


def time_concurrent(
    api: FakeElectricityMaps, base_url: str, zones: list[str], concurrency: int
) -> tuple[float, int]:
    """Seconds of one async ``forecast()`` of ``zones``, and the peak requests in flight."""
    clock = ManualClock(T0)
    api.now = clock.now

    async def run() -> tuple[float, int, int]:
        face = provider(base_url, clock).to_async(max_concurrency=concurrency)
        try:
            await face.served_zones()
            api.reset()
            start = time.perf_counter()
            series = await face.forecast(zones)
            elapsed = time.perf_counter() - start
            return elapsed, series.values.shape[1], face.peak_concurrency
        finally:
            await face.aclose()

    elapsed, columns, peak = asyncio.run(run())
    check_fetch(api, columns, len(zones))
    return elapsed, peak


def check_fetch(api: FakeElectricityMaps, columns: int, zones: int) -> None:
    sent = api.reset()
    if columns != zones or sent != Counter({"forecast": zones}):
        raise SystemExit(f"expected {zones} forecast requests and columns, got {dict(sent)}")


def fetch_benchmark(
    api: FakeElectricityMaps, base_url: str, zones: list[str], limits: list[int], repeat: int
) -> dict[str, Any]:
    sequential = [time_sync(api, base_url, zones) for _ in range(repeat)]
    seq_median = statistics.median(sequential)
    rows: dict[str, Any] = {
        "sequential": {"median_s": round(seq_median, 3), "runs_s": _rounded(sequential)}
    }
    for limit in limits:
        threads = [time_sync(api, base_url, zones, limit) for _ in range(repeat)]
        median = statistics.median(threads)
        rows[f"threads {limit}"] = {
            "max_concurrency": limit,
            "median_s": round(median, 3),
            "runs_s": _rounded(threads),
            "peak_in_flight": None,
            "speedup": round(seq_median / median, 1),
        }
        runs = [time_concurrent(api, base_url, zones, limit) for _ in range(repeat)]
        times = [t for t, _ in runs]
        median = statistics.median(times)
        rows[f"concurrent {limit}"] = {
            "max_concurrency": limit,
            "median_s": round(median, 3),
            "runs_s": _rounded(times),
            "peak_in_flight": max(p for _, p in runs),
            "speedup": round(seq_median / median, 1),
        }
    return rows


def _rounded(values: list[float]) -> list[float]:
    return [round(v, 3) for v in values]


# -- measurement 2: requests of a training -----------------------------------------------


def training_benchmark(
    api: FakeElectricityMaps,
    base_url: str,
    *,
    clients: int,
    zones: list[str],
    rounds: int,
    cache_ttl_s: float,
    seed: int,
) -> dict[str, Any]:
    """Run a training against the fake API; requests per endpoint and wall time."""
    clock = ManualClock(T0)
    api.now = clock.now
    api.reset()
    p = provider(base_url, clock, cache_ttl_s=cache_ttl_s)
    pool = [Client(f"c{n:03d}", zones[n % len(zones)]) for n in range(clients)]
    k = max(1, clients // 10)
    start = time.perf_counter()
    try:
        engine = SelectionEngine(
            p, rounds=rounds, clock=clock, seed=seed, ledger=Ledger(), default_fallback=False
        )
        fallbacks = 0
        for _ in range(rounds):
            decision = engine.select(pool, k)
            fallbacks += bool(decision.fallback)
            clock.advance(HOUR)
            engine.complete(decision)
    finally:
        p.close()
    elapsed = time.perf_counter() - start
    counts = api.reset()
    if fallbacks:
        raise SystemExit(f"{fallbacks} rounds fell back: the provider failed against the fake API")
    return {
        "cache_ttl_s": cache_ttl_s,
        "requests": sum(counts.values()),
        "by_endpoint": dict(sorted(counts.items())),
        "per_round": round(sum(counts.values()) / rounds, 1),
        "wall_s": round(elapsed, 1),
    }


# -- output ------------------------------------------------------------------------------


def render(report: dict[str, Any]) -> str:
    """The docs section (between the markers) of a report."""
    args = report["settings"]
    fetch = report["fetch"]
    seq = fetch["sequential"]["median_s"]
    load = report.get("load_average")
    shared = (
        f" Load average at the end of the run: {load[0]:.1f} (1 min), {load[2]:.1f} (15 min)."
        if load
        else ""
    )
    note = f" {report['note']}" if report.get("note") else ""
    lines = [
        BEGIN,
        "",
        "## Provider HTTP: concurrency and the response cache",
        "",
        f"Produced by `{report['command']}` on {report['machine']}, {report['date']}. The "
        "`electricitymaps` provider talks to a fake Electricity Maps v3 API on loopback "
        "(starlette + uvicorn in a thread, the documented response formats, synthetic "
        f"values) that waits **{args['latency_ms']:g} ms** before every answer and counts "
        "the requests it receives. Nothing leaves the machine; the real API's own latency "
        "and rate limits are not modelled." + shared + note,
        "",
        f"### {args['zones']} zones' forecasts: one request after another vs concurrently",
        "",
        f"One `forecast()` of {args['zones']} zones ({args['zones']} requests), wall time, "
        f"median of {args['repeat']} runs (fresh provider each run, `/zones` fetched "
        "before timing).",
        "",
        "| face | max in flight | median s | runs s | speedup |",
        "| --- | ---: | ---: | --- | ---: |",
        f"| sync, `max_concurrency=1` | 1 | {seq:.2f} | "
        f"{', '.join(f'{t:.2f}' for t in fetch['sequential']['runs_s'])} | 1.0x |",
    ]
    for name, row in fetch.items():
        if name == "sequential":
            continue
        face = (
            f"sync, `max_concurrency={row['max_concurrency']}` (threads)"
            if name.startswith("threads")
            else f"async `to_async(max_concurrency={row['max_concurrency']})`"
        )
        peak = (
            "≤ " + str(row["max_concurrency"])
            if row["peak_in_flight"] is None
            else row["peak_in_flight"]
        )
        lines.append(
            f"| {face} | "
            f"{peak} | {row['median_s']:.2f} | "
            f"{', '.join(f'{t:.2f}' for t in row['runs_s'])} | {row['speedup']:.1f}x |"
        )
    train = report["training"]
    lines += [
        "",
        f"### HTTP requests of a {args['rounds']}-round training",
        "",
        f"`SelectionEngine` (policy `lowcarb`, forecaster `best`), {args['clients']} clients "
        f"over {args['training_zones']} zones, {max(1, args['clients'] // 10)} per round, "
        f"{args['rounds']} hourly rounds on a `ManualClock` (select, one hour later "
        "`complete()`, which fetches the round's actual intensity).",
        "",
        "| cache | requests | per round | forecast | history | past-range | zones | wall s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in train.values():
        ep = row["by_endpoint"]
        ttl = row["cache_ttl_s"]
        name = f"`cache_ttl_s = {ttl:g}`" + (" (default)" if ttl == 1800 else "")
        lines.append(
            f"| {name if ttl else 'none (`cache_ttl_s = 0`)'} | {row['requests']:,} | "
            f"{row['per_round']:g} | {ep.get('forecast', 0):,} | {ep.get('history', 0):,} | "
            f"{ep.get('past-range', 0):,} | {ep.get('zones', 0):,} | {row['wall_s']:,.1f} |"
        )
    lines += ["", *reading(report)]
    off = train.get("no cache", {}).get("requests")
    if off:
        lines.append("")
        for row in train.values():
            if row["cache_ttl_s"]:
                saved = off - row["requests"]
                lines.append(
                    f"- `cache_ttl_s = {row['cache_ttl_s']:g}` saves {saved:,} of {off:,} "
                    f"requests ({saved / off:.0%})."
                )
    lines += ["", END]
    return "\n".join(lines)


def reading(report: dict[str, Any]) -> list[str]:
    """How to read the training table, with its own numbers."""
    args = report["settings"]
    rows = list(report["training"].values())
    uncached = next((r for r in rows if not r["cache_ttl_s"]), None)
    if uncached is None:
        return []
    per_zone = uncached["by_endpoint"].get("forecast", 0) / args["rounds"] / args["training_zones"]
    return [
        f"Without a cache the engine asks each zone's forecast {per_zone:.1f} times a round, "
        f"however many clients ({args['clients']} clients, {args['training_zones']} "
        "requests): it asks per zone, not per client. With rounds an hour apart, an "
        "answer cached for 30 minutes has expired by the next round, so the default cache "
        "saves what is asked twice *within* a round: the `/history` answer that serves "
        "both the actual intensity of the round just ended and the forecaster's newest "
        "hour (the forecaster reads history while the training's remaining rounds reach "
        "past the 72 h forecast). A longer TTL saves nothing more here: `/forecast` and "
        "`/history` reach from the API's current hour, so their answers are kept until the "
        "end of that hour at most (reused later, they would lack the newest hour); rounds "
        "shorter than an hour share them. The engine uses the sync face, whose thread "
        "pool sends each batch (one request per zone) at most 8 at a time.",
    ]


def write_docs(text: str) -> None:
    write_section(text, BEGIN, END, doc=DOC)  # DOC read at call time (tests replace it)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="HTTP requests and wall time of a network provider against a loopback API."
    )
    parser.add_argument("--zones", type=int, default=100, help="zones fetched at once (100)")
    parser.add_argument(
        "--concurrency",
        default="8,32",
        help="comma-separated max_concurrency values of the async face (default 8,32)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of each fetch (default 3)")
    parser.add_argument("--clients", type=int, default=100, help="training clients (100)")
    parser.add_argument(
        "--training-zones", type=int, default=14, help="zones of the training's clients (14)"
    )
    parser.add_argument("--rounds", type=int, default=96, help="hourly rounds (96: 4 days)")
    parser.add_argument(
        "--latency-ms", type=float, default=100.0, help="injected latency per request (100)"
    )
    parser.add_argument(
        "--cache-ttl",
        default="1800,7200,0",
        help="cache_ttl_s of each training run, comma-separated; 0: no cache (default 1800,7200,0)",
    )
    parser.add_argument("--seed", type=int, default=0, help="the engine's seed")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--report",
        type=Path,
        default=None,
        help="render a report saved with --json instead of measuring again",
    )
    parser.add_argument("--note", default="", help="a sentence added to the docs' intro")
    parser.add_argument(
        "--write-docs", action="store_true", help=f"write the table into {DOC.name}"
    )
    args = parser.parse_args(argv)
    try:
        args.limits = [int(v) for v in args.concurrency.split(",") if v.strip()]
    except ValueError:
        parser.error(f"--concurrency must be integers separated by commas: {args.concurrency!r}")
    try:
        args.cache_ttl = [float(v) for v in args.cache_ttl.split(",") if v.strip()]
    except ValueError:
        parser.error(f"--cache-ttl must be numbers separated by commas: {args.cache_ttl!r}")
    if not args.cache_ttl or not all(math.isfinite(t) and t >= 0 for t in args.cache_ttl):
        parser.error("--cache-ttl values must be numbers >= 0")
    if not args.limits or min(args.limits) < 1:
        parser.error("--concurrency values must be at least 1")
    for name in ("zones", "repeat", "clients", "training_zones", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.training_zones > len(TRAINING_ZONES):
        parser.error(f"--training-zones must be at most {len(TRAINING_ZONES)}")
    if not (math.isfinite(args.latency_ms) and args.latency_ms >= 0):
        parser.error("--latency-ms must be a number >= 0")
    return args


def training_runs(ttls: list[float]) -> list[tuple[str, float]]:
    """(row name, cache_ttl_s) of each training run."""
    return [(f"cache {ttl:g} s" if ttl else "no cache", ttl) for ttl in ttls]


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Both measurements; the report as a JSON-ready dict."""
    fetch_zones = [f"BZ-{n:03d}" for n in range(1, args.zones + 1)]
    training_zones = list(TRAINING_ZONES[: args.training_zones])
    clock = ManualClock(T0)
    api = FakeElectricityMaps(
        tuple(dict.fromkeys(fetch_zones + training_zones)), clock.now, args.latency_ms / 1e3
    )
    with serve(api) as base_url:
        fetch = fetch_benchmark(api, base_url, fetch_zones, args.limits, args.repeat)
        training = {
            name: training_benchmark(
                api,
                base_url,
                clients=args.clients,
                zones=training_zones,
                rounds=args.rounds,
                cache_ttl_s=ttl,
                seed=args.seed,
            )
            for name, ttl in training_runs(args.cache_ttl)
        }
    return {
        "settings": {
            "zones": args.zones,
            "concurrency": args.limits,
            "repeat": args.repeat,
            "clients": args.clients,
            "training_zones": args.training_zones,
            "rounds": args.rounds,
            "latency_ms": args.latency_ms,
            "seed": args.seed,
            "cache_ttl_s": args.cache_ttl,
        },
        "machine": (
            f"{os.cpu_count()} cores, Python {platform.python_version()}, {platform.machine()}"
        ),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "load_average": [round(v, 2) for v in os.getloadavg()] if LOADAVG else None,
        "fetch": fetch,
        "training": training,
    }


def shown_command(argv: list[str]) -> str:
    """The command line that reproduces the measurement (without --json and --note)."""
    shown: list[str] = []
    skip = False
    for arg in argv:
        if skip or arg == "--json" or arg.startswith("--note="):
            skip = False
            continue
        if arg == "--note":
            skip = True
            continue
        shown.append(arg)
    return " ".join(["python benchmarks/providers.py", *shown])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.report is not None:
        try:
            report = json.loads(args.report.read_text())
        except (OSError, ValueError) as exc:
            raise SystemExit(f"cannot read the report {args.report}: {exc}") from None
    else:
        report = run(args)
        report["command"] = shown_command(argv)
    if args.note:
        report["note"] = args.note
    report.setdefault("command", "python benchmarks/providers.py --write-docs")
    text = render(report)
    print(json.dumps(report) if args.json else text)
    if args.write_docs:
        write_docs(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
