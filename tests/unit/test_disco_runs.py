"""What a bridge run does: its rounds cap, v2 pacing, the account and JSON errors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import numpy as np
import pytest
from _disco_harness import (
    TASK,
    DevelopClient,
    V2Client,
    decided,
    emptied,
    running_bridge,
    weights_of,
)

from lowcarb import Ledger
from lowcarb.adapters.disco import BridgeLimits
from lowcarb.exceptions import InvalidInputError


def _records(state: Path) -> list:
    with Ledger(state / f"{TASK}.ledger.sqlite") as ledger:
        ledger.check()
        return ledger.rounds(TASK)


def test_a_run_ends_after_its_rounds_and_later_updates_are_counted_in_the_last(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with running_bridge(
            tmp_path, "develop", clients_per_round=2, min_clients=2, rounds=2
        ) as bridge:
            c1 = await DevelopClient.connect(bridge, "c1")
            c2 = await DevelopClient.connect(bridge, "c2")
            for value in (1.0, 3.0):
                replies = await asyncio.gather(
                    c1.round_end(weights_of(value)), c2.round_end(weights_of(value + 1))
                )
            assert [r["round"] for r in replies] == [2, 2]
            assert bridge.room.finished and bridge.room.selected == frozenset()
            # The run is over: an update is answered at once with the final model and
            # enters nothing.
            late = await c1.round_end(weights_of(99.0))
            assert late["round"] == 2
            assert all((w == np.float32(3.5)).all() for w in late["weights"])
            assert bridge.room.round == 2 and len(bridge.room.history) == 2
            assert bridge.room.after_end == {"c1": 1}
            await c1.ws.close()
            await c2.ws.close()
            for _ in range(500):  # a hang bound: the room books them once it empties
                if not bridge.room.members:
                    break
                await asyncio.sleep(0.01)

        records = _records(tmp_path / "state")
        assert [r.round for r in records] == [1, 2]  # no third round was decided
        assert records[-1].metrics["after_end_updates"] == 1
        assert records[-1].metrics["after_end_energy_kwh"] > 0
        assert records[-1].details["disco_after_end"] == {"c1": 1}

    asyncio.run(scenario())


def test_v2_clients_are_answered_once_their_round_closes(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_bridge(
            tmp_path, "v2", clients_per_round=2, min_clients=2, rounds=6
        ) as bridge:
            g1 = await V2Client.connect(bridge, "g1")
            g2 = await V2Client.connect(bridge, "g2")
            await g1.post(weights_of(1.0))
            # g1 asks for statistics right after posting, as DISCO v2 does: the answer
            # waits for the round, which waits for g2's update.
            asked = asyncio.create_task(g1.statistics())
            done, _ = await asyncio.wait([asked], timeout=0.5)
            assert not done, "answered before its round closed"
            await g2.post(weights_of(3.0))
            stats = await asked
            assert stats["round"] == 1 and stats["currentNumberOfParticipants"] == 2
            # Answered at once when the update is for a round already closed (stale).
            await g2.post(weights_of(5.0), round=0)
            assert (await g2.statistics())["round"] == 1
            await g1.ws.close()
            await g2.ws.close()

    asyncio.run(scenario())


def test_a_v2_round_books_the_left_out_update_and_waits_for_it_a_bounded_time(
    tmp_path: Path,
) -> None:
    limits = BridgeLimits(hello_timeout=5.0, round_timeout=60.0, pace_s=0.5)

    async def scenario() -> None:
        async with running_bridge(
            tmp_path, "v2", limits, clients_per_round=1, min_clients=2, rounds=6
        ) as bridge:
            g1 = await V2Client.connect(bridge, "g1", "GB")
            g2 = await V2Client.connect(bridge, "g2", "SG")
            chosen = next(iter(await decided(bridge.room)))
            clients = {"g1": g1, "g2": g2}
            left_out = "g2" if chosen == "g1" else "g1"
            await clients[chosen].post(weights_of(1.0))
            await clients[left_out].post(weights_of(7.0))
            # The left-out v2 client trained anyway: its update is booked in this round.
            for _ in range(500):  # a hang bound
                if bridge.room.history:
                    break
                await asyncio.sleep(0.01)
            first = bridge.room.history[0]
            assert first.contributors == (chosen,) and first.excluded == {left_out: 1}
            assert all((w == np.float32(1.0)).all() for w in bridge.room.weights)
            # A left-out client that sends nothing holds the round for pace_s at most,
            # and is idle (no candidate) until it sends again.
            second = await decided(bridge.room)
            idle = next(iter({"g1", "g2"} - second))
            await clients[next(iter(second))].post(weights_of(2.0), round=1)
            for _ in range(500):  # a hang bound, not a timing assertion
                if len(bridge.room.history) == 2:
                    break
                await asyncio.sleep(0.01)
            assert bridge.room.history[1].excluded == {}
            assert bridge.room.status()["idle"] == [idle]
            await g1.ws.close()
            await g2.ws.close()

    asyncio.run(scenario())


def test_the_order_clients_connect_in_changes_no_decision(tmp_path: Path) -> None:
    async def first_selection(tmp: Path, names: list[str]) -> frozenset[str]:
        zones = {"a": "GB", "b": "DE", "c": "SG", "d": "FR"}
        async with running_bridge(
            tmp, "develop", clients_per_round=2, min_clients=4, rounds=4
        ) as bridge:
            clients = [await DevelopClient.connect(bridge, n, zones[n]) for n in names]
            selected = await decided(bridge.room)
            for c in clients:
                await c.ws.close()
            return selected

    async def scenario() -> None:
        forward = await first_selection(tmp_path / "1", ["a", "b", "c", "d"])
        backward = await first_selection(tmp_path / "2", ["d", "c", "b", "a"])
        assert forward == backward

    asyncio.run(scenario())


def test_every_route_answers_json_and_the_account_is_the_ledgers(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with (
            running_bridge(
                tmp_path, "develop", clients_per_round=2, min_clients=2, rounds=6
            ) as bridge,
            httpx.AsyncClient(base_url=bridge.url) as http,
        ):
            for method, path, status in [
                ("GET", "nope", 404),
                ("GET", "lowcarb/tasks/nope", 404),
                ("GET", "lowcarb/tasks/nope/rounds", 404),
                ("GET", "tasks/nope/model.json", 404),
                ("POST", "lowcarb/status", 405),
                ("DELETE", f"lowcarb/tasks/{TASK}", 405),
            ]:
                answer = await http.request(method, path)
                assert answer.status_code == status, path
                assert answer.headers["content-type"] == "application/json", path
                assert isinstance(answer.json()["error"], str)
            c1 = await DevelopClient.connect(bridge, "c1", "GB")
            c2 = await DevelopClient.connect(bridge, "c2", "SG")
            await asyncio.gather(c1.round_end(weights_of(1.0)), c2.round_end(weights_of(2.0)))
            # Both leave before sending round 2's updates: that round is abandoned.
            await c1.ws.close()
            await c2.ws.close()
            await emptied(bridge.room)
            assert bridge.room.selected == frozenset()
            account = (await http.get(f"lowcarb/tasks/{TASK}")).json()
        summary_fields = {"energy_kwh", "emissions_g", "random_g", "saving_vs_random"}
        assert summary_fields <= set(account)
        assert account["task"] == TASK and account["round"] == 1 and account["rounds"] == 6
        # Round 2 was decided, and nobody trained in it: the selected keep their share.
        assert account["rounds_done"] == 2
        assert account["participation"] == {"c1": 1, "c2": 1}
        assert account["fairness"]["jain"] == 1.0
        records = _records(tmp_path / "state")
        assert records[1].clients == () and records[1].energy_kwh == 0
        assert account["energy_kwh"] == pytest.approx(sum(r.energy_kwh for r in records))
        assert not account["finished"] and account["after_end_updates"] == 0

    asyncio.run(scenario())


def test_pacing_stays_under_the_v2_reply_deadline() -> None:
    with pytest.raises(InvalidInputError, match="10 s"):
        BridgeLimits(pace_s=10.0)
