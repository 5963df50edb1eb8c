"""``file`` provider: carbon intensity read from CSV or Parquet files.

Two layouts are recognised from the header:

* **Wide** (CSV or Parquet): the first column is ``datetime_utc`` (ISO 8601; text
  without an offset is UTC, text with an offset is converted to UTC; in Parquet also a
  datetime column or a ``DatetimeIndex`` named ``datetime_utc``), then one column per
  zone id, values in gCO2eq/kWh. The ``basis`` and ``signal`` options declare what the
  values are.
* **Electricity Maps data-portal export** (usually one zone per file): columns
  ``Datetime (UTC)``, ``Zone Id``, ``Carbon Intensity gCO₂eq/kWh (LCA)`` and
  ``(direct)`` (the ASCII spelling ``gCO2eq`` is accepted too), ``Data Estimated``
  (``true``/``false``). ``basis="lifecycle"`` reads the LCA column, ``basis="direct"``
  the direct one; ``Data Estimated`` becomes the estimated mask. The portal publishes
  average intensities only, so ``signal="marginal"`` is refused for it.

``path`` may name one file or a directory, whose ``*.csv`` and ``*.parquet`` files are
all read (in name order; hidden files are skipped) and merged: different zones side by
side, the same zone over several periods one after the other. ``estimated_path``
optionally names a wide file of 0/1 flags with the same zones (like
``data_estimated_2021_2023_hourly.csv``).

Files are read lazily, once, on first use, and the parsed frame is cached.

Validation policy. Every problem raises
:class:`~lowcarb.exceptions.DataValidationError` whose message names the file and the
zone, line/row, timestamp or value concerned, unless a repair is documented below.
Nothing is dropped silently; every repair is listed in the ``notes`` of the returned
series and logged at INFO on the ``lowcarb`` logger.

* Unreadable file, empty file, header without data rows, missing or misnamed time
  column, a file without zone columns, duplicated or unnamed column, a row with more
  fields than the header: error. (A row with fewer fields has missing values.)
* Unparseable or empty timestamp: error naming the line and the text.
* A value that is not a number: error naming zone, line and value. Empty cells and the
  tokens ``NaN``, ``nan``, ``NA``, ``N/A``, ``null``, ``None`` are missing values (see
  gaps below).
* A negative value, or one above ``MAX_PLAUSIBLE_G_PER_KWH`` (3000 gCO2eq/kWh, which
  usually means a wrong unit): error naming zone, timestamp and value.
* A timestamp appearing twice for the same zone, in one file or across two files:
  error naming the first duplicate.
* Rows out of time order: **repair**, sorted, with a note.
* Resolution: the most common step between consecutive timestamps (at least two are
  needed). A timestamp off that grid (counted from the first timestamp), or a file of a
  directory whose own step differs: error.
* Gaps (timestamps absent from the grid become all-NaN rows) and empty cells:

  - ``gaps="interpolate"`` (default): a run of missing intervals lasting at most
    ``max_gap_hours`` is **repaired** by linear interpolation in time and flagged
    estimated; a longer run is an error naming the zone and the run's first and last
    timestamps and suggesting ``gaps="keep"``. Leading or trailing runs (a zone whose
    data starts late or ends early) cannot be interpolated and are errors.
  - ``gaps="keep"``: every run stays NaN and is counted in the notes.
  - ``gaps="error"``: any missing value is an error.

* ``estimated_path``: must be a wide file with exactly the data's zones, a flag (0/1 or
  true/false) for every timestamp the data has; other values are errors.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import pandas as pd
from pandas.api.types import (
    is_bool_dtype,
    is_datetime64_any_dtype,
    is_numeric_dtype,
)

from lowcarb.backends.toolkit import (
    MAX_DATA_FILE_BYTES,
    MAX_PLAUSIBLE_G_PER_KWH,
    Capabilities,
    CarbonProvider,
    Clock,
    GapPolicy,
    GapRun,
    IntensitySeries,
    check_regular_file,
    ensure_utc,
    fill_gaps,
    format_duration,
    install_hint,
)
from lowcarb.exceptions import ConfigurationError, DataValidationError, NoDataError

__all__ = ["FileProvider"]

log = logging.getLogger("lowcarb")

_WIDE_TIME = "datetime_utc"
_PORTAL_TIME = "datetime (utc)"
_PORTAL_ZONE = "zone id"
_PORTAL_ESTIMATED = "data estimated"
_PORTAL_VALUE = {
    "lifecycle": "carbon intensity gco2eq/kwh (lca)",
    "direct": "carbon intensity gco2eq/kwh (direct)",
}
_PORTAL_VALUE_DISPLAY = {
    "lifecycle": "Carbon Intensity gCO₂eq/kWh (LCA)",
    "direct": "Carbon Intensity gCO₂eq/kWh (direct)",
}
# Cell texts read as a missing value (never as an error) in value columns.
_MISSING = ["", "NaN", "nan", "NA", "N/A", "null", "None"]
_TRUE_FLAGS = {"true", "1", "1.0", "yes"}
_FALSE_FLAGS = {"false", "0", "0.0", "no", ""}
_SUFFIXES = (".csv", ".parquet")
_PARQUET_HINT = install_hint("parquet")


def _norm(name: str) -> str:
    """Header text normalised for matching (case, spaces, the subscript ₂)."""
    return " ".join(name.replace("₂", "2").split()).lower()


def _fmt(stamp: pd.Timestamp) -> str:
    return stamp.isoformat().replace("+00:00", "Z")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


# -- one file -------------------------------------------------------------------------------


@dataclass
class _Part:
    """One parsed file: a wide frame (UTC ns index, one column per zone) and its flags."""

    source: Path
    values: pd.DataFrame
    estimated: pd.DataFrame
    notes: list[str] = field(default_factory=list)


class _Reader:
    """Parses one file into a :class:`_Part`, raising DataValidationError on bad input."""

    def __init__(self, path: Path, *, basis: str, signal: str, flags: bool = False) -> None:
        self.path = path
        self.basis = basis
        self.signal = signal
        self.flags = flags  # reading an estimated_path file of 0/1 flags
        self.is_csv = path.suffix.lower() != ".parquet"

    def fail(self, message: str) -> DataValidationError:
        return DataValidationError(message, str(self.path))

    def where(self, row: int) -> str:
        """Position of data row ``row`` (0-based) as the user sees it in the file."""
        return f"line {row + 2}" if self.is_csv else f"row {row + 1}"

    # -- reading ------------------------------------------------------------------------

    def read(self) -> _Part:
        # Checked again when read: the file may have been replaced since it was named.
        check_regular_file(
            self.path, what="the file", max_bytes=MAX_DATA_FILE_BYTES, error=DataValidationError
        )
        frame, kind, time_col, value_cols = (
            self._read_csv() if self.is_csv else self._read_parquet()
        )
        if len(frame) == 0:
            raise self.fail("the file has a header but no data rows")
        if kind == "portal":
            return self._portal(frame, time_col, value_cols)
        return self._wide(frame, time_col, value_cols)

    def _detect(self, header: list[str]) -> tuple[str, str, list[str]]:
        """Return (kind, time column, value columns) from the column names."""
        empty = [i + 1 for i, name in enumerate(header) if not name]
        if empty:
            raise self.fail(f"column {empty[0]} of the header has no name")
        seen: set[str] = set()
        for name in header:
            if name in seen:
                raise self.fail(f"column {name!r} appears twice in the header")
            seen.add(name)
        by_norm = {_norm(name): name for name in header}
        if _PORTAL_TIME in by_norm and not self.flags:
            time_col = by_norm[_PORTAL_TIME]
            if _PORTAL_ZONE not in by_norm:
                raise self.fail(
                    f"looks like an Electricity Maps portal export (has {time_col!r}) but "
                    "has no 'Zone Id' column"
                )
            value_key = _PORTAL_VALUE[self.basis]
            if value_key not in by_norm:
                raise self.fail(
                    f"Electricity Maps portal export without the column "
                    f"{_PORTAL_VALUE_DISPLAY[self.basis]!r} needed for basis={self.basis!r}"
                )
            if self.signal != "average":
                raise self.fail(
                    "Electricity Maps portal exports hold average intensities; "
                    f"signal={self.signal!r} does not apply (use signal='average')"
                )
            cols = [by_norm[_PORTAL_ZONE], by_norm[value_key]]
            if _PORTAL_ESTIMATED in by_norm:
                cols.append(by_norm[_PORTAL_ESTIMATED])
            return "portal", time_col, cols
        if header[0] != _WIDE_TIME:
            shown = ", ".join(repr(h) for h in header[:6]) + (", ..." if len(header) > 6 else "")
            expected = (
                "a wide file of flags whose first column is 'datetime_utc'"
                if self.flags
                else "a first column 'datetime_utc' (wide format) or a 'Datetime (UTC)' "
                "column (Electricity Maps portal export)"
            )
            raise self.fail(f"no time column: expected {expected}; the header is {shown}")
        if len(header) < 2:
            raise self.fail("no zone columns: after 'datetime_utc' give one column per zone id")
        return "wide", header[0], header[1:]

    def _read_csv(self) -> tuple[pd.DataFrame, str, str, list[str]]:
        try:
            with self.path.open(encoding="utf-8-sig", newline="") as fh:
                row = next(csv.reader(fh), None)
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise self.fail(f"cannot read the file: {exc}") from None
        if row is None or not any(cell.strip() for cell in row):
            raise self.fail("the file is empty")
        header = [cell.strip() for cell in row]
        kind, time_col, value_cols = self._detect(header)
        numeric = value_cols if kind == "wide" else value_cols[1:2]
        text = [c for c in (time_col, *value_cols) if c not in numeric]
        try:
            frame = pd.read_csv(
                self.path,
                encoding="utf-8-sig",
                header=0,
                names=header,
                index_col=False,  # never use leading columns as an index
                dtype={c: str for c in text},
                keep_default_na=False,
                na_values={c: _MISSING for c in numeric},
                skipinitialspace=True,
            )
        except (OSError, UnicodeDecodeError, ValueError, pd.errors.ParserError) as exc:
            raise self.fail(f"cannot parse the file as CSV: {exc}") from None
        # No usecols: with it, pandas would silently ignore extra fields on a ragged row.
        return frame[[time_col, *value_cols]], kind, time_col, value_cols

    def _read_parquet(self) -> tuple[pd.DataFrame, str, str, list[str]]:
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ConfigurationError(
                f"reading {self.path} needs the Parquet support of pyarrow, which is not "
                f"installed; try: {_PARQUET_HINT}"
            ) from None
        try:
            frame = pd.read_parquet(self.path)
        except Exception as exc:  # pyarrow raises many unrelated types for bad files
            raise self.fail(f"cannot read the file as Parquet: {exc}") from None
        if isinstance(frame.index, pd.DatetimeIndex) and frame.index.name == _WIDE_TIME:
            frame = frame.reset_index()
        if len(frame.columns) == 0:
            raise self.fail("the file is empty (no columns)")
        frame.columns = pd.Index([str(c).strip() for c in frame.columns])
        kind, time_col, value_cols = self._detect(list(frame.columns))
        return frame[[time_col, *value_cols]], kind, time_col, value_cols

    # -- columns ------------------------------------------------------------------------

    def _times(self, column: pd.Series) -> pd.DatetimeIndex:
        name = column.name
        if is_datetime64_any_dtype(column.dtype):
            index = pd.DatetimeIndex(column)
            index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
            bad = np.flatnonzero(index.isna())
            if len(bad):
                raise self.fail(f"{self.where(int(bad[0]))}: empty timestamp in {name!r}")
        else:
            if is_numeric_dtype(column.dtype):
                raise self.fail(f"column {name!r} holds numbers, not ISO 8601 timestamps")
            text = column.astype(str)
            parsed = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
            index = pd.DatetimeIndex(parsed)
            bad = np.flatnonzero(index.isna())
            if len(bad):
                row = int(bad[0])
                raise self.fail(
                    f"{self.where(row)}: timestamp {text.iloc[row]!r} in {name!r} is not an "
                    "ISO 8601 date-time (e.g. 2023-01-01T00:00:00Z)"
                )
        try:
            # lowcarb works in nanoseconds (IntensitySeries checks its grid in ns).
            return index.as_unit("ns").rename("start")
        except (pd.errors.OutOfBoundsDatetime, OverflowError):
            raise self.fail(f"column {name!r} holds timestamps out of range") from None

    def _numbers(self, column: pd.Series, zone: Any) -> np.ndarray:
        """The column as float64 (NaN for missing); error on the first non-number."""
        label = f"zone {zone}" if zone is not None else f"column {column.name!r}"
        if not is_bool_dtype(column.dtype) and is_numeric_dtype(column.dtype):
            return column.to_numpy(dtype=float, na_value=np.nan)
        coerced = pd.to_numeric(column, errors="coerce")
        if is_bool_dtype(column.dtype):
            bad = np.flatnonzero(column.notna().to_numpy())
        else:
            bad = np.flatnonzero((coerced.isna() & column.notna()).to_numpy())
        if len(bad):
            row = int(bad[0])
            raise self.fail(f"{label}, {self.where(row)}: {column.iloc[row]!r} is not a number")
        return coerced.to_numpy(dtype=float, na_value=np.nan)

    def _flag_column(self, column: pd.Series) -> np.ndarray:
        if is_bool_dtype(column.dtype):
            return column.fillna(False).to_numpy(dtype=bool)
        text = column.fillna("").astype(str).str.strip().str.lower()
        known = text.isin(_TRUE_FLAGS | _FALSE_FLAGS).to_numpy()
        if not known.all():
            row = int(np.flatnonzero(~known)[0])
            raise self.fail(
                f"{self.where(row)}: {column.name!r} is {column.iloc[row]!r}; "
                "expected true or false"
            )
        return text.isin(_TRUE_FLAGS).to_numpy()

    def _check_range(self, values: np.ndarray, times: pd.DatetimeIndex, zones: np.ndarray) -> None:
        """Error on the first negative or implausibly high value (row-major order)."""
        with np.errstate(invalid="ignore"):
            bad = (values < 0) | (values > MAX_PLAUSIBLE_G_PER_KWH)
        if not bad.any():
            return
        pos = int(np.argmax(bad.ravel()))
        row, col = divmod(pos, values.shape[1]) if values.ndim == 2 else (pos, 0)
        value = float(values.ravel()[pos])
        zone = zones[col] if values.ndim == 2 else zones[row]
        stamp = _fmt(times[row])
        if value < 0:
            reason = "is negative; carbon intensity cannot be below 0 gCO2eq/kWh"
        else:
            reason = (
                f"is above the plausible maximum {MAX_PLAUSIBLE_G_PER_KWH:g} gCO2eq/kWh; "
                "check the unit (values must be gCO2eq/kWh, not g/MWh or lbs/MWh)"
            )
        raise self.fail(f"zone {zone} at {stamp} ({self.where(row)}): value {value:g} {reason}")

    # -- layouts ------------------------------------------------------------------------

    def _wide(self, frame: pd.DataFrame, time_col: str, zones: list[str]) -> _Part:
        times = self._times(frame[time_col])
        arr = np.empty((len(frame), len(zones)), dtype=float)
        for j, zone in enumerate(zones):
            arr[:, j] = self._numbers(frame[zone], zone)
        if self.flags:
            ok = np.isin(arr, (0.0, 1.0))
            if not ok.all():
                row, col = divmod(int(np.argmin(ok.ravel())), len(zones))
                raise self.fail(
                    f"zone {zones[col]} at {_fmt(times[row])} ({self.where(row)}): flag "
                    f"{arr[row, col]:g} is not 0 or 1"
                )
        else:
            self._check_range(arr, times, np.asarray(zones, dtype=object))
        dup = np.flatnonzero(times.duplicated())
        if len(dup):
            row = int(dup[0])
            first = int(np.flatnonzero(times == times[row])[0])
            raise self.fail(
                f"duplicated timestamp {_fmt(times[row])} ({self.where(first)} and "
                f"{self.where(row)}); each timestamp may appear once"
            )
        values = pd.DataFrame(arr, index=times, columns=pd.Index(zones))
        estimated = pd.DataFrame(False, index=times, columns=pd.Index(zones))
        notes: list[str] = []
        if not times.is_monotonic_increasing:
            values = values.sort_index(kind="stable")
            estimated = estimated.sort_index(kind="stable")
            notes.append(f"{self.path.name}: rows were not in time order; sorted by time")
        if self.flags:
            estimated = values.astype(bool)
        return _Part(self.path, values, estimated, notes)

    def _portal(self, frame: pd.DataFrame, time_col: str, cols: list[str]) -> _Part:
        zone_col, value_col = cols[0], cols[1]
        times = self._times(frame[time_col])
        zones = frame[zone_col].fillna("").astype(str).str.strip()
        blank = np.flatnonzero((zones == "").to_numpy())
        if len(blank):
            raise self.fail(f"{self.where(int(blank[0]))}: empty {zone_col!r}")
        values = self._numbers(frame[value_col], None)
        zone_arr = zones.to_numpy(dtype=object)
        self._check_range(values, times, zone_arr)
        flags = (
            self._flag_column(frame[cols[2]]) if len(cols) > 2 else np.zeros(len(frame), dtype=bool)
        )
        long = pd.DataFrame(
            {"time": times, "zone": zone_arr, "value": values, "flag": flags.astype(float)}
        )
        dup = np.flatnonzero(long.duplicated(["zone", "time"]).to_numpy())
        if len(dup):
            row = int(dup[0])
            same = (long["zone"] == zone_arr[row]) & (long["time"] == times[row])
            first = int(np.flatnonzero(same.to_numpy())[0])
            raise self.fail(
                f"zone {zone_arr[row]}: duplicated timestamp {_fmt(times[row])} "
                f"({self.where(first)} and {self.where(row)})"
            )
        order = list(pd.unique(zones))
        notes: list[str] = []
        in_order = long.groupby("zone", sort=False)["time"].is_monotonic_increasing
        if not bool(in_order.all()):
            notes.append(f"{self.path.name}: rows were not in time order; sorted by time")
        wide = long.pivot(index="time", columns="zone", values="value")[order]
        wide_flags = long.pivot(index="time", columns="zone", values="flag")[order]
        wide.columns.name = None
        wide.index.name = "start"
        estimated = wide_flags.fillna(0.0).astype(bool)
        estimated.columns.name = None
        estimated.index.name = "start"
        return _Part(self.path, wide, estimated, notes)


# -- the whole data set ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Data:
    """Parsed, validated and repaired data, on a complete regular grid."""

    values: pd.DataFrame
    estimated: pd.DataFrame
    resolution: timedelta
    notes: tuple[str, ...]
    zone_notes: dict[str, tuple[str, ...]]

    @property
    def index(self) -> pd.DatetimeIndex:
        return cast(pd.DatetimeIndex, self.values.index)

    @property
    def first(self) -> pd.Timestamp:
        return self.index[0]

    @property
    def end(self) -> pd.Timestamp:
        return self.index[-1] + pd.Timedelta(self.resolution)


def _data_files(path: Path) -> list[Path]:
    """The file itself, or a directory's ``*.csv``/``*.parquet`` files (not hidden ones)."""
    if path.is_dir():
        return sorted(
            p
            for p in path.iterdir()
            if p.is_file() and p.suffix.lower() in _SUFFIXES and not p.name.startswith(".")
        )
    return [path]


def _most_common_step(stamps: np.ndarray) -> int | None:
    """Most common positive step (ns) between sorted unique int64 timestamps."""
    if len(stamps) < 2:
        return None
    steps, counts = np.unique(np.diff(stamps), return_counts=True)
    return int(steps[np.argmax(counts)])  # ties: np.unique sorts, so the smallest wins


def _merge(parts: list[_Part], source: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Put the parts side by side (different zones) and end to end (same zone)."""
    if len(parts) == 1:
        return parts[0].values, parts[0].estimated
    longs = []
    for k, part in enumerate(parts):
        n, m = part.values.shape
        longs.append(
            pd.DataFrame(
                {
                    "time": part.values.index.repeat(m),
                    "zone": np.tile(np.asarray(part.values.columns, dtype=object), n),
                    "value": part.values.to_numpy().ravel(),
                    "flag": part.estimated.to_numpy().ravel().astype(float),
                    "part": k,
                }
            )
        )
    long = pd.concat(longs, ignore_index=True)
    dup = np.flatnonzero(long.duplicated(["zone", "time"]).to_numpy())
    if len(dup):
        row = long.iloc[int(dup[0])]
        same = long[(long["zone"] == row["zone"]) & (long["time"] == row["time"])]
        names = " and ".join(parts[int(k)].source.name for k in same["part"])
        raise DataValidationError(
            f"zone {row['zone']}: timestamp {_fmt(row['time'])} appears in both {names}; "
            "each zone and timestamp may appear in one file only",
            str(source),
        )
    order = list(dict.fromkeys(z for part in parts for z in part.values.columns))
    values = long.pivot(index="time", columns="zone", values="value")[order]
    flags = long.pivot(index="time", columns="zone", values="flag")[order]
    estimated = flags.fillna(0.0).astype(bool)
    for frame in (values, estimated):
        frame.columns.name = None
        frame.index.name = "start"
    return values, estimated


def _span(index: pd.DatetimeIndex, run: GapRun) -> str:
    first, last = index[run.first], index[run.last]
    return f"from {_fmt(first)} to {_fmt(last)} ({_plural(run.length, 'interval')})"


class FileProvider(CarbonProvider):
    """Carbon intensity from wide CSV/Parquet files or Electricity Maps portal exports.

    See the module documentation for the formats and the validation policy. Forecasts
    replay the recorded values (perfect foresight), so a simulation can run against a
    file by setting the clock inside the file's span.

    Args:
        path: A file, or a directory whose ``*.csv``/``*.parquet`` files are merged.
        basis: What the values are (wide files), or which portal column to read.
        signal: ``average`` or ``marginal``; what the values are.
        estimated_path: Optional wide file of 0/1 estimated flags, same zones.
        gaps: ``interpolate`` short gaps, ``keep`` them as NaN, or raise an ``error``.
        max_gap_hours: The longest run of missing values that is interpolated.
        clock: The time source (``latest`` and forecast ``issued_at``).

    Raises:
        ConfigurationError: If a path does not exist, a directory holds no data file,
            or an option is invalid.

    Example:
        >>> p = FileProvider("intensity.csv")  # doctest: +SKIP
        >>> p.history(["DE"], start, end)  # doctest: +SKIP
    """

    name = "file"

    @dataclass(frozen=True, kw_only=True)
    class Options:
        """Options of the ``file`` provider (``[providers.file]``)."""

        path: Path
        basis: Literal["lifecycle", "direct"] = "lifecycle"
        signal: Literal["average", "marginal"] = "average"
        estimated_path: Path | None = None
        gaps: Literal["interpolate", "keep", "error"] = "interpolate"
        max_gap_hours: float = 6.0

        def __post_init__(self) -> None:
            _check_max_gap(self.max_gap_hours, "max_gap_hours")

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        basis: Literal["lifecycle", "direct"] = "lifecycle",
        signal: Literal["average", "marginal"] = "average",
        estimated_path: str | os.PathLike[str] | None = None,
        gaps: GapPolicy = "interpolate",
        max_gap_hours: float = 6.0,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(clock=clock)
        _check_choice("basis", basis, ("lifecycle", "direct"))
        _check_choice("signal", signal, ("average", "marginal"))
        _check_choice("gaps", gaps, ("interpolate", "keep", "error"))
        self.max_gap_hours = _check_max_gap(max_gap_hours)
        self.path = _existing(path, "path")
        self.estimated_path = (
            None if estimated_path is None else _existing(estimated_path, "estimated_path")
        )
        self.basis: Literal["lifecycle", "direct"] = basis
        self.signal: Literal["average", "marginal"] = signal
        self.gaps: GapPolicy = gaps
        self._data: _Data | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FileProvider(path={str(self.path)!r}, basis={self.basis!r})"

    # -- loading ------------------------------------------------------------------------

    def _loaded(self) -> _Data:
        data = self._data
        if data is None:
            with self._lock:
                if self._data is None:
                    self._data = self._load()
                data = self._data
        return data

    def _load(self) -> _Data:
        source = self.path
        parts = [
            _Reader(f, basis=self.basis, signal=self.signal).read() for f in _data_files(source)
        ]
        notes: list[str] = [note for part in parts for note in part.notes]
        zone_notes: dict[str, list[str]] = {}
        values, estimated = _merge(parts, source)
        if not values.index.is_monotonic_increasing:
            values, estimated = values.sort_index(), estimated.sort_index()

        stamps = cast(pd.DatetimeIndex, values.index).asi8
        step = _most_common_step(stamps)
        if step is None:
            raise DataValidationError(
                f"only one timestamp ({_fmt(values.index[0])}); at least two are needed to "
                "infer the resolution",
                str(source),
            )
        resolution = pd.Timedelta(step, unit="ns").to_pytimedelta()
        for part in parts:
            own = _most_common_step(cast(pd.DatetimeIndex, part.values.index).asi8)
            if own is not None and own != step:
                raise DataValidationError(
                    f"{part.source.name} has a {format_duration(pd.Timedelta(own, unit='ns'))} "
                    f"step but the data as a whole is at {format_duration(resolution)}; convert "
                    "the files to one resolution",
                    str(source),
                )
        off = np.flatnonzero((stamps - stamps[0]) % step)
        if len(off):
            stamp = values.index[int(off[0])]
            where = next(p.source for p in parts if stamp in p.values.index)
            raise DataValidationError(
                f"timestamp {_fmt(stamp)} (in {where.name}) is off the "
                f"{format_duration(resolution)} grid that starts at {_fmt(values.index[0])} "
                "(the most common step between timestamps); every timestamp must be a whole "
                "number of steps from the first",
                str(source),
            )
        # Integer arithmetic: np.arange with float-sized bounds can lose the last point.
        count = int((stamps[-1] - stamps[0]) // step) + 1
        grid = stamps[0] + step * np.arange(count, dtype=np.int64)
        full = pd.DatetimeIndex(grid.view("datetime64[ns]"), name="start").tz_localize("UTC")
        absent = len(full) - len(values)
        if absent:
            values = values.reindex(full)
            estimated = estimated.reindex(full, fill_value=False)
            notes.append(
                f"{_plural(absent, 'timestamp')} absent from the file(s) on the "
                f"{format_duration(resolution)} grid added as missing values"
            )

        if self.estimated_path is not None:
            flags, flag_notes = self._flags(values)
            estimated = estimated | flags
            notes.extend(flag_notes)
            notes.append(f"estimated flags read from {self.estimated_path.name}")

        values, estimated = self._fill_gaps(values, estimated, resolution, zone_notes)
        for note in notes:
            log.info("%s: %s", source, note)
        for zone_list in zone_notes.values():
            for note in zone_list:
                log.info("%s: %s", source, note)
        return _Data(
            values=values,
            estimated=estimated,
            resolution=resolution,
            notes=tuple(notes),
            zone_notes={zone: tuple(n) for zone, n in zone_notes.items()},
        )

    def _flags(self, values: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
        assert self.estimated_path is not None
        flags_source = self.estimated_path
        parts = [
            _Reader(f, basis=self.basis, signal=self.signal, flags=True).read()
            for f in _data_files(flags_source)
        ]
        _, flags = _merge(parts, flags_source)
        zones, flag_zones = list(values.columns), list(flags.columns)
        if set(zones) != set(flag_zones):
            missing = [z for z in zones if z not in flag_zones]
            extra = [z for z in flag_zones if z not in zones]
            raise DataValidationError(
                f"the flags must have the same zones as {self.path.name}; "
                f"missing: {missing or 'none'}, not in the data: {extra or 'none'}",
                str(flags_source),
            )
        if not flags.index.is_unique:
            raise DataValidationError("duplicated timestamps", str(flags_source))
        present = values.notna().any(axis=1).to_numpy()
        lacking = present & ~values.index.isin(flags.index)
        if lacking.any():
            stamp = values.index[int(np.argmax(lacking))]
            raise DataValidationError(
                f"no flag row for timestamp {_fmt(stamp)}, which {self.path.name} has",
                str(flags_source),
            )
        flags = flags.reindex(index=values.index, columns=values.columns, fill_value=False)
        return flags, [note for part in parts for note in part.notes]

    def _fill_gaps(
        self,
        values: pd.DataFrame,
        estimated: pd.DataFrame,
        resolution: timedelta,
        zone_notes: dict[str, list[str]],
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Apply the gap policy; stricter than the network providers' (module docstring).

        A file is the user's own data, so a gap interpolation cannot fill is an error
        under ``interpolate``, rather than a NaN the user might never notice.
        """
        arr = values.to_numpy(dtype=float, copy=True)
        if not np.isnan(arr).any():
            return values, estimated
        est = estimated.to_numpy(dtype=bool, copy=True)
        index = cast(pd.DatetimeIndex, values.index)
        max_gap = timedelta(hours=self.max_gap_hours)
        for j, zone in enumerate(values.columns):
            runs = fill_gaps(
                arr[:, j], est[:, j], index, resolution, gaps=self.gaps, max_gap=max_gap
            )
            if runs:
                note = self._gap_note(str(zone), runs, index)
                zone_notes.setdefault(str(zone), []).append(note)
        return (
            pd.DataFrame(arr, index=index, columns=values.columns),
            pd.DataFrame(est, index=index, columns=values.columns),
        )

    def _gap_note(self, zone: str, runs: list[GapRun], index: pd.DatetimeIndex) -> str:
        """The note on a zone's gaps, or the error when the policy refuses one."""
        total = sum(run.length for run in runs)
        summary = f"{_plural(len(runs), 'gap')} ({_plural(total, 'interval')})"
        if self.gaps == "error":
            raise DataValidationError(
                f"zone {zone} has no value {_span(index, runs[0])} (a missing row or an empty "
                f"cell); {summary} in all; fill them, or set gaps='interpolate' or gaps='keep'",
                str(self.path),
            )
        if self.gaps == "keep":
            return f"{zone}: {summary} left as NaN (gaps='keep')"
        refused = next((run for run in runs if not run.filled), None)
        if refused is not None and refused.reason in ("leading", "trailing"):
            edge = "starts" if refused.reason == "leading" else "ends"
            raise DataValidationError(
                f"zone {zone} has no value {_span(index, refused)}, where its data {edge}; "
                "interpolation cannot fill a leading or trailing gap: set gaps='keep' to "
                "keep it as NaN, or trim the file",
                str(self.path),
            )
        if refused is not None:
            raise DataValidationError(
                f"zone {zone} has no value {_span(index, refused)}, longer than "
                f"max_gap_hours={self.max_gap_hours:g}; set gaps='keep' to keep it as NaN, "
                "or raise max_gap_hours",
                str(self.path),
            )
        return f"{zone}: {summary} interpolated linearly and flagged estimated"

    # -- provider interface -------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        """Signal and basis as configured; resolution and span from the file."""
        data = self._loaded()
        return Capabilities(
            signal=self.signal,
            basis=self.basis,
            resolution=data.resolution,
            forecast_horizon=(data.end - data.first).to_pytimedelta(),
            history=True,
            synthetic=False,
        )

    def served_zones(self) -> list[str]:
        """The zone columns, in file order."""
        return [str(z) for z in self._loaded().values.columns]

    def _span(self, data: _Data) -> str:
        return (
            f"{self.path} covers {_fmt(data.first)} .. {_fmt(data.end)} "
            "(first interval start .. last interval end)"
        )

    def _series(
        self,
        data: _Data,
        zones: list[str],
        lo: int,
        hi: int,
        extra_notes: Sequence[str] = (),
        **metadata: Any,
    ) -> IntensitySeries:
        notes = [*data.notes]
        for zone in zones:
            notes.extend(data.zone_notes.get(zone, ()))
        notes.extend(extra_notes)
        return IntensitySeries(
            values=data.values.iloc[lo:hi][zones].copy(),
            resolution=data.resolution,
            signal=self.signal,
            basis=self.basis,
            provider=self.name,
            estimated=data.estimated.iloc[lo:hi][zones].copy(),
            notes=tuple(notes),
            **metadata,
        )

    def _range(self, data: _Data, start: pd.Timestamp, end: pd.Timestamp) -> tuple[int, int]:
        index = data.values.index
        return int(index.searchsorted(start, side="left")), int(
            index.searchsorted(end, side="left")
        )

    def _history(self, zones: list[str], start: datetime, end: datetime) -> IntensitySeries:
        data = self._loaded()
        lo_t, hi_t = pd.Timestamp(start), pd.Timestamp(end)
        self._require(data, lo_t, hi_t, "no data for", "ask for a range inside it")
        lo, hi = self._range(data, lo_t, hi_t)
        return self._series(data, zones, lo, hi)

    def _require(
        self, data: _Data, first: pd.Timestamp, end: pd.Timestamp, what: str, hint: str
    ) -> None:
        """Raise NoDataError unless ``[first, end)`` lies inside the data."""
        if first < data.first or end > data.end:
            raise NoDataError(
                f"{what} {_fmt(first)} .. {_fmt(end)}: {self._span(data)}; {hint}",
                provider=self.name,
            )

    def _floor(self, data: _Data, when: pd.Timestamp) -> pd.Timestamp:
        step = pd.Timedelta(data.resolution)
        return data.first + ((when - data.first) // step) * step

    def _latest(self, zones: list[str]) -> IntensitySeries:
        data = self._loaded()
        now = pd.Timestamp(ensure_utc(self.clock.now(), "clock.now()"))
        if now < data.first or now >= data.end:
            raise NoDataError(
                f"the clock says {_fmt(now)}, outside the data: {self._span(data)}; set the "
                f"clock inside that span (CLI: --now {_fmt(data.first)})",
                provider=self.name,
            )
        lo, _ = self._range(data, self._floor(data, now), data.end)
        return self._series(data, zones, lo, lo + 1)

    def _forecast(self, zones: list[str], start: datetime, horizon: timedelta) -> IntensitySeries:
        # The base class floors ``start`` to the epoch-aligned grid; flooring again to the
        # file's own grid only matters for files whose intervals are not epoch-aligned.
        data = self._loaded()
        when = pd.Timestamp(start)
        first = self._floor(data, when) if when >= data.first else when
        end = first + pd.Timedelta(horizon)
        self._require(
            data,
            first,
            end,
            "cannot replay",
            "ask for a start and horizon inside it, or set the clock inside it (CLI: --now)",
        )
        lo, hi = self._range(data, first, end)
        return self._series(
            data,
            zones,
            lo,
            hi,
            extra_notes=(
                f"forecast is a replay of the values recorded in {self.path.name} "
                "(perfect foresight), not a real forecast",
            ),
            is_forecast=True,
            perfect_foresight=True,
            issued_at=self.clock.now(),
        )


def _check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigurationError(
            f"providers.file.{name} = {value!r} is invalid: must be one of "
            + ", ".join(repr(a) for a in allowed)
        )


def _check_max_gap(value: Any, key: str = "providers.file.max_gap_hours") -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"{key} = {value!r} must be a number")
    if not math.isfinite(value) or value < 0:
        raise ConfigurationError(f"{key} = {value!r} must be a finite number >= 0")
    return float(value)


def _existing(path: str | os.PathLike[str], option: str) -> Path:
    if not isinstance(path, str | os.PathLike) or not str(path).strip():
        raise ConfigurationError(f"providers.file.{option} must be a path, got {path!r}")
    resolved = Path(path).expanduser()
    if not resolved.exists():
        raise ConfigurationError(
            f"providers.file.{option}: {resolved} does not exist (working directory: {Path.cwd()})"
        )
    if not resolved.is_dir():
        # /dev/zero or a FIFO would be read for ever; a huge file would fill the memory.
        check_regular_file(
            resolved, what=f"providers.file.{option}:", max_bytes=MAX_DATA_FILE_BYTES
        )
    if resolved.is_dir() and not _data_files(resolved):
        raise ConfigurationError(
            f"providers.file.{option}: the directory {resolved} holds no .csv or .parquet file"
        )
    return resolved
