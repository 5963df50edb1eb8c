"""Forecasters: intensities over the planning horizon from information available now.

Providers give history and sometimes short forecasts; the planner needs values for every
slot of its horizon. A :class:`Forecaster` turns the observed past into those values and
never looks beyond the issue time. :class:`OracleForecaster` and :class:`NoisyForecaster`
read a known future and exist only for evaluation.

Three forecasters use history only: :class:`PersistenceForecaster` (same time yesterday),
:class:`WeeklyForecaster` (same time last week) and :class:`ProfileForecaster` (a
recency-weighted daily profile with a weekly term and a decaying correction for the
current anomaly), the default, which `docs/forecasting.md` benchmarks against the others.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import ClassVar, NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd

from lowcarb._time import ensure_utc
from lowcarb.exceptions import InvalidInputError, NoDataError

__all__ = [
    "BEST_FORECASTER_NAME",
    "FORECASTERS",
    "Forecaster",
    "NoisyForecaster",
    "OracleForecaster",
    "PersistenceForecaster",
    "ProfileForecaster",
    "WeeklyForecaster",
    "default_forecaster",
    "get_forecaster",
]

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_DAY = pd.Timedelta(days=1)
_HOUR = pd.Timedelta(hours=1)
_DAYS_PER_WEEK = 7


class Forecaster(abc.ABC):
    """Predicts intensities of future intervals from the observed past.

    Subclasses set ``name`` and ``lookback`` and implement :meth:`_predict`.
    """

    #: Registry name, e.g. ``persistence``.
    name: ClassVar[str] = ""
    #: How much history before the issue time :meth:`predict` should be given.
    lookback: ClassVar[timedelta] = timedelta(days=7)

    def predict(
        self, history: pd.DataFrame, issued_at: datetime, targets: pd.DatetimeIndex
    ) -> pd.DataFrame:
        """Forecast ``targets`` for every zone column of ``history``.

        Rows of ``history`` at or after ``issued_at`` are dropped before forecasting, so
        passing a longer frame cannot leak the future.

        Args:
            history: Observed intensities (gCO2eq/kWh), UTC index of interval starts on a
                regular grid, one column per zone, only intervals that started before
                ``issued_at``; may hold NaN.
            issued_at: The decision time (UTC); nothing at or after it is known.
            targets: UTC interval starts to forecast, on the history's grid.

        Returns:
            A frame indexed by ``targets`` with the history's columns and no NaN.

        Raises:
            InvalidInputError: If a time is naive, the history's index is not a sorted
                regular grid, or a target is off that grid or ends before ``issued_at``.
            NoDataError: If a zone has no observation at all.
        """
        issued = ensure_utc(issued_at, "issued_at")
        targets = _utc_index(targets, "targets")
        index = _utc_index(history.index, "history index")
        if not index.is_monotonic_increasing or index.has_duplicates:
            raise InvalidInputError("history index must be sorted and free of duplicates")
        history = history.iloc[: index.searchsorted(pd.Timestamp(issued))]
        if len(targets) == 0:
            return pd.DataFrame(index=targets, columns=history.columns, dtype=float)
        return self._predict(history, issued, targets)

    @abc.abstractmethod
    def _predict(
        self, history: pd.DataFrame, issued_at: datetime, targets: pd.DatetimeIndex
    ) -> pd.DataFrame: ...

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class PersistenceForecaster(Forecaster):
    """Same time of day on the most recent observed day.

    Each target takes the value observed a whole number of days earlier, at the smallest
    such lag that is observed (not NaN) within :attr:`lookback`; a target with none takes
    the zone's last observed value.
    """

    name = "persistence"
    lookback = timedelta(days=7)

    def _predict(
        self, history: pd.DataFrame, issued_at: datetime, targets: pd.DatetimeIndex
    ) -> pd.DataFrame:
        grid = _Grid.build(history, issued_at, targets, self.lookback)
        found = _first_observed(grid, grid.per_day)
        return grid.frame(np.where(np.isnan(found), grid.last_value, found), targets)


class WeeklyForecaster(Forecaster):
    """Same time of day and weekday in the most recent observed week.

    Targets with no observation a whole number of weeks earlier within :attr:`lookback`
    fall back to :class:`PersistenceForecaster`'s answer.
    """

    name = "weekly"
    lookback = timedelta(days=14)

    def _predict(
        self, history: pd.DataFrame, issued_at: datetime, targets: pd.DatetimeIndex
    ) -> pd.DataFrame:
        grid = _Grid.build(history, issued_at, targets, self.lookback)
        found = _first_observed(grid, _DAYS_PER_WEEK * grid.per_day)
        daily = _first_observed(grid, grid.per_day)
        found = np.where(np.isnan(found), daily, found)
        return grid.frame(np.where(np.isnan(found), grid.last_value, found), targets)


class ProfileForecaster(Forecaster):
    """Recency-weighted daily profile, a weekly term, and a decaying current anomaly.

    Works on ``z = log(1 + x)`` because intensities are positive and vary multiplicatively
    (a low-carbon grid swings by a factor, not by grams), which also keeps the forecast
    non-negative. For each zone:

    * profile ``P(t)``: mean of ``z`` at ``t``'s time of day over the last 14 days, the
      ``k``-th most recent day weighted ``day_decay**k``;
    * weekly term ``W(t)``: in each of the last two 7-day blocks, ``z`` on ``t``'s weekday
      and time minus that block's mean at that time, averaged over the blocks;
    * anomaly ``a``: last observation minus ``P`` at its time; it decays as ``rho**h``
      with ``h`` the steps since that observation and ``rho`` the lag-1 autocorrelation
      of the 14 days of anomalies ``z - P`` (at most ``max_decay_per_hour`` per hour);
    * forecast ``expm1(P + a * rho**h + weekly_weight * W * (1 - rho**h))``: near the
      issue time the anomaly dominates, far ahead the weekly-adjusted profile; kept within
      the lowest and highest value of the window.

    Targets whose time of day was never observed take the zone's last observed value.

    Args:
        day_decay: Weight ratio between consecutive days of the profile, in (0, 1].
        weekly_weight: Share of the weekly deviation added far ahead, in [0, 1].
        max_decay_per_hour: Cap on ``rho`` per hour, in [0, 1); keeps a stale anomaly
            from lasting the whole horizon (0.98 is a half-life of 34 h).

    Raises:
        InvalidInputError: If a parameter is out of range.

    Example:
        >>> forecaster = ProfileForecaster()
        >>> frame = forecaster.predict(history, issued_at, targets)  # doctest: +SKIP
    """

    name = "profile"
    lookback = timedelta(days=14)

    # Chosen on 2021-2022 issue times only (benchmarks/forecast_accuracy.py --tune); the
    # whole grid tried lies within 0.4 MAPE points, so round values, not fine-tuned ones.
    def __init__(
        self,
        *,
        day_decay: float = 0.85,
        weekly_weight: float = 0.25,
        max_decay_per_hour: float = 0.98,
    ) -> None:
        if not 0 < day_decay <= 1:
            raise InvalidInputError(f"day_decay must be in (0, 1], got {day_decay}")
        if not 0 <= weekly_weight <= 1:
            raise InvalidInputError(f"weekly_weight must be in [0, 1], got {weekly_weight}")
        if not 0 <= max_decay_per_hour < 1:
            raise InvalidInputError(
                f"max_decay_per_hour must be in [0, 1), got {max_decay_per_hour}"
            )
        self.day_decay = day_decay
        self.weekly_weight = weekly_weight
        self.max_decay_per_hour = max_decay_per_hour

    def _predict(
        self, history: pd.DataFrame, issued_at: datetime, targets: pd.DatetimeIndex
    ) -> pd.DataFrame:
        grid = _Grid.build(history, issued_at, targets, self.lookback)
        z = np.log1p(np.clip(grid.values, 0, None))
        days = self.lookback // timedelta(days=1)
        weights = self.day_decay ** np.arange(days, dtype=float)

        stack, k0 = _same_time(z, grid.target_pos, grid.per_day, days)
        profile = _weighted_mean(stack, weights)
        weekly = _weekly_deviation(stack, k0)

        # Anomalies over the window, each against the profile of the days before it: the
        # last one is the correction, and all of them give its decay rate.
        history_pos = np.arange(len(z))
        anomalies = z - _weighted_mean(_same_time(z, history_pos, grid.per_day, days)[0], weights)
        rho_cap = self.max_decay_per_hour ** (grid.step / _HOUR)
        rho = np.clip(_lag1_autocorrelation(anomalies), 0.0, rho_cap)
        last = np.clip(grid.last_pos, 0, len(z) - 1)
        current = anomalies[last, np.arange(z.shape[1])]
        current = np.where((grid.last_pos >= 0) & ~np.isnan(current), current, 0.0)

        decay = rho ** np.maximum(grid.target_pos[:, None] - grid.last_pos, 0)
        forecast = profile + current * decay + self.weekly_weight * weekly * (1 - decay)
        forecast = np.where(
            np.isnan(profile), np.log1p(np.clip(grid.last_value, 0, None)), forecast
        )
        # Within the range the window observed: a large anomaly over a low profile (a
        # step-like marginal signal jumping from 0 to 1,000 g) would otherwise compound in
        # log space to values no grid reaches.
        observed = ~np.isnan(grid.values)
        low = np.where(observed, grid.values, np.inf).min(axis=0)
        high = np.where(observed, grid.values, -np.inf).max(axis=0)
        # A zone seen only before the window: its last value bounds it both ways.
        low = np.where(np.isfinite(low), low, grid.last_value)
        high = np.where(np.isfinite(high), high, grid.last_value)
        return grid.frame(np.clip(np.expm1(forecast), np.maximum(low, 0), high), targets)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(day_decay={self.day_decay}, "
            f"weekly_weight={self.weekly_weight}, "
            f"max_decay_per_hour={self.max_decay_per_hour})"
        )


class OracleForecaster(Forecaster):
    """The true values: perfect foresight, for evaluation only.

    It reads ``truth`` at the targets and ignores the history except for its columns;
    never use it to make real decisions.

    Args:
        truth: True intensities (gCO2eq/kWh), UTC index, one column per zone, covering
            every target and zone asked later.

    Raises:
        InvalidInputError: If ``truth``'s index is not timezone-aware.
    """

    name = "oracle"
    lookback = timedelta(0)

    def __init__(self, truth: pd.DataFrame) -> None:
        self.truth = truth.set_axis(_utc_index(truth.index, "truth index"), axis=0)

    def _predict(
        self, history: pd.DataFrame, issued_at: datetime, targets: pd.DatetimeIndex
    ) -> pd.DataFrame:
        missing = [zone for zone in history.columns if zone not in self.truth.columns]
        if missing:
            raise NoDataError(f"no true values for zones {missing}", provider="forecast")
        values = self.truth.reindex(index=targets, columns=history.columns).astype(float)
        if values.isna().to_numpy().any():
            first = values.index[values.isna().any(axis=1)][0]
            raise NoDataError(
                f"no true value for {first.isoformat()}; pass a truth frame covering every target",
                provider="forecast",
            )
        return values


class NoisyForecaster(OracleForecaster):
    """The true values with multiplicative Gaussian error, for evaluation only.

    Returns ``truth * (1 + sigma * eps)`` clipped at 0, with ``eps`` standard normal
    drawn from a generator seeded by ``(seed, issued_at)``: the same call always gives
    the same answer, and different issue times get independent errors.

    Args:
        truth: True intensities (gCO2eq/kWh), as for :class:`OracleForecaster`.
        sigma: Relative error's standard deviation, e.g. 0.1 for 10 %; at least 0.
        seed: Non-negative integer seed.

    Raises:
        InvalidInputError: If ``sigma`` is negative or not finite, or ``seed`` negative.
    """

    name = "noisy"

    def __init__(self, truth: pd.DataFrame, sigma: float, seed: int) -> None:
        if not np.isfinite(sigma) or sigma < 0:
            raise InvalidInputError(f"sigma must be a finite number >= 0, got {sigma}")
        if seed < 0:
            raise InvalidInputError(f"seed must be >= 0, got {seed}")
        super().__init__(truth)
        self.sigma = float(sigma)
        self.seed = int(seed)

    def _predict(
        self, history: pd.DataFrame, issued_at: datetime, targets: pd.DatetimeIndex
    ) -> pd.DataFrame:
        truth = super()._predict(history, issued_at, targets)
        # Microseconds since year 1 are non-negative, as SeedSequence requires.
        micros = (issued_at - datetime(1, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
        rng = np.random.default_rng([self.seed, micros])
        noise = rng.standard_normal(truth.shape)
        return truth.mul(1 + self.sigma * noise).clip(lower=0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(sigma={self.sigma}, seed={self.seed})"


#: Registry name of the forecaster :func:`default_forecaster` returns.
BEST_FORECASTER_NAME = ProfileForecaster.name

#: History-based forecasters by registry name (read-only).
FORECASTERS: Mapping[str, type[Forecaster]] = MappingProxyType(
    {cls.name: cls for cls in (PersistenceForecaster, WeeklyForecaster, ProfileForecaster)}
)


def default_forecaster() -> Forecaster:
    """Return the most accurate history-based forecaster, :class:`ProfileForecaster`."""
    return ProfileForecaster()


def get_forecaster(name: str) -> Forecaster:
    """Return a history-based forecaster with default parameters by registry name.

    Args:
        name: ``best`` (the default, :data:`BEST_FORECASTER_NAME`) or a key of
            :data:`FORECASTERS`; case-insensitive.

    Returns:
        A new forecaster instance.

    Raises:
        InvalidInputError: If the name is unknown; the message lists the known names.

    Example:
        >>> get_forecaster("best")
        ProfileForecaster(day_decay=0.85, weekly_weight=0.25, max_decay_per_hour=0.98)
    """
    key = name.strip().lower()
    if key == "best":
        return default_forecaster()
    if key not in FORECASTERS:
        known = ", ".join(["best", *sorted(FORECASTERS)])
        raise InvalidInputError(
            f"unknown forecaster {name!r}; known: {known} (oracle and noisy need the true "
            "values: construct OracleForecaster or NoisyForecaster directly)"
        )
    return FORECASTERS[key]()


def _utc_index(index: pd.Index, name: str) -> pd.DatetimeIndex:
    """Return ``index`` as a UTC DatetimeIndex, rejecting naive or non-time indexes."""
    if not isinstance(index, pd.DatetimeIndex):
        raise InvalidInputError(f"{name} must be a DatetimeIndex, got {type(index).__name__}")
    if index.tz is None:
        raise InvalidInputError(
            f"{name} is naive; localise it to UTC first, e.g. index.tz_localize('UTC')"
        )
    return index.tz_convert("UTC")


class _Grid(NamedTuple):
    """History as an array on its regular grid, and targets as positions on it.

    Position ``len(values) - 1`` is the last history row; targets lie at or after it.
    """

    values: Array  # (steps, zones), NaN where unobserved; at most the lookback long
    step: pd.Timedelta
    per_day: int  # grid steps per day
    target_pos: IntArray  # (targets,)
    last_pos: IntArray  # (zones,) position of each zone's last observation, may be < 0
    last_value: Array  # (zones,) each zone's last observed value
    columns: pd.Index

    @classmethod
    def build(
        cls,
        history: pd.DataFrame,
        issued_at: datetime,
        targets: pd.DatetimeIndex,
        lookback: timedelta,
    ) -> _Grid:
        full = history.to_numpy(dtype=float)
        observed = ~np.isnan(full)
        seen = observed.any(axis=0)
        if not seen.all() or len(history) == 0:
            empty = list(history.columns[~seen]) or list(history.columns)
            raise NoDataError(
                f"no observation before the issue time for zones {empty}; "
                "pass a longer history or drop those zones",
                provider="forecast",
            )
        stamps = pd.DatetimeIndex(history.index).as_unit("ns").asi8
        step = _infer_step(stamps, targets.as_unit("ns").asi8)
        per_day, rest = divmod(_DAY.value, step.value)
        if rest:
            raise InvalidInputError(f"history step {step} does not divide a day")

        offsets, off_grid = np.divmod(stamps - stamps[-1], step.value)
        if off_grid.any():
            raise InvalidInputError(f"history index is not on a regular {step} grid")
        length = int(min(-offsets[0] + 1, max(lookback // step, 1)))
        values = np.full((length, full.shape[1]), np.nan)
        keep = offsets > -length
        values[offsets[keep] + length - 1] = full[keep]

        last_row = len(full) - 1 - np.argmax(observed[::-1], axis=0)
        last_pos = offsets[last_row] + length - 1
        last_value = full[last_row, np.arange(full.shape[1])]

        target_off, off_grid = np.divmod(targets.as_unit("ns").asi8 - stamps[-1], step.value)
        if off_grid.any():
            raise InvalidInputError(f"targets must lie on the history's {step} grid")
        if (targets + step <= pd.Timestamp(issued_at)).any():
            raise InvalidInputError(
                f"targets must not end before issued_at={issued_at.isoformat()}"
            )
        target_pos = target_off + length - 1
        return cls(values, step, per_day, target_pos, last_pos, last_value, history.columns)

    def frame(self, values: Array, targets: pd.DatetimeIndex) -> pd.DataFrame:
        """Wrap a (targets, zones) array as the forecast frame."""
        return pd.DataFrame(values, index=targets, columns=self.columns)


def _infer_step(stamps: IntArray, target_stamps: IntArray) -> pd.Timedelta:
    """Smallest gap between history rows (else between targets, else an hour)."""
    for series in (stamps, target_stamps):
        gaps = np.diff(series)
        gaps = gaps[gaps > 0]
        if len(gaps):
            return pd.Timedelta(int(gaps.min()), unit="ns")
    return _HOUR


def _same_time(values: Array, pos: IntArray, lag: int, count: int) -> tuple[Array, IntArray]:
    """Values ``k * lag`` steps before each position, for the ``count`` smallest usable k.

    Args:
        values: (steps, zones) array on the grid.
        pos: (n,) positions; those at or past ``len(values)`` are in the future.
        lag: Steps between looks, e.g. one day.
        count: How many looks.

    Returns:
        A (n, count, zones) array (NaN before the grid starts) and the (n,) first
        multiplier ``k0 >= 1``, the smallest ``k`` that lands inside the grid.
    """
    k0 = np.maximum(1, -((len(values) - 1 - pos) // lag))
    src = pos[:, None] - lag * (k0[:, None] + np.arange(count)[None, :])
    out = values[np.maximum(src, 0)]
    out[src < 0] = np.nan
    return out, k0


def _first_observed(grid: _Grid, lag: int) -> Array:
    """For each target, the observation a whole number of ``lag`` earlier (NaN if none)."""
    count = -(-len(grid.values) // lag)
    stack, _ = _same_time(grid.values, grid.target_pos, lag, count)
    first = np.argmax(~np.isnan(stack), axis=1)[:, None, :]
    return np.take_along_axis(stack, first, axis=1)[:, 0, :]


def _weighted_mean(stack: Array, weights: Array) -> Array:
    """Weighted mean over axis 1 ignoring NaN; NaN where nothing is observed."""
    valid = ~np.isnan(stack)
    total = np.einsum("tkz,k->tz", valid.astype(float), weights)
    summed = np.einsum("tkz,k->tz", np.where(valid, stack, 0.0), weights)
    mean: Array = np.divide(summed, total, out=np.full_like(summed, np.nan), where=total > 0)
    return mean


def _weekly_deviation(stack: Array, k0: IntArray) -> Array:
    """Same weekday and time minus its 7-day block's mean at that time, over the blocks.

    ``stack`` holds daily looks ``k0, k0 + 1, ...``; in each block of 7 of them the one a
    whole number of weeks back sits at ``-k0 mod 7``. Zero where nothing is known.
    """
    weeks = stack.shape[1] // _DAYS_PER_WEEK
    blocks = stack[:, : weeks * _DAYS_PER_WEEK].reshape(
        stack.shape[0], weeks, _DAYS_PER_WEEK, stack.shape[2]
    )
    ones = np.ones(_DAYS_PER_WEEK)
    block_means = np.stack([_weighted_mean(blocks[:, b], ones) for b in range(weeks)], axis=1)
    same_day = np.take_along_axis(blocks, ((-k0) % _DAYS_PER_WEEK)[:, None, None, None], axis=2)
    deviation = _weighted_mean(same_day[:, :, 0] - block_means, np.ones(weeks))
    return np.where(np.isnan(deviation), 0.0, deviation)


def _lag1_autocorrelation(series: Array) -> Array:
    """Lag-1 autocorrelation of each column over pairs observed at both ends (0 if none)."""
    centred = series - _weighted_mean(series[None], np.ones(len(series)))[0]
    now, before = centred[1:], centred[:-1]
    pair = ~(np.isnan(now) | np.isnan(before))
    now, before = np.where(pair, now, 0.0), np.where(pair, before, 0.0)
    scale = np.sqrt((now**2).sum(axis=0) * (before**2).sum(axis=0))
    cross = (now * before).sum(axis=0)
    correlation: Array = np.divide(cross, scale, out=np.zeros_like(cross), where=scale > 0)
    return correlation
