"""Hostile and broken clients: each is closed with a reason; the others keep training."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path
from typing import Any

import httpx
import msgpack
import numpy as np
import pytest
import websockets
from _disco_harness import (
    TASK,
    Running,
    V2Client,
    closed_by_server,
    decided,
    running_bridge,
    weights_of,
)

from lowcarb import Ledger
from lowcarb.adapters.disco import BridgeLimits
from lowcarb.adapters.disco._v2 import V2

LIMITS = BridgeLimits(
    max_frame_bytes=64 * 1024, max_connections=8, hello_timeout=1.0, round_timeout=60
)


def _pack(message: Any) -> bytes:
    return bytes(msgpack.packb(message, use_bin_type=True))


async def _offend(
    bridge: Running, frames: list[bytes | str], path: str | None = None
) -> tuple[int, str]:
    """Connect, send ``frames`` (a hello first when the list starts with one), read the close."""
    ws = await websockets.connect(bridge.ws(path or f"feai/{TASK}/{uuid.uuid4()}"), max_size=None)
    for frame in frames:
        await ws.send(frame)
        if frame == _pack({"type": 0}):
            with contextlib.suppress(websockets.ConnectionClosed):
                await ws.recv()  # the acknowledgement
    closed = await closed_by_server(ws)
    return closed.code, closed.reason


async def _ledger_ok(bridge: Running) -> list[Any]:
    with Ledger(bridge.state_dir / f"{TASK}.ledger.sqlite") as ledger:
        ledger.check()
        return ledger.rounds(TASK)


@pytest.mark.slow
def test_bad_frames_close_only_the_offender(tmp_path: Path) -> None:
    hello = _pack({"type": 0})
    bad_shape = V2().encode_weights([np.ones(2, dtype=np.float32)])
    nan = V2().encode_weights(
        [np.full(s, np.nan, dtype=np.float32) for s in [(4, 8), (8,), (8, 1), (1,)]]
    )
    good_weights = V2().encode_weights(weights_of(1.0))
    cases: list[tuple[list[bytes | str], str | None, int, str]] = [
        ([b"\xc1\xc1"], None, 1007, "malformed msgpack"),
        (["hello"], None, 1003, "binary msgpack"),
        ([_pack([1, 2, 3])], None, 1007, "must be a map"),
        ([_pack({"type": 5})], None, 1008, "not a federated v2 message"),
        (
            [_pack({"type": 8, "weights": [], "round": 0})],
            None,
            1008,
            "first message must be clientConnected",
        ),
        ([hello, _pack({"type": 8, "weights": "x", "round": 0})], None, 1008, "needs weights"),
        (
            [hello, _pack({"type": 8, "weights": good_weights, "round": True})],
            None,
            1008,
            "integer round",
        ),
        ([hello, _pack({"type": 8, "weights": [300, 1], "round": 0})], None, 1007, "byte values"),
        ([hello, _pack({"type": 8, "weights": bad_shape, "round": 0})], None, 1007, "tensors"),
        ([hello, _pack({"type": 8, "weights": nan, "round": 0})], None, 1007, "NaN"),
        (
            [hello, _pack({"type": 8, "weights": good_weights, "round": 10**6})],
            None,
            1008,
            "round 1000000",
        ),
        ([hello, hello], None, 1008, "twice"),
        ([b"\x00" * (100 * 1024)], None, 1009, ""),
        ([hello], f"feai/no-such-task/{uuid.uuid4()}", 1008, "unknown task"),
        ([hello], f"feai/{TASK}/not-a-uuid", 1008, "UUID"),
        ([hello], f"feai/{TASK}/{uuid.uuid4()}?zone=..%2Fetc", 1008, "zone"),
        ([], None, 1008, "no message within"),
    ]

    async def scenario() -> None:
        async with running_bridge(
            tmp_path, "v2", LIMITS, clients_per_round=2, min_clients=2
        ) as bridge:
            g1 = await V2Client.connect(bridge, "g1", "GB")
            g2 = await V2Client.connect(bridge, "g2", "SG")
            assert bridge.room.selected == {"g1", "g2"}
            await g1.post(weights_of(1.0))
            # Offenders come and go while the round is open, one after another.
            for frames, path, code, reason in cases:
                got = await _offend(bridge, frames, path)
                assert got[0] == code and reason in got[1], (frames[:1], got)
            await g2.post(weights_of(3.0))
            await g2.statistics()
            round_, weights = await g2.pull()
            assert round_ == 1
            assert all((w == np.float32(2.0)).all() for w in weights)
            # A client lagging far behind is not an offence: its update is stale, ignored.
            await g1.post(weights_of(99.0), round=0)
            await g1.pull()
            await g1.post(weights_of(99.0), round=0)
            stats = await g1.statistics()
            assert stats["round"] == 1 and stats["totalNumberOfParticipants"] == 2
            aggregate = bridge.room.history[0]
            assert aggregate.contributors == ("g1", "g2") and not aggregate.excluded
            assert len(bridge.room.history) == 1 and bridge.room.members.keys() == {"g1", "g2"}
            records = await _ledger_ok(bridge)
            assert {c.client_id for c in records[0].clients} == {"g1", "g2"}
            assert records[0].metrics["contributors"] == 2
            await g1.ws.close()
            await g2.ws.close()

    asyncio.run(scenario())


def test_a_selected_client_vanishing_mid_round_leaves_the_others_training(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_bridge(
            tmp_path, "v2", LIMITS, clients_per_round=2, min_clients=3
        ) as bridge:
            clients = {
                n: await V2Client.connect(bridge, n, z)
                for n, z in [("a", "GB"), ("b", "DE"), ("c", "SG")]
            }
            selected = sorted(bridge.room.selected)
            (left,) = set(clients) - set(selected)
            gone, stays = selected
            await clients[left].post(weights_of(500.0))  # not selected: left out
            await clients[gone].ws.close()  # vanishes before posting
            await clients[stays].post(weights_of(7.0))
            await clients[stays].statistics()
            round_, weights = await clients[stays].pull()
            assert round_ == 1
            assert all((w == np.float32(7.0)).all() for w in weights)
            aggregate = bridge.room.history[0]
            assert aggregate.contributors == (stays,)
            assert aggregate.missing == (gone,)
            assert aggregate.excluded == {left: 1}
            assert aggregate.closed_by == "departures"
            records = await _ledger_ok(bridge)
            assert records[0].metrics["excluded_updates"] == 1
            # The energy is in the run's footprint, under the left-out client, priced by
            # the core at the intensity the decision used for its zone.
            (spent,) = records[0].excluded
            assert spent.client_id == left and spent.energy_kwh > 0
            assert spent.emissions_g == pytest.approx(spent.energy_kwh * spent.intensity_used)
            assert records[0].metrics["missing"] == 1
            # The aggregate is part of the ledger's record of the round, not a side file.
            assert records[0].details["disco"]["contributors"] == [stays]
            assert not list(bridge.state_dir.glob("*.jsonl"))
            for name in (left, stays):
                await clients[name].ws.close()

    asyncio.run(scenario())


def test_a_round_times_out_with_the_updates_it_has(tmp_path: Path) -> None:
    limits = BridgeLimits(max_frame_bytes=64 * 1024, hello_timeout=1.0, round_timeout=0.3)

    async def scenario() -> None:
        async with running_bridge(
            tmp_path, "v2", limits, clients_per_round=2, min_clients=2
        ) as bridge:
            g1 = await V2Client.connect(bridge, "g1")
            g2 = await V2Client.connect(bridge, "g2")
            await g1.post(weights_of(4.0))  # g2 stays connected but silent
            for _ in range(200):  # polls the real timer; bounded
                if bridge.room.round:
                    break
                await asyncio.sleep(0.05)
            round_, weights = await g1.pull()
            assert round_ == 1 and all((w == np.float32(4.0)).all() for w in weights)
            assert bridge.room.history[0].closed_by == "timeout"
            assert bridge.room.history[0].missing == ("g2",)
            await g1.ws.close()
            await g2.ws.close()

    asyncio.run(scenario())


@pytest.mark.slow
def test_a_flood_of_connections_is_turned_away_and_training_goes_on(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_bridge(
            tmp_path, "v2", LIMITS, clients_per_round=2, min_clients=2
        ) as bridge:
            g1 = await V2Client.connect(bridge, "g1")
            g2 = await V2Client.connect(bridge, "g2")
            # Six silent sockets fill the remaining slots; the next ones are turned away.
            idle = [
                await websockets.connect(bridge.ws(f"feai/{TASK}/{uuid.uuid4()}"))
                for _ in range(LIMITS.max_connections - 2)
            ]
            flood = await asyncio.gather(*(_offend(bridge, []) for _ in range(20)))
            assert all(code == 1013 and "retry later" in reason for code, reason in flood)
            await g1.post(weights_of(1.0))
            await g2.post(weights_of(2.0))
            round_, weights = await g2.pull()  # after its own post: same connection, in order
            assert round_ == 1 and all((w == np.float32(1.5)).all() for w in weights)
            # The silent ones are closed when their hello does not come.
            for ws in idle:
                closed = await closed_by_server(ws)
                assert closed.code == 1008 and "no message within" in closed.reason
            await _ledger_ok(bridge)
            await g1.ws.close()
            await g2.ws.close()

    asyncio.run(scenario())


def test_http_routes(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with (
            running_bridge(tmp_path, "v2", LIMITS, clients_per_round=2, min_clients=2) as bridge,
            httpx.AsyncClient(base_url=bridge.url) as http,
        ):
            tasks = (await http.get("tasks")).json()
            assert [t["taskID"] for t in tasks] == [TASK]
            assert (await http.get("tasks/nope/model.json")).status_code == 404
            assert (await http.get(f"tasks/{TASK}/secrets.txt")).status_code == 404
            assert (await http.post("tasks", json={"task": {}})).status_code == 405
            g1 = await V2Client.connect(bridge, "g1")
            g2 = await V2Client.connect(bridge, "g2")
            await g1.post(weights_of(1.0))
            await g2.post(weights_of(3.0))
            await g2.pull()
            body = (await http.get(f"tasks/{TASK}/model.json")).json()
            artifacts = msgpack.unpackb(bytes(body), raw=False)
            served = np.frombuffer(artifacts["weightData"].data, dtype="<f4")
            assert (served == np.float32(2.0)).all()  # the served model is the aggregate
            status = (await http.get("lowcarb/status")).json()
            assert status["tasks"][TASK]["round"] == 1
            await g1.ws.close()
            await g2.ws.close()

    asyncio.run(scenario())


def test_a_restarted_bridge_resumes_the_model_the_round_and_the_ledger(tmp_path: Path) -> None:
    async def first() -> None:
        async with running_bridge(
            tmp_path, "v2", LIMITS, clients_per_round=2, min_clients=2
        ) as bridge:
            g1 = await V2Client.connect(bridge, "g1")
            g2 = await V2Client.connect(bridge, "g2")
            await g1.post(weights_of(1.0))
            await g2.post(weights_of(2.0))
            assert (await g2.pull())[0] == 1
            await decided(bridge.room)  # round 2 is decided (it is opened in the background)
            await g1.ws.close()
            await g2.ws.close()

    async def second() -> None:
        async with running_bridge(
            tmp_path, "v2", LIMITS, clients_per_round=2, min_clients=2
        ) as bridge:
            assert bridge.room.round == 1
            assert all((w == np.float32(1.5)).all() for w in bridge.room.weights)
            assert bridge.room.statistics()["totalNumberOfParticipants"] == 2
            g1 = await V2Client.connect(bridge, "g1")
            g2 = await V2Client.connect(bridge, "g2")
            assert (await g1.pull())[0] == 1  # a client joining now starts from round 1
            await g1.post(weights_of(3.0))
            await g2.post(weights_of(3.0), round=1)
            assert (await g2.pull())[0] == 2
            await decided(bridge.room)
            records = await _ledger_ok(bridge)
            # The engine continued its run: round 2 was opened before the shutdown and
            # abandoned without updates; round 3 is this aggregate; 4 is open now.
            assert [r.round for r in records] == [1, 2, 3, 4]
            assert records[1].metrics["contributors"] == 0
            assert records[1].energy_kwh == 0  # an abandoned round trained nothing
            assert records[0].energy_kwh > 0
            assert bridge.room.history[-1].engine_round == 3
            await g1.ws.close()
            await g2.ws.close()

    asyncio.run(first())
    asyncio.run(second())


def test_a_restart_continues_from_the_saved_model_and_the_ledger(tmp_path: Path) -> None:
    async def round_of(value: float, expected_round: int) -> list[int]:
        async with running_bridge(
            tmp_path, "v2", LIMITS, clients_per_round=2, min_clients=2
        ) as bridge:
            g1 = await V2Client.connect(bridge, "g1")
            g2 = await V2Client.connect(bridge, "g2")
            await g1.pull()
            await g2.pull()
            await g1.post(weights_of(value))
            await g2.post(weights_of(value))
            assert (await g2.pull())[0] == expected_round
            await g1.ws.close()
            await g2.ws.close()
            return [a.round for a in bridge.room.history]

    assert asyncio.run(round_of(1.0, 1)) == [1]
    # The restarted bridge knows the first aggregate from the ledger alone.
    assert asyncio.run(round_of(2.0, 2)) == [1, 2]
    state = tmp_path / "state"
    assert sorted(p.name for p in state.iterdir() if not p.name.endswith(("-wal", "-shm"))) == [
        f"{TASK}.ledger.sqlite",
        f"{TASK}.model.npz",
        "lowcarb.lock",
    ]


@pytest.mark.slow  # the round waits out its timeout for the late update (about 6 s)
def test_late_updates_of_clients_left_out_count_in_the_footprint(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_bridge(
            tmp_path, "v2", LIMITS, clients_per_round=1, min_clients=2
        ) as bridge:
            clients = {n: await V2Client.connect(bridge, n) for n in ("g1", "g2")}
            (first,) = bridge.room.selected
            await clients[first].post(weights_of(1.0))
            await clients[first].statistics()  # replies come in order: the post is judged
            assert bridge.room.round == 1
            (chosen,) = await decided(bridge.room)
            (other,) = set(clients) - {chosen}
            # A v2 client outside the selection trained on the old model and posts late:
            # its update is stale and left out, and its energy was spent all the same.
            await clients[other].post(weights_of(5.0), round=0)
            await clients[other].statistics()  # the post has been judged
            await clients[chosen].post(weights_of(2.0), round=1)
            await clients[chosen].statistics()
            aggregate = bridge.room.history[-1]
            assert aggregate.contributors == (chosen,)
            assert aggregate.excluded == {other: 1} and aggregate.stale == 1
            record = (await _ledger_ok(bridge))[aggregate.engine_round - 1]
            assert record.metrics["excluded_updates"] == 1
            assert [c.client_id for c in record.excluded] == [other]
            assert record.excluded_energy_kwh > 0 and record.excluded_emissions_g > 0
            for client in clients.values():
                await client.ws.close()

    asyncio.run(scenario())


def test_the_served_model_is_encoded_once_per_round(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoded: list[int] = []
    encode = V2.model_body

    def counting(self: V2, artifacts: Any) -> tuple[bytes, str]:
        encoded.append(1)
        return encode(self, artifacts)

    monkeypatch.setattr(V2, "model_body", counting)

    async def fetch(http: httpx.AsyncClient) -> np.ndarray:
        body = (await http.get(f"tasks/{TASK}/model.json")).json()
        data = msgpack.unpackb(bytes(body), raw=False)["weightData"].data
        return np.frombuffer(data, dtype="<f4")

    async def scenario() -> None:
        async with (
            running_bridge(tmp_path, "v2", LIMITS, clients_per_round=2, min_clients=2) as bridge,
            httpx.AsyncClient(base_url=bridge.url) as http,
        ):
            first = [await fetch(http) for _ in range(3)]
            assert len(encoded) == 1 and all((f == first[0]).all() for f in first)
            g1 = await V2Client.connect(bridge, "g1")
            g2 = await V2Client.connect(bridge, "g2")
            await g1.post(weights_of(1.0))
            await g2.post(weights_of(3.0))
            await g2.pull()
            assert (await fetch(http) == np.float32(2.0)).all()  # a new round, a new model
            assert (await fetch(http) == np.float32(2.0)).all()
            assert len(encoded) == 2
            await g1.ws.close()
            await g2.ws.close()

    asyncio.run(scenario())
