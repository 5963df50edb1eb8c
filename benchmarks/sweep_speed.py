"""How long a sweep takes: one process, a process pool, Ray (the same rows each way).

Times :func:`lowcarb.simulation.sweep` over the same windows of the seed scenario (100
clients over the 14 measured zones, 96 hourly rounds of 10, ``random``, ``lowcarb`` and
``oracle``, no learning task) three ways: one simulation after another in this process,
a process pool, and Ray tasks on a local Ray instance (its start-up included), and checks
that the rows agree (decision times aside).

    python benchmarks/sweep_speed.py --windows 8 --workers 2 --write-docs

Contains data from Electricity Maps (ODbL).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _docs import DOC, write_section

from lowcarb import Scenario
from lowcarb.simulation import sweep

ROOT = Path(__file__).resolve().parents[1]
DATA = (
    ROOT.parent
    / "shared"
    / "data"
    / "electricitymaps-16zones-2021-2023"
    / "carbon_intensity_lca_2021_2023_hourly.csv"
)
BEGIN, END = "<!-- BEGIN sweep_speed.py -->", "<!-- END sweep_speed.py -->"


def _numbers(rows: list[dict[str, Any]]) -> str:
    out = json.loads(json.dumps(rows))
    for row in out:
        for policy in row["policies"].values():
            policy.pop("decision_ms")
    return json.dumps(out, sort_keys=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--windows", type=int, default=8)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--write-docs", action="store_true", help=f"update {DOC.name}")
    args = parser.parse_args()
    base = Scenario(data=args.data, learning="none", policies=("random", "lowcarb", "oracle"))
    first = datetime(2022, 1, 3, tzinfo=UTC)
    scenarios = [replace(base, start=first + timedelta(days=28 * i)) for i in range(args.windows)]
    ways = {
        "one process": {"workers": 1},
        f"process pool, {args.workers} workers": {"workers": args.workers},
        f"Ray, {args.workers} CPUs (start-up included)": {"workers": args.workers, "ray": True},
    }
    seconds: dict[str, float] = {}
    rows: dict[str, str] = {}
    for name, options in ways.items():
        tick = time.perf_counter()
        rows[name] = _numbers(sweep(scenarios, **options))
        seconds[name] = time.perf_counter() - tick
        print(f"{name}: {seconds[name]:.1f} s", file=sys.stderr)
    same = len(set(rows.values())) == 1
    serial = seconds["one process"]
    table = "\n".join(
        [
            "| how | wall s | speed-up |",
            "|---|---:|---:|",
            *(f"| {n} | {s:.1f} | {serial / s:.2f}x |" for n, s in seconds.items()),
        ]
    )
    load = os.getloadavg()
    text = "\n\n".join(
        [
            BEGIN,
            "## Sweeps: process pool and Ray",
            f"Produced by `python benchmarks/sweep_speed.py --windows {args.windows} "
            f"--workers {args.workers} --write-docs` on {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, {platform.machine()}: {args.windows} windows of "
            "the seed scenario (`random`, `lowcarb`, `oracle`, no learning task) from "
            f"`electricitymaps-16zones-2021-2023` (Contains data from Electricity Maps, "
            f"ODbL). Load average at the end: {load[0]:.1f} (1 min), {load[2]:.1f} (15 min). "
            f"The rows were {'identical' if same else 'NOT identical'} every way (decision "
            "times aside).",
            table,
            "A sweep is embarrassingly parallel: each window is one independent simulation, "
            "so its time falls with the number of cores until the slowest window is left, "
            "and on a Ray cluster (`--ray-address`) with the cluster's CPUs. Ray costs a "
            "start-up of a few seconds and a little per task; on two cores it cannot beat "
            "a process pool, and its value is the cluster.",
            END,
        ]
    )
    print(text)
    if args.write_docs:
        write_section(text, BEGIN, END, doc=DOC)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
