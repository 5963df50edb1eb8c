"""The embedded offline default: synthetic hourly intensities, no key, no network.

**Synthetic data.** Values are generated, deterministically from a seed, from per-zone
statistics derived from real Electricity Maps data (2021-2023) by
``scripts/derive_default_profiles.py``. Contains data from Electricity Maps (ODbL):
only statistics are embedded, no measured row.

The model, per zone and emission basis, in the zone's local time::

    I(t) = clip(mu[w, m, h] + sd[w, m, h] * e(t), zone_min, zone_max)
    e(t) = a * S(t) + sqrt(1 - a^2) * F(t)

``mu``/``sd`` are the mean and spread for weekday/weekend ``w``, month ``m`` and hour
``h``; ``S`` is a slow AR(1) process whose 24-hour autocorrelation equals the observed
day-to-day persistence of anomalies, ``F`` a fast AR(1) with the observed hour-to-hour
persistence, and ``a^2`` the observed share of anomaly variance that is day-level. Both
bases share the same random draws, so life-cycle and direct series move together. Each
calendar year (UTC) is generated as one block from its own seed, so any query returns
the same value for the same hour; the anomaly restarts at each new year, and within a
year it is pinned to mean 0 and variance 1, then shifted so that the year's mean equals
the profile's: every seed keeps every zone's long-run mean (year-to-year variation, such
as a drought year, is not modelled).

Forecasts use no future information: the conditional expectation of the model given the
state at the current hour, ``mu + sd * (a s^k S(t0) + b r^k F(t0))``, which decays from
the current anomaly towards the seasonal profile as the lead time ``k`` grows.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

import numpy as np
import pandas as pd

from lowcarb.backends.toolkit import (
    Capabilities,
    CarbonProvider,
    Clock,
    EmissionBasis,
    IntensitySeries,
    ceil_time,
    floor_time,
)
from lowcarb.exceptions import InvalidInputError, NoDataError

__all__ = ["DefaultProvider"]

HOUR = timedelta(hours=1)
_HOUR_NS = 3_600_000_000_000
_NOTE = "synthetic data from 2021-2023 Electricity Maps statistics (ODbL), not measurements"


@lru_cache(maxsize=1)
def _profiles() -> dict[str, Any]:
    text = (
        resources.files("lowcarb.backends")
        .joinpath("data/default_profiles.json")
        .read_text(encoding="utf-8")
    )
    data: dict[str, Any] = json.loads(text)
    for entry in data["zones"].values():
        for basis in ("lifecycle", "direct"):
            stats = entry[basis]
            stats["mean"] = np.asarray(stats["mean"], dtype=float)
            stats["sd"] = np.asarray(stats["sd"], dtype=float)
    return data


@dataclass(frozen=True)
class _Year:
    """One generated calendar year of a zone: values and the two latent states."""

    start: pd.Timestamp
    values: np.ndarray  # g/kWh, hourly
    slow: np.ndarray  # S(t)
    fast: np.ndarray  # F(t)
    mu: np.ndarray
    sd: np.ndarray


def _ar1(phi: float, noise: np.ndarray) -> np.ndarray:
    """Unit-variance AR(1) ``y[t] = phi y[t-1] + sqrt(1 - phi^2) e[t]`` seeded by ``noise[0]``.

    A plain loop: ~8,760 steps cost milliseconds, where scipy.signal.lfilter costs a 1-2 s
    import on every CLI start.
    """
    gain = float(np.sqrt(1 - phi * phi))
    out = np.empty(len(noise) - 1)
    value = float(noise[0])
    for t, e in enumerate(noise[1:].tolist()):
        value = phi * value + gain * e
        out[t] = value
    return out


@lru_cache(maxsize=256)
def _generate_year(zone: str, basis: str, year: int, seed: int) -> _Year:
    entry = _profiles()["zones"][zone]
    stats = entry[basis]
    start = pd.Timestamp(datetime(year, 1, 1, tzinfo=UTC))
    index = pd.date_range(
        start, pd.Timestamp(datetime(year + 1, 1, 1, tzinfo=UTC)), freq="h", inclusive="left"
    )
    local = index.tz_convert(entry["timezone"])
    weekend = (local.day_of_week >= 5).astype(int)
    mu = stats["mean"][weekend, local.month - 1, local.hour]
    sd = stats["sd"][weekend, local.month - 1, local.hour]

    # The random draws depend on zone, year and seed but not on the basis, so that the
    # life-cycle and direct series of a zone share their weather.
    rng = np.random.default_rng([seed, zlib.crc32(zone.encode()), year])
    noise = rng.standard_normal((2, len(index) + 1))
    s = stats["day_persistence"] ** (1 / 24)
    r = stats["hour_persistence"]
    slow = _ar1(s, noise[0])
    fast = _ar1(r, noise[1])
    # Pin each year's anomalies to mean 0 and variance 1. A very persistent zone (BR-CS:
    # day-to-day 0.97) otherwise drifts for months and misses its long-run mean by 10 %+.
    slow = (slow - slow.mean()) / slow.std()
    fast = (fast - fast.mean()) / fast.std()
    a = np.sqrt(stats["daily_share"])
    anomaly = a * slow + np.sqrt(1 - a * a) * fast
    # Shift the anomaly so the year's mean equals the profile mean despite clipping and
    # any chance alignment of anomalies with high- or low-spread months (a few fixed-point
    # steps converge: the clipped mean is monotone in the shift).
    target = mu.mean()
    for _ in range(4):
        values = np.clip(mu + sd * anomaly, stats["min"], stats["max"])
        anomaly = anomaly - (values.mean() - target) / sd.mean()
    values = np.clip(mu + sd * anomaly, stats["min"], stats["max"])
    slow = slow + (anomaly - (a * slow + np.sqrt(1 - a * a) * fast)) / a
    return _Year(start, values, slow, fast, mu, sd)


class DefaultProvider(CarbonProvider):
    """Synthetic hourly carbon intensity for 16 zones on six continents, offline.

    Labelled synthetic everywhere it is shown (``IntensitySeries.synthetic``). History
    is available for any past hour, latest is the current hour, and forecasts are the
    model's conditional expectation (no future information).

    Args:
        basis: ``lifecycle`` (default) or ``direct`` emission factors.
        seed: Selects one of many equally plausible synthetic worlds.
        clock: Time source; "now" separates history from forecast.

    Example:
        >>> from datetime import datetime, UTC
        >>> from lowcarb import ManualClock
        >>> p = DefaultProvider(clock=ManualClock(datetime(2024, 6, 1, tzinfo=UTC)))
        >>> len(p.forecast(["DE"], horizon=timedelta(hours=24)))
        24
    """

    name = "default"

    @dataclass(frozen=True)
    class Options:
        """Config keys of the ``default`` provider."""

        basis: Literal["lifecycle", "direct"] = "lifecycle"
        seed: int = 0

    def __init__(
        self, *, basis: EmissionBasis = "lifecycle", seed: int = 0, clock: Clock | None = None
    ) -> None:
        super().__init__(clock=clock)
        if basis not in ("lifecycle", "direct"):
            raise InvalidInputError(f"basis={basis!r}: must be 'lifecycle' or 'direct'")
        self.basis: EmissionBasis = basis
        # numpy's generators take non-negative seeds only: refuse others here, not later.
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise InvalidInputError(f"seed={seed!r}: must be a non-negative integer")
        self.seed = seed

    @property
    def capabilities(self) -> Capabilities:
        """Average signal, hourly, forecasts up to 14 days, synthetic."""
        return Capabilities(
            signal="average",
            basis=self.basis,
            resolution=HOUR,
            forecast_horizon=timedelta(days=14),
            history=True,
            synthetic=True,
        )

    def served_zones(self) -> list[str]:
        """The 16 zones with embedded statistics."""
        return list(_profiles()["zones"])

    # -- the synthetic truth ------------------------------------------------------------

    def trace(self, zones: list[str], start: datetime, end: datetime) -> IntensitySeries:
        """The synthetic values for ``[start, end)``, past or future, for simulations.

        Unlike :meth:`history`, this ignores the clock: in a simulation the whole trace is
        the ground truth against which decisions made with forecasts are scored.
        """
        zones = self._check_zones(zones)
        return self._series(zones, floor_time(start, HOUR), end)

    def _series(self, zones: list[str], start: datetime, end: datetime) -> IntensitySeries:
        index = pd.date_range(start, end, freq="h", inclusive="left", name="start")
        return self._wrap(pd.DataFrame({z: self._values(z, index) for z in zones}, index=index))

    def _wrap(self, frame: pd.DataFrame, *notes: str, **meta: Any) -> IntensitySeries:
        # Zones whose source data were mostly Electricity Maps estimates (IN-WE and JP-TK
        # are 100 %) are flagged estimated throughout: their profile rests on a model.
        zones = _profiles()["zones"]
        estimated = pd.DataFrame(
            {z: np.full(len(frame), zones[z]["share_estimated"] >= 0.5) for z in frame.columns},
            index=frame.index,
        )
        return IntensitySeries(
            frame,
            HOUR,
            signal="average",
            basis=self.basis,
            provider=self.name,
            synthetic=True,
            estimated=estimated,
            notes=(_NOTE, *notes),
            **meta,
        )

    def _values(self, zone: str, index: pd.DatetimeIndex) -> np.ndarray:
        return self._gather(zone, index, "values")[0]

    def _gather(self, zone: str, index: pd.DatetimeIndex, *fields: str) -> list[np.ndarray]:
        """The generated years' ``fields`` at each hour of ``index`` (one array per field).

        Positions are computed once, in integer hours: every decision of a training reads
        this, so pandas arithmetic per field and year cost more than the values themselves.
        """
        out = [np.empty(len(index)) for _ in fields]
        if not len(index):
            return out
        hours = index.as_unit("ns").asi8 // _HOUR_NS
        # The years spanned, from the first and last hour: a calendar field of every
        # element (index.year, then np.unique) cost more than the lookup itself.
        first, last = (
            pd.Timestamp(int(h) * _HOUR_NS, tz=UTC).year for h in (hours.min(), hours.max())
        )
        for year in range(first, last + 1):
            block = _generate_year(zone, self.basis, year, self.seed)
            offset = block.start.value // _HOUR_NS
            mask = (hours >= offset) & (hours < offset + len(block.values))
            pos = hours[mask] - offset
            for column, field in zip(out, fields, strict=True):
                column[mask] = getattr(block, field)[pos]
        return out

    # -- provider interface -------------------------------------------------------------

    def _now_slot(self) -> datetime:
        return floor_time(self.clock.now(), HOUR)

    def _latest(self, zones: list[str]) -> IntensitySeries:
        now = self._now_slot()
        return self._series(zones, now, now + HOUR)

    def _history(self, zones: list[str], start: datetime, end: datetime) -> IntensitySeries:
        limit = self._now_slot() + HOUR
        first = ceil_time(start, HOUR)
        if first >= limit or end > limit:
            raise NoDataError(
                f"history ends with the current hour ({limit - HOUR:%Y-%m-%dT%H:%MZ}); "
                "ask forecast() for later hours",
                provider=self.name,
            )
        return self._series(zones, first, end)

    def _forecast(self, zones: list[str], start: datetime, horizon: timedelta) -> IntensitySeries:
        issued = self.clock.now()
        origin = floor_time(issued, HOUR)
        index = pd.date_range(start, start + horizon, freq="h", inclusive="left", name="start")
        lead = ((index - pd.Timestamp(origin)) // pd.Timedelta(HOUR)).to_numpy()
        columns = {}
        origin_index = pd.DatetimeIndex([pd.Timestamp(origin)])
        for zone in zones:
            stats = _profiles()["zones"][zone][self.basis]
            truth, mu, sd = self._gather(zone, index, "values", "mu", "sd")
            slow0, fast0 = (v[0] for v in self._gather(zone, origin_index, "slow", "fast"))
            s = stats["day_persistence"] ** (1 / 24)
            r = stats["hour_persistence"]
            a = np.sqrt(stats["daily_share"])
            k = np.maximum(lead, 0)
            expected = mu + sd * (a * s**k * slow0 + np.sqrt(1 - a * a) * r**k * fast0)
            expected = np.clip(expected, stats["min"], stats["max"])
            # Hours up to the current one are known; later ones are expectations.
            columns[zone] = np.where(lead <= 0, truth, expected)
        return self._wrap(
            pd.DataFrame(columns, index=index),
            "forecast = model expectation given the current hour",
            is_forecast=True,
            issued_at=issued,
        )

    def __repr__(self) -> str:
        return f"DefaultProvider(basis={self.basis!r}, seed={self.seed}, synthetic)"
