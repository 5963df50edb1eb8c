"""The bridge as an ASGI application: DISCO's HTTP routes and its federated WebSocket.

Routes (both generations)::

    GET  /                         the live dashboard (lowcarb.report), its assets and state
    GET  /tasks                    the DISCO tasks (JSON)
    GET  /tasks/{id}/model.json    the current global model, in the generation's encoding
    POST /tasks                    405: tasks come from the --tasks folder only
    GET  /lowcarb/status           rounds, connected and held clients per task (JSON)
    GET  /lowcarb/tasks/{id}       a task's carbon and fairness account (JSON)
    GET  /lowcarb/tasks/{id}/rounds  every aggregate: selected, contributors, excluded
    WS   /feai/{id}/{clientID}     (v2)  or  /federated/{id}  (develop)

Every error is JSON (``{"error": ...}``), unknown routes and tasks included.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from lowcarb import TaskEngines
from lowcarb.adapters.disco._develop import Develop
from lowcarb.adapters.disco._protocol import (
    TRY_AGAIN_LATER,
    Generation,
    Identity,
    Janitor,
    Link,
    ProtocolViolation,
    check_name,
)
from lowcarb.adapters.disco._room import TaskRoom
from lowcarb.adapters.disco._taskdir import BridgeTask
from lowcarb.adapters.disco._v2 import V2
from lowcarb.exceptions import InvalidInputError
from lowcarb.report import dashboard_routes

__all__ = ["GENERATIONS", "BridgeLimits", "create_app"]

log = logging.getLogger("lowcarb.disco")

#: Seconds a DISCO v2 client waits for each reply before its training aborts.
_V2_REPLY_DEADLINE_S = 10.0

#: Protocol generations by their ``--protocol`` name.
GENERATIONS: dict[str, type[Generation]] = {"v2": V2, "develop": Develop}


@dataclass(frozen=True)
class BridgeLimits:
    """What one client may cost the bridge.

    Attributes:
        max_frame_bytes: Largest WebSocket frame accepted (also the server's limit).
        max_connections: Open WebSocket connections, over all tasks.
        hello_timeout: Seconds a new connection has to send its first message.
        round_timeout: Seconds a round waits for its selected clients. A selected
            client that sends nothing in that time is *idle*: the round closes without
            it, and it is not selected again until it sends an update.
        max_queued_bytes: Bytes of answers that may wait for one client to read them;
            a client that lets more pile up is disconnected (close code 1013).
        write_stall_s: Seconds a connection's send buffer may stay full (its client
            reading nothing) before the connection is dropped.
        decoders: Worker threads that decode large frames at once (over all clients).
        pace_s: Seconds a v2 client's statistics request, sent right after its update,
            may wait for the round to close (DISCO v2 clients give up after 10 s); and
            seconds a round whose selected updates are in waits for the updates of the
            v2 clients it left out (they train anyway; see :class:`TaskRoom`).
    """

    max_frame_bytes: int = 16 * 2**20
    max_connections: int = 256
    hello_timeout: float = 10.0
    round_timeout: float = 300.0
    max_queued_bytes: int = 48 * 2**20
    write_stall_s: float = 30.0
    decoders: int = 2
    pace_s: float = 6.0

    def __post_init__(self) -> None:
        for name in (
            "max_frame_bytes",
            "max_connections",
            "hello_timeout",
            "round_timeout",
            "max_queued_bytes",
            "write_stall_s",
            "decoders",
            "pace_s",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise InvalidInputError(f"{name} must be a positive number, got {value!r}")
        if self.pace_s >= _V2_REPLY_DEADLINE_S:
            raise InvalidInputError(
                f"pace_s must stay under DISCO v2's {_V2_REPLY_DEADLINE_S:g} s reply deadline, "
                f"got {self.pace_s!r}"
            )


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's errors (unknown route, wrong method) as JSON, like every other answer."""
    assert isinstance(exc, HTTPException)
    message = {404: "no such route", 405: "method not allowed"}.get(exc.status_code, exc.detail)
    return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)


def task_account(room: TaskRoom, state: Mapping[str, Any]) -> dict[str, Any]:
    """A task's carbon and fairness account, from its ledger, with the run's state.

    The fields of ``lowcarb serve``'s ``GET /v1/tasks/{task}``, and from ``state`` (the
    room's :meth:`~TaskRoom.status`): ``round`` (DISCO's), ``rounds`` (the run's cap),
    ``finished``, ``connected``, ``paused`` and ``after_end_updates`` (updates sent
    after the last round, in no aggregate).
    """
    task_id = room.task.id
    with room.engines.session(task_id) as engine:
        summary = engine.summary()
        rounds_done, participation = engine.rounds_done, engine.participation
    return {
        "task": task_id,
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
        "round": state["round"],
        "rounds": state["rounds"],
        "finished": state["finished"],
        "connected": state["connected"],
        "paused": state["paused"],
        "after_end_updates": state["after_end_updates"],
    }


def _identity(websocket: WebSocket) -> Identity:
    query, headers = websocket.query_params, websocket.headers
    name = query.get("client") or headers.get("x-lowcarb-client")
    zone = query.get("zone") or headers.get("x-lowcarb-zone")
    return Identity(
        name=None if name is None else check_name(name, "client name"),
        zone=None if zone is None else check_name(zone, "zone"),
    )


def create_app(
    tasks: Mapping[str, BridgeTask],
    engines: TaskEngines,
    *,
    protocol: str = "v2",
    limits: BridgeLimits | None = None,
    state_dir: Path | None = None,
    zone_map: Mapping[str, str] | None = None,
) -> Starlette:
    """Build the bridge's ASGI app.

    Args:
        tasks: The tasks served, by id (see :func:`load_tasks`).
        engines: Per-task selection engines (the caller closes them).
        protocol: ``v2`` or ``develop``.
        limits: Frame size, connection and timeout limits.
        state_dir: Where each task's global model (``<task>.model.npz``) is kept.
        zone_map: Client name or id -> zone, for every task.

    Raises:
        InvalidInputError: For an unknown protocol or a task of another generation.
    """
    if protocol not in GENERATIONS:
        raise InvalidInputError(
            f"protocol must be one of {', '.join(GENERATIONS)}, got {protocol!r}"
        )
    generation = GENERATIONS[protocol]()
    limits = limits or BridgeLimits()
    if isinstance(generation, V2):
        generation.pace_s = limits.pace_s
    for task in tasks.values():
        if task.generation != protocol:
            raise InvalidInputError(f"task {task.id!r} is a {task.generation} task, not {protocol}")
    rooms = {
        tid: TaskRoom(
            task,
            engines,
            round_timeout=limits.round_timeout,
            laggard_s=limits.pace_s,
            state_dir=state_dir,
            zone_map=zone_map,
        )
        for tid, task in tasks.items()
    }
    open_connections = 0
    # Large frames are decoded in worker threads, a few at a time over all clients.
    decoders = anyio.CapacityLimiter(limits.decoders)
    janitor = Janitor()
    # Task id -> (round, body, media type): every client fetches the model when it starts,
    # and encoding a large one takes seconds (v2 writes each byte as a JSON number).
    model_bodies: dict[str, tuple[int, bytes, str]] = {}

    async def list_tasks(request: Request) -> Response:
        return JSONResponse([t.disco for t in tasks.values()])

    async def upload_task(request: Request) -> Response:
        return JSONResponse(
            {"error": "this bridge serves the tasks of its --tasks folder; uploads are disabled"},
            status_code=405,
        )

    async def model(request: Request) -> Response:
        room = rooms.get(request.path_params["task_id"])
        if room is None:
            return JSONResponse({"error": "unknown task"}, status_code=404)
        if request.path_params["file"] not in ("model.json", "weights.bin"):
            return JSONResponse({"error": "only model.json is served"}, status_code=404)
        task_id, round_ = room.task.id, room.round
        cached = model_bodies.get(task_id)
        if cached is None or cached[0] != round_:
            # Encoded off the event loop, so that no client's 10 s reply deadline waits on it.
            body, media = await anyio.to_thread.run_sync(generation.model_body, room.artifacts())
            cached = model_bodies[task_id] = (round_, body, media)
        return Response(cached[1], media_type=cached[2])

    async def status(request: Request) -> Response:
        return JSONResponse(
            {
                "protocol": protocol,
                "connections": open_connections,
                "tasks": {tid: room.status() for tid, room in rooms.items()},
            }
        )

    async def rounds(request: Request) -> Response:
        room = rooms.get(request.path_params["task_id"])
        if room is None:
            return JSONResponse({"error": "unknown task"}, status_code=404)
        return JSONResponse([a.to_dict() for a in room.history])

    async def account(request: Request) -> Response:
        room = rooms.get(request.path_params["task_id"])
        if room is None:
            return JSONResponse({"error": "unknown task"}, status_code=404)
        state = room.status()  # on the event loop, which alone changes the room
        # The ledger is read under the task's lock, off the event loop.
        return JSONResponse(await anyio.to_thread.run_sync(task_account, room, state))

    async def federated(websocket: WebSocket) -> None:
        nonlocal open_connections
        await websocket.accept()
        if open_connections >= limits.max_connections:
            await websocket.close(
                TRY_AGAIN_LATER,
                f"the bridge holds {limits.max_connections} connections; retry later",
            )
            return
        open_connections += 1
        link = Link(
            websocket,
            generation,
            max_frame=limits.max_frame_bytes,
            hello_timeout=limits.hello_timeout,
            max_queued=limits.max_queued_bytes,
            decoders=decoders,
        )
        link.start()
        code, reason = 1000, ""
        try:
            room = rooms.get(websocket.path_params["task_id"])
            if room is None:
                raise ProtocolViolation(f"unknown task {websocket.path_params['task_id'][:40]!r}")
            await generation.session(
                link, room, _identity(websocket), websocket.path_params.get("client_id")
            )
        except ProtocolViolation as exc:
            log.warning("closing a %s connection: %s", protocol, exc.reason)
            code, reason = exc.code, exc.reason
        except WebSocketDisconnect:
            pass
        finally:
            open_connections -= 1
            await link.stop()
            # Bounded: a client that reads nothing is dropped by its write stall timer.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(websocket.close(code, reason), limits.write_stall_s + 5)
            janitor.closed(link)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        for room in rooms.values():
            await room.close()

    app = Starlette(
        routes=[
            Route("/tasks", list_tasks, methods=["GET"]),
            Route("/tasks", upload_task, methods=["POST"]),
            Route("/tasks/{task_id}/{file}", model, methods=["GET"]),
            Route("/lowcarb/status", status, methods=["GET"]),
            Route("/lowcarb/tasks/{task_id}", account, methods=["GET"]),
            Route("/lowcarb/tasks/{task_id}/rounds", rounds, methods=["GET"]),
            WebSocketRoute(generation.ws_path, federated),
            # The live dashboard at /: open, like the rest of the bridge.
            *dashboard_routes(engines),
        ],
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error},
    )
    app.state.rooms = rooms
    app.state.generation = generation
    return app


def room_of(app: Any, task_id: str) -> TaskRoom:
    """The room of a task in an app built by :func:`create_app` (tests, benchmarks)."""
    rooms: dict[str, TaskRoom] = app.state.rooms
    return rooms[task_id]
