"""A real bridge (uvicorn on loopback, in the test's event loop) and scripted DISCO clients.

The clients speak the wire protocol exactly as DISCO's do (msgpack frames, the same
message sequence), so the tests exercise the bridge at message level; the real npm
client runs in tests/interop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import uvicorn
import websockets
from websockets.asyncio.client import ClientConnection

from lowcarb import ManualClock
from lowcarb.adapters.disco import BridgeLimits, TaskRoom, create_app, load_tasks, open_engines
from lowcarb.adapters.disco._develop import Develop
from lowcarb.adapters.disco._server import bridge_config
from lowcarb.adapters.disco._v2 import V2
from lowcarb.backends import DefaultProvider

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "disco"
TASK = "lowcarb-tabular"
SHAPES = [(4, 8), (8,), (8, 1), (1,)]
#: Bound on any single wait for a message, so that a bug fails a test instead of hanging it.
WAIT_S = 20.0


def make_tasks(tmp: Path, protocol: str, **settings: Any) -> Path:
    """A copy of the example task for ``protocol``, with ``lowcarb.json`` replaced."""
    source = EXAMPLES / ("tasks" if protocol == "v2" else "tasks-develop") / TASK
    target = tmp / "tasks" / TASK
    shutil.copytree(source, target, dirs_exist_ok=True)
    (target / "lowcarb.json").write_text(json.dumps(settings))
    return tmp / "tasks"


def weights_of(value: float) -> list[np.ndarray]:
    """Model-shaped weights filled with ``value``."""
    return [np.full(shape, value, dtype=np.float32) for shape in SHAPES]


@dataclass
class Running:
    """A bridge serving in this event loop."""

    url: str
    room: TaskRoom
    state_dir: Path
    protocol: str

    def ws(self, path: str) -> str:
        return self.url.replace("http", "ws", 1) + path


@contextlib.asynccontextmanager
async def running_bridge(
    tmp: Path,
    protocol: str,
    limits: BridgeLimits | None = None,
    provider: DefaultProvider | None = None,
    **settings: Any,
) -> AsyncIterator[Running]:
    """Serve a task on 127.0.0.1 (free port) until the block ends."""
    tasks = load_tasks(make_tasks(tmp, protocol, **settings), protocol)
    clock = ManualClock(datetime(2024, 3, 1, 12, tzinfo=UTC))
    provider = provider or DefaultProvider(clock=clock)
    state = tmp / "state"
    engines = open_engines(tasks, provider, protocol=protocol, state_dir=state, clock=clock)
    limits = limits or BridgeLimits(hello_timeout=5.0, round_timeout=60.0)
    app = create_app(tasks, engines, protocol=protocol, limits=limits, state_dir=state)
    server = uvicorn.Server(bridge_config(app, limits, port=0, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
        if serving.done():
            serving.result()
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Running(f"http://127.0.0.1:{port}/", app.state.rooms[TASK], state, protocol)
    finally:
        server.should_exit = True
        await serving
        engines.close()


async def decided(room: TaskRoom) -> frozenset[str]:
    """The selection of the round in progress, once the engine has decided it."""
    async with asyncio.timeout(WAIT_S):
        while not room.selected:
            await asyncio.sleep(0.01)
    return room.selected


async def emptied(room: TaskRoom) -> None:
    """Return once every client has left and the room has finished handling it.

    A leave empties ``members`` first and then, under the room's lock, closes or
    abandons the round and completes it in the ledger: waiting for the lock as well
    keeps a reader from seeing the round half closed.
    """
    async with asyncio.timeout(WAIT_S):
        while room.members:
            await asyncio.sleep(0.01)
        async with room._lock:
            pass


@dataclass
class Closed:
    """How the server closed a connection."""

    code: int
    reason: str


async def closed_by_server(ws: ClientConnection) -> Closed:
    """Read until the server closes; returns its close code and reason."""
    with contextlib.suppress(websockets.ConnectionClosed):
        async with asyncio.timeout(WAIT_S):
            while True:
                await ws.recv()
    assert ws.close_code is not None
    return Closed(ws.close_code, ws.close_reason or "")


@dataclass
class V2Client:
    """Speaks v2 like @epfml/discojs-node@2.1.1: post, pull statistics, pull the round."""

    ws: ClientConnection
    round: int = 0
    codec: V2 = field(default_factory=V2)

    @classmethod
    async def connect(cls, bridge: Running, name: str, zone: str = "DE") -> V2Client:
        import uuid

        ws = await websockets.connect(
            bridge.ws(f"feai/{TASK}/{uuid.uuid4()}?client={name}&zone={zone}"), max_size=None
        )
        client = cls(ws)
        await client.send({"type": 0})
        assert (await client.recv())["type"] == 0
        return client

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(msgpack.packb(message, use_bin_type=True))

    async def recv(self) -> dict[str, Any]:
        async with asyncio.timeout(WAIT_S):
            frame = await self.ws.recv()
        assert isinstance(frame, bytes)
        message: dict[str, Any] = msgpack.unpackb(frame, raw=False)
        return message

    async def post(self, weights: list[np.ndarray], round: int | None = None) -> None:
        await self.send(
            {
                "type": 8,
                "weights": self.codec.encode_weights(weights),
                "round": self.round if round is None else round,
            }
        )

    async def statistics(self) -> dict[str, Any]:
        await self.send({"type": 13})
        reply = await self.recv()
        assert reply["type"] == 13
        stats: dict[str, Any] = reply["statistics"]
        return stats

    async def pull(self) -> tuple[int, list[np.ndarray]]:
        """latestServerRound; adopts a newer round as the client does."""
        await self.send({"type": 11})
        reply = await self.recv()
        assert reply["type"] == 11
        self.round = max(self.round, reply["round"])
        return reply["round"], self.codec.decode_weights(reply["weights"])

    async def local_round(self, weights: list[np.ndarray]) -> tuple[int, list[np.ndarray]]:
        """One round end of the v2 client: post, statistics, latest round."""
        await self.post(weights)
        await self.statistics()
        return await self.pull()


@dataclass
class DevelopClient:
    """Speaks develop like DISCO's October 2024 federated client, with its pause rules.

    Like DISCO's client, it forgets a pause (``WaitingForMoreParticipants``) only at the
    end of its next local round, after the resume: a second pause before that fails.
    """

    ws: ClientConnection
    info: dict[str, Any]
    round: int = 0
    paused: bool = False
    pause_pending: bool = False  # DISCO's promiseForMoreParticipants
    events: list[int] = field(default_factory=list)
    codec: Develop = field(default_factory=Develop)

    @classmethod
    async def connect(cls, bridge: Running, name: str, zone: str = "DE") -> DevelopClient:
        ws = await websockets.connect(
            bridge.ws(f"federated/{TASK}?client={name}&zone={zone}"), max_size=None
        )
        await ws.send(msgpack.packb({"type": 0}))
        async with asyncio.timeout(WAIT_S):
            info = msgpack.unpackb(await ws.recv(), raw=False)
        assert info["type"] == 7
        waits = info["waitForMoreParticipants"]
        client = cls(ws, info, round=info["round"], paused=waits, pause_pending=waits)
        client.events.append(7)
        return client

    async def _next(self) -> dict[str, Any]:
        """Next message, with the pause discipline a DISCO client enforces."""
        async with asyncio.timeout(WAIT_S):
            message: dict[str, Any] = msgpack.unpackb(await self.ws.recv(), raw=False)
        kind = message["type"]
        if kind == 8:
            # DISCO's client throws on a pause while the previous one is not forgotten.
            assert not self.pause_pending, f"second WaitingForMoreParticipants: {self.events}"
            self.paused = self.pause_pending = True
        elif kind == 9:
            assert self.paused, f"EnoughParticipants while running: {self.events}"
            self.paused = False
        self.events.append(kind)
        return message

    async def send_update(self, weights: list[np.ndarray], round: int | None = None) -> None:
        """The end of a local round: wait while held, then send the update."""
        while self.paused:
            await self._next()
        self.pause_pending = False
        payload = self.codec.encode_weights(weights)
        sent = self.round if round is None else round
        await self.ws.send(msgpack.packb({"type": 10, "payload": payload, "round": sent}))

    async def answer(self) -> dict[str, Any]:
        """Wait (held or not) for ReceiveServerPayload, as the client does after sending."""
        while True:
            message = await self._next()
            if message["type"] == 11:
                self.round = max(self.round, message["round"])
                message["weights"] = self.codec.decode_weights(message["payload"])
                return message

    async def round_end(
        self, weights: list[np.ndarray], round: int | None = None
    ) -> dict[str, Any]:
        """Send the update, wait for ReceiveServerPayload."""
        await self.send_update(weights, round)
        return await self.answer()
