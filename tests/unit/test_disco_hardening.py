"""The DISCO bridge under hostile load: decoding bombs, clients that never read, members
that never train. Each costs the bridge a bounded amount, and the others keep training."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
import websockets
from _disco_harness import (
    TASK,
    WAIT_S,
    V2Client,
    closed_by_server,
    running_bridge,
    weights_of,
)

from lowcarb.adapters.disco import BridgeLimits, ProtocolViolation
from lowcarb.adapters.disco._v2 import V2

HELLO = msgpack.packb({"type": 0})


def _bomb(size: int, element: bytes) -> bytes:
    """A postWeightsToServer frame whose weights are ``size`` copies of one msgpack item."""
    count = size // len(element)
    return (
        b"\x83\xa4type\x08\xa5round\x00\xa7weights\xdd" + count.to_bytes(4, "big") + element * count
    )


async def _until(check: Any, what: str) -> None:
    """Wait (bounded by WAIT_S) until ``check()`` holds."""
    async with asyncio.timeout(WAIT_S):
        while not check():
            await asyncio.sleep(0.02)


def test_decoding_bombs_are_refused_while_good_clients_train(tmp_path: Path) -> None:
    limits = BridgeLimits(max_frame_bytes=4 * 2**20, hello_timeout=5.0, round_timeout=60)
    bombs = [
        _bomb(4 * 2**20 - 64, b"\x90"),  # empty arrays: 56 bytes each as Python lists
        _bomb(4 * 2**20 - 64, b"\xe0"),  # negative ints: 28 bytes each as Python ints
        _bomb(4 * 2**20 - 64, b"\xa2ab"),  # two-letter strings
        # A field that is decoded (taskId), nested past the container budget.
        b"\x82\xa4type\x0a\xa6taskId" + b"\x91" * 100 + b"\xc0",
    ]

    async def scenario() -> None:
        async with running_bridge(tmp_path, "v2", limits, clients_per_round=2) as bridge:
            good = [await V2Client.connect(bridge, f"g{i}", "GB") for i in range(2)]

            async def attack(frame: bytes) -> tuple[int, str]:
                path = bridge.ws(f"feai/{TASK}/{uuid.uuid4()}")
                ws = await websockets.connect(path, max_size=None)
                await ws.send(HELLO)
                await ws.recv()
                await ws.send(frame)
                closed = await closed_by_server(ws)
                return closed.code, closed.reason

            # All at once, while the good clients run a round.
            attacks = [asyncio.create_task(attack(frame)) for frame in bombs]
            for client in good:
                await client.post(weights_of(1.0))
            rounds = [await client.pull() for client in good]
            results = await asyncio.gather(*attacks)
            assert [code for code, _ in results] == [1007, 1007, 1007, 1007]
            assert "byte values" in results[0][1] and "byte values" in results[1][1]
            assert "more than 64 arrays" in results[3][1]
            assert max(r for r, _ in rounds) == 1
            assert bridge.room.history[-1].contributors == ("g0", "g1")

    asyncio.run(scenario())


def test_a_client_that_never_reads_is_dropped_and_costs_little(tmp_path: Path) -> None:
    limits = BridgeLimits(
        hello_timeout=5.0, round_timeout=60, max_queued_bytes=128 * 1024, write_stall_s=1.0
    )

    async def scenario() -> None:
        async with running_bridge(tmp_path, "v2", limits, clients_per_round=1) as bridge:
            good = await V2Client.connect(bridge, "good", "GB")
            path = bridge.ws(f"feai/{TASK}/{uuid.uuid4()}?client=greedy")
            # A client that stops reading: websockets pauses its socket after one message.
            greedy = await websockets.connect(path, max_size=None, max_queue=1)
            await greedy.send(HELLO)
            await _until(lambda: "greedy" in bridge.room.members, "greedy joined")
            pull = msgpack.packb({"type": 11})
            metadata = msgpack.packb(
                {"type": 10, "taskId": TASK, "metadataId": "m", "metadata": "x" * 60_000}
            )
            with contextlib.suppress(websockets.ConnectionClosed, OSError):
                for i in range(20_000):  # each pull is answered with the whole model
                    await greedy.send(metadata if i % 50 == 0 else pull)
            await _until(lambda: "greedy" not in bridge.room.members, "greedy dropped")
            # The good client is served as before.
            assert (await good.local_round(weights_of(2.0)))[0] == 1
            await greedy.close()

    asyncio.run(scenario())


def test_metadata_is_not_echoed(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_bridge(tmp_path, "v2", clients_per_round=1) as bridge:
            client = await V2Client.connect(bridge, "c", "GB")
            await client.send(
                {
                    "type": 10,
                    "taskId": TASK,
                    "clientId": "c",
                    "round": 0,
                    "metadataId": "m",
                    "metadata": "x" * 100_000,
                    "extra": list(range(60)),
                }
            )
            frame = await client.ws.recv()
            assert isinstance(frame, bytes) and len(frame) < 200
            reply = msgpack.unpackb(frame, raw=False)
            assert reply == {
                "type": 10,
                "taskId": TASK,
                "clientId": "c",
                "round": 0,
                "metadataId": "m",
                "metadataMap": [],
            }

    asyncio.run(scenario())


@pytest.mark.slow
def test_members_that_never_train_stop_holding_the_rounds(tmp_path: Path) -> None:
    limits = BridgeLimits(hello_timeout=5.0, round_timeout=0.5)

    async def scenario() -> None:
        async with running_bridge(
            tmp_path, "v2", limits, clients_per_round=2, min_clients=2
        ) as bridge:
            # Six clients say hello and never post: they join before the real ones.
            silent = []
            for i in range(6):
                ws = await websockets.connect(
                    bridge.ws(f"feai/{TASK}/{uuid.uuid4()}?client=silent{i}&zone=DE"),
                    max_size=None,
                )
                await ws.send(HELLO)
                await ws.recv()
                silent.append(ws)
            real = [await V2Client.connect(bridge, f"r{i}", "GB") for i in range(2)]
            done: list[tuple[str, ...]] = []
            for value in range(1, 40):  # bounded: the round must get through far sooner
                for client in real:
                    await client.post(weights_of(float(value)))
                    await client.statistics()
                    await client.pull()
                done = [a.contributors for a in bridge.room.history]
                if len(done) >= 2:
                    break
                await asyncio.sleep(0.3)
            assert len(done) >= 2
            assert all(set(c) <= {"r0", "r1"} for c in done)
            status = bridge.room.status()
            assert set(status["idle"]) <= {f"silent{i}" for i in range(6)} and status["idle"]
            # An idle member that trains counts again.
            revived = status["idle"][0]
            index = int(revived.removeprefix("silent"))
            blob = V2Client(silent[index]).codec.encode_weights(weights_of(3.0))
            await silent[index].send(
                msgpack.packb({"type": 8, "weights": blob, "round": bridge.room.round})
            )
            await _until(lambda: revived not in bridge.room.status()["idle"], "revived")
            for ws in silent:
                await ws.close()

    asyncio.run(scenario())


def test_update_weights_decode_only_as_many_numbers_as_the_model_has() -> None:
    codec = V2()
    shapes = [(4, 8), (8,), (8, 1), (1,)]
    good = codec.encode_weights([np.ones(s, dtype=np.float32) for s in shapes])
    assert [w.shape for w in codec.decode_weights(good, shapes)] == shapes
    # More tensors, or a tensor with more numbers, than the model: refused unread.
    huge = codec.encode_weights([np.ones(100_000, dtype=np.float32)])
    with pytest.raises(ProtocolViolation, match="1 tensors, the model has 4"):
        codec.decode_weights(huge, shapes)
    bigger = codec.encode_weights([np.ones((400, 8), dtype=np.float32), *good_tail(shapes)])
    with pytest.raises(ProtocolViolation, match=r"tensor 0 has shape \[400, 8\]"):
        codec.decode_weights(bigger, shapes)


def good_tail(shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
    return [np.ones(s, dtype=np.float32) for s in shapes[1:]]
