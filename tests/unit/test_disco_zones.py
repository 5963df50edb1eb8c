"""Where a DISCO client's zone comes from: declared, mapped, or the task's default."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import msgpack
import websockets
from _disco_harness import TASK, closed_by_server, running_bridge


def test_zone_sources_in_order(tmp_path: Path) -> None:
    async def join(bridge, query: str = "", headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
        ws = await websockets.connect(
            bridge.ws(f"feai/{TASK}/{uuid.uuid4()}{query}"), additional_headers=headers or {}
        )
        await ws.send(msgpack.packb({"type": 0}))
        await ws.recv()
        return ws

    async def scenario() -> None:
        async with running_bridge(
            tmp_path, "v2", clients_per_round=1, min_clients=9, zone="GB", zones={"mapped": "SG"}
        ) as bridge:
            sockets = [
                await join(bridge, "?client=coords&zone=52.52,13.40"),
                await join(bridge, "?client=cloud&zone=aws:eu-central-1"),
                await join(bridge, "?client=header", {"X-Lowcarb-Zone": "de"}),
                await join(bridge, "?client=mapped"),
                await join(bridge, "?client=plain"),
                await join(bridge, "?client=elsewhere&zone=XX-NOWHERE"),
            ]
            zones = {m.id: m.zone for m in bridge.room.members.values()}
            assert zones == {
                "coords": "DE",
                "cloud": "DE",
                "header": "DE",
                "mapped": "SG",
                "plain": "GB",
                "elsewhere": "XX-NOWHERE",  # left to the engine's unknown-zone rule
            }
            # A second connection under a connected client's name is refused.
            twin = await websockets.connect(bridge.ws(f"feai/{TASK}/{uuid.uuid4()}?client=plain"))
            await twin.send(msgpack.packb({"type": 0}))
            closed = await closed_by_server(twin)
            assert closed.code == 1008 and "already connected" in closed.reason
            for ws in sockets:
                await ws.close()

    asyncio.run(scenario())
