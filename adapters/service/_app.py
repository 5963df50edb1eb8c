"""The Starlette application behind ``lowcarb serve``.

Every route answers JSON. Refusals carry ``{"error": ..., "field": ...}`` with the field
to blame (or null), so a client in any language can point at its mistake. The engine's
work runs in Starlette's thread pool; :class:`~lowcarb.TaskEngines` serializes the
rounds of one task and lets different tasks decide in parallel.

Input errors are 4xx, never 500: a bad field 422 (or 400 for malformed JSON), a task past
``max_tasks`` 403. A storage fault (read-only folder, full disk, a file that is not a
ledger) is 503 with a message that names the ledger's file but not the server's folders,
and ``/v1/health`` reports it until that task's ledger is written again. Health is
answered on the event loop, never waiting for the selection workers. An unexpected error
is a 500 that closes its connection (``Connection: close``).
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

import pandas as pd
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from lowcarb import (
    Client,
    Decision,
    LedgerError,
    RoundConflictError,
    SignalSource,
    TaskEngines,
    TaskLimitError,
    ZoneResolution,
    check_task_id,
    floor_time,
)
from lowcarb.adapters.service._openapi import openapi_document
from lowcarb.adapters.service._schema import (
    COMPLETE_REQUEST,
    SELECT_REQUEST,
    RequestError,
)
from lowcarb.exceptions import InvalidInputError, ProviderError, UnknownZoneError
from lowcarb.report import dashboard_routes

__all__ = ["ServiceConfig", "create_app"]

log = logging.getLogger("lowcarb.service")

Handler = Callable[[Request], Awaitable[Response]]
T = TypeVar("T")
_FORECAST_PARAMS = ("zone", "location", "hours")
#: How an HTTP caller lists the zones served (the core's messages name the CLI command).
ZONES_LISTING = "GET /v1/zones lists the zones served."
#: Most zones one forecast request may name.
MAX_FORECAST_ZONES = 50
#: ``hours`` as it may be written: ASCII digits only (``str.isdigit`` accepts "²").
_HOURS = re.compile(r"[0-9]{1,6}")
#: Storage faults listed in a health answer.
_FAULTS_SHOWN = 10


@dataclass(frozen=True, kw_only=True)
class ServiceConfig:
    """Limits and authentication of the service.

    Attributes:
        token: Bearer token every route but health and the OpenAPI document requires;
            None disables authentication (fine on loopback). Never shown in reprs.
        max_body_bytes: Largest request body accepted (bytes); larger ones get 413.
        max_candidates: Most candidates in one select request.
        max_forecast_hours: Longest forecast horizon served (hours).
        max_connections: Most open connections; past it a new connection displaces the
            one that has waited longest without sending a whole request, or (when every
            connection has a request in progress) is answered 503 and closed.
        request_timeout_s: Seconds a connection has to send a whole request (head and
            body), counted from its opening or from its previous response; past it the
            connection is answered 408 (or, mid-body, closed).
        max_header_bytes: Largest request head (request line and headers, bytes); a
            larger one is answered 431.
        keep_alive_s: Seconds an idle keep-alive connection is kept open.
    """

    token: str | None = field(default=None, repr=False)
    max_body_bytes: int = 1 << 20
    max_candidates: int = 10_000
    max_forecast_hours: int = 168
    max_connections: int = 200
    request_timeout_s: float = 10.0
    max_header_bytes: int = 16 * 1024
    keep_alive_s: int = 5

    def __post_init__(self) -> None:
        if self.token is not None and (not isinstance(self.token, str) or not self.token.strip()):
            raise InvalidInputError("the service token must be a non-empty string")
        for name in (
            "max_body_bytes",
            "max_candidates",
            "max_forecast_hours",
            "max_connections",
            "max_header_bytes",
            "keep_alive_s",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"{name} must be a positive integer, got {value!r}")
        value = self.request_timeout_s
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 3600:
            raise InvalidInputError(
                f"request_timeout_s must be a number of seconds in (0, 3600], got {value!r}"
            )

    @property
    def auth(self) -> bool:
        """Whether requests must carry the bearer token."""
        return self.token is not None


def _error(status: int, message: str, field: str | None = None, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message, "field": field}, status_code=status, headers=headers)


def _reject_constant(name: str) -> float:
    raise RequestError(f"body holds {name}, which JSON does not allow", status=400)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise RequestError(f"field {key!r} appears twice", field=key, status=400)
        out[key] = value
    return out


class _Service:
    """The route handlers, bound to one registry of task engines and one configuration."""

    def __init__(self, engines: TaskEngines, config: ServiceConfig) -> None:
        self.engines = engines
        self.config = config
        self._token = None if config.token is None else config.token.encode()
        self._signal: SignalSource | None = None
        self._signal_lock = threading.Lock()
        # Task -> the storage fault of its last write; cleared by its next good write.
        self._faults: dict[str, str] = {}
        self.document = openapi_document(config)

    # -- plumbing -----------------------------------------------------------------------------

    def _authorized(self, request: Request) -> bool:
        if self._token is None:
            return True
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        # compare_digest takes time independent of where the strings differ.
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), self._token
        )

    async def _json(self, request: Request) -> Any:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise RequestError("send the body as Content-Type: application/json", status=415)
        limit = self.config.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            raise RequestError(f"request body larger than {limit} bytes", status=413)
        body = bytearray()
        # Count what arrives too: a chunked body has no Content-Length to trust.
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise RequestError(f"request body larger than {limit} bytes", status=413)
        try:
            return json.loads(
                bytes(body), parse_constant=_reject_constant, object_pairs_hook=_no_duplicates
            )
        except RequestError:
            raise
        except RecursionError:
            raise RequestError("body is nested too deeply", status=400) from None
        except ValueError as exc:
            # Also integers longer than Python's int-parsing limit and bad UTF-8.
            raise RequestError(f"body is not valid JSON: {exc}", status=400) from None

    def endpoint(self, handler: Handler, *, public: bool = False) -> Handler:
        """Wrap a handler with authentication and the mapping of errors to answers."""

        async def wrapped(request: Request) -> Response:
            if not public and not self._authorized(request):
                return _error(
                    401, "missing or wrong bearer token", None, **{"WWW-Authenticate": "Bearer"}
                )
            where = f"{request.method} {request.url.path}"
            try:
                return await handler(request)
            except RequestError as exc:
                log.info("%s refused (%d): %s", where, exc.status, exc)
                return _error(exc.status, str(exc), exc.field)
            except TaskLimitError as exc:
                log.warning("%s refused: %s", where, exc)
                return _error(403, str(exc), "task")
            except ProviderError as exc:
                # Only when every fallback failed too; the message is already redacted.
                log.warning("%s: provider failed: %s", where, exc)
                return _error(503, f"no carbon signal available: {exc}")
            except LedgerError as exc:
                # The message names the ledger's file only; the operator's log has the path.
                log.error("%s: storage fault at %s: %s", where, exc.path, exc)
                return _error(503, f"task state cannot be stored: {exc}", None, **_RETRY)
            except InvalidInputError as exc:
                return _error(422, str(exc))
            except ClientDisconnect:
                log.info("%s: the client went away mid-request", where)
                return _error(400, "the request was not received whole", None, **_CLOSE)
            except Exception:
                # Answered here, not re-raised to the server (which would drop the
                # connection without a word): a 500 that closes its connection.
                log.exception("%s: internal error", where)
                return _error(500, "internal error; see the server log", None, **_CLOSE)

        return wrapped

    def _stored(self, task: str, work: Callable[[], T]) -> T:
        """Run ``work``, which writes ``task``'s ledger, keeping the task's fault state."""
        try:
            result = work()
        except LedgerError as exc:
            self._faults[task] = str(exc)
            raise
        self._faults.pop(task, None)
        return result

    # -- zones ----------------------------------------------------------------------------------

    def _resolve(self, text: str, where: str, *, strict: bool) -> ZoneResolution | None:
        """Resolve a zone id, name, coordinates or cloud region against the provider.

        Returns None for an unresolvable zone or location when not ``strict``: the engine
        then applies its rule for zones without a signal (the mean of the others).
        """
        try:
            return self.engines.provider.resolve(text)
        except UnknownZoneError as exc:
            if strict:
                raise RequestError(exc.message(ZONES_LISTING), field=where) from None
            return None
        except InvalidInputError as exc:  # e.g. coordinates out of range
            raise RequestError(f"{where}: {exc}", field=where) from None

    # -- routes ---------------------------------------------------------------------------------

    async def select(self, request: Request) -> Response:
        limit = self.config.max_candidates
        body = SELECT_REQUEST.parse(
            await self._json(request), limits={"candidates": limit, "k": limit}
        )
        seen: dict[str, int] = {}
        for i, cand in enumerate(body["candidates"]):
            if cand["id"] in seen:
                raise RequestError(
                    f"candidate id {cand['id']!r} appears twice (also at {seen[cand['id']]})",
                    field=f"candidates[{i}].id",
                )
            seen[cand["id"]] = i
        if body["k"] > len(body["candidates"]):
            raise RequestError(
                f"k={body['k']} but only {len(body['candidates'])} candidates were given",
                field="k",
            )
        return JSONResponse(await run_in_threadpool(self._select, body))

    def _select(self, body: dict[str, Any]) -> dict[str, Any]:
        task = body["task"]
        resolved: dict[tuple[str, str], ZoneResolution | None] = {}
        clients: list[Client] = []
        fields: dict[str, str] = {}  # zone -> the first field that named it
        notes: list[dict[str, Any]] = []
        strict = self.engines.spec_of(task).unknown_zone == "error"
        for i, cand in enumerate(body["candidates"]):
            kind = "zone" if "zone" in cand else "location"
            key = (kind, cand[kind])
            if key not in resolved:
                where = f"candidates[{i}].{kind}"
                # Zones and locations alike follow --unknown-zone: a 422, or the mean.
                resolved[key] = self._resolve(cand[kind], where, strict=strict)
            found = resolved[key]
            zone = cand[kind].strip() if found is None else found.zone
            fields.setdefault(zone, f"candidates[{i}].{kind}")
            if found is not None and found.method != "zone":
                notes.append({"id": cand["id"], **asdict(found)})
            clients.append(
                Client(
                    cand["id"],
                    zone,
                    energy_kwh=cand.get("energy_kwh"),
                    power_w=cand.get("power_w"),
                    utility=cand.get("utility", 0.0),
                )
            )
        try:
            selection = self._stored(
                task,
                lambda: self.engines.select(task, clients, body["k"], round=body.get("round")),
            )
        except RoundConflictError as exc:
            raise RequestError(str(exc), field="round", status=409) from None
        except UnknownZoneError as exc:
            raise RequestError(exc.message(ZONES_LISTING), field=fields.get(exc.zone)) from None
        return {
            "task": task,
            "replayed": selection.replayed,
            **_decision_payload(selection.decision),
            "resolved": notes,
        }

    async def complete(self, request: Request) -> Response:
        body = COMPLETE_REQUEST.parse(await self._json(request))
        return JSONResponse(await run_in_threadpool(self._complete, body))

    def _complete(self, body: dict[str, Any]) -> dict[str, Any]:
        task, number = body["task"], body["round"]
        if not self.engines.has_task(task):
            raise RequestError(f"unknown task {task!r}", field="task", status=404)
        try:
            decision = self.engines.decision(task, number)
        except RoundConflictError as exc:
            raise RequestError(str(exc), field="round", status=409) from None
        # Which client each energy may name is the decision's (the schema has checked the
        # values): blame the field here, so that nothing else is ever blamed on it.
        for name, allowed, role in (
            ("energy_kwh", decision.selected, "selected"),
            ("excluded_energy_kwh", decision.deferred, "a candidate left out"),
        ):
            for client in body.get(name) or {}:
                if client not in allowed:
                    raise RequestError(
                        f"client {client!r} was not {role} in round {number} of {task!r}",
                        field=f"{name}.{client}",
                    )
        try:
            record = self._stored(
                task,
                lambda: self.engines.complete(
                    task,
                    number,
                    energy_kwh=body.get("energy_kwh"),
                    metrics=body.get("metrics"),
                    actual=body.get("actual"),
                    excluded_energy_kwh=body.get("excluded_energy_kwh"),
                ),
            )
        except RoundConflictError as exc:
            raise RequestError(str(exc), field="round", status=409) from None
        return {
            "task": task,
            "round": number,
            "completed_at": None
            if record.completed_at is None
            else record.completed_at.isoformat(),
            "energy_kwh": record.energy_kwh,
            "emissions_g": record.emissions_g,
            "metrics": dict(record.metrics),
        }

    async def forecast(self, request: Request) -> Response:
        params = request.query_params
        for name in params:
            if name not in _FORECAST_PARAMS:
                raise RequestError(
                    f"unknown query parameter {name!r}; allowed: {', '.join(_FORECAST_PARAMS)}",
                    field=name,
                )
        hours_text = params.getlist("hours")
        if len(hours_text) > 1:
            raise RequestError("give hours once", field="hours")
        limit = self.config.max_forecast_hours
        hours = 24
        if hours_text:
            if not _HOURS.fullmatch(hours_text[0]) or not 1 <= int(hours_text[0]) <= limit:
                raise RequestError(f"hours must be an integer from 1 to {limit}", field="hours")
            hours = int(hours_text[0])
        asked = [("zone", z) for z in params.getlist("zone")]
        asked += [("location", z) for z in params.getlist("location")]
        if not asked:
            raise RequestError("name at least one zone (?zone=DE) or location", field="zone")
        if len(asked) > MAX_FORECAST_ZONES:
            raise RequestError(f"at most {MAX_FORECAST_ZONES} zones per request", field="zone")
        for kind, text in asked:
            if not text.strip() or len(text) > 256:
                raise RequestError(f"{kind} must be a non-empty string", field=kind)
        return JSONResponse(await run_in_threadpool(self._forecast, asked, hours))

    def _source(self) -> SignalSource:
        # The tasks' own chain and forecaster; a zone nobody serves is the caller's error.
        if self._signal is None:
            spec = self.engines.spec
            self._signal = SignalSource(
                self.engines.provider,
                forecaster=spec.build_forecaster(),
                use_provider_forecast=spec.forecaster is None,
                unknown_zone="error",
            )
        return self._signal

    def _forecast(self, asked: list[tuple[str, str]], hours: int) -> dict[str, Any]:
        resolutions = []
        for kind, text in asked:
            found = self._resolve(text, kind, strict=kind == "location")
            resolutions.append(found or ZoneResolution(text, text.strip(), "zone"))
        zones = list(dict.fromkeys(r.zone for r in resolutions))
        now = self.engines.clock.now()
        first = floor_time(now, timedelta(hours=1))
        starts = pd.date_range(first, periods=hours, freq="h")
        with self._signal_lock:  # the source caches history between calls
            try:
                signal = self._source().signal(zones, now, starts, timedelta(hours=1))
            except UnknownZoneError as exc:
                raise RequestError(exc.message(ZONES_LISTING), field="zone") from None
        stamps = [t.isoformat() for t in starts.to_pydatetime()]
        return {
            "zones": zones,
            "unit": "gCO2eq/kWh",
            "slot_minutes": 60,
            "provenance": signal.describe(),
            "resolved": [asdict(r) for r in resolutions if r.method != "zone"],
            "data": {
                zone: [
                    {"start": t, "g_co2_per_kwh": round(float(v), 3)}
                    for t, v in zip(stamps, signal.intensity[row], strict=True)
                ]
                for row, zone in enumerate(signal.zones)
            },
        }

    async def zones(self, request: Request) -> Response:
        if request.query_params:
            name = next(iter(request.query_params))
            raise RequestError(f"unknown query parameter {name!r}", field=name)
        return JSONResponse(await run_in_threadpool(self._zones))

    def _zones(self) -> dict[str, Any]:
        provider = self.engines.provider
        return {
            "provider": provider.name,
            "synthetic": provider.capabilities.synthetic,
            "zones": [
                {k: v for k, v in asdict(z).items() if k not in ("lat", "lon")}
                for z in provider.zones()
            ],
        }

    async def task(self, request: Request) -> Response:
        task = request.path_params["task"]
        try:
            check_task_id(task)
        except InvalidInputError as exc:
            raise RequestError(str(exc), field="task") from None
        return JSONResponse(await run_in_threadpool(self._task, task))

    def _task(self, task: str) -> dict[str, Any]:
        if not self.engines.has_task(task):
            raise RequestError(f"unknown task {task!r}", field="task", status=404)
        # Under the task's lock: an idle task's ledger may otherwise be closed meanwhile.
        with self.engines.session(task) as engine:
            summary = engine.summary()
            rounds_done, participation = engine.rounds_done, engine.participation
        return {
            "task": task,
            "rounds_done": rounds_done,
            "participation": participation,
            "energy_kwh": summary.energy_kwh,
            "emissions_g": summary.emissions_g,
            "excluded_energy_kwh": summary.excluded_energy_kwh,
            "excluded_emissions_g": summary.excluded_emissions_g,
            "random_g": summary.random_g,
            "saving_vs_random": summary.saving_vs_random,
            "fairness": summary.participation,
            "fallbacks": summary.fallbacks,
        }

    async def health(self, request: Request) -> Response:
        # Answered on the event loop from what is known: never waits for a worker thread
        # (they may all be busy with selections) or for the provider.
        from lowcarb import __version__

        faults = dict(self._faults)  # a copy is atomic; the workers update it
        shown = dict(sorted(faults.items())[:_FAULTS_SHOWN])
        return JSONResponse(
            {
                "status": "degraded" if faults else "ok",
                "version": __version__,
                "provider": self.engines.provider_name,
                "persistent": self.engines.persistent,
                "auth": self.config.auth,
                "tasks": len(self.engines.tasks()),
                "storage_faults": len(faults),
                "storage": shown,
            },
            status_code=503 if faults else 200,
        )

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(self.document)


def _decision_payload(decision: Decision) -> dict[str, Any]:
    data = decision.to_dict()
    return {
        "round": data["round"],
        "run_now": data["run_now"],
        "wait_until": data["wait_until"],
        "selected": data["selected"],
        "deferred": data["deferred"],
        "intensities": {c.zone: c.intensity_g_per_kwh for c in decision.clients},
        "expected_energy_kwh": data["expected_energy_kwh"],
        "expected_emissions_g": data["expected_emissions_g"],
        "random_expected_g": data["random_expected_g"],
        "reason": data["reason"],
        "policy": data["policy"],
        "decided_at": data["decided_at"],
        "start": data["start"],
        "end": data["end"],
        "provenance": data["signal"],
        "clients": data["clients"],
        "decision_ms": data["decision_ms"],
    }


_RETRY = {"Retry-After": "30"}
_CLOSE = {"Connection": "close"}


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = {404: "no such route", 405: "method not allowed"}.get(exc.status_code, exc.detail)
    return _error(exc.status_code, message, None, **(exc.headers or {}))


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.exception("%s %s: internal error", request.method, request.url.path, exc_info=exc)
    return _error(500, "internal error; see the server log", None, **_CLOSE)


def create_app(
    engines: TaskEngines, config: ServiceConfig | None = None, *, close_engines: bool = True
) -> Starlette:
    """Build the selection service's ASGI application.

    Args:
        engines: The per-task engines (give it a state directory to survive restarts).
        config: Limits and authentication; defaults to no token and 1 MiB bodies.
        close_engines: Close ``engines`` when the application shuts down.

    Returns:
        A Starlette application; run it with uvicorn, or ``lowcarb serve``.

    Example:
        >>> from lowcarb import TaskEngines
        >>> app = create_app(TaskEngines(provider="default"))
        >>> sorted(r.path for r in app.routes if r.path.startswith("/v1"))[:2]
        ['/v1/complete', '/v1/forecast']
    """
    service = _Service(engines, config or ServiceConfig())
    protected: list[tuple[str, Handler, str]] = [
        ("/v1/select", service.select, "POST"),
        ("/v1/complete", service.complete, "POST"),
        ("/v1/forecast", service.forecast, "GET"),
        ("/v1/zones", service.zones, "GET"),
        ("/v1/tasks/{task}", service.task, "GET"),
    ]
    public: list[tuple[str, Handler, str]] = [
        ("/v1/health", service.health, "GET"),
        ("/v1/openapi.json", service.openapi, "GET"),
    ]
    routes = [
        Route(path, service.endpoint(handler), methods=[method])
        for path, handler, method in protected
    ] + [
        Route(path, service.endpoint(handler, public=True), methods=[method])
        for path, handler, method in public
    ]
    # The live dashboard at /, its data behind the same token as the API.
    routes += dashboard_routes(engines, token=service.config.token)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if close_engines:
            engines.close()

    return Starlette(
        routes=routes,
        exception_handlers={HTTPException: _http_error, Exception: _internal_error},
        lifespan=lifespan,
    )
