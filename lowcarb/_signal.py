"""The planning signal: expected intensity of every zone in every future slot.

:class:`SignalSource` asks the provider (its own forecast where it reaches, a forecaster
over its history beyond), and when that fails falls back, in order, to the last good
signal it cached, to the configured fallback providers, and to the embedded default. Each
answer says where every zone's values came from.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from lowcarb._forecast import Forecaster
from lowcarb._provider import CarbonProvider
from lowcarb._time import ensure_utc, floor_time
from lowcarb.exceptions import InvalidInputError, LowcarbError, UnknownZoneError

__all__ = ["PlanningSignal", "SignalSource", "slot_means"]


def slot_means(
    frame: pd.DataFrame, resolution: timedelta, starts: pd.DatetimeIndex, length: timedelta
) -> np.ndarray:
    """Time-weighted mean of a step signal over each slot ``[start, start + length)``.

    Args:
        frame: Values (gCO2eq/kWh) on a regular grid of interval starts, one column per
            zone, no NaN, covering every slot.
        resolution: The frame's interval length.
        starts: Slot starts (UTC).
        length: Slot length.

    Returns:
        ``(zones, slots)`` means.
    """
    values = frame.to_numpy(dtype=float)
    step = pd.Timedelta(resolution).value
    origin = frame.index[0].value
    # Integral of the step function at each grid point; any instant interpolates linearly.
    integral = np.vstack([np.zeros((1, values.shape[1])), np.cumsum(values * step, axis=0)])
    grid = origin + step * np.arange(values.shape[0] + 1)

    def at(times: np.ndarray) -> np.ndarray:
        return np.column_stack(
            [np.interp(times, grid, integral[:, j]) for j in range(values.shape[1])]
        )

    first = starts.as_unit("ns").asi8.astype(float)
    span = float(pd.Timedelta(length).value)
    return np.asarray(((at(first + span) - at(first)) / span).T)


@dataclass(frozen=True)
class PlanningSignal:
    """Expected intensities for the planner, with their provenance.

    Attributes:
        zones: Zone ids, the rows of ``intensity``.
        intensity: ``(zones, slots)`` expected gCO2eq/kWh.
        sources: How each zone's values were obtained (e.g. ``electricitymaps forecast``,
            ``default (fallback) + profile forecaster``, ``cache``, ``mean of other zones``).
        provider: The provider that answered for most zones.
        issued_at: The decision time the signal was built for.
        fallback: A sentence when anything but the primary provider answered, else None.
        notes: Provenance notes (failures, repairs, synthetic data).
    """

    zones: tuple[str, ...]
    intensity: np.ndarray
    sources: dict[str, str]
    provider: str
    issued_at: datetime
    fallback: str | None = None
    notes: tuple[str, ...] = field(default=())

    def describe(self) -> dict[str, Any]:
        """A JSON-friendly summary (for decisions and the ledger)."""
        return {
            "provider": self.provider,
            "issued_at": self.issued_at.isoformat(),
            "fallback": self.fallback,
            "sources": dict(self.sources),
            "notes": list(self.notes),
        }


class SignalSource:
    """Builds planning signals from a provider chain, a forecaster and a cache.

    Args:
        provider: The primary provider.
        forecaster: Forecasts from history. With ``use_provider_forecast`` it only fills
            the part of the horizon the provider's own forecast does not reach.
        fallbacks: Providers tried, in order, for zones the primary cannot answer.
        use_provider_forecast: Use the provider's own forecast where it reaches (unless it
            is perfect foresight, e.g. a replayed file).
        unknown_zone: For zones no provider serves: ``mean`` (the mean of the other zones,
            so such clients are neither favoured nor penalised) or ``error``.
    """

    def __init__(
        self,
        provider: CarbonProvider,
        *,
        forecaster: Forecaster,
        fallbacks: Sequence[CarbonProvider] = (),
        use_provider_forecast: bool = True,
        unknown_zone: str = "mean",
    ) -> None:
        if unknown_zone not in ("mean", "error"):
            raise InvalidInputError(f"unknown_zone={unknown_zone!r}: use 'mean' or 'error'")
        self.provider = provider
        self.forecaster = forecaster
        self.fallbacks = tuple(fallbacks)
        self.use_provider_forecast = use_provider_forecast
        self.unknown_zone = unknown_zone
        # Per zone: what was observed (the forecaster's history, extended round by round
        # so a provider is asked only for the intervals it has not given yet) and the last
        # good forecast; both serve as the fallback when the provider fails.
        self._observed: dict[tuple[str, ...], tuple[pd.DataFrame, pd.Timestamp]] = {}
        self._forecasts: dict[str, pd.Series] = {}
        self._served: dict[int, frozenset[str]] = {}

    def _serves(self, provider: CarbonProvider) -> frozenset[str]:
        key = id(provider)
        if key not in self._served:
            try:
                self._served[key] = frozenset(provider.served_zones())
            except LowcarbError:
                return frozenset()
        return self._served[key]

    def signal(
        self, zones: Sequence[str], now: datetime, starts: pd.DatetimeIndex, length: timedelta
    ) -> PlanningSignal:
        """Expected intensity of each zone over each slot.

        Args:
            zones: Distinct zone ids.
            now: The decision time (UTC); nothing later is observed.
            starts: Slot starts (UTC), the first at or after ``now``'s interval.
            length: Slot length (a round's duration).

        Raises:
            UnknownZoneError: With ``unknown_zone='error'``, for zones nobody serves.
        """
        now = ensure_utc(now, "now")
        end = starts[-1] + pd.Timedelta(length)
        remaining = list(dict.fromkeys(zones))
        frames: list[tuple[pd.DataFrame, timedelta]] = []
        sources: dict[str, str] = {}
        notes: list[str] = []
        fallback: list[str] = []
        chain = [self.provider, *self.fallbacks]
        failure: LowcarbError | None = None
        for position, provider in enumerate(chain):
            serve = [z for z in remaining if z in self._serves(provider)]
            if not serve:
                continue
            try:
                frame, method = self._fetch(provider, serve, now, end)
                step = provider.capabilities.resolution
            except LowcarbError as exc:
                notes.append(f"{provider.name} failed: {exc}")
                failure = failure or exc
                if position == 0:
                    cached = self._from_cache(serve, now, end)
                    if cached is not None:
                        frames.append(cached)
                        sources.update(dict.fromkeys(serve, "cache"))
                        fallback.append(f"last good signal cached for {', '.join(serve)}")
                        remaining = [z for z in remaining if z not in serve]
                continue
            frames.append((frame, step))
            label = provider.name + (" (fallback)" if position else "")
            sources.update(dict.fromkeys(serve, f"{label} {method}"))
            if position:
                fallback.append(f"{provider.name} answered for {', '.join(serve)}")
            for column in frame.columns:
                self._forecasts[column] = frame[column]
            remaining = [z for z in remaining if z not in serve]

        # Each provider's values are averaged over the slots at its own resolution.
        rows = [slot_means(frame, step, starts, length) for frame, step in frames]
        known = [z for frame, _ in frames for z in frame.columns]
        matrix = np.vstack(rows) if rows else np.empty((0, len(starts)))
        if remaining:
            if failure is not None and not known:
                raise failure
            if self.unknown_zone == "error" or not known:
                raise UnknownZoneError(
                    remaining[0],
                    [],
                    where=self.provider.name,
                    detail="no provider in the chain serves it and no signal is cached",
                )
            # Neutral stand-in: such clients are neither favoured nor penalised.
            matrix = np.vstack([matrix, np.tile(matrix.mean(axis=0), (len(remaining), 1))])
            known += remaining
            sources.update(dict.fromkeys(remaining, "mean of other zones"))
            fallback.append(f"no signal for {', '.join(remaining)}: mean of the other zones")
        order = [known.index(z) for z in dict.fromkeys(zones)]
        answered = [s.split(" ")[0] for s in sources.values()]
        return PlanningSignal(
            zones=tuple(dict.fromkeys(zones)),
            intensity=matrix[order],
            sources=sources,
            provider=max(set(answered), key=answered.count),
            issued_at=now,
            fallback="; ".join(fallback) or None,
            notes=tuple(notes),
        )

    def _fetch(
        self, provider: CarbonProvider, zones: list[str], now: datetime, end: datetime
    ) -> tuple[pd.DataFrame, str]:
        caps = provider.capabilities
        step = caps.resolution
        first = floor_time(now, step)
        steps = math.ceil((end - first) / step)
        targets = pd.date_range(first, periods=steps, freq=pd.Timedelta(step), name="start")
        reach = caps.forecast_horizon
        own: pd.DataFrame | None = None
        if self.use_provider_forecast and reach is not None:
            horizon = min(end - first, reach)
            series = provider.forecast(zones, start=first, horizon=horizon)
            if not series.perfect_foresight:
                own = series.values.reindex(targets)
        if own is not None and not own.isna().to_numpy().any():
            return own, "forecast"
        if not caps.history:
            raise LowcarbError(f"{provider.name} gives no history to forecast from")
        history = self._history(provider, zones, first, step)
        predicted = self.forecaster.predict(history, now, targets)
        if own is not None:
            predicted = own.combine_first(predicted)
            return predicted, f"forecast + {self.forecaster.name} forecaster"
        return predicted, f"history + {self.forecaster.name} forecaster"

    def _history(
        self, provider: CarbonProvider, zones: list[str], first: datetime, step: timedelta
    ) -> pd.DataFrame:
        """Observed values of ``[first - lookback, first)``, fetching only what is new."""
        lookback = self.forecaster.lookback
        if lookback <= timedelta(0):  # forecasters that read no history (the oracle)
            return pd.DataFrame(columns=zones, index=pd.DatetimeIndex([], tz="UTC"))
        start, stop = pd.Timestamp(first - lookback), pd.Timestamp(first)
        key = tuple(zones)
        cached, since = self._observed.get(key, (None, stop))
        # The cache covers the window when it was asked from the window's start or earlier
        # (a provider may hold less history than that; asking again would not help).
        if cached is not None and since <= start:
            # Only the intervals since the last round are new: usually one.
            resume = max(cached.index[-1] + pd.Timedelta(step), since) if len(cached) else since
            if resume < stop:
                tail = provider.history(zones, resume.to_pydatetime(), first).values
                cached = pd.concat([cached, tail[tail.index >= resume]])
        else:
            cached = provider.history(zones, start.to_pydatetime(), first).values
        cached = cached[cached.index >= start]
        self._observed[key] = (cached, start)
        return cached[cached.index < stop]

    def _from_cache(
        self, zones: list[str], now: datetime, end: datetime
    ) -> tuple[pd.DataFrame, timedelta] | None:
        """The last good forecast, extended by the forecaster over the observed history."""
        if not all(z in self._forecasts for z in zones):
            return None
        frame = pd.concat({z: self._forecasts[z] for z in zones}, axis=1)
        step = frame.index[1] - frame.index[0] if len(frame.index) > 1 else pd.Timedelta(hours=1)
        first = floor_time(now, step.to_pytimedelta())
        targets = pd.date_range(first, end, freq=step, inclusive="left", name="start")
        covered = frame.reindex(targets)
        if not covered.isna().to_numpy().any():
            return covered, step.to_pytimedelta()
        observed = {z: f[z] for f, _ in self._observed.values() for z in f.columns if z in zones}
        if len(observed) < len(zones):
            return None
        past = pd.concat(observed, axis=1)[zones]
        predicted = self.forecaster.predict(past, now, targets)
        return covered.combine_first(predicted), step.to_pytimedelta()

    def actual(
        self, zones: Sequence[str], start: datetime, end: datetime
    ) -> dict[str, float] | None:
        """Mean measured intensity of each zone over ``[start, end)``, if the provider has it."""
        provider = self.provider
        if not provider.capabilities.history:
            return None
        step = provider.capabilities.resolution
        served = [z for z in dict.fromkeys(zones) if z in self._serves(provider)]
        if not served:
            return None
        try:
            series = provider.history(served, floor_time(start, step), end)
        except LowcarbError:
            return None
        frame = series.values.ffill().bfill()
        if frame.empty or frame.isna().to_numpy().any():
            return None
        means = slot_means(frame, step, pd.DatetimeIndex([pd.Timestamp(start)]), end - start)[:, 0]
        return dict(zip(frame.columns, means.tolist(), strict=True))
