"""The planning signal: expected intensity of every zone in every future slot.

:class:`SignalSource` asks the provider chain (:class:`~lowcarb._chain.ProviderChain`)
zone by zone: each member's own forecast where it reaches, and a forecaster over its
history beyond. When the horizon reaches past a member's forecast, the two are also
blended within its reach by their measured skill (``lowcarb._skill``). When the primary
fails, the last good signal it gave stands in (its age said); then the chain's other
members answer; zones nobody serves get a neutral stand-in or an error. Each answer says
where every zone's values came from and why.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from lowcarb._chain import Part, ProviderChain
from lowcarb._forecast import Forecaster
from lowcarb._provider import CarbonProvider
from lowcarb._skill import ForecastSkill
from lowcarb._time import ensure_utc, floor_time, format_duration
from lowcarb.exceptions import InvalidInputError, LowcarbError, UnknownZoneError

__all__ = ["UNKNOWN_ZONE_RULES", "PlanningSignal", "SignalSource", "slot_means"]

#: What to do with zones no provider serves: a neutral stand-in, or refuse.
UNKNOWN_ZONE_RULES = ("mean", "error")


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
            ``default (fallback) history + profile forecaster``, ``cache (2 h old)``,
            ``mean of other zones``).
        provider: The provider that answered for most zones.
        issued_at: The decision time the signal was built for.
        fallback: A sentence when anything but the primary provider answered, else None.
        notes: Provenance notes (failures, repairs, synthetic data).
        reasons: Per zone not answered by the primary: why.
        blend: Per zone whose provider forecasts: the provider forecast's measured weight
            by lead bucket (the history forecaster has the rest); buckets not yet
            measured are left out (the provider's forecast alone there).
    """

    zones: tuple[str, ...]
    intensity: np.ndarray
    sources: dict[str, str]
    provider: str
    issued_at: datetime
    fallback: str | None = None
    notes: tuple[str, ...] = field(default=())
    reasons: dict[str, str] = field(default_factory=dict)
    blend: dict[str, dict[str, float]] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """A JSON-friendly summary (for decisions and the ledger)."""
        out: dict[str, Any] = {
            "provider": self.provider,
            "issued_at": self.issued_at.isoformat(),
            "fallback": self.fallback,
            "sources": dict(self.sources),
            "notes": list(self.notes),
        }
        if self.reasons:
            out["reasons"] = dict(self.reasons)
        if self.blend:
            out["blend"] = {z: dict(t) for z, t in self.blend.items()}
        return out


@dataclass(frozen=True)
class _Frame:
    """One member's (or the cache's) values for some zones, before slot averaging."""

    values: pd.DataFrame
    step: timedelta
    method: str
    blend: dict[str, dict[str, float]] = field(default_factory=dict)


class SignalSource:
    """Builds planning signals from a provider chain and a forecaster.

    Safe to share between threads: its caches are guarded by a lock.

    Args:
        chain: The providers, primary first.
        forecaster: Forecasts from history. With ``use_provider_forecast`` it fills the
            part of the horizon a provider's own forecast does not reach, and there it is
            also blended with that forecast within its reach, by measured skill.
        use_provider_forecast: Use a provider's own forecast where it reaches (unless it
            is perfect foresight, e.g. a replayed file).
        unknown_zone: For zones no provider serves: ``mean`` (the mean of the other zones,
            so such clients are neither favoured nor penalised) or ``error``.
    """

    def __init__(
        self,
        chain: ProviderChain,
        *,
        forecaster: Forecaster,
        use_provider_forecast: bool = True,
        unknown_zone: str = "mean",
    ) -> None:
        if unknown_zone not in UNKNOWN_ZONE_RULES:
            raise InvalidInputError(f"unknown_zone={unknown_zone!r}: use 'mean' or 'error'")
        self.chain = chain
        self.forecaster = forecaster
        self.use_provider_forecast = use_provider_forecast
        self.unknown_zone = unknown_zone
        # Per member and zones: what was observed (the forecaster's history, extended
        # round by round so a provider is asked only for the intervals it has not given
        # yet). Per zone: the last good forecast and when it was made; both stand in when
        # the primary fails.
        self._observed: dict[tuple[int, tuple[str, ...]], tuple[pd.DataFrame, pd.Timestamp]] = {}
        self._forecasts: dict[str, tuple[pd.Series, datetime]] = {}
        # Per member: how its own forecast compares with the history forecaster's.
        self._skill: dict[int, ForecastSkill] = {}
        self._lock = threading.RLock()

    def signal(
        self, zones: Sequence[str], now: datetime, starts: pd.DatetimeIndex, length: timedelta
    ) -> PlanningSignal:
        """Expected intensity of each zone over each slot.

        Args:
            zones: Distinct canonical zone ids (see :meth:`ProviderChain.canonical`).
            now: The decision time (UTC); nothing later is observed.
            starts: Slot starts (UTC), the first at or after ``now``'s interval.
            length: Slot length (a round's duration).

        Raises:
            UnknownZoneError: With ``unknown_zone='error'``, for zones nobody serves.
        """
        now = ensure_utc(now, "now")
        end = starts[-1] + pd.Timedelta(length)
        asked = list(dict.fromkeys(zones))
        position = self.chain.members.index
        with self._lock:
            fanout = self.chain.each(
                asked,
                lambda member, mine: self._fetch(position(member), member, mine, now, end),
                rescue=lambda mine: self._from_cache(mine, now, end),
            )
        frames: list[_Frame] = []
        blend: dict[str, dict[str, float]] = {}
        known: list[str] = []
        sources: dict[str, str] = {}
        fallback: list[str] = []
        for part in fanout.parts:
            frames.append(part.value)
            blend.update(part.value.blend)
            known += part.zones
            if part.position < 0:
                sources.update(dict.fromkeys(part.zones, part.value.method))
                fallback.append(f"last good signal cached for {', '.join(part.zones)}")
                continue
            label = part.source + (" (fallback)" if part.position else "")
            sources.update(dict.fromkeys(part.zones, f"{label} {part.value.method}"))
            if part.position:
                fallback.append(f"{part.source} answered for {', '.join(part.zones)}")

        # Each provider's values are averaged over the slots at its own resolution.
        rows = [
            slot_means(f.values[list(p.zones)], f.step, starts, length)
            for f, p in zip(frames, fanout.parts, strict=True)
        ]
        matrix = np.vstack(rows) if rows else np.empty((0, len(starts)))
        remaining = list(fanout.missing)
        by_primary = {z for p in fanout.parts if p.position == 0 for z in p.zones}
        reasons = {z: why for z, why in fanout.reasons.items() if z not in by_primary}
        if remaining:
            if fanout.error is not None and not known:
                raise fanout.error
            if self.unknown_zone == "error" or not known:
                raise UnknownZoneError(
                    remaining[0],
                    [],
                    where=self.chain.name,
                    detail="no provider in the chain serves it and no signal is cached",
                )
            # Neutral stand-in: such clients are neither favoured nor penalised.
            matrix = np.vstack([matrix, np.tile(matrix.mean(axis=0), (len(remaining), 1))])
            known += remaining
            sources.update(dict.fromkeys(remaining, "mean of other zones"))
            fallback.append(f"no signal for {', '.join(remaining)}: mean of the other zones")
        order = [known.index(z) for z in asked]
        answered = [s.split(" ")[0] for s in sources.values()]
        return PlanningSignal(
            zones=tuple(asked),
            intensity=matrix[order],
            sources=sources,
            provider=max(set(answered), key=answered.count),
            issued_at=now,
            fallback="; ".join(fallback) or None,
            notes=fanout.notes,
            reasons=reasons,
            blend=blend,
        )

    def _fetch(
        self,
        position: int,
        provider: CarbonProvider,
        zones: list[str],
        now: datetime,
        end: datetime,
    ) -> _Frame:
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
        blend: dict[str, dict[str, float]] = {}
        if own is not None and not own.isna().to_numpy().any():
            # Its forecast reaches the whole horizon: no history is asked for (a request a
            # round saved); the blend is measured while the history forecaster runs anyway.
            frame, method = own, "forecast"
        else:
            if not caps.history:
                raise LowcarbError(f"{provider.name} gives no history to forecast from")
            history = self._history(position, provider, zones, first, step)
            frame = self.forecaster.predict(history, now, targets)
            method = f"history + {self.forecaster.name} forecaster"
            if own is not None:
                frame, method, blend = self._blend(position, own, frame, history, now)
        for column in frame.columns:
            self._forecasts[column] = (frame[column], now)
        return _Frame(frame, step, method, blend)

    def _blend(
        self,
        position: int,
        own: pd.DataFrame,
        predicted: pd.DataFrame,
        history: pd.DataFrame,
        now: datetime,
    ) -> tuple[pd.DataFrame, str, dict[str, dict[str, float]]]:
        """The provider's forecast and the history forecaster's, weighted by measured skill.

        Both are kept to be scored once observed (``ForecastSkill``); beyond
        the provider's reach the history forecaster answers alone.
        """
        skill = self._skill.setdefault(position, ForecastSkill())
        skill.score(history, now)
        skill.record(now, own, predicted)
        blended = predicted.copy()
        tables: dict[str, dict[str, float]] = {}
        # The provider's forecast reaches part of the horizon; the forecaster has the rest.
        for zone in own.columns:
            weight = skill.weights(str(zone), now, pd.DatetimeIndex(own.index))
            mine = own[zone].to_numpy(dtype=float)
            theirs = predicted[zone].to_numpy(dtype=float)
            blended[zone] = np.where(np.isnan(mine), theirs, weight * mine + (1 - weight) * theirs)
            tables[str(zone)] = skill.table(str(zone))
        name = self.forecaster.name
        method = f"forecast + {name} forecaster"
        if any(tables.values()):
            method = f"forecast blended with the {name} forecaster by measured skill"
        return blended, method, {z: t for z, t in tables.items() if t}

    def _history(
        self,
        position: int,
        provider: CarbonProvider,
        zones: list[str],
        first: datetime,
        step: timedelta,
    ) -> pd.DataFrame:
        """Observed values of ``[first - lookback, first)``, fetching only what is new."""
        lookback = self.forecaster.lookback
        if lookback <= timedelta(0):  # forecasters that read no history (the oracle)
            return pd.DataFrame(columns=zones, index=pd.DatetimeIndex([], tz="UTC"))
        start, stop = pd.Timestamp(first - lookback), pd.Timestamp(first)
        key = (position, tuple(zones))
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

    def _from_cache(self, zones: list[str], now: datetime, end: datetime) -> Part[_Frame] | None:
        """The last good forecast, extended by the forecaster over the observed history."""
        if not all(z in self._forecasts for z in zones):
            return None
        frame = pd.concat({z: self._forecasts[z][0] for z in zones}, axis=1)
        made = min(self._forecasts[z][1] for z in zones)
        step = frame.index[1] - frame.index[0] if len(frame.index) > 1 else pd.Timedelta(hours=1)
        first = floor_time(now, step.to_pytimedelta())
        targets = pd.date_range(first, end, freq=step, inclusive="left", name="start")
        covered = frame.reindex(targets)
        if covered.isna().to_numpy().any():
            observed = {
                z: f[z] for f, _ in self._observed.values() for z in f.columns if z in zones
            }
            if len(observed) < len(zones):
                return None
            past = pd.concat(observed, axis=1)[zones]
            covered = covered.combine_first(self.forecaster.predict(past, now, targets))
        minute = timedelta(minutes=1)
        age = format_duration(floor_time(now, minute) - floor_time(made, minute))
        method = f"cache ({age} old)"
        return Part("cache", -1, tuple(zones), _Frame(covered, step.to_pytimedelta(), method))

    def actual(
        self, zones: Sequence[str], start: datetime, end: datetime
    ) -> dict[str, float] | None:
        """Mean measured intensity of each zone over ``[start, end)``, where it is known.

        Each zone is read from the first member of the chain that serves it; a member
        without history, or a synthetic fallback (no measurement), leaves it unknown.
        None when no zone's value can be had.
        """
        primary = self.chain.members[0]

        def measured(provider: CarbonProvider, mine: list[str]) -> dict[str, float]:
            caps = provider.capabilities
            if not caps.history or (caps.synthetic and provider is not primary):
                return {}
            step = provider.capabilities.resolution
            frame = provider.history(mine, floor_time(start, step), end).values.ffill().bfill()
            if frame.empty or frame.isna().to_numpy().any():
                raise LowcarbError(f"{provider.name} has no values for the round")
            span = pd.DatetimeIndex([pd.Timestamp(start)])
            means = slot_means(frame, step, span, end - start)[:, 0]
            return dict(zip(frame.columns, means.tolist(), strict=True))

        fanout = self.chain.each(list(dict.fromkeys(zones)), measured)
        found = {z: v for part in fanout.parts for z, v in part.value.items()}
        return found or None
