"""What a DISCO user saves: v2 clients (everyone trains) against develop clients (held).

Real DISCO clients train the same task on the bridge under the same carbon trace, in four
runs: protocol ``v2`` (npm ``@epfml/discojs-node@2.1.1``; a client left out of a round
trains anyway and its update is dropped) or ``develop`` (DISCO's October 2024 client,
built from ../shared; a client left out is held and trains nothing), each with the
``lowcarb`` policy and with ``random`` selection.

The scenario: 6 clients in 6 grid zones, 12 rounds of 3, one round an hour from
2025-03-03 06:00 UTC (the bridge's clock moves one hour per round); the carbon signal is
the embedded ``default`` provider's hourly profiles (derived from Electricity Maps 2024
data). A client-round is modelled as one hour of a 30 W device plus the model's transfer;
each client's data is 96 synthetic rows (non-IID), and the global model's accuracy is
measured after every round on 1,000 held-out rows.

A DISCO client trains the local rounds its task sets, whatever the server does, so each
task is sized for its protocol: a v2 client sends one update per round (13 local rounds
for 12 rounds: one to spare), a develop client only when selected (7 local rounds: its
fair share of 6 and a first one, trained on connecting before any decision). Reported per
run: local rounds trained by all clients, their energy and emissions (every local round
priced at its client's zone and hour: rounds in the ledger as the core priced them, and
rounds after the last one at the last hour), rounds aggregated, rounds to reach the target
accuracy, and the final accuracy.

Usage::

    python benchmarks/disco_savings.py                 # the table
    python benchmarks/disco_savings.py --write-docs    # and into docs/benchmarks.md

Needs node and npm, tests/interop/node installed (``npm install --ignore-scripts`` there)
and ../shared/third_party/disco-develop (built into a cache on first use).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import uvicorn
from _docs import write_section

from lowcarb import EngineSpec, Ledger
from lowcarb.adapters.disco import BridgeLimits, create_app, load_tasks, open_engines
from lowcarb.adapters.disco._server import bridge_config
from lowcarb.backends import DefaultProvider

REPO = Path(__file__).resolve().parents[1]
INTEROP = REPO / "tests" / "interop"
sys.path.insert(0, str(INTEROP))
from _disco_develop import develop_build  # noqa: E402  (the interop stage's build)

EXAMPLES = REPO / "examples" / "disco"
TASK = "lowcarb-tabular"
BEGIN, END = "<!-- BEGIN disco_savings.py -->", "<!-- END disco_savings.py -->"
ZONES = ["DE", "GB", "US-CAL-CISO", "AU-NSW", "JP-TK", "IN-WE"]
ROUNDS, K = 12, 3
START = datetime(2025, 3, 3, 6, tzinfo=UTC)
TARGET = 0.80
#: Local rounds per client: v2 sends one update every round; develop only when selected.
LOCAL = {"v2": ROUNDS + 1, "develop": ROUNDS * K // len(ZONES) + 1}
#: Epochs of local training in a local round (DISCO's default optimiser learns slowly).
EPOCHS_PER_ROUND = 5
WEIGHTS = np.array([1.5, -2.0, 0.75, 0.5])


def _rows(rng: np.random.Generator, n: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    x = np.round(rng.uniform(-1, 1, (n, 4)) + shift, 3)
    y = (x @ WEIGHTS + rng.uniform(-0.25, 0.25, n) > 0).astype(int)
    return x, y


def write_data(folder: Path) -> tuple[list[Path], tuple[np.ndarray, np.ndarray]]:
    """Six clients' CSV files (shifted features: non-IID) and a held-out test set."""
    rng = np.random.default_rng(2025)
    files = []
    for i in range(len(ZONES)):
        x, y = _rows(rng, 96, (i - 2.5) * 0.3)
        path = folder / f"client-{i + 1}.csv"
        rows = [",".join([*map(str, r), str(t)]) for r, t in zip(x, y, strict=True)]
        lines = ["x1,x2,x3,x4,label", *rows]
        path.write_text("\n".join(lines) + "\n")
        files.append(path)
    tests = [_rows(rng, 1000 // len(ZONES), (i - 2.5) * 0.3) for i in range(len(ZONES))]
    return files, (np.vstack([t[0] for t in tests]), np.concatenate([t[1] for t in tests]))


def write_task(folder: Path, protocol: str) -> Path:
    """The example task, sized for the protocol, with this scenario's settings."""
    source = EXAMPLES / ("tasks" if protocol == "v2" else "tasks-develop") / TASK
    target = folder / "tasks" / TASK
    shutil.copytree(source, target)
    task = json.loads((source / "task.json").read_text())
    info = task["trainingInformation"]
    # v2 counts a round in batches (6 = one epoch of 96 rows), develop in epochs.
    info["epochs"] = LOCAL[protocol] * EPOCHS_PER_ROUND
    info["roundDuration"] = EPOCHS_PER_ROUND * (6 if protocol == "v2" else 1)
    (target / "task.json").write_text(json.dumps(task, indent=2))
    settings = {
        "clients_per_round": K,
        "min_clients": len(ZONES),
        "device_power_w": 30,
        "round_seconds": 3600,
        "rounds": ROUNDS,
    }
    (target / "lowcarb.json").write_text(json.dumps(settings))
    return folder / "tasks"


class RoundClock:
    """The bridge's clock: one hour per aggregated round (each round runs in its hour)."""

    def __init__(self) -> None:
        self.room: Any = None

    def now(self) -> datetime:
        return START + timedelta(hours=self.room.round if self.room is not None else 0)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def accuracy(weights: list[np.ndarray], test: tuple[np.ndarray, np.ndarray]) -> float:
    """The 4-8-1 model's test accuracy (relu, then sigmoid), in numpy."""
    x, y = test
    hidden = np.maximum(x @ weights[0] + weights[1], 0.0)
    out = hidden @ weights[2] + weights[3]
    return float(((out[:, 0] > 0) == (y == 1)).mean())


@dataclass
class Run:
    protocol: str
    policy: str
    local_rounds: int = 0
    energy_kwh: float = 0.0
    emissions_g: float = 0.0
    rounds: int = 0
    accuracies: list[float] = field(default_factory=list)
    to_target: int | None = None
    seconds: float = 0.0


async def _clients(protocol: str, url: str, files: list[Path], build: Path) -> None:
    procs = []
    for i, (zone, data) in enumerate(zip(ZONES, files, strict=True)):
        if protocol == "v2":
            args = ["node", str(INTEROP / "node" / "driver.js")]
            cwd = INTEROP / "node"
        else:
            args = ["node", str(INTEROP / "develop" / "driver.mjs")]
            cwd = REPO
        procs.append(
            await asyncio.create_subprocess_exec(
                *args,
                url,
                TASK,
                str(data),
                f"c{i + 1}",
                zone,
                cwd=cwd,
                env={**os.environ, "DISCO_DEVELOP": str(build)},
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        )
    for proc in procs:
        _, err = await asyncio.wait_for(proc.communicate(), timeout=900)
        if proc.returncode != 0:
            raise RuntimeError(f"a {protocol} client failed: {err.decode()[-2000:]}")


async def measure(protocol: str, policy: str, build: Path, test: Any, files: list[Path]) -> Run:
    run = Run(protocol, policy)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        tasks = load_tasks(write_task(folder, protocol), protocol)
        clock = RoundClock()
        provider = DefaultProvider(clock=clock)
        state = folder / "state"
        engines = open_engines(
            tasks,
            provider,
            protocol=protocol,
            spec=EngineSpec(policy=policy, seed=7),
            state_dir=state,
            clock=clock,
        )
        limits = BridgeLimits(round_timeout=120.0)
        app = create_app(tasks, engines, protocol=protocol, limits=limits, state_dir=state)
        room = clock.room = app.state.rooms[TASK]
        server = uvicorn.Server(bridge_config(app, limits, port=0, log_level="warning"))
        serving = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.05)
        url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}/"
        started = time.monotonic()
        clients = asyncio.create_task(_clients(protocol, url, files, build))
        seen = 0
        while not clients.done() or room.round > seen:
            if room.round > seen:  # each aggregate's model, as the round closes
                seen = room.round
                run.accuracies.append(accuracy(room.weights, test))
                continue
            if room.finished:  # wait_past returns at once: let the clients finish
                await asyncio.wait([clients], timeout=0.5)
            else:
                await room.wait_past(seen, 0.5)
        await clients
        run.seconds = time.monotonic() - started
        server.should_exit = True
        await serving
        per_round = engines.spec_of(TASK).energy.energy_kwh()
        engines.close()
        after_end = room.after_end
        with Ledger(state / f"{TASK}.ledger.sqlite") as ledger:
            records = ledger.rounds(TASK)
            last = Ledger.decision(ledger, TASK, records[-1].round) if records else None
    run.rounds = len(room.history)
    updates = sum(len(r.clients) + len(r.excluded) for r in records)
    run.local_rounds = updates + sum(after_end.values())
    run.energy_kwh = sum(r.energy_kwh + r.excluded_energy_kwh for r in records)
    run.emissions_g = sum(r.emissions_g + r.excluded_emissions_g for r in records)
    if after_end and last is not None:
        # Trained after the last round: priced at the last round's intensities.
        zone_of = dict(zip(last["candidates"]["id"], last["candidates"]["zone"], strict=True))
        intensity = last["candidates"]["intensity"]
        for client, n in after_end.items():
            run.energy_kwh += n * per_round
            run.emissions_g += n * per_round * intensity[zone_of[client]]
    hits = [i + 1 for i, a in enumerate(run.accuracies) if a >= TARGET]
    run.to_target = hits[0] if hits else None
    return run


def table(runs: list[Run]) -> str:
    head = (
        "| protocol | selection | local rounds trained | client energy (kWh) | emissions (g) "
        f"| rounds | rounds to {TARGET:.0%} | final accuracy |\n|---|---|---|---|---|---|---|---|\n"
    )
    rows = [
        f"| {r.protocol} | {r.policy} | {r.local_rounds} | {r.energy_kwh:.3f} | "
        f"{r.emissions_g:,.0f} | {r.rounds} | {r.to_target if r.to_target else 'not reached'} | "
        f"{r.accuracies[-1] * 100:.1f} % |"
        for r in runs
    ]
    return head + "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    build = develop_build()
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        files, test = write_data(Path(tmp))
        runs = [
            asyncio.run(measure(protocol, policy, build, test, files))
            for protocol in ("v2", "develop")
            for policy in ("random", "lowcarb")
        ]
    load_after = os.getloadavg()
    text = table(runs)
    print(text)
    by = {(r.protocol, r.policy): r for r in runs}
    base = by[("v2", "random")]
    notes = [
        f"- {r.protocol} with {r.policy} selection: "
        f"{1 - r.energy_kwh / base.energy_kwh:.0%} less client energy and "
        f"{1 - r.emissions_g / base.emissions_g:.0%} less emissions than v2 with random "
        f"selection ({r.seconds:.0f} s)"
        for r in runs
        if r is not base
    ]
    print("\n".join(notes))
    if args.write_docs:
        block = (
            f"{BEGIN}\n"
            f"Measured with `python benchmarks/disco_savings.py --write-docs` on "
            f"{os.cpu_count()} CPU cores, load average {load[0]:.1f} before and "
            f"{load_after[0]:.1f} after.\n\n{text}\n\n" + "\n".join(notes) + f"\n{END}"
        )
        write_section(block, BEGIN, END, heading="What a DISCO user saves")


if __name__ == "__main__":
    main()
