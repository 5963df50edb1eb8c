"""The live dashboard: one page, its assets, and the state it polls, as Starlette routes.

``lowcarb dashboard`` serves them alone; ``lowcarb serve`` and ``lowcarb disco serve``
mount :func:`dashboard_routes` beside their own API. The page holds no data and no
secret: it fetches ``dashboard/api/state`` with the bearer token the person typed (kept in
the tab's session storage), and the state answers 401 without it when the server has a
token. Every asset is served from the package, nothing from the network.

The state is rebuilt only when the ledgers changed (their files' sizes and times, or on
every poll for a server's in-memory tasks), and the figures only when a task's rounds
did; a poll with the current ``ETag`` gets 304.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from lowcarb import (
    ConfigurationError,
    EmbodiedCarbon,
    InvalidInputError,
    LowcarbError,
    TaskEngines,
)
from lowcarb.report._account import build_report
from lowcarb.report._plots import render_plots
from lowcarb.report._source import EnginesSource, LedgerSource, RunSnapshot

__all__ = ["Dashboard", "dashboard_app", "dashboard_routes"]

#: Tasks the page shows in full (the others are listed by name).
MAX_TASKS_SHOWN = 24
#: Waiting clients listed per decision (the count says how many there are).
MAX_DEFERRED_SHOWN = 100
#: Files of the page, with their media types (nothing else is served).
ASSETS = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "lowcarb.css": "text/css; charset=utf-8",
}
#: What the page may load and run: its own script and style, nothing from elsewhere.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
# pyplot keeps global state: one figure is drawn at a time in this process.
_DRAWING = threading.Lock()


def _asset(name: str) -> bytes:
    return resources.files("lowcarb.report").joinpath(f"static/{name}").read_bytes()


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.astimezone(UTC).isoformat()


def _decision(snapshot: RunSnapshot) -> dict[str, Any] | None:
    """The last decision as the page shows it: who trains, who waits and until when, why."""
    d = snapshot.latest
    if d is None:
        return None
    record = next((r for r in reversed(snapshot.records) if r.round == d.round), None)
    waiting = [c for c in d.clients if not c.selected]
    waiting.sort(key=lambda c: (c.next_turn is None, c.next_turn or d.start, c.id))
    signal = d.signal
    return {
        "round": d.round,
        "decided_at": _iso(d.decided_at),
        "start": _iso(d.start),
        "end": _iso(d.end),
        "completed": record is not None and record.completed_at is not None,
        "reason": d.reason,
        "policy": d.policy,
        "expected_emissions_g": d.expected_emissions_g,
        "random_expected_g": d.random_expected_g,
        "selected": [
            {"id": c.id, "zone": c.zone, "intensity": c.intensity_g_per_kwh}
            for c in d.clients
            if c.selected
        ],
        "deferred_count": len(waiting),
        "deferred": [
            {
                "id": c.id,
                "zone": c.zone,
                "intensity": c.intensity_g_per_kwh,
                "next_turn": _iso(c.next_turn),
                "available": c.available,
            }
            for c in waiting[:MAX_DEFERRED_SHOWN]
        ],
        "signal": {
            "provider": signal.get("provider"),
            "kind": signal.get("kind"),
            "basis": signal.get("basis"),
            "synthetic": signal.get("synthetic"),
            "fallback": signal.get("fallback"),
            "sources": signal.get("sources") or {},
        },
    }


def _pause(snapshot: RunSnapshot) -> dict[str, Any] | None:
    """The latest decision to wait, if it came after the last round's decision."""
    if not snapshot.pauses:
        return None
    decided, until, reason = snapshot.pauses[-1]
    if snapshot.latest is not None and decided < snapshot.latest.decided_at:
        return None
    return {"decided_at": _iso(decided), "wait_until": _iso(until), "reason": reason}


class Dashboard:
    """The dashboard's state, cached between polls.

    Args:
        source: Where the tasks are read.
        token: The bearer token the state requires (None: open, e.g. on loopback).
        poll_seconds: How often the page asks for the state.
        embodied: Embodied carbon to include in the account (None: not included).
    """

    def __init__(
        self,
        source: LedgerSource,
        *,
        token: str | None = None,
        poll_seconds: float = 2.0,
        embodied: EmbodiedCarbon | None = None,
    ) -> None:
        if not 0.2 <= poll_seconds <= 3600:
            raise InvalidInputError(f"poll_seconds must be from 0.2 to 3600, got {poll_seconds!r}")
        self.source = source
        self.poll_seconds = poll_seconds
        self.embodied = embodied
        self._token = None if token is None else token.encode()
        self._lock = threading.Lock()
        self._version: str | None = None
        self._body = b""
        self._etag = ""
        self._figures: dict[str, tuple[tuple[Any, ...], dict[str, str]]] = {}

    def __repr__(self) -> str:
        return f"Dashboard({self.source!r}, auth={self._token is not None})"

    def authorized(self, header: str) -> bool:
        """Whether an ``Authorization`` header carries the token (always, without one)."""
        if self._token is None:
            return True
        scheme, _, given = header.partition(" ")
        # compare_digest takes the same time wherever the strings differ.
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), self._token
        )

    def _figures_of(self, snapshot: RunSnapshot, report: Mapping[str, Any]) -> dict[str, str]:
        records = snapshot.records
        key = (
            snapshot.origin,
            len(records),
            sum(r.completed_at is not None for r in records),
            max((r.completed_at for r in records if r.completed_at), default=None),
        )
        cached = self._figures.get(snapshot.task)
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            with _DRAWING:
                figures = render_plots(snapshot, report)
        except ConfigurationError as exc:
            # A server installed without the plot extra still shows every number.
            return {"missing": str(exc)}
        self._figures[snapshot.task] = (key, figures)
        return figures

    def _task(self, task: str) -> dict[str, Any]:
        try:
            snapshot = self.source.snapshot(task)
        except LowcarbError as exc:
            return {"task": task, "error": str(exc)}
        base = {"task": task, "origin": snapshot.origin, "pause": _pause(snapshot)}
        if not snapshot.records:
            return {**base, "empty": True, "rounds_planned": snapshot.config.get("rounds")}
        report = build_report(snapshot, embodied=self.embodied)
        return {
            **base,
            "empty": False,
            "run": report["run"],
            "account": {
                "emissions_g": report["sci"]["total_g"],
                "operational_g": report["sci"]["operational_g"],
                "energy_kwh": report["sci"]["energy_kwh"],
                "intensity_g_per_kwh": report["sci"]["intensity_g_per_kwh"],
                "per_round_g": report["sci"]["per_round_g"],
                "random_g": report["counterfactual"]["random_g"],
                "selection_g": report["counterfactual"]["selection_g"],
                "saving_g": report["counterfactual"]["saving_g"],
                "saving_share": report["counterfactual"]["saving_share"],
                "expected_g": report["forecast"]["expected_g"],
                "actual_share": report["forecast"]["actual_share"],
                "fallback_share": report["signal"]["fallback_share"],
                "participation": report["participation"],
            },
            "decision": _decision(snapshot),
            "figures": self._figures_of(snapshot, report),
        }

    def _build(self) -> dict[str, Any]:
        try:
            tasks = self.source.tasks()
            problem = None
        except LowcarbError as exc:
            tasks, problem = [], str(exc)
        shown = tasks[:MAX_TASKS_SHOWN]
        return {
            "generated_at": _iso(datetime.now(UTC)),
            "source": self.source.label,
            "poll_ms": int(self.poll_seconds * 1000),
            "error": problem,
            "tasks": [self._task(t) for t in shown],
            "more_tasks": tasks[MAX_TASKS_SHOWN:],
        }

    def state(self) -> tuple[str, bytes]:
        """The current state as (ETag, JSON body), rebuilt only when the ledgers changed.

        The ETag covers everything but the time of the state, so a poll gets 304 until
        something in a ledger changed, whether or not the state was rebuilt.
        """
        with self._lock:
            version = self.source.version()
            if version is None or version != self._version or not self._body:
                state = self._build()
                content = json.dumps({**state, "generated_at": None}, allow_nan=False)
                etag = '"' + hashlib.sha256(content.encode()).hexdigest()[:20] + '"'
                if etag != self._etag:
                    self._body = json.dumps(state, allow_nan=False).encode()
                    self._etag = etag
                self._version = version
            return self._etag, self._body


def dashboard_routes(
    source: LedgerSource | TaskEngines,
    *,
    token: str | None = None,
    poll_seconds: float = 2.0,
    embodied: EmbodiedCarbon | None = None,
) -> list[Any]:
    """The dashboard's routes: the page at ``/``, its assets and its state.

    Args:
        source: Where the tasks are read; a server passes its :class:`~lowcarb.TaskEngines`.
        token: The bearer token the state requires, as the server's API does.
        poll_seconds: How often the page polls.
        embodied: Embodied carbon to include in the account.

    Returns:
        Starlette routes to add to an application's routes.
    """
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    if isinstance(source, TaskEngines):
        source = EnginesSource(source)
    board = Dashboard(source, token=token, poll_seconds=poll_seconds, embodied=embodied)
    page = _asset("dashboard.html")

    async def index(request: Request) -> Response:
        return Response(page, media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS)

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in ASSETS:
            return JSONResponse({"error": "no such file"}, status_code=404)
        headers = {**SECURITY_HEADERS, "Cache-Control": "no-cache"}
        return Response(_asset(name), media_type=ASSETS[name], headers=headers)

    async def state(request: Request) -> Response:
        headers = {**SECURITY_HEADERS, "Cache-Control": "no-store"}
        if not board.authorized(request.headers.get("authorization", "")):
            return JSONResponse(
                {"error": "missing or wrong bearer token"},
                status_code=401,
                headers={**headers, "WWW-Authenticate": "Bearer"},
            )
        started = time.perf_counter()
        etag, body = await run_in_threadpool(board.state)
        headers.update(ETag=etag, **{"Server-Timing": f"state;dur={_ms(started)}"})
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/json", headers=headers)

    return [
        Route("/", index, methods=["GET"]),
        Route("/dashboard/static/{name}", asset, methods=["GET"]),
        Route("/dashboard/api/state", state, methods=["GET"]),
    ]


def _ms(started: float) -> str:
    return f"{(time.perf_counter() - started) * 1000:.1f}"


def dashboard_app(
    source: LedgerSource,
    *,
    token: str | None = None,
    poll_seconds: float = 2.0,
    embodied: EmbodiedCarbon | None = None,
) -> Any:
    """The dashboard alone as an ASGI application (what ``lowcarb dashboard`` runs)."""
    from starlette.applications import Starlette

    return Starlette(
        routes=dashboard_routes(source, token=token, poll_seconds=poll_seconds, embodied=embodied)
    )
