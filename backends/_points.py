"""From parsed points to a clean series grid: the repair policy of the network providers.

A provider parses each response into :class:`Point` lists per zone, checking types and
plausibility as it goes (:func:`intensity_value`, :func:`timestamp`). :func:`assemble`
then applies one policy, the same for every provider, and reports every repair in notes:

* Points outside the requested range are dropped (APIs pad ranges; not a repair).
* A point off the resolution grid: :class:`ResponseParseError`.
* Points out of time order: **repair**, sorted, with a note.
* The same interval twice: with equal values, **repair**, collapsed, with a note; with
  different values, **repair**, their mean, flagged estimated, with a note (the UK API
  serves one such pair, carbon-intensity/api-definitions#17).
* Intervals absent or without a value (gaps), per the provider's ``gaps`` option:

  - ``interpolate`` (default): an interior run lasting at most ``max_gap`` is filled
    linearly in time and flagged estimated; longer, leading and trailing runs stay NaN
    (the planner's fallbacks handle a NaN; an API whose newest interval is not published
    yet is normal, not an error). Each is counted in the notes.
  - ``keep``: every run stays NaN, counted in the notes.
  - ``error``: any missing interval raises :class:`NoDataError`.

* A zone with no value at all in the range: :class:`NoDataError`.

:func:`fill_gaps` is the gap filler itself, for one zone's column; the ``file`` provider
uses it too, with stricter rules of its own around it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
import pandas as pd

from lowcarb._series import MAX_PLAUSIBLE_G_PER_KWH
from lowcarb._time import format_duration
from lowcarb.exceptions import NoDataError, ResponseParseError

__all__ = [
    "GapPolicy",
    "GapRun",
    "Point",
    "assemble",
    "fill_gaps",
    "intensity_value",
    "timestamp",
]

#: What to do with missing intervals: fill short interior runs, keep them NaN, or refuse.
GapPolicy = Literal["interpolate", "keep", "error"]


@dataclass(frozen=True)
class Point:
    """One interval of one zone as a provider reported it.

    Attributes:
        start: Interval start, aware UTC.
        value: gCO2eq/kWh, or None when the provider gave no value.
        estimated: True when the value is a model's rather than a measurement.
    """

    start: datetime
    value: float | None
    estimated: bool = False


@dataclass(frozen=True)
class GapRun:
    """One run of consecutive missing intervals of one zone, as :func:`fill_gaps` left it.

    Attributes:
        first: Row of its first interval.
        last: Row of its last interval (inclusive).
        start: Start of its first interval (UTC).
        end: End of its last interval (exclusive, UTC).
        filled: Whether it was interpolated (and flagged estimated).
        reason: Why it was not: ``leading`` or ``trailing`` (a neighbour is missing),
            ``too long`` (longer than ``max_gap``), ``policy`` (``keep`` or ``error``);
            empty when filled.
    """

    first: int
    last: int
    start: datetime
    end: datetime
    filled: bool
    reason: str = ""

    @property
    def length(self) -> int:
        """Number of missing intervals."""
        return self.last - self.first + 1


def intensity_value(raw: Any, *, where: str, provider: str, factor: float = 1.0) -> float | None:
    """Check a JSON intensity and convert it to gCO2eq/kWh (None stays None).

    Args:
        raw: The JSON value.
        where: The (redacted) request and the field, for the message.
        provider: Registry name.
        factor: Multiplier to gCO2eq/kWh (e.g. 0.45359237 for lbs/MWh).

    Raises:
        ResponseParseError: If it is not a number, is negative, or is implausibly large
            (usually a wrong unit).
    """
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise ResponseParseError(f"{where} is {raw!r}, not a number", provider=provider)
    value = float(raw) * factor
    if not math.isfinite(value) or value < 0 or value > MAX_PLAUSIBLE_G_PER_KWH:
        raise ResponseParseError(
            f"{where} is {raw!r}, not a plausible carbon intensity (0 to "
            f"{MAX_PLAUSIBLE_G_PER_KWH:g} gCO2eq/kWh); a wrong unit?",
            provider=provider,
        )
    return value


def timestamp(raw: Any, *, where: str, provider: str) -> datetime:
    """Parse an ISO 8601 timestamp that carries an offset (``Z`` or ``+00:00``) to UTC.

    Raises:
        ResponseParseError: If it is not a string, not ISO 8601, or has no offset.
    """
    if not isinstance(raw, str):
        raise ResponseParseError(f"{where} is {raw!r}, not a timestamp", provider=provider)
    try:
        parsed = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise ResponseParseError(
            f"{where} is {raw!r}, not an ISO 8601 timestamp", provider=provider
        ) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ResponseParseError(
            f"{where} is {raw!r}, a timestamp without a UTC offset", provider=provider
        )
    return pd.Timestamp(parsed).tz_convert("UTC").to_pydatetime()


def assemble(
    points: Mapping[str, Sequence[Point]],
    *,
    start: datetime,
    end: datetime,
    resolution: timedelta,
    provider: str,
    gaps: GapPolicy = "interpolate",
    max_gap: timedelta = timedelta(hours=2),
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Put each zone's points on the grid ``[start, end)`` and apply the repair policy.

    Args:
        points: Per zone, its points in any order.
        start: First interval start (on the grid).
        end: End, exclusive.
        resolution: Grid step.
        provider: Registry name, for messages.
        gaps: The gap policy (see the module docstring).
        max_gap: Longest interior run that ``interpolate`` fills.

    Returns:
        ``(values, estimated, notes)``; values in gCO2eq/kWh with NaN for gaps.

    Raises:
        ResponseParseError: For a point off the grid.
        NoDataError: For a zone without any value, or any gap when ``gaps="error"``.
    """
    index = pd.date_range(start, end, freq=resolution, inclusive="left", name="start")
    step_ns = pd.Timedelta(resolution).value
    origin_ns = pd.Timestamp(start).value
    n = len(index)
    values = np.full((n, len(points)), np.nan)
    flags = np.zeros((n, len(points)), dtype=bool)
    notes: list[str] = []
    span = f"{_fmt(start)} .. {_fmt(end)}"

    for j, (zone, zone_points) in enumerate(points.items()):
        stamps = [pd.Timestamp(p.start).value for p in zone_points]
        if any(b < a for a, b in itertools.pairwise(stamps)):
            notes.append(f"{zone}: intervals arrived out of time order; sorted")
        seen: dict[int, list[Point]] = {}
        for ns, point in zip(stamps, zone_points, strict=True):
            offset = ns - origin_ns
            if offset % step_ns:
                raise ResponseParseError(
                    f"{zone}: interval start {_fmt(point.start)} is off the "
                    f"{format_duration(resolution)} grid",
                    provider=provider,
                )
            row = offset // step_ns
            if 0 <= row < n:
                seen.setdefault(row, []).append(point)
        equal = conflicting = 0
        for row, group in seen.items():
            known = [p for p in group if p.value is not None]
            if len(group) > 1:
                distinct = {p.value for p in known}
                if len(distinct) > 1:
                    conflicting += 1
                else:
                    equal += 1
            if known:
                values[row, j] = float(np.mean([p.value for p in known]))
                flags[row, j] = any(p.estimated for p in known) or len({p.value for p in known}) > 1
        if equal:
            notes.append(f"{zone}: {_count(equal, 'interval')} given twice with equal values")
        if conflicting:
            notes.append(
                f"{zone}: {_count(conflicting, 'interval')} given twice with different values; "
                "their mean is used and flagged estimated"
            )
        column = values[:, j]
        if n and np.isnan(column).all():
            raise NoDataError(f"no data for {zone} in {span}", provider=provider)
        runs = fill_gaps(column, flags[:, j], index, resolution, gaps=gaps, max_gap=max_gap)
        notes += _gap_notes(zone, runs, gaps, provider)

    zones = list(points)
    frame = pd.DataFrame(values, index=index, columns=zones)
    estimated = pd.DataFrame(flags, index=index, columns=zones)
    return frame, estimated, notes


def fill_gaps(
    values: np.ndarray,
    estimated: np.ndarray,
    times: pd.DatetimeIndex,
    resolution: timedelta,
    *,
    gaps: GapPolicy = "interpolate",
    max_gap: timedelta = timedelta(hours=2),
) -> list[GapRun]:
    """Fill one zone's missing values (NaN) in place, by the gap policy, and report each run.

    With ``gaps="interpolate"`` each *interior* run of missing intervals lasting at most
    ``max_gap`` is filled linearly in time between its two neighbours and flagged in
    ``estimated``; the others stay NaN. ``keep`` and ``error`` fill nothing: what an
    ``error`` raises, and how the runs are worded in notes, is the caller's choice.

    Args:
        values: One zone's values (gCO2eq/kWh), 1-D float; NaN marks a missing one.
        estimated: Its estimated flags, 1-D bool, same length; set where filled.
        times: The interval starts of ``values`` (a regular grid).
        resolution: The grid step.
        gaps: The gap policy.
        max_gap: Longest run (in time) that ``interpolate`` fills.

    Returns:
        Every run of missing intervals, in time order, saying whether it was filled.
    """
    missing = np.isnan(values)
    if not missing.any():
        return []
    out: list[GapRun] = []
    step = pd.Timedelta(resolution)
    limit_ns = pd.Timedelta(max_gap).value
    known = ~missing
    x = times.asi8.astype(float)
    for first, last in _runs(missing):
        reason = _unfillable(first, last, len(values), step.value, limit_ns, gaps)
        if not reason:
            values[first : last + 1] = np.interp(x[first : last + 1], x[known], values[known])
            estimated[first : last + 1] = True
        out.append(GapRun(first, last, times[first], times[last] + step, not reason, reason))
    return out


def _unfillable(first: int, last: int, n: int, step_ns: int, limit_ns: int, gaps: str) -> str:
    """Why a run cannot be interpolated ("" when it can)."""
    if gaps != "interpolate":
        return "policy"
    if first == 0:
        return "leading"
    if last == n - 1:
        return "trailing"
    if (last - first + 1) * step_ns > limit_ns:
        return "too long"
    return ""


def _gap_notes(zone: str, runs: list[GapRun], gaps: GapPolicy, provider: str) -> list[str]:
    """The notes on one zone's gaps; under ``gaps="error"``, the error."""
    if not runs:
        return []
    total = sum(run.length for run in runs)
    if gaps == "error":
        raise NoDataError(
            f"{zone} has no value for {_count(total, 'interval')}, first "
            f"{_fmt(runs[0].start)} .. {_fmt(runs[0].end)} "
            "(gaps='error'; set gaps='interpolate' or 'keep' to accept gaps)",
            provider=provider,
        )
    filled = sum(run.length for run in runs if run.filled)
    notes = []
    if filled:
        notes.append(
            f"{zone}: {_count(filled, 'missing interval')} interpolated and flagged estimated"
        )
    if total - filled:
        notes.append(f"{zone}: {_count(total - filled, 'interval')} without data, left as NaN")
    return notes


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive ``(first, last)`` positions of each run of True."""
    padded = np.concatenate(([False], mask, [False])).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _fmt(when: datetime | pd.Timestamp) -> str:
    return pd.Timestamp(when).strftime("%Y-%m-%dT%H:%MZ")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' * (n != 1)}"
