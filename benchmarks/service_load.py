"""Load test of ``lowcarb serve``: concurrent clients selecting and completing rounds.

Starts ``lowcarb serve`` in a subprocess on 127.0.0.1 with a state folder, and runs N
concurrent clients (httpx, one keep-alive connection each, on the same machine) over T
tasks for S seconds. Each client loops: ``POST /v1/select`` on a task, asking for the
round it expects the task to decide next (a round another client decided already is
replayed to it), then ``POST /v1/complete`` of the round it was answered. A round is
*acknowledged* when its select answered 200.

Then it checks the record: every acknowledged round must be in the task's ledger, and
every completed one completed. A second run is killed with SIGKILL in mid-load, restarted
on the same folder, and every round acknowledged before the kill must be in the ledger.

Usage::

    python benchmarks/service_load.py                     # 50 and 200 clients, 20 s each
    python benchmarks/service_load.py --write-docs        # and into docs/benchmarks.md
    python benchmarks/service_load.py --clients 200 --seconds 60

Reported per configuration: requests/s; p50/p99 latency of select and complete (ms);
answers by status; completes refused for an acknowledged round; the server's RSS at the
end and its peak (MiB); acknowledged rounds against the ledger's rows, after the run and
after a ``kill -9``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from _docs import write_section

from lowcarb import Ledger

BEGIN, END = "<!-- BEGIN service_load.py -->", "<!-- END service_load.py -->"
ZONES = ["DE", "GB", "FR", "SG", "ZA", "BR-CS", "US-CAL-CISO", "JP-TK", "KR", "IN-WE"]


@dataclass
class Run:
    clients: int
    tasks: int
    seconds: float = 0.0
    #: Latencies of requests started before this (perf_counter) are the cold start's.
    warm_from: float = 0.0
    cold_ms: list[float] = field(default_factory=list)
    select_ms: list[float] = field(default_factory=list)
    complete_ms: list[float] = field(default_factory=list)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    acknowledged: dict[str, set[int]] = field(default_factory=dict)
    completed: dict[str, set[int]] = field(default_factory=dict)
    refused_completes: int = 0
    transport_errors: int = 0
    rss_mb: float = 0.0
    peak_mb: float = 0.0
    missing_rows: int = 0
    uncompleted_rows: int = 0
    killed_missing: int | None = None
    killed_acknowledged: int = 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _memory(pid: int) -> tuple[float, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    kib = lambda k: float(fields.get(k, "0 kB").split()[0]) / 1024  # noqa: E731
    return kib("VmRSS"), kib("VmHWM")


def _start(state: Path, clients: int) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOWCARB_")}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lowcarb",
            "serve",
            "--port",
            str(port),
            "--state-dir",
            str(state),
            "--provider",
            "default",
            "--max-connections",
            str(clients + 16),
            "--log-level",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):  # at most 30 s
        try:
            if httpx.get(f"{url}/v1/health", timeout=1.0).status_code == 200:
                return server, url
        except httpx.TransportError:
            pass
        if server.poll() is not None:
            raise RuntimeError(f"lowcarb serve exited with {server.returncode}")
        time.sleep(0.1)
    server.kill()
    raise RuntimeError("lowcarb serve did not start")


async def _client(http: httpx.AsyncClient, index: int, run: Run, stop: asyncio.Event) -> None:
    rng = random.Random(index)
    candidates = [{"id": f"site-{j}", "zone": ZONES[j % len(ZONES)]} for j in range(20)]
    next_round: dict[str, int] = {}
    while not stop.is_set():
        task = f"task-{rng.randrange(run.tasks)}"
        body = {"task": task, "k": 5, "candidates": candidates}
        if task in next_round:
            body["round"] = next_round[task]
        try:
            tick = time.perf_counter()
            answer = await http.post("/v1/select", json=body)
            took = (time.perf_counter() - tick) * 1000
            (run.select_ms if tick >= run.warm_from else run.cold_ms).append(took)
            run.statuses["select", answer.status_code] += 1
            if answer.status_code == 409:
                # This client's idea of the next round is ahead of the task's: drop it.
                next_round.pop(task, None)
                continue
            if answer.status_code != 200:
                continue
            decided = answer.json()["round"]
            run.acknowledged.setdefault(task, set()).add(decided)
            next_round[task] = decided + 1
            tick = time.perf_counter()
            done = await http.post(
                "/v1/complete",
                json={"task": task, "round": decided, "metrics": {"loss": rng.random()}},
            )
            took = (time.perf_counter() - tick) * 1000
            (run.complete_ms if tick >= run.warm_from else run.cold_ms).append(took)
            run.statuses["complete", done.status_code] += 1
            if done.status_code == 200:
                run.completed.setdefault(task, set()).add(decided)
            else:
                run.refused_completes += 1
        except httpx.TransportError:
            run.transport_errors += 1
            if stop.is_set():
                return


async def _drive(
    url: str, run: Run, seconds: float, pid: int, *, kill: bool, warmup: float = 0.0
) -> None:
    """Run the clients for ``seconds``; with ``kill``, SIGKILL the server halfway (once it
    has acknowledged rounds: at least 20, or any once ``seconds`` have passed)."""
    stop = asyncio.Event()
    # One pool of as many keep-alive connections as clients: an httpx client per simulated
    # client would spend seconds building TLS contexts before the first request.
    limits = httpx.Limits(max_connections=run.clients, max_keepalive_connections=run.clients)
    http = httpx.AsyncClient(base_url=url, timeout=120, limits=limits)
    start = time.perf_counter()
    run.warm_from = start + warmup
    tasks = [asyncio.create_task(_client(http, i, run, stop)) for i in range(run.clients)]
    if kill:
        await asyncio.sleep(seconds / 2)
        while (
            time.perf_counter() - start < seconds and sum(map(len, run.acknowledged.values())) < 20
        ):
            await asyncio.sleep(0.1)
        os.kill(pid, signal.SIGKILL)  # mid-load: requests are in flight
    else:
        await asyncio.sleep(seconds)
        run.rss_mb, run.peak_mb = _memory(pid)
    run.seconds = time.perf_counter() - start
    stop.set()
    await asyncio.wait(tasks, timeout=130)
    for t in tasks:
        t.cancel()
    await http.aclose()


def _ledger_rounds(state: Path, task: str) -> tuple[set[int], set[int]]:
    """(recorded rounds, completed rounds) of a task's ledger."""
    path = state / f"{task}.ledger.sqlite"
    if not path.exists():
        return set(), set()
    with Ledger(path) as ledger:
        records = ledger.rounds(task)
    return {r.round for r in records}, {r.round for r in records if r.completed_at}


def measure(clients: int, tasks: int, seconds: float, warmup: float = 3.0) -> Run:
    """One configuration: ``seconds`` of load, latencies from ``warmup`` s on."""
    run = Run(clients, tasks)
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state"
        server, url = _start(state, clients)
        try:
            asyncio.run(_drive(url, run, seconds, server.pid, kill=False, warmup=warmup))
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
        for task, acked in run.acknowledged.items():
            recorded, completed = _ledger_rounds(state, task)
            run.missing_rows += len(acked - recorded)
            run.uncompleted_rows += len(run.completed.get(task, set()) - completed)

        # The same load, killed with SIGKILL halfway; then restarted on the same folder.
        killed = Run(clients, tasks)
        state_k = Path(tmp) / "killed"
        server, url = _start(state_k, clients)
        asyncio.run(_drive(url, killed, seconds, server.pid, kill=True))
        server.wait(timeout=30)
        restarted, url = _start(state_k, clients)  # the lock of the dead process is free
        try:
            health = httpx.get(f"{url}/v1/health", timeout=10).json()
            assert health["status"] == "ok", health
        finally:
            restarted.send_signal(signal.SIGTERM)
            restarted.wait(timeout=60)
        run.killed_acknowledged = sum(len(a) for a in killed.acknowledged.values())
        run.killed_missing = sum(
            len(acked - _ledger_rounds(state_k, task)[0])
            for task, acked in killed.acknowledged.items()
        )
    return run


def _pct(values: list[float], q: float) -> str:
    return f"{np.percentile(values, q):.0f}" if values else "-"


def table(runs: list[Run]) -> str:
    head = (
        "| clients | tasks | requests/s | select p50 / p99 (ms) | complete p50 / p99 (ms) "
        "| cold start: slowest (ms) "
        "| answers | 5xx | refused completes | connection errors | RSS end / peak (MiB) "
        "| acknowledged rounds / missing in ledger | after kill -9: acknowledged / missing |\n"
        "|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|\n"
    )
    rows = []
    for r in runs:
        total = sum(r.statuses.values())
        answers = ", ".join(
            f"{route} {code}: {n}" for (route, code), n in sorted(r.statuses.items())
        )
        server_errors = sum(n for (_, code), n in r.statuses.items() if code >= 500)
        acked = sum(len(a) for a in r.acknowledged.values())
        rows.append(
            f"| {r.clients} | {r.tasks} | {total / r.seconds:.0f} "
            f"| {_pct(r.select_ms, 50)} / {_pct(r.select_ms, 99)} "
            f"| {_pct(r.complete_ms, 50)} / {_pct(r.complete_ms, 99)} "
            f"| {max(r.cold_ms, default=0):.0f} | {answers} "
            f"| {server_errors} | {r.refused_completes} | {r.transport_errors} "
            f"| {r.rss_mb:.0f} / {r.peak_mb:.0f} "
            f"| {acked} / {r.missing_rows} | {r.killed_acknowledged} / {r.killed_missing} |"
        )
    return head + "\n".join(rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, action="append", help="default: 50 and 200")
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument(
        "--warmup", type=float, default=3.0, help="seconds of load before latencies count"
    )
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    runs = [measure(n, args.tasks, args.seconds, args.warmup) for n in args.clients or [50, 200]]
    text = table(runs)
    print(text)
    if args.write_docs:
        note = (
            f"`python benchmarks/service_load.py --write-docs` on {os.cpu_count()} CPU cores, "
            f"loopback, the load generator on the same machine; {args.tasks} tasks, 20 "
            f"candidates and k = 5 per select, the default provider, {args.seconds:g} s per "
            "configuration. Latencies count from the load's second "
            f"{args.warmup:g} on; the slowest request of the cold start before it (the "
            "solver's import, the default provider's data, each task's ledger) is its own "
            "column. The kill -9 run is the same load killed halfway and restarted on its "
            "folder.\n\n"
        )
        block = f"{BEGIN}\n{note}{text}{END}"
        write_section(block, BEGIN, END, heading="Selection service under load")


if __name__ == "__main__":
    main()
