"""Forecast accuracy of the history-based forecasters: MAPE by lead time, per zone and year.

Replays the Electricity Maps hourly carbon intensities of 16 zones (2021-2023, life-cycle
basis; Contains data from Electricity Maps (ODbL)). At each issue time the forecasters see
only the preceding lookback (14 days) and forecast the next 168 hours for every zone.

Lead ``h`` is the interval starting ``h - 1`` hours after the issue time: lead 1 is the
first hour not yet observed. MAPE is ``mean(|forecast - actual| / actual) * 100`` over
issue times, zones and the leads of a bucket (no actual value is zero in this data).
Periods are assigned by issue time, so "2023" forecasts come from 2023 issue times only.

``--tune`` instead scores a small grid of ProfileForecaster parameters on issue times
whose whole horizon ends before 2023, the way its defaults were chosen.

Usage (from the repository root)::

    .venv/bin/python benchmarks/forecast_accuracy.py            # markdown tables
    .venv/bin/python benchmarks/forecast_accuracy.py --json     # the same as JSON
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from lowcarb._forecast import (
    Forecaster,
    PersistenceForecaster,
    ProfileForecaster,
    WeeklyForecaster,
)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(
    "../shared/data/electricitymaps-16zones-2021-2023/carbon_intensity_lca_2021_2023_hourly.csv"
)
HORIZON = 168
BUCKETS = [(1, 1), (2, 6), (7, 12), (13, 24), (25, 48), (49, 96), (97, 168)]
TUNE_END = pd.Timestamp("2023-01-01", tz="UTC")


def load(path: Path) -> pd.DataFrame:
    """The wide CSV: a UTC time column, then one column of gCO2eq/kWh per zone."""
    frame = pd.read_csv(path, index_col=0)
    frame.index = pd.to_datetime(frame.index, utc=True)
    step = frame.index.to_series().diff().dropna().unique()
    if len(step) != 1 or step[0] != pd.Timedelta(hours=1):
        raise SystemExit(f"{path}: expected an hourly index without gaps")
    return frame.astype(float)


class Scores:
    """Sums of absolute percentage errors per (year, lead, zone), for one forecaster."""

    def __init__(self, years: Sequence[int], zones: int) -> None:
        self.years = list(years)
        self.total = np.zeros((len(years), HORIZON, zones))
        self.count = np.zeros((len(years), HORIZON, zones))
        self.seconds: list[float] = []

    def add(self, year: int, forecast: np.ndarray, actual: np.ndarray) -> None:
        ok = actual > 0
        ape = np.where(ok, np.abs(forecast - actual) / np.where(ok, actual, 1.0) * 100, 0.0)
        self.total[self.years.index(year)] += ape
        self.count[self.years.index(year)] += ok

    def mape(self, years: Sequence[int], leads: tuple[int, int], zone: int | None = None) -> float:
        rows = [self.years.index(y) for y in years if y in self.years]
        cols = slice(None) if zone is None else zone
        total = self.total[rows, leads[0] - 1 : leads[1], cols].sum()
        count = self.count[rows, leads[0] - 1 : leads[1], cols].sum()
        return float(total / count) if count else float("nan")


def run(
    data: pd.DataFrame,
    forecasters: Sequence[Forecaster],
    issue_every: int,
    *,
    horizon_before: pd.Timestamp | None = None,
) -> tuple[dict[str, Scores], dict[int, int]]:
    """Score every forecaster at issue times ``issue_every`` hours apart."""
    lookback = max(int(f.lookback / pd.Timedelta(hours=1)) for f in forecasters)
    values = data.to_numpy()
    years = sorted(set(data.index.year))
    scores = {f.name: Scores(years, data.shape[1]) for f in forecasters}
    positions = range(lookback, len(data) - HORIZON + 1, issue_every)
    if horizon_before is not None:
        positions = range(
            lookback, data.index.searchsorted(horizon_before) - HORIZON + 1, issue_every
        )
    issues: dict[int, int] = {}
    started = time.perf_counter()
    for done, i in enumerate(positions):
        issued = data.index[i].to_pydatetime()
        history = data.iloc[i - lookback : i]
        targets = data.index[i : i + HORIZON]
        actual = values[i : i + HORIZON]
        year = issued.year
        issues[year] = issues.get(year, 0) + 1
        for forecaster in forecasters:
            tic = time.perf_counter()
            forecast = forecaster.predict(history, issued, targets).to_numpy()
            scores[forecaster.name].seconds.append(time.perf_counter() - tic)
            scores[forecaster.name].add(year, forecast, actual)
        if done % max(len(positions) // 10, 1) == 0:
            print(
                f"  {done + 1}/{len(positions)} issue times "
                f"({time.perf_counter() - started:.0f} s)",
                file=sys.stderr,
            )
    return scores, issues


def bucket_label(bucket: tuple[int, int]) -> str:
    return str(bucket[0]) if bucket[0] == bucket[1] else f"{bucket[0]}-{bucket[1]}"


def summary(scores: dict[str, Scores], zones: Sequence[str], periods: dict[str, list[int]]):
    """MAPE by lead bucket per period, per zone at 1-24 h, and predict times."""
    buckets = [*BUCKETS, (1, 24), (1, HORIZON)]
    return {
        "mape_by_lead": {
            period: {
                name: {bucket_label(b): s.mape(years, b) for b in buckets}
                for name, s in scores.items()
            }
            for period, years in periods.items()
        },
        "mape_1_24_by_zone": {
            period: {
                name: {zone: s.mape(years, (1, 24), z) for z, zone in enumerate(zones)}
                for name, s in scores.items()
            }
            for period, years in periods.items()
        },
        "predict_ms_median": {
            name: float(np.median(s.seconds) * 1000) for name, s in scores.items()
        },
    }


def markdown(result: dict, issues: dict[int, int], args: argparse.Namespace) -> str:
    lines = [
        f"Data: {args.data.name}; issue every {args.issue_every} h; "
        f"issue times per year: {', '.join(f'{y}: {n}' for y, n in sorted(issues.items()))}.",
        "",
    ]
    for period, table in result["mape_by_lead"].items():
        heads = list(next(iter(table.values())))
        lines += [
            f"MAPE (%) by lead (h), issue times in {period}:",
            "",
            "| forecaster | " + " | ".join(heads) + " |",
            "|---" * (len(heads) + 1) + "|",
        ]
        for name, row in table.items():
            lines.append(f"| {name} | " + " | ".join(f"{v:.2f}" for v in row.values()) + " |")
        lines.append("")
    zone_tables = result["mape_1_24_by_zone"]
    columns = [(p, n) for p, t in zone_tables.items() for n in t]
    lines += [
        "MAPE (%) at leads 1-24 h by zone:",
        "",
        "| zone | " + " | ".join(f"{n} {p}" for p, n in columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    zones = next(iter(next(iter(zone_tables.values())).values()))
    for zone in zones:
        cells = " | ".join(f"{zone_tables[p][n][zone]:.2f}" for p, n in columns)
        lines.append(f"| {zone} | {cells} |")
    lines += [
        "",
        "Median predict time (16 zones, 168 targets): "
        + ", ".join(f"{n} {ms:.2f} ms" for n, ms in result["predict_ms_median"].items()),
    ]
    return "\n".join(lines)


def tune(data: pd.DataFrame, issue_every: int) -> list[dict[str, float]]:
    """Mean MAPE over leads 1-168 for a grid of ProfileForecaster parameters (2021-2022)."""
    rows = []
    grid = itertools.product((0.7, 0.85, 1.0), (0.0, 0.25, 0.5), (0.95, 0.98))
    for day_decay, weekly_weight, max_decay in grid:
        forecaster = ProfileForecaster(
            day_decay=day_decay, weekly_weight=weekly_weight, max_decay_per_hour=max_decay
        )
        print(f"{forecaster!r}", file=sys.stderr)
        scores, _ = run(data, [forecaster], issue_every, horizon_before=TUNE_END)
        s = scores[forecaster.name]
        rows.append(
            {
                "day_decay": day_decay,
                "weekly_weight": weekly_weight,
                "max_decay_per_hour": max_decay,
                "mape_1_24": s.mape(s.years, (1, 24)),
                "mape_1_168": s.mape(s.years, (1, HORIZON)),
            }
        )
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help="wide hourly CSV (relative paths are from the repository root; default: %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of markdown")
    parser.add_argument(
        "--issue-every",
        type=int,
        default=7,
        metavar="HOURS",
        help="hours between issue times; 7 is coprime with 24 and 168, so issue times "
        "cycle through every hour of the day and week (default: %(default)s)",
    )
    parser.add_argument(
        "--tune",
        action="store_true",
        help="score a grid of ProfileForecaster parameters on 2021-2022 instead",
    )
    args = parser.parse_args(argv)
    if args.issue_every < 1:
        parser.error("--issue-every must be at least 1")
    path = args.data if args.data.is_absolute() else REPO / args.data
    data = load(path)

    if args.tune:
        rows = tune(data, args.issue_every)
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            print("| day_decay | weekly_weight | max_decay_per_hour | MAPE 1-24 | MAPE 1-168 |")
            print("|---|---|---|---|---|")
            for r in sorted(rows, key=lambda r: r["mape_1_168"]):
                print(
                    f"| {r['day_decay']} | {r['weekly_weight']} | {r['max_decay_per_hour']} "
                    f"| {r['mape_1_24']:.2f} | {r['mape_1_168']:.2f} |"
                )
        return

    forecasters = [PersistenceForecaster(), WeeklyForecaster(), ProfileForecaster()]
    scores, issues = run(data, forecasters, args.issue_every)
    years = sorted(issues)
    periods = {f"{years[0]}-{years[-1]}": years, str(years[-1]): [years[-1]]}
    result = summary(scores, list(data.columns), periods)
    if args.json:
        result["issues_per_year"] = issues
        result["issue_every_h"] = args.issue_every
        result["data"] = path.name
        print(json.dumps(result, indent=2))
    else:
        print(markdown(result, issues, args))


if __name__ == "__main__":
    main()
