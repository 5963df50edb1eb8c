"""Three unmodified DISCO develop clients, built from DISCO's source, train on the bridge.

Deferred clients must really stop: held between two local rounds, they train nothing
until a round selects them. The run is the same run after run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from _develop_clients import check_held_clients_rest, run_clients
from _disco_bridge import EXAMPLES, start_bridge

from lowcarb import Ledger

pytestmark = pytest.mark.interop

TASK = "lowcarb-tabular"
#: The example task: 6 rounds of 2 of the 3 clients, 5 local rounds per client.
ROUNDS, K, LOCAL_ROUNDS = 6, 2, 5


def _run(build: Path, state: Path) -> dict[str, Any]:
    bridge = start_bridge(EXAMPLES / "tasks-develop", state, "develop")
    try:
        results = run_clients(build, bridge.url, TASK)
        account = httpx.get(bridge.url + f"lowcarb/tasks/{TASK}").json()
    finally:
        log = bridge.stop()
    assert "Traceback" not in log
    with Ledger(state / f"{TASK}.ledger.sqlite") as ledger:
        ledger.check()
        records = ledger.rounds(TASK)
    return {"results": results, "records": records, "account": account}


def test_develop_clients_rest_while_deferred_and_runs_repeat(
    develop_build: Path, tmp_path: Path
) -> None:
    runs = [_run(develop_build, tmp_path / f"run{i}") for i in (1, 2)]
    for run in runs:
        results, records, account = run["results"], run["records"], run["account"]
        # The run's 6 rounds, each of the 2 selected clients' updates only.
        aggregates = [r.details["disco"] for r in records]
        assert [a["round"] for a in aggregates] == list(range(1, ROUNDS + 1))
        for record, a in zip(records, aggregates, strict=True):
            assert a["contributors"] == a["selected"] and len(a["selected"]) == K
            assert {c.client_id for c in record.clients} == set(a["selected"])
        assert account["finished"] and account["round"] == ROUNDS
        # Every client took its fair share: 6 rounds x 2 of 3 clients = 4.
        assert account["participation"] == {"c1": 4, "c2": 4, "c3": 4}
        # Held clients really stop: no local round, no answer from a pause to its resume,
        # and DISCO's client reports "not enough participants" meanwhile.
        holds = check_held_clients_rest(results)
        assert holds >= 3  # each client sits out 2 of the 6 rounds
        for name, result in results.items():
            assert result["rounds"] == LOCAL_ROUNDS, name  # its task's 5 local rounds
            assert result["id"] == name
            # Its last answer is the server's final model, round and participants.
            assert result["round"] == ROUNDS
            assert result["participants"] == len(aggregates[-1]["contributors"])
            # Every answer it got is a state the server was in.
            served = {0: 1} | {a["round"]: len(a["contributors"]) for a in aggregates}
            for event in (e for e in result["events"] if e["kind"] == "reply"):
                assert served.get(event["round"]) == event["participants"], (name, event)
        # Energy: the ledger books no training for a client-round in which the client was
        # held. Only a first local round (trained on connecting, before any decision)
        # can be left out; and local rounds after the last round are counted apart.
        local_rounds = sum(r["rounds"] for r in results.values())
        left_out = sum(sum(a["excluded"].values()) for a in aggregates)
        for record, a in zip(records, aggregates, strict=True):
            assert {c.client_id for c in record.excluded} == set(a["excluded"])
            assert all(n == 1 and a["round"] == 1 for n in a["excluded"].values()), a
            assert a["stale"] == 0
        after_end = int(records[-1].metrics.get("after_end_updates", 0))
        assert after_end == account["after_end_updates"]
        assert local_rounds == ROUNDS * K + left_out + after_end
    # Run after run: the same selections, the same contributors.
    first, second = ([r.details["disco"]["selected"] for r in run["records"]] for run in runs)
    assert first == second
