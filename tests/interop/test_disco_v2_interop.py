"""Three unmodified DISCO clients (npm @epfml/discojs-node@2.1.1) train on the bridge.

A run is the same run after run: the task's rounds, each client its fair share.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest
from _disco_bridge import EXAMPLES, start_bridge

from lowcarb import Ledger

pytestmark = pytest.mark.interop

TASK = "lowcarb-tabular"
CLIENTS = [("c1", "DE"), ("c2", "GB"), ("c3", "SG")]
#: The example task's rounds (its lowcarb.json).
ROUNDS = 6


def _statistics_at(aggregates: list[dict], round_: int) -> dict:
    """The statistics DISCO's server reports once ``round_`` aggregates exist."""
    done = [a for a in aggregates if a["round"] <= round_]
    total = sum(len(a["contributors"]) for a in done)
    return {
        "round": round_,
        "currentNumberOfParticipants": len(done[-1]["contributors"]) if done else 0,
        "totalNumberOfParticipants": total,
        "averageNumberOfParticipants": total / round_ if round_ else 0,
    }


def _run(node_fixture: Path, state: Path) -> dict:
    bridge = start_bridge(EXAMPLES / "tasks", state)
    driver = node_fixture / "driver.js"
    procs = [
        subprocess.Popen(
            [
                "node",
                str(driver),
                bridge.url,
                TASK,
                str(EXAMPLES / "data" / f"client-{i + 1}.csv"),
                name,
                zone,
            ],
            cwd=node_fixture,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, (name, zone) in enumerate(CLIENTS)
    ]
    try:
        outputs = [p.communicate(timeout=300) for p in procs]  # a hang bound
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        served = httpx.get(bridge.url + f"lowcarb/tasks/{TASK}/rounds").json()
        account = httpx.get(bridge.url + f"lowcarb/tasks/{TASK}").json()
        log = bridge.stop()
    for proc, (out, err), (name, _) in zip(procs, outputs, CLIENTS, strict=True):
        assert proc.returncode == 0, f"client {name} failed:\n{out[-2000:]}\n{err[-4000:]}"
    assert "Traceback" not in log
    results = {}
    for out, _ in outputs:
        line = next(ln for ln in out.splitlines() if ln.startswith("LOWCARB_RESULT "))
        result = json.loads(line.removeprefix("LOWCARB_RESULT "))
        results[result["name"]] = result
    with Ledger(state / f"{TASK}.ledger.sqlite") as ledger:
        ledger.check()
        records = {r.round: r for r in ledger.rounds(TASK)}
    return {"results": results, "served": served, "account": account, "records": records}


def test_three_disco_clients_train_their_fair_share_run_after_run(
    node_fixture: Path, tmp_path: Path
) -> None:
    runs = [_run(node_fixture, tmp_path / f"run{i}") for i in (1, 2)]
    for run in runs:
        results, served, account, records = (
            run["results"],
            run["served"],
            run["account"],
            run["records"],
        )
        # The task's 6 rounds and no more (the clients have an update to spare).
        logged = [r.details["disco"] for r in records.values()]
        assert logged == served
        assert [a["round"] for a in served] == list(range(1, ROUNDS + 1))
        assert account["finished"] and account["round"] == ROUNDS
        # Each client is selected its fair share (6 rounds x 2 of 3 = 4), and each of its
        # turns holds its update: none ends a run with its updates left out.
        assert account["participation"] == {"c1": 4, "c2": 4, "c3": 4}
        for name, _ in CLIENTS:
            assert sum(name in a["contributors"] for a in served) == 4, name
        for a in served:
            record = records[a["engine_round"]]
            assert a["contributors"] == a["selected"] == sorted(c.client_id for c in record.clients)
            # v2 clients cannot be held: the one left out trained anyway, once per round,
            # and its energy is in this round's footprint, priced by the core.
            assert a["excluded"] == {n: 1 for n, _ in CLIENTS if n not in a["selected"]}
            assert {c.client_id for c in record.excluded} == set(a["excluded"])
            assert record.excluded_energy_kwh > 0 and record.excluded_emissions_g > 0
            assert record.metrics["excluded_updates"] == 1
        # Updates sent after the last round enter nothing, and are counted in it.
        after = int(records[max(records)].metrics.get("after_end_updates", 0))
        assert after == account["after_end_updates"]
        # Each client ends at the server's last round, its statistics the server's.
        for name, result in results.items():
            assert result["round"] == ROUNDS, name
            assert result["statistics"] == _statistics_at(served, ROUNDS), name
    # Run after run: the same rounds, selections, contributors and left-out updates.
    first, second = (
        [(a["round"], a["selected"], a["contributors"], a["excluded"]) for a in run["served"]]
        for run in runs
    )
    assert first == second
