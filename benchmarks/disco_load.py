"""Load test of the DISCO bridge: many simulated clients on loopback, bounded in time.

Starts ``lowcarb disco serve`` in a subprocess on 127.0.0.1 and connects N simulated
clients that speak the wire protocol as DISCO's do (v2: post, pull statistics, pull the
round, as fast as a short "training" sleep allows; develop: wait while held, send the
update, wait for the aggregate). Each configuration runs until R rounds are aggregated
or S seconds pass.

Usage::

    python benchmarks/disco_load.py                      # the default table
    python benchmarks/disco_load.py --write-docs         # and into docs/benchmarks.md
    python benchmarks/disco_load.py --clients 200 --per-round 20 --protocol develop

Reported per configuration:

* ``round p50/p95/max``: seconds from a round's decision to its aggregate (server log);
* ``rounds/s``: aggregates per second of the run;
* ``reply p50/p99`` (ms): how long a client waited for a reply: v2 latestServerRound
  (DISCO aborts training past 10 s); develop ReceiveServerPayload, which includes
  waiting for the round's other selected clients;
* ``RSS`` (MiB): the bridge process's resident set at the end and its peak (VmHWM);
* ``frame`` (bytes): one encoded update.

``--hostile`` measures the bridge under attack instead: while well-behaved v2 clients
train, three attackers keep sending maximal frames (16 MiB, the default limit) at once,
built to be costly to decode (empty arrays, negative integers, short strings), each
reconnecting as soon as the bridge closes it. Reported: the good clients' reply p50/p99,
the bridge's peak memory, and how the attacks were answered. Targets: peak under 512 MiB,
reply p99 under 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import msgpack
import numpy as np
import websockets
from _docs import write_section

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "disco"
TASK = "lowcarb-tabular"
BEGIN, END = "<!-- BEGIN disco_load.py -->", "<!-- END disco_load.py -->"
HOSTILE = "<!-- BEGIN disco_load.py --hostile -->", "<!-- END disco_load.py --hostile -->"
MAX_FRAME = 16 * 2**20


@dataclass
class Run:
    protocol: str
    clients: int
    per_round: int
    params: int
    seconds: float = 0.0
    rounds: list[float] = field(default_factory=list)
    replies: list[float] = field(default_factory=list)
    rss_mb: float = 0.0
    peak_mb: float = 0.0
    frame: int = 0
    errors: int = 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _task(
    root: Path, protocol: str, clients: int, per_round: int, params: int
) -> tuple[Path, list[tuple[int, ...]]]:
    """The example task, or one with a single dense layer of ``params`` weights."""
    source = EXAMPLES / ("tasks" if protocol == "v2" else "tasks-develop") / TASK
    target = root / "tasks" / TASK
    shutil.copytree(source, target)
    (target / "lowcarb.json").write_text(
        json.dumps(
            {
                "zone": "DE",
                "clients_per_round": per_round,
                "min_clients": clients,
                "round_seconds": 1,
            }
        )
    )
    model = json.loads((target / "model.json").read_text())
    if params:
        # The bridge never interprets the topology: one kernel of the requested size is
        # enough to load it.
        model["weightsManifest"] = [
            {
                "paths": ["weights.bin"],
                "weights": [{"name": "dense/kernel", "shape": [params], "dtype": "float32"}],
            }
        ]
        (target / "model.json").write_text(json.dumps(model))
        (target / "weights.bin").write_bytes(np.zeros(params, dtype="<f4").tobytes())
        return root / "tasks", [(params,)]
    specs = model["weightsManifest"][0]["weights"]
    return root / "tasks", [tuple(s["shape"]) for s in specs if s.get("group") != "optimizer"]


def _v2_weights(shapes: list[tuple[int, ...]], rng: np.random.Generator) -> list[int]:
    inner = [
        {
            "shape": list(s),
            "data": rng.normal(size=s).astype(np.float32).astype(float).ravel().tolist(),
        }
        for s in shapes
    ]
    return list(msgpack.packb(inner))


def _develop_weights(shapes: list[tuple[int, ...]], rng: np.random.Generator) -> bytes:
    inner = [
        {
            "shape": list(s),
            "data": msgpack.ExtType(0x17, rng.normal(size=s).astype("<f4").tobytes()),
        }
        for s in shapes
    ]
    return bytes(msgpack.packb(inner))


async def _v2_client(url: str, index: int, shapes: list, stop: asyncio.Event, run: Run) -> None:
    rng = np.random.default_rng(index)
    weights = _v2_weights(shapes, rng)
    run.frame = len(msgpack.packb({"type": 8, "weights": weights, "round": 0}))
    async with websockets.connect(
        f"{url.replace('http', 'ws', 1)}feai/{TASK}/{uuid.uuid4()}?client=c{index}", max_size=None
    ) as ws:
        await ws.send(msgpack.packb({"type": 0}))
        await ws.recv()
        current = 0
        while not stop.is_set():
            await asyncio.sleep(0.05 + 0.05 * rng.random())  # "training"
            await ws.send(msgpack.packb({"type": 8, "weights": weights, "round": current}))
            await ws.send(msgpack.packb({"type": 13}))
            await ws.recv()
            asked = time.perf_counter()
            await ws.send(msgpack.packb({"type": 11}))
            reply = msgpack.unpackb(await ws.recv(), raw=False)
            run.replies.append(time.perf_counter() - asked)
            current = max(current, reply["round"])


async def _develop_client(
    url: str, index: int, shapes: list, stop: asyncio.Event, run: Run
) -> None:
    rng = np.random.default_rng(index)
    payload = _develop_weights(shapes, rng)
    run.frame = len(msgpack.packb({"type": 10, "payload": payload, "round": 0}))
    async with websockets.connect(
        f"{url.replace('http', 'ws', 1)}federated/{TASK}?client=c{index}", max_size=None
    ) as ws:
        await ws.send(msgpack.packb({"type": 0}))
        info = msgpack.unpackb(await ws.recv(), raw=False)
        paused, current = info["waitForMoreParticipants"], info["round"]
        while not stop.is_set():
            while paused and not stop.is_set():
                kind = msgpack.unpackb(await ws.recv(), raw=False)["type"]
                paused = kind != 9 if kind in (8, 9) else paused
            await asyncio.sleep(0.05 + 0.05 * rng.random())
            asked = time.perf_counter()
            await ws.send(msgpack.packb({"type": 10, "payload": payload, "round": current}))
            while True:
                message = msgpack.unpackb(await ws.recv(), raw=False)
                if message["type"] == 8:
                    paused = True
                elif message["type"] == 9:
                    paused = False
                elif message["type"] == 11:
                    run.replies.append(time.perf_counter() - asked)
                    current = max(current, message["round"])
                    break


def _memory(pid: int) -> tuple[float, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    kib = lambda k: float(fields.get(k, "0 kB").split()[0]) / 1024  # noqa: E731
    return kib("VmRSS"), kib("VmHWM")


async def _drive(run: Run, url: str, shapes: list, rounds: int, seconds: float, pid: int) -> None:
    stop = asyncio.Event()
    client = _v2_client if run.protocol == "v2" else _develop_client
    tasks = [asyncio.create_task(client(url, i, shapes, stop, run)) for i in range(run.clients)]
    start = time.perf_counter()
    async with httpx.AsyncClient(base_url=url) as http:
        while time.perf_counter() - start < seconds:
            await asyncio.sleep(0.25)
            status = (await http.get("lowcarb/status")).json()["tasks"][TASK]
            if status["round"] >= rounds:
                break
        run.seconds = time.perf_counter() - start
        run.rss_mb, run.peak_mb = _memory(pid)
        stop.set()
        await asyncio.sleep(0.5)
        for t in tasks:
            t.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        failed = [r for r in results if isinstance(r, Exception)]
        run.errors = len(failed)
        if failed:
            print(f"first client error: {failed[0]!r}", file=sys.stderr)
        history = (await http.get(f"lowcarb/tasks/{TASK}/rounds")).json()
    run.rounds = [a["duration_s"] for a in history]


def _bombs() -> list[bytes]:
    """Three maximal postWeightsToServer frames, each costly if decoded naively."""
    head = b"\x83\xa4type\x08\xa5round\x00\xa7weights\xdd"
    frames = []
    # Empty arrays (56 B each as Python lists), negative ints (28 B), 2-letter strings.
    for item in (b"\x90", b"\xe0", b"\xa2ab"):
        count = (MAX_FRAME - 64) // len(item)
        frames.append(head + count.to_bytes(4, "big") + item * count)
    return frames


@dataclass
class Attack:
    closed: Counter[int] = field(default_factory=Counter)
    sent: int = 0


async def _attacker(url: str, frame: bytes, stop: asyncio.Event, attack: Attack) -> None:
    while not stop.is_set():
        try:
            async with websockets.connect(
                f"{url.replace('http', 'ws', 1)}feai/{TASK}/{uuid.uuid4()}", max_size=None
            ) as ws:
                await ws.send(msgpack.packb({"type": 0}))
                await ws.recv()
                await ws.send(frame)
                attack.sent += 1
                with contextlib.suppress(websockets.ConnectionClosed):
                    async with asyncio.timeout(30):
                        while True:
                            await ws.recv()
                attack.closed[ws.close_code or 0] += 1
        except (OSError, websockets.WebSocketException, TimeoutError):
            attack.closed[-1] += 1


async def _drive_hostile(
    run: Run, attack: Attack, url: str, shapes: list, seconds: float, pid: int
) -> None:
    stop = asyncio.Event()
    good = [asyncio.create_task(_v2_client(url, i, shapes, stop, run)) for i in range(run.clients)]
    await asyncio.sleep(2.0)  # the good clients are training
    run.replies.clear()
    bombs = _bombs()
    attackers = [asyncio.create_task(_attacker(url, b, stop, attack)) for b in bombs]
    start = time.perf_counter()
    await asyncio.sleep(seconds)
    run.seconds = time.perf_counter() - start
    run.rss_mb, run.peak_mb = _memory(pid)
    stop.set()
    await asyncio.sleep(0.5)
    for t in good + attackers:
        t.cancel()
    results = await asyncio.gather(*good, *attackers, return_exceptions=True)
    failed = [
        r for r in results if isinstance(r, Exception) and not isinstance(r, asyncio.CancelledError)
    ]
    run.errors = len(failed)


def measure(
    protocol: str,
    clients: int,
    per_round: int,
    params: int,
    rounds: int,
    seconds: float,
    *,
    attack: Attack | None = None,
) -> Run:
    run = Run(protocol, clients, per_round, params)
    with tempfile.TemporaryDirectory() as tmp:
        tasks, shapes = _task(Path(tmp), protocol, clients, per_round, params)
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOWCARB_")}
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lowcarb",
                "disco",
                "serve",
                "--tasks",
                str(tasks),
                "--port",
                str(port),
                "--protocol",
                protocol,
                "--provider",
                "default",
                "--max-connections",
                str(clients + 16),
                "--max-frame-bytes",
                str(MAX_FRAME),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        url = f"http://127.0.0.1:{port}/"
        try:
            for _ in range(200):
                try:
                    httpx.get(url, timeout=1.0)
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            if attack is None:
                asyncio.run(_drive(run, url, shapes, rounds, seconds, server.pid))
            else:
                asyncio.run(_drive_hostile(run, attack, url, shapes, seconds, server.pid))
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
    return run


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def table(runs: list[Run]) -> str:
    head = (
        "| protocol | clients | K | weights | rounds | rounds/s | round p50 / p95 / max (s) "
        "| reply p50 / p99 (ms) | RSS end / peak (MiB) | update frame (B) | client errors |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    rows = []
    for r in runs:
        rows.append(
            f"| {r.protocol} | {r.clients} | {r.per_round} | {r.params or 41} | {len(r.rounds)} "
            f"| {len(r.rounds) / r.seconds:.2f} "
            f"| {_pct(r.rounds, 50):.2f} / {_pct(r.rounds, 95):.2f} / "
            f"{max(r.rounds, default=float('nan')):.2f} "
            f"| {1000 * _pct(r.replies, 50):.0f} / {1000 * _pct(r.replies, 99):.0f} "
            f"| {r.rss_mb:.0f} / {r.peak_mb:.0f} | {r.frame:,} | {r.errors} |"
        )
    return head + "\n".join(rows) + "\n"


def hostile_table(run: Run, attack: Attack) -> str:
    closed = ", ".join(f"{code}: {n}" for code, n in sorted(attack.closed.items()))
    return (
        "| good clients | attack frames sent (16 MiB) | attacks closed (code: count) "
        "| good replies | reply p50 / p99 (ms) | RSS end / peak (MiB) | client errors |\n"
        "|---:|---:|---|---:|---:|---:|---:|\n"
        f"| {run.clients} | {attack.sent} | {closed} | {len(run.replies)} "
        f"| {1000 * _pct(run.replies, 50):.0f} / {1000 * _pct(run.replies, 99):.0f} "
        f"| {run.rss_mb:.0f} / {run.peak_mb:.0f} | {run.errors} |\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--protocol", choices=["v2", "develop"], action="append")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--per-round", type=int, default=10)
    parser.add_argument("--params", type=int, action="append", help="weights of a synthetic model")
    parser.add_argument("--rounds", type=int, default=30, help="stop after this many rounds")
    parser.add_argument("--seconds", type=float, default=30.0, help="or after this long")
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--hostile", action="store_true", help="measure under attack")
    args = parser.parse_args()
    if args.hostile:
        attack = Attack()
        run = measure("v2", args.clients, args.per_round, 0, 0, args.seconds, attack=attack)
        text = hostile_table(run, attack)
        print(text)
        if args.write_docs:
            note = (
                f"`python benchmarks/disco_load.py --hostile --write-docs` on {os.cpu_count()} "
                f"CPU cores, loopback, attackers and clients on the same machine: "
                f"{args.clients} v2 clients training the example task while three attackers "
                f"send maximal frames at once, for {args.seconds:g} s.\n\n"
            )
            block = f"{HOSTILE[0]}\n{note}{text}{HOSTILE[1]}"
            write_section(block, *HOSTILE, heading="DISCO bridge under attack")
        return
    runs = [
        measure(p, args.clients, args.per_round, params, args.rounds, args.seconds)
        for p in args.protocol or ["v2", "develop"]
        for params in args.params or [0, 10_000]
    ]
    text = table(runs)
    print(text)
    if args.write_docs:
        note = (
            f"`python benchmarks/disco_load.py --write-docs` on {os.cpu_count()} CPU cores, "
            f"loopback, {args.clients} simulated clients, K = {args.per_round}, each "
            f"configuration stopped after {args.rounds} rounds or {args.seconds:g} s. "
            "Weights 41 = the example task's model.\n\n"
        )
        block = f"{BEGIN}\n{note}{text}{END}"
        write_section(block, BEGIN, END, heading="DISCO bridge under load")


if __name__ == "__main__":
    main()
