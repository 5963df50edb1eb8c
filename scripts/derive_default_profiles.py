"""Derive the embedded default provider's statistics from real Electricity Maps data.

Reads the wide hourly files of ``electricitymaps-16zones-2021-2023`` (life-cycle and
direct) and writes ``backends/data/default_profiles.json``: per zone and emission basis,
the mean and standard deviation of intensity by local month x hour x weekday/weekend,
the observed range, and the persistence of anomalies (day-to-day and hour-to-hour).
Only these statistics are committed; no row of the source data is.

Contains data from Electricity Maps (ODbL).

Usage:
    python scripts/derive_default_profiles.py [--data ../shared/data/electricitymaps-16zones-2021-2023]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from lowcarb._zones import ZONE_CATALOG

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "electricitymaps-16zones-2021-2023"
OUT = REPO / "backends" / "data" / "default_profiles.json"
FILES = {
    "lifecycle": "carbon_intensity_lca_2021_2023_hourly.csv",
    "direct": "carbon_intensity_direct_2021_2023_hourly.csv",
}
SD_FLOOR = 1.0  # g/kWh; keeps anomalies finite in cells with (almost) constant values


def lag1(x: np.ndarray) -> float:
    """Lag-1 autocorrelation, ignoring NaN pairs."""
    a, b = x[:-1], x[1:]
    ok = ~(np.isnan(a) | np.isnan(b))
    if ok.sum() < 3:
        return 0.0
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def zone_stats(series: pd.Series, tz: str) -> dict[str, object]:
    local = series.index.tz_convert(tz)
    frame = pd.DataFrame(
        {
            "v": series.to_numpy(dtype=float),
            "weekend": (local.day_of_week >= 5).astype(int),
            "month": local.month - 1,
            "hour": local.hour,
            "day": local.tz_localize(None).normalize(),  # local calendar day
        }
    )
    grouped = frame.groupby(["weekend", "month", "hour"])["v"]
    mean = np.full((2, 12, 24), np.nan)
    sd = np.full((2, 12, 24), np.nan)
    for (w, m, h), value in grouped.mean().items():
        mean[w, m, h] = value
    for (w, m, h), value in grouped.std().items():
        sd[w, m, h] = value
    sd = np.maximum(np.nan_to_num(sd, nan=SD_FLOOR), SD_FLOOR)

    mu = mean[frame["weekend"], frame["month"], frame["hour"]]
    sigma = sd[frame["weekend"], frame["month"], frame["hour"]]
    z = (frame["v"].to_numpy() - mu) / sigma
    frame["z"] = z
    daily = frame.groupby("day")["z"].mean()
    daily_share = float(np.clip(np.nanvar(daily.to_numpy()) / np.nanvar(z), 0.05, 0.95))
    day_persistence = float(np.clip(lag1(daily.to_numpy()), 0.0, 0.99))
    resid = z - frame["day"].map(daily).to_numpy()
    # Hour-to-hour persistence of the within-day part; pairs that cross midnight are kept,
    # the residual is small there either way.
    hour_persistence = float(np.clip(lag1(resid), 0.0, 0.999))
    return {
        "mean": np.round(mean, 1).tolist(),
        "sd": np.round(sd, 1).tolist(),
        "min": round(float(series.min()), 1),
        "max": round(float(series.max()), 1),
        "daily_share": round(daily_share, 4),
        "day_persistence": round(day_persistence, 4),
        "hour_persistence": round(hour_persistence, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    frames = {
        basis: pd.read_csv(args.data / name, index_col="datetime_utc", parse_dates=True)
        for basis, name in FILES.items()
    }
    estimated = pd.read_csv(
        args.data / "data_estimated_2021_2023_hourly.csv",
        index_col="datetime_utc",
        parse_dates=True,
    )
    zones = list(frames["lifecycle"].columns)
    out: dict[str, object] = {
        "format": 1,
        "attribution": "Contains data from Electricity Maps (ODbL). Derived statistics only.",
        "source": "electricitymaps-16zones-2021-2023 (Electricity Maps data portal, hourly, 2021-2023)",
        "generated_by": "scripts/derive_default_profiles.py",
        "layout": "mean/sd indexed [weekend 0|1][local month 0-11][local hour 0-23], gCO2eq/kWh",
        "zones": {},
    }
    for zone in zones:
        info = ZONE_CATALOG[zone]
        entry: dict[str, object] = {
            "timezone": info.timezone,
            "share_estimated": round(float(estimated[zone].mean()), 4),
        }
        for basis, frame in frames.items():
            entry[basis] = zone_stats(frame[zone].dropna(), info.timezone)
        out["zones"][zone] = entry  # type: ignore[index]
        print(f"{zone:12s} lifecycle mean {frames['lifecycle'][zone].mean():7.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
