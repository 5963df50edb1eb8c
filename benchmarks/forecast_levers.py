"""Where the gap to the oracle comes from, and what closing it would take (development data).

The seed scenario (100 clients round-robin over the 14 measured zones, K = 10, 96 hourly
rounds, fairness 1) on 4-day windows of 2021-2023 every 14 days from 2021-01-25 (a week
after the headline's: other windows), with the ``lowcarb`` policy fed variants of its
planning signal:

* information experiments (the truth for some leads, the profile forecast for the rest):
  how much each part of the horizon's forecast error costs;
* uncertainty-aware variants of the profile forecast, each a lever the planner could use
  without future information: deferral discounted or favoured by the forecaster's
  measured error at each lead, the log-normal mean correction ``exp(sigma^2 / 2)`` of a
  forecast made in ``log(1 + x)``, a shorter planning horizon.

Each variant is scored as the share of the oracle's saving (the same planner fed the
truth), median and worst window, separately on 2021-2022 (where a variant would be
chosen) and 2023 (a check). The loop here is the simulator's, without the engine around
it: same clients, same energy, same seeds, same scores (one window was checked equal to
``lowcarb simulate`` to the last digit).

    python benchmarks/forecast_levers.py             # a markdown table
    python benchmarks/forecast_levers.py --workers 2

Contains data from Electricity Maps (ODbL). The holdout data is never read.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from lowcarb import LowcarbPolicy, ProfileForecaster, RoundView
from lowcarb.simulation import DEFAULT_ZONES

ROOT = Path(__file__).resolve().parents[1]
DATA = (
    ROOT.parent
    / "shared"
    / "data"
    / "electricitymaps-16zones-2021-2023"
    / "carbon_intensity_lca_2021_2023_hourly.csv"
)
ROUNDS, CLIENTS, K = 96, 100, 10
ENERGY_KWH = 0.0702  # the simulator's 70 W for an hour plus 20 MB at 0.01 kWh/GB
LOOKBACK = 14 * 24
ERROR_DAYS = 7  # issue times whose errors measure the forecaster's skill per lead

Signal = Callable[[int, int], np.ndarray]  # (position of now, slots) -> (zones, slots)


def _load(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, index_col=0)
    frame.index = pd.to_datetime(frame.index, utc=True)
    return frame[list(DEFAULT_ZONES)].astype(float)


def _saving(frame: pd.DataFrame, start: int, signal: Signal) -> float:
    """Saving of ``lowcarb`` against expected random selection over one window."""
    truth = frame.to_numpy()
    zone = np.arange(CLIENTS) % frame.shape[1]
    energy = np.full(CLIENTS, ENERGY_KWH)
    policy = LowcarbPolicy()
    participation = np.zeros(CLIENTS, dtype=np.int64)
    grams = baseline = 0.0
    for r in range(ROUNDS):
        now = start + r
        view = RoundView(
            zone=zone,
            energy_kwh=energy,
            utility=np.ones(CLIENTS),
            participation=participation.copy(),
            intensity=signal(now, ROUNDS - r),
            per_round=K,
            rounds_total=ROUNDS,
            rounds_done=r,
            population=CLIENTS,
        )
        chosen = policy.choose(view, np.random.default_rng([0, r + 1])).selected
        grams += float((energy[chosen] * truth[now, zone[chosen]]).sum())
        baseline += K * float((energy * truth[now, zone]).mean())
        participation[chosen] += 1
    return 1.0 - grams / baseline


class _Window:
    """Profile forecasts around one window, cached, and their measured errors."""

    def __init__(self, frame: pd.DataFrame, start: int) -> None:
        self.frame, self.start = frame, start
        self.log = np.log1p(frame.to_numpy())
        self.forecaster = ProfileForecaster()
        self._cache: dict[int, np.ndarray] = {}

    def profile(self, now: int) -> np.ndarray:
        """``log(1 + x)`` of the profile forecast issued at ``now``, (ROUNDS, zones)."""
        if now not in self._cache:
            history = self.frame.iloc[now - LOOKBACK : now]
            targets = self.frame.index[now : now + ROUNDS]
            issued = self.frame.index[now].to_pydatetime()
            values = self.forecaster.predict(history, issued, targets).to_numpy()
            self._cache[now] = np.log1p(values)
        return self._cache[now]

    def error_sd(self, now: int) -> np.ndarray:
        """RMS log error by lead and zone of the forecasts issued in the last week."""
        total = np.zeros((ROUNDS, self.frame.shape[1]))
        count = np.zeros((ROUNDS, 1))
        for issued in range(now - ERROR_DAYS * 24, now):
            seen = min(ROUNDS, now - issued)  # leads observed by now
            error = self.log[issued : issued + seen] - self.profile(issued)[:seen]
            total[:seen] += error**2
            count[:seen] += 1
        sd = np.sqrt(total / np.maximum(count, 1))
        last = int(np.flatnonzero(count[:, 0])[-1])
        sd[last + 1 :] = sd[last]  # leads not yet observed: the longest observed one
        return sd


def _variants() -> dict[str, Callable[[_Window], Signal]]:
    """Each variant's signal, built per window."""

    def profile(w: _Window) -> Signal:
        return lambda now, slots: np.expm1(w.profile(now)[:slots]).T

    def truth_for(first: int, last: int) -> Callable[[_Window], Signal]:
        def build(w: _Window) -> Signal:
            def signal(now: int, slots: int) -> np.ndarray:
                values = w.profile(now)[:slots].copy()
                leads = np.arange(slots)
                known = (leads >= first) & (leads <= last)
                values[known] = w.log[now : now + slots][known]
                return np.expm1(values).T

            return signal

        return build

    def deferral(scale: float) -> Callable[[_Window], Signal]:
        # Future slots cost more (scale > 0) or less by their measured error beyond now's.
        def build(w: _Window) -> Signal:
            def signal(now: int, slots: int) -> np.ndarray:
                sd = w.error_sd(now)[:slots]
                return np.expm1(w.profile(now)[:slots] + scale * (sd - sd[:1])).T

            return signal

        return build

    def lognormal_mean(w: _Window) -> Signal:
        def signal(now: int, slots: int) -> np.ndarray:
            sd = w.error_sd(now)[:slots]
            return np.expm1(w.profile(now)[:slots] + sd**2 / 2).T

        return signal

    def horizon(hours: int) -> Callable[[_Window], Signal]:
        return lambda w: lambda now, slots: np.expm1(w.profile(now)[: min(slots, hours)]).T

    return {
        "profile forecast (the default)": profile,
        "truth for the current hour only": truth_for(0, 0),
        "truth for the next 6 hours": truth_for(0, 6),
        "truth for the next 24 hours": truth_for(0, 24),
        "truth from lead 1 on (profile for the current hour)": truth_for(1, ROUNDS),
        "deferral discounted by 0.5 x measured error": deferral(0.5),
        "deferral favoured by 0.5 x measured error": deferral(-0.5),
        "log-normal mean: exp(sigma^2 / 2) by zone and lead": lognormal_mean,
        "planning horizon 48 h (quotas pro-rated)": horizon(48),
    }


def _window(args: tuple[Path, str]) -> dict[str, float]:
    path, iso = args
    frame = _load(path)
    start = int(frame.index.get_loc(pd.Timestamp(iso)))
    window = _Window(frame, start)
    truth = window.log
    out = {"oracle": _saving(frame, start, lambda now, s: np.expm1(truth[now : now + s]).T)}
    for name, build in _variants().items():
        out[name] = _saving(frame, start, build(window))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--every-days", type=int, default=14)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", type=Path, help="write every window's savings here")
    args = parser.parse_args()
    # The error measure needs a week of forecasts before the window, each with 14 days of
    # history: the first window starts 2021-01-25.
    first, end = datetime(2021, 1, 25, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC)
    starts, when = [], first
    while when + timedelta(hours=ROUNDS + 1) <= end:
        starts.append(when)
        when += timedelta(days=args.every_days)
    tick = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        rows = list(pool.map(_window, [(args.data, s.isoformat()) for s in starts]))
    years = np.array([s.year for s in starts])
    lines = [
        f"{len(starts)} windows (every {args.every_days} days from {starts[0]:%Y-%m-%d}); "
        f"{(time.perf_counter() - tick) / 60:.1f} min",
        "",
        "| planning signal | share of oracle, 2021-2022: median (worst) | 2023: median (worst) |",
        "|---|---|---|",
    ]
    for name in _variants():
        share = np.array([r[name] / r["oracle"] for r in rows])
        cells = []
        for mask in (years < 2023, years == 2023):
            cells.append(f"{100 * np.median(share[mask]):.1f} % ({100 * share[mask].min():.1f} %)")
        lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
    print("\n".join(lines))
    if args.json:
        payload = {s.isoformat(): r for s, r in zip(starts, rows, strict=True)}
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
