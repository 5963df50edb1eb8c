"""Per-decision overhead of client selection: ``lowcarb`` against ``random``.

Times one selection decision of the ``lowcarb`` policy (the fair receding-horizon
planner), of the ``random`` policy, and of Python's ``random.sample`` over the same
candidate ids, so the ratio can be read. Peak memory of one decision is measured in a
separate pass (tracing slows the code it traces).

Usage::

    python benchmarks/selection.py --clients 10000 --zones 14 --horizon 96
    python benchmarks/selection.py --clients 1000000 --zones 200 --horizon 96 --json

What is timed: building the :class:`~lowcarb._policies.RoundView` from ready columnar
arrays (a frozen dataclass holding references, O(1)) plus ``policy.choose(view, rng)``,
which for ``lowcarb`` includes grouping the candidates, building and solving the plan
with HiGHS and drawing the clients. Not timed: turning client objects into arrays and
fetching the forecast (the engine's work before a decision). ``random.sample`` is timed
alone over a ready list of the N ids.

The scenario is a training half-way through:

* N clients assigned round-robin to Z zones; intensities (Z x H, gCO2eq/kWh) are the
  offline :class:`~lowcarb.backends.DefaultProvider` trace of its 16 zones from
  2024-06-03 00:00 UTC; zones beyond 16 reuse a base zone's trace, shifted by up to
  +-3 h, scaled by 0.8-1.2 and with 5 % hourly noise (seeded).
* K (``--per-round``) defaults to ``min(max(1, N // 10), 10_000)``: 10 % of the
  population, capped at 10,000 (1 % of a million), as cross-device FL keeps K << N.
* ``rounds_done = H // 2`` and ``rounds_total = rounds_done + H`` (every slot of the
  horizon must run a round; no deadline slack). Participation counts sit at the fair
  share so far (floor or ceil, drawn so the mean is exact) with 10 % of clients one round
  below and 10 % one above, so the candidates split into realistic groups.
  ``--rounds-left L`` (< H) models a deadline instead: L rounds left, due at the end of
  the H slots, so the planner may pause (the plan becomes a MILP).
* ``--energy uniform``: 0.05 kWh per round for everybody; ``mixed`` (default): three
  device classes of 0.02, 0.05 and 0.15 kWh with shares 50/35/15 %.

Memory (``peak_mb``, MiB): with ``--memory tracemalloc`` (default) the peak of Python and
numpy/pandas allocations during one decision, above what was allocated before it; the
HiGHS solver's own C++ memory is invisible to it. ``--memory rss`` instead runs each
decision in a fresh interpreter and reports its peak resident set (VmHWM on Linux,
``ru_maxrss`` elsewhere) minus that of an interpreter that only builds the view: coarse
(pages, allocator reuse; about 0 for small N) but it includes the solver.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import random
import resource
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from lowcarb._policies import RoundView, get_policy
from lowcarb.backends import DefaultProvider

POLICIES = ("lowcarb", "random", "random.sample")
TRACE_START = datetime(2024, 6, 3, tzinfo=UTC)  # a Monday
ENERGY_CLASSES_KWH = np.array([0.02, 0.05, 0.15])
ENERGY_SHARES = np.array([0.50, 0.35, 0.15])
UNIFORM_ENERGY_KWH = 0.05
MAX_SHIFT_H = 3
PROGRESS_AFTER_S = 2.0  # show per-run progress when a policy's runs take longer


@dataclass(frozen=True)
class Scenario:
    """The columnar inputs of one decision, built once and reused by every run."""

    zone: np.ndarray
    energy_kwh: np.ndarray
    utility: np.ndarray
    participation: np.ndarray
    intensity: np.ndarray
    per_round: int
    rounds_total: int
    rounds_done: int
    deadline_slots: int | None
    ids: list[int]

    def view(self) -> RoundView:
        return RoundView(
            zone=self.zone,
            energy_kwh=self.energy_kwh,
            utility=self.utility,
            participation=self.participation,
            intensity=self.intensity,
            per_round=self.per_round,
            rounds_total=self.rounds_total,
            rounds_done=self.rounds_done,
            population=self.zone.size,
            deadline_slots=self.deadline_slots,
        )


def default_per_round(clients: int) -> int:
    return min(max(1, clients // 10), 10_000)


def default_repeat(clients: int) -> int:
    return 20 if clients <= 100_000 else 5


def intensities(zones: int, horizon: int, seed: int) -> np.ndarray:
    """``(zones, horizon)`` gCO2eq/kWh: the default provider's trace, perturbed beyond 16."""
    provider = DefaultProvider(seed=seed)
    names = provider.served_zones()
    length = horizon + 2 * MAX_SHIFT_H
    start = TRACE_START - timedelta(hours=MAX_SHIFT_H)
    trace = provider.trace(names, start, start + timedelta(hours=length))
    base = trace.values[names].to_numpy(dtype=float).T  # (16, horizon + 6)
    out = np.empty((zones, horizon))
    out[: min(zones, len(names))] = base[:zones, MAX_SHIFT_H : MAX_SHIFT_H + horizon]
    extra = zones - len(names)
    if extra > 0:
        rng = np.random.default_rng([seed, 1])
        source = np.arange(extra) % len(names)
        shift = rng.integers(-MAX_SHIFT_H, MAX_SHIFT_H + 1, extra)
        scale = rng.uniform(0.8, 1.2, (extra, 1))
        noise = rng.normal(1.0, 0.05, (extra, horizon))
        cols = MAX_SHIFT_H + shift[:, None] + np.arange(horizon)
        out[len(names) :] = np.clip(base[source[:, None], cols] * scale * noise, 10.0, 1000.0)
    return out


def build_scenario(
    clients: int,
    zones: int,
    horizon: int,
    *,
    per_round: int,
    energy: str,
    seed: int,
    rounds_left: int | None = None,
) -> Scenario:
    rng = np.random.default_rng([seed, 0])
    zone = np.arange(clients) % zones
    if energy == "uniform":
        energy_kwh = np.full(clients, UNIFORM_ENERGY_KWH)
    else:
        energy_kwh = rng.choice(ENERGY_CLASSES_KWH, size=clients, p=ENERGY_SHARES)
    rounds_done = horizon // 2
    share = rounds_done * per_round / clients
    floor = np.floor(share)
    participation = floor + (rng.random(clients) < share - floor)
    participation += rng.choice([-1, 0, 1], size=clients, p=[0.1, 0.8, 0.1])
    return Scenario(
        zone=zone,
        energy_kwh=energy_kwh,
        utility=np.ones(clients),
        participation=np.maximum(participation, 0).astype(np.int64),
        intensity=intensities(zones, horizon, seed),
        per_round=per_round,
        rounds_total=rounds_done + (horizon if rounds_left is None else rounds_left),
        rounds_done=rounds_done,
        # Fewer rounds than slots: the engine's deadline case, due at the horizon's end.
        deadline_slots=horizon if rounds_left is not None and rounds_left < horizon else None,
        ids=list(range(clients)),
    )


Chosen = Sequence[int] | np.ndarray  # ids from random.sample, indices from a policy


def decision(name: str, scenario: Scenario, seed: int) -> Callable[[int], Chosen]:
    """One decision of ``name`` for run number ``r``; returns the chosen ids."""
    if name == "random.sample":
        py_rng = random.Random(seed)
        return lambda r: py_rng.sample(scenario.ids, scenario.per_round)
    policy = get_policy(name)
    # Like the engine: one generator per round, seeded by (run seed, round).
    return lambda r: policy.choose(scenario.view(), np.random.default_rng([seed, r])).selected


def check(name: str, chosen: Chosen, scenario: Scenario) -> None:
    """K distinct clients, or none when the plan pauses this slot (``--rounds-left``)."""
    if len(set(np.asarray(chosen).tolist())) not in (0, scenario.per_round):
        raise SystemExit(f"{name} did not choose {scenario.per_round} distinct clients")


def progress(message: str) -> None:
    """One status line on stderr: rewritten in place on a terminal, appended otherwise."""
    if sys.stderr.isatty():
        print(f"\r\033[K{message}", end="", file=sys.stderr, flush=True)
    elif message:
        print(message, file=sys.stderr, flush=True)


def time_policy(name: str, scenario: Scenario, *, repeat: int, seed: int) -> list[float]:
    """Wall-clock milliseconds of ``repeat`` decisions after one warm-up decision."""
    run = decision(name, scenario, seed)
    check(name, run(0), scenario)  # warm-up: imports, caches, first-touch pages
    times: list[float] = []
    show = False
    for r in range(1, repeat + 1):
        gc.collect()
        start = time.perf_counter()
        run(r)
        times.append((time.perf_counter() - start) * 1e3)
        # Judged on the first timed run: the warm-up also pays one-off imports.
        show = show or times[0] * repeat / 1e3 > PROGRESS_AFTER_S
        if show:
            progress(f"{name}: run {r}/{repeat} ({times[-1]:,.0f} ms)")
    if show:
        progress("")
    return times


def traced_peak_mb(name: str, scenario: Scenario, *, seed: int) -> float:
    """Peak traced allocations (MiB) of one decision, above those made before it."""
    run = decision(name, scenario, seed)
    gc.collect()
    tracemalloc.start()
    try:
        run(0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 2**20


def maxrss_mb() -> float:
    """This process's peak resident set (MiB)."""
    status = Path("/proc/self/status")
    if status.exists():
        # Linux carries ru_maxrss over exec from the parent, so a child started by a big
        # benchmark process would report the parent's peak; VmHWM is the new image's own.
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**10  # kB
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def child_rss_mb(what: str, argv: list[str]) -> float:
    """Peak RSS (MiB) of a fresh interpreter that builds the view and runs ``what``.

    ``what`` is a policy name, or ``none`` for the baseline that only builds the view.
    """
    out = subprocess.run(
        [sys.executable, __file__, *argv, "--child", what],
        check=True,
        capture_output=True,
        text=True,
    )
    return float(out.stdout)


def percentile(times: list[float], q: float) -> float:
    return float(np.percentile(np.array(times), q))


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Per-decision time and peak memory of lowcarb and random selection."
    )
    parser.add_argument("--clients", type=int, default=100, help="candidates N (default 100)")
    parser.add_argument("--zones", type=int, default=14, help="grid zones Z (default 14)")
    parser.add_argument("--horizon", type=int, default=96, help="planned slots H (default 96)")
    parser.add_argument(
        "--per-round", type=int, default=None, help="K (default min(max(1, N // 10), 10000))"
    )
    parser.add_argument(
        "--energy",
        choices=("uniform", "mixed"),
        default="mixed",
        help="one energy per round for all, or three device classes (default mixed)",
    )
    parser.add_argument(
        "--repeat", type=int, default=None, help="timed runs (default 20; 5 above 100,000)"
    )
    parser.add_argument(
        "--rounds-left",
        type=int,
        default=None,
        help="rounds left (default H); fewer than H: a deadline at the horizon's end",
    )
    parser.add_argument("--seed", type=int, default=0, help="scenario and rng seed")
    parser.add_argument(
        "--memory",
        choices=("tracemalloc", "rss"),
        default="tracemalloc",
        help="how peak_mb is measured (default tracemalloc)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.clients < 1 or args.zones < 1 or args.horizon < 1:
        parser.error("--clients, --zones and --horizon must be at least 1")
    if args.per_round is None:
        args.per_round = default_per_round(args.clients)
    if not 1 <= args.per_round <= args.clients:
        parser.error(f"--per-round must be between 1 and {args.clients}")
    if args.rounds_left is not None and args.rounds_left < 1:
        parser.error("--rounds-left must be at least 1")
    if args.repeat is None:
        args.repeat = default_repeat(args.clients)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    loud = args.clients >= 100_000
    if loud and args.child is None:
        progress(f"building a view of {args.clients:,} clients")
    scenario = build_scenario(
        args.clients,
        args.zones,
        args.horizon,
        per_round=args.per_round,
        energy=args.energy,
        seed=args.seed,
        rounds_left=args.rounds_left,
    )
    if args.child is not None:
        # Subprocess of --memory rss: one decision (or none), then report the peak RSS.
        # The planner imports scipy.optimize lazily; a one-off cost, so in the baseline.
        importlib.import_module("scipy.optimize")
        if args.child != "none":
            decision(args.child, scenario, args.seed)(0)
        print(maxrss_mb())
        return

    results = {}
    child_argv = [a for a in argv if a != "--json"]
    baseline_mb = child_rss_mb("none", child_argv) if args.memory == "rss" else 0.0
    for name in POLICIES:
        if loud:
            progress(f"{name}: warm-up")
        times = time_policy(name, scenario, repeat=args.repeat, seed=args.seed)
        if loud:
            progress(f"{name}: memory ({args.memory})")
        if args.memory == "rss":
            peak = max(0.0, child_rss_mb(name, child_argv) - baseline_mb)
        else:
            peak = traced_peak_mb(name, scenario, seed=args.seed)
        results[name] = {
            "p50_ms": round(percentile(times, 50), 3),
            "p99_ms": round(percentile(times, 99), 3),
            "peak_mb": round(peak, 3),
        }
    if loud:
        progress("")

    if args.json:
        report = {
            "clients": args.clients,
            "zones": args.zones,
            "horizon": args.horizon,
            "results": results,
        }
        print(json.dumps(report))
        return
    print(
        f"{args.clients:,} clients, {args.zones} zones, {args.horizon} slots, "
        f"K={args.per_round:,}, energy {args.energy}, {args.repeat} runs after a warm-up, "
        f"seed {args.seed}, memory by {args.memory}"
    )
    print(f"{'policy':<15}{'p50 ms':>12}{'p99 ms':>12}{'peak MiB':>12}")
    for name, r in results.items():
        print(f"{name:<15}{r['p50_ms']:>12.3f}{r['p99_ms']:>12.3f}{r['peak_mb']:>12.2f}")
    base = results["random.sample"]["p50_ms"]
    if base > 0:
        for name in ("lowcarb", "random"):
            print(f"{name} / random.sample (p50): {results[name]['p50_ms'] / base:,.1f}x")


if __name__ == "__main__":
    main()
