"""Where a DISCO client's zone comes from: declared, mapped, or the task's default."""

from __future__ import annotations

import asyncio
import threading
import uuid
from pathlib import Path

import httpx
import msgpack
import websockets
from _disco_harness import TASK, closed_by_server, running_bridge

from lowcarb._zones import ZoneResolution
from lowcarb.backends import DefaultProvider


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


class _SlowLookup(DefaultProvider):
    """Resolves zones like a provider that asks its API (blocks until released)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered, self.release = threading.Event(), threading.Event()
        self.timed_out = False

    def resolve(self, location: str) -> ZoneResolution:
        if location == "slow-lookup":
            self.entered.set()
            # Bounded, so that a bridge blocking its event loop fails instead of hanging.
            self.timed_out = not self.release.wait(10.0)
            location = "DE"
        return super().resolve(location)


def test_a_slow_zone_lookup_does_not_stall_the_other_clients(tmp_path: Path) -> None:
    provider = _SlowLookup()

    async def scenario() -> None:
        async with running_bridge(
            tmp_path, "v2", provider=provider, clients_per_round=1, min_clients=1
        ) as bridge:
            slow = await websockets.connect(
                bridge.ws(f"feai/{TASK}/{uuid.uuid4()}?client=slow&zone=slow-lookup")
            )
            await slow.send(msgpack.packb({"type": 0}))
            while not provider.entered.is_set():
                await asyncio.sleep(0.01)
            # While the lookup runs, the bridge still answers everyone else.
            async with httpx.AsyncClient() as http:
                status = (await http.get(bridge.url + "lowcarb/status")).json()
            provider.release.set()
            assert status["tasks"][TASK]["connected"] == 0
            assert msgpack.unpackb(await slow.recv()) == {"type": 0}
            assert {m.id: m.zone for m in bridge.room.members.values()} == {"slow": "DE"}
            await slow.close()

    asyncio.run(scenario())
    assert not provider.timed_out
