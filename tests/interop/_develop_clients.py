"""Run DISCO develop clients (tests/interop/develop/driver.mjs) and read what they did."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _disco_bridge import EXAMPLES

DRIVER = Path(__file__).parent / "develop" / "driver.mjs"
CLIENTS = (("c1", "DE"), ("c2", "GB"), ("c3", "SG"))


def run_clients(
    build: Path, url: str, task: str, clients: Sequence[tuple[str, str]] = CLIENTS
) -> dict[str, dict[str, Any]]:
    """Start one driver per client at once; wait (bounded) for all; return their results.

    Raises:
        AssertionError: If a client exits non-zero (with its output).
    """
    env = {**os.environ, "DISCO_DEVELOP": str(build)}
    procs = [
        subprocess.Popen(
            [
                "node",
                str(DRIVER),
                url,
                task,
                str(EXAMPLES / "data" / f"client-{i + 1}.csv"),
                name,
                zone,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i, (name, zone) in enumerate(clients)
    ]
    results = {}
    try:
        outputs = [p.communicate(timeout=300) for p in procs]  # a hang bound
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for proc, (out, err), (name, _) in zip(procs, outputs, clients, strict=True):
        assert proc.returncode == 0, f"client {name} failed:\n{out[-2000:]}\n{err[-4000:]}"
        line = next(ln for ln in out.splitlines() if ln.startswith("LOWCARB_RESULT "))
        results[name] = json.loads(line.removeprefix("LOWCARB_RESULT "))
    return results


def held_spans(result: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """Each stretch during which the client was held: its events from a pause to the resume.

    Checks the pause discipline on the way: a pause only while not held, a resume only
    while held, and the client never ends held.
    """
    spans: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] | None = None
    for event in result["events"]:
        kind = event["kind"]
        if kind == "welcome" and event["wait"]:
            raise AssertionError(f"{result['name']} was told to wait in its welcome")
        if kind == "pause":
            assert current is None, f"{result['name']}: a second pause before a resume"
            current = []
        elif kind == "resume":
            assert current is not None, f"{result['name']}: a resume while not held"
            spans.append(current)
            current = None
        elif current is not None:
            current.append(event)
    assert current is None, f"{result['name']} ended held"
    return spans


def check_held_clients_rest(results: dict[str, dict[str, Any]]) -> int:
    """Assert that no held client trained or was answered while held; returns the holds."""
    holds = 0
    for name, result in results.items():
        for span in held_spans(result):
            holds += 1
            trained = [e for e in span if e["kind"] in ("round_start", "epoch_end", "reply")]
            assert not trained, f"{name} trained or was answered while held: {span}"
            # DISCO's client says so: "not enough participants".
            statuses = [e["status"] for e in span if e["kind"] == "status"]
            assert statuses[:1] == ["not enough participants"], (name, span)
    return holds
