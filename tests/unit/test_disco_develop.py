"""The develop protocol at message level: pause/resume, aggregation, stale and future rounds."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgpack
import numpy as np
from _disco_harness import (
    TASK,
    DevelopClient,
    closed_by_server,
    decided,
    running_bridge,
    weights_of,
)

from lowcarb import Ledger


def test_clients_are_held_between_local_rounds_and_answered_only_when_selected(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with running_bridge(
            tmp_path, "develop", clients_per_round=2, min_clients=3, rounds=6
        ) as bridge:
            c1 = await DevelopClient.connect(bridge, "c1", "GB")
            c2 = await DevelopClient.connect(bridge, "c2", "DE")
            # A DISCO client trains its first local round on connecting, whatever the
            # welcome says: the welcome never asks it to wait.
            assert not c1.info["waitForMoreParticipants"]
            assert c1.info["round"] == 0 and c1.info["id"] == "c1"
            # Below the quorum, an update gets no answer but a pause: the client stops.
            await c1.send_update(weights_of(1.0))
            await c2.send_update(weights_of(2.0))
            for c in (c1, c2):
                await c._next()
                assert c.events == [7, 8] and c.paused
            c3 = await DevelopClient.connect(bridge, "c3", "SG")
            clients = {"c1": c1, "c2": c2, "c3": c3}
            values = {"c1": 1.0, "c2": 2.0, "c3": 4.0}
            # The quorum is there: the first round is decided (and closed at once if it
            # selected the two held updates).
            if bridge.room.round == 0 and "c3" in await decided(bridge.room):
                await c3.send_update(weights_of(values["c3"]))
            for _ in range(500):  # a hang bound: the round closes once its updates are in
                if bridge.room.round == 1:
                    break
                await asyncio.sleep(0.01)
            aggregate = bridge.room.history[0]
            first = frozenset(aggregate.selected)
            assert aggregate.contributors == tuple(sorted(first))
            mean = np.float32(np.mean([values[n] for n in sorted(first)]))
            assert all((w == mean).all() for w in bridge.room.weights)
            # The left-out update of a held client is booked as energy spent outside.
            assert set(aggregate.excluded) == {"c1", "c2"} - first
            second = await decided(bridge.room)
            for name in sorted(first):
                client = clients[name]
                if name in second:
                    reply = await client.answer()  # resumed (if held) and answered
                    assert reply["round"] == 1 and reply["nbOfParticipants"] == 2
                    assert all((w == mean).all() for w in reply["weights"])
                    assert client.events[-2:] == ([9, 11] if 8 in client.events else [11])
                else:
                    # Not selected again: held, with no answer (one pause at most).
                    if not client.paused:
                        await client._next()
                    assert client.paused and client.events.count(8) == 1
            for c in clients.values():
                await c.ws.close()

    asyncio.run(scenario())


def test_rounds_rotate_with_pause_and_resume_and_only_selected_updates_count(
    tmp_path: Path,
) -> None:
    local_rounds = 4
    sent: dict[str, list[tuple[int, float]]] = {"c1": [], "c2": [], "c3": []}
    seen: dict[int, list[np.ndarray]] = {}

    async def scenario() -> None:
        async with running_bridge(
            tmp_path, "develop", clients_per_round=2, min_clients=2, rounds=6
        ) as bridge:
            clients: dict[str, DevelopClient] = {}
            done: set[str] = set()
            finished = asyncio.Event()

            async def train(name: str, index: int) -> None:
                client = clients[name]
                step = 0
                while not finished.is_set():
                    step += 1
                    value = 100.0 * index + step  # unique per client and update
                    sent[name].append((client.round, value))
                    reply = await client.round_end(weights_of(value))
                    seen.setdefault(reply["round"], reply["weights"])
                    if step >= local_rounds:
                        done.add(name)
                        if len(done) == len(clients):
                            finished.set()

            for name, zone in [("c1", "GB"), ("c2", "DE"), ("c3", "SG")]:
                clients[name] = await DevelopClient.connect(bridge, name, zone)
            tasks = [asyncio.create_task(train(n, i)) for i, n in enumerate(clients)]
            waiter = asyncio.create_task(finished.wait())
            async with asyncio.timeout(120):  # a hang bound, not a timing assertion
                await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for t in [waiter, *tasks]:
                t.cancel()
            for t in tasks:  # a client that failed (e.g. a double pause) fails the test
                if t.done() and not t.cancelled() and t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]
            for c in clients.values():
                await c.ws.close()
            history = list(bridge.room.history)
            # The last aggregate's replies may still be in flight when the clients stop.
            seen.setdefault(bridge.room.round, bridge.room.weights)
            events = {n: c.events for n, c in clients.items()}

        assert len(history) >= 3
        for aggregate in history:
            assert set(aggregate.contributors) <= set(aggregate.selected)
            # The new global model is the mean of exactly the contributors' latest updates
            # for the round: values are unique, so any other update would show.
            expected = np.float32(
                np.mean(
                    [
                        [v for r, v in sent[c] if r == aggregate.round - 1][-1]
                        for c in aggregate.contributors
                    ]
                )
            )
            assert all((w == expected).all() for w in seen[aggregate.round]), aggregate
        # Deferral really happened: some client was told to wait after its welcome, and
        # was released again (the discipline itself is checked on every message).
        assert any(8 in e[1:] for e in events.values()), events
        assert any(9 in e for e in events.values()), events
        # Everyone took turns.
        for name in ("c1", "c2", "c3"):
            assert any(name in a.contributors for a in history), name
        with Ledger(tmp_path / "state" / f"{TASK}.ledger.sqlite") as ledger:
            ledger.check()
            records = {r.round: r for r in ledger.rounds(TASK)}
        for aggregate in history:
            recorded = {c.client_id for c in records[aggregate.engine_round].clients}
            assert recorded == set(aggregate.selected)

    asyncio.run(scenario())


def test_stale_update_gets_the_current_model_and_a_future_round_closes_the_client(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with running_bridge(
            tmp_path, "develop", clients_per_round=2, min_clients=2
        ) as bridge:
            c1 = await DevelopClient.connect(bridge, "c1")
            c2 = await DevelopClient.connect(bridge, "c2")
            first = await asyncio.gather(
                c1.round_end(weights_of(1.0)), c2.round_end(weights_of(3.0))
            )
            assert [r["round"] for r in first] == [1, 1]
            # A stale update (round 0, server at 1) is answered at once with round 1.
            stale = await c1.round_end(weights_of(50.0), round=0)
            assert stale["round"] == 1
            assert all((w == np.float32(2.0)).all() for w in stale["weights"])
            assert bridge.room.round == 1  # and it entered nothing
            # No client can be ahead of the server: that connection is closed with a reason.
            await c1.ws.send(
                msgpack.packb(
                    {"type": 10, "payload": c1.codec.encode_weights(weights_of(9.0)), "round": 7}
                )
            )
            closed = await closed_by_server(c1.ws)
            assert closed.code == 1008
            assert "round 7" in closed.reason
            # The other client keeps training: alone now, its update makes the next round.
            reply = await c2.round_end(weights_of(5.0))
            assert reply["round"] == 2
            assert all((w == np.float32(5.0)).all() for w in reply["weights"])
            assert bridge.room.history[-1].contributors == ("c2",)
            assert bridge.room.history[-1].missing == ("c1",)
            # Below the starting quorum now, yet the remaining client is selected, not held.
            for _ in range(200):  # the next decision runs after the reply went out
                if bridge.room.selected:
                    break
                await asyncio.sleep(0.02)
            assert bridge.room.selected == {"c2"} and not c2.paused
            await c2.ws.close()

    asyncio.run(scenario())
