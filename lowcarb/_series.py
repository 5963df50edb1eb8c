"""The one type for carbon-intensity time series, plus alignment and unit helpers."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
import pandas as pd

from lowcarb._time import ensure_utc
from lowcarb.exceptions import DataValidationError, InvalidInputError

__all__ = [
    "MAX_PLAUSIBLE_G_PER_KWH",
    "EmissionBasis",
    "IntensitySeries",
    "Signal",
    "align",
    "convert_intensity",
    "lbs_per_mwh_to_g_per_kwh",
]

Signal = Literal["average", "marginal"]
EmissionBasis = Literal["lifecycle", "direct"]

#: Values above this (gCO2eq/kWh) are rejected as absurd: the dirtiest real grids
#: (lignite, oil) stay below ~1,200 and marginal signals below ~2,000.
MAX_PLAUSIBLE_G_PER_KWH = 3000.0

# Grams per unit of each supported intensity unit, per kWh.
_G_PER_KWH = {
    "g/kwh": 1.0,
    "kg/kwh": 1000.0,
    "g/mwh": 1e-3,
    "kg/mwh": 1.0,
    "t/mwh": 1000.0,
    "lbs/mwh": 453.59237 / 1000.0,
    "lb/mwh": 453.59237 / 1000.0,
}


def lbs_per_mwh_to_g_per_kwh(value: float) -> float:
    """Convert WattTime's lbs CO2/MWh to gCO2/kWh (x 0.45359237)."""
    return value * _G_PER_KWH["lbs/mwh"]


def convert_intensity(value: Any, from_unit: str, to_unit: str = "g/kWh") -> Any:
    """Convert an intensity (scalar, numpy array or pandas object) between units.

    Args:
        value: The value(s) to convert.
        from_unit: One of g/kWh, kg/kWh, g/MWh, kg/MWh, t/MWh, lbs/MWh (case-insensitive).
        to_unit: The target unit, from the same list.

    Raises:
        InvalidInputError: If a unit is not known.
    """
    try:
        factor = _G_PER_KWH[from_unit.lower()] / _G_PER_KWH[to_unit.lower()]
    except KeyError as exc:
        raise InvalidInputError(
            f"unknown intensity unit {exc.args[0]!r}; known: {', '.join(sorted(_G_PER_KWH))}"
        ) from None
    return value * factor


@dataclass(frozen=True)
class IntensitySeries:
    """Carbon intensity of one or more zones over time, with its provenance.

    The index marks the *start* of each interval (tz-aware, UTC, regular at
    ``resolution``); there is one column per zone; values are gCO2eq/kWh. A missing
    value is NaN, never a dropped row.

    Attributes:
        values: The data, index = interval starts (UTC), columns = zone ids.
        resolution: Length of each interval.
        signal: ``average`` (grid mix) or ``marginal`` (the plant that responds).
        basis: ``lifecycle`` (supply chain included) or ``direct`` (combustion only).
        provider: Registry name of the provider that produced the values.
        is_forecast: True when the values are a forecast rather than measurements.
        issued_at: When a forecast was issued (None for measurements).
        estimated: Same shape as ``values``; True where the value is estimated or was
            repaired (interpolated) rather than measured.
        perfect_foresight: True when a "forecast" replays the true future (files).
        synthetic: True for generated data (the embedded default provider).
        notes: Human-readable provenance: fallbacks taken, repairs made, resolutions.
    """

    values: pd.DataFrame
    resolution: timedelta
    signal: Signal = "average"
    basis: EmissionBasis = "lifecycle"
    provider: str = ""
    is_forecast: bool = False
    issued_at: datetime | None = None
    estimated: pd.DataFrame | None = None
    perfect_foresight: bool = False
    synthetic: bool = False
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        frame = self.values
        if not isinstance(frame, pd.DataFrame):
            raise InvalidInputError("IntensitySeries.values must be a pandas DataFrame")
        index = frame.index
        if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
            raise InvalidInputError(
                "IntensitySeries needs a timezone-aware DatetimeIndex (UTC interval starts)"
            )
        if str(index.tz) != "UTC":
            object.__setattr__(self, "values", frame.tz_convert("UTC"))
            frame = self.values
        if self.resolution <= timedelta(0):
            raise InvalidInputError("IntensitySeries.resolution must be positive")
        if not index.is_unique:
            dup = index[index.duplicated()][0]
            raise DataValidationError(f"duplicated timestamp {dup.isoformat()}", self.provider)
        if not index.is_monotonic_increasing:
            raise DataValidationError("timestamps are not in increasing order", self.provider)
        if len(index) > 1:
            steps = np.diff(index.as_unit("ns").asi8)
            step_ns = int(pd.Timedelta(self.resolution).value)
            if np.any(steps % step_ns):
                raise DataValidationError(
                    f"timestamps are not on a regular {self.resolution} grid", self.provider
                )
        if self.issued_at is not None:
            object.__setattr__(self, "issued_at", ensure_utc(self.issued_at, "issued_at"))
        if self.estimated is not None and (
            self.estimated.shape != frame.shape
            or not self.estimated.index.equals(frame.index)
            or list(self.estimated.columns) != list(frame.columns)
        ):
            raise InvalidInputError("IntensitySeries.estimated must match values in shape")

    # -- construction -------------------------------------------------------------------

    @classmethod
    def from_points(
        cls,
        points: Mapping[str, Iterable[tuple[datetime, float]]],
        resolution: timedelta,
        **metadata: Any,
    ) -> IntensitySeries:
        """Build a series from ``{zone: [(start, g_per_kwh), ...]}``.

        Args:
            points: Interval starts (aware datetimes) and values per zone.
            resolution: Length of each interval.
            **metadata: Any other field of :class:`IntensitySeries`.
        """
        source = str(metadata.get("provider", ""))
        columns = {}
        for zone, pairs in points.items():
            pairs = list(pairs)
            stamps = pd.DatetimeIndex([ensure_utc(t, "point time") for t, _ in pairs])
            if not stamps.is_unique:
                dup = stamps[stamps.duplicated()][0]
                raise DataValidationError(f"{zone}: duplicated timestamp {dup.isoformat()}", source)
            columns[zone] = pd.Series([float(v) for _, v in pairs], index=stamps, dtype=float)
        frame = pd.DataFrame(columns).sort_index()
        if len(frame.index):
            full = pd.date_range(frame.index.min(), frame.index.max(), freq=resolution)
            off_grid = frame.index.difference(full)
            if len(off_grid):
                raise DataValidationError(
                    f"{len(off_grid)} point(s) off the {resolution} grid, first "
                    f"{off_grid[0].isoformat()}",
                    source,
                )
            frame = frame.reindex(full)
        frame.index.name = "start"
        return cls(frame, resolution, **metadata)

    # -- accessors ----------------------------------------------------------------------

    @property
    def zones(self) -> list[str]:
        """Zone ids, in column order."""
        return [str(c) for c in self.values.columns]

    @property
    def start(self) -> datetime | None:
        """Start of the first interval, or None when empty."""
        return self.values.index[0].to_pydatetime() if len(self.values) else None

    @property
    def end(self) -> datetime | None:
        """End (exclusive) of the last interval, or None when empty."""
        if not len(self.values):
            return None
        last: datetime = pd.Timestamp(self.values.index[-1]).to_pydatetime()
        return last + self.resolution

    def __len__(self) -> int:
        return len(self.values)

    def estimated_mask(self) -> pd.DataFrame:
        """Boolean frame, True where a value is estimated (all False when unknown)."""
        if self.estimated is not None:
            return self.estimated
        return pd.DataFrame(False, index=self.values.index, columns=self.values.columns)

    def at(self, zone: str, when: datetime) -> float:
        """Intensity of ``zone`` during the interval that contains ``when`` (gCO2eq/kWh).

        Raises:
            InvalidInputError: If the zone is not in the series or ``when`` is outside it.
        """
        if zone not in self.values.columns:
            raise InvalidInputError(f"zone {zone!r} is not in this series ({self.zones})")
        stamp = pd.Timestamp(ensure_utc(when, "when"))
        pos = int(self.values.index.searchsorted(stamp, side="right")) - 1
        if pos < 0 or stamp >= self.values.index[pos] + self.resolution:
            raise InvalidInputError(
                f"{stamp.isoformat()} is outside the series [{self.start}, {self.end})"
            )
        return float(self.values[zone].iloc[pos])

    # -- transformations ----------------------------------------------------------------

    def with_values(self, values: pd.DataFrame, **changes: Any) -> IntensitySeries:
        """Return a copy with new values (and estimated flags reindexed to match)."""
        estimated = None
        if self.estimated is not None:
            estimated = (
                self.estimated.reindex(index=values.index, columns=values.columns)
                .fillna(False)
                .astype(bool)
            )
        return replace(
            self, values=values, estimated=changes.pop("estimated", estimated), **changes
        )

    def select(self, zones: Sequence[str]) -> IntensitySeries:
        """Return only ``zones``, in that order.

        Raises:
            InvalidInputError: If a zone is not in the series.
        """
        missing = [z for z in zones if z not in self.values.columns]
        if missing:
            raise InvalidInputError(f"zones {missing} are not in this series ({self.zones})")
        return self.with_values(self.values[list(zones)])

    def between(self, start: datetime, end: datetime) -> IntensitySeries:
        """Return the intervals whose start lies in ``[start, end)``."""
        lo = pd.Timestamp(ensure_utc(start, "start"))
        hi = pd.Timestamp(ensure_utc(end, "end"))
        index = self.values.index
        return self.with_values(self.values[(index >= lo) & (index < hi)])

    def resample(self, resolution: timedelta) -> IntensitySeries:
        """Change resolution: mean when coarsening, repeat when refining.

        Coarsening averages the intervals that start inside each new interval (a NaN
        stays NaN only if all its parts are NaN) and marks the result estimated if any
        part was estimated or missing. Refining repeats each value, since intensity is
        taken as constant within an interval.
        """
        if resolution == self.resolution:
            return self
        rule = pd.Timedelta(resolution)
        if resolution > self.resolution:
            values = self.values.resample(rule, origin="epoch").mean()
            # A mean over an interval with missing parts is an estimate.
            flags = (
                self.values.isna().resample(rule, origin="epoch").max().astype(bool)
                & values.notna()
            )
            if self.estimated is not None:
                flags |= self.estimated.resample(rule, origin="epoch").max().astype(bool)
            has_flags = self.estimated is not None or bool(flags.to_numpy().any())
            estimated = flags if has_flags else None
        else:
            if len(self.values):
                last = self.values.index[-1] + pd.Timedelta(self.resolution) - rule
                index = pd.date_range(self.values.index[0], last, freq=rule)
            else:
                index = pd.DatetimeIndex([], tz="UTC")
            values = self.values.reindex(index, method="ffill")
            estimated = None
            if self.estimated is not None:
                estimated = self.estimated.reindex(index, method="ffill").astype(bool)
        values.index.name = "start"
        return replace(self, values=values, estimated=estimated, resolution=resolution)

    def to_records(self) -> list[dict[str, Any]]:
        """Return ``[{"zone", "start", "value", "estimated"}, ...]`` (long format)."""
        mask = self.estimated_mask()
        out: list[dict[str, Any]] = []
        for zone in self.values.columns:
            for stamp, value in self.values[zone].items():
                out.append(
                    {
                        "zone": str(zone),
                        "start": pd.Timestamp(str(stamp)).isoformat().replace("+00:00", "Z"),
                        "value": None if math.isnan(value) else round(float(value), 3),
                        "estimated": bool(mask.at[stamp, zone]),
                    }
                )
        return out

    def metadata(self) -> dict[str, Any]:
        """Provenance as a JSON-ready dict."""
        return {
            "provider": self.provider,
            "signal": self.signal,
            "basis": self.basis,
            "unit": "gCO2eq/kWh",
            "resolution_minutes": round(self.resolution / timedelta(minutes=1), 6),
            "is_forecast": self.is_forecast,
            "issued_at": self.issued_at.isoformat().replace("+00:00", "Z")
            if self.issued_at
            else None,
            "perfect_foresight": self.perfect_foresight,
            "synthetic": self.synthetic,
            "notes": list(self.notes),
        }

    def __repr__(self) -> str:
        kind = "forecast" if self.is_forecast else "history"
        span = f"{self.start} .. {self.end}" if len(self) else "empty"
        return (
            f"IntensitySeries({self.provider or '?'} {self.signal}/{self.basis} {kind}, "
            f"zones={self.zones}, {len(self)} x {self.resolution}, {span})"
        )


def align(
    *series: IntensitySeries,
    resolution: timedelta | None = None,
    how: Literal["inner", "outer"] = "inner",
) -> list[IntensitySeries]:
    """Bring several series onto one time grid.

    Args:
        *series: The series to align.
        resolution: The common resolution; defaults to the coarsest one.
        how: ``inner`` keeps only intervals every series covers; ``outer`` keeps all
            (missing values become NaN).

    Returns:
        The series, resampled and reindexed to the same index, in the same order.
    """
    if not series:
        return []
    target = resolution or max(s.resolution for s in series)
    resampled = [s.resample(target) for s in series]
    index = resampled[0].values.index
    for s in resampled[1:]:
        index = (
            index.intersection(s.values.index) if how == "inner" else index.union(s.values.index)
        )
    return [s.with_values(s.values.reindex(index)) for s in resampled]
