"""DISCO's own server, with the hook of docs/service.md, asks `lowcarb serve` who trains.

The server is DISCO's develop server built from its source with examples/disco/hook
applied (the hook module itself is the one docs/service.md shows: tests/unit checks
that byte for byte); the clients are unmodified DISCO develop clients.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from _develop_clients import check_held_clients_rest, run_clients
from _disco_bridge import EXAMPLES, NOW, free_port

from lowcarb import Ledger

pytestmark = pytest.mark.interop

TASK = "lowcarb-tabular"
SERVER = Path(__file__).parent / "develop" / "disco_server.mjs"
_AGGREGATED = re.compile(r"lowcarb: round (\d+) aggregates ([0-9a-f,-]+)")


def _wait_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(600):  # start-up, not a timed assertion
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not start: {log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_disco_server_aggregates_exactly_whom_lowcarb_serve_selects(
    develop_build: Path, hooked_disco_server: Path, tmp_path: Path
) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LOWCARB_")}
    service_port, disco_port = free_port(), free_port()
    state = tmp_path / "service"
    service_log, disco_log = tmp_path / "service.log", tmp_path / "disco.log"
    with service_log.open("wb") as out:
        service = subprocess.Popen(
            [
                *(sys.executable, "-m", "lowcarb", "--now", NOW, "serve"),
                *("--port", str(service_port), "--state-dir", str(state), "--rounds", "6"),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=clean,
        )
    try:
        _wait_up(f"http://127.0.0.1:{service_port}/v1/health", service, service_log)
        env = {
            **clean,
            "DISCO_DEVELOP": str(develop_build),
            "LOWCARB_URL": f"http://127.0.0.1:{service_port}",
        }
        with disco_log.open("wb") as out:
            disco = subprocess.Popen(
                [
                    *("node", str(SERVER), str(hooked_disco_server)),
                    *(str(EXAMPLES / "tasks-develop" / TASK), str(disco_port)),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=tmp_path,  # DISCO's server saves its models under ./models
            )
        try:
            url = f"http://127.0.0.1:{disco_port}/"
            _wait_up(url, disco, disco_log)
            results = run_clients(develop_build, url, TASK)
        finally:
            _stop(disco)
    finally:
        _stop(service)
    aggregated = [
        (int(m[1]), set(m[2].split(","))) for m in _AGGREGATED.finditer(disco_log.read_text())
    ]
    with Ledger(state / f"{TASK}.ledger.sqlite") as ledger:
        ledger.check()
        records = ledger.rounds(TASK)

    # DISCO's rounds follow one another, each the mean of 2 clients' updates...
    assert [r for r, _ in aggregated] == list(range(len(aggregated)))
    assert len(aggregated) >= 6
    # ...exactly the clients lowcarb serve selected for that round, which DISCO reported
    # back as complete (rounds whose chosen clients had all left report 0 contributors).
    reported = [r for r in records if r.metrics.get("contributors")]
    assert len(reported) == len(aggregated)
    for (disco_round, ids), record in zip(aggregated, reported, strict=True):
        assert record.completed_at is not None
        assert {c.client_id for c in record.clients} == ids, disco_round
        assert record.metrics["contributors"] == len(ids) == 2
    # DISCO's ids are the ones its clients were given.
    names = {r["id"]: name for name, r in results.items()}
    assert set().union(*(ids for _, ids in aggregated)) <= set(names)
    # Deferred clients were held by DISCO's server and trained nothing meanwhile.
    assert check_held_clients_rest(results) >= 1
    for result in results.values():
        assert result["rounds"] == 5  # the task's local rounds
