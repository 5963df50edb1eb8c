"""Measured skill of a provider's own forecast against the history forecaster, and their blend.

Where a provider forecasts, both forecasts of each zone are kept until the intervals they
forecast have been observed; then their errors (of ``log(1 + x)``, so relative) are added
to the zone's account for that lead bucket. The blend gives the provider's forecast the
weight that minimises the variance of the combined error, from the two error variances
and their covariance::

    w = (var_h - cov) / (var_h + var_p - 2 cov),  clipped to [0, 1]

With fewer than ``min_pairs`` scored pairs in a bucket the provider's forecast is taken
alone (weight 1): it usually knows the weather, history does not, and nothing says
otherwise yet. Only the last ``memory`` of issue times count, so the weights follow a
provider whose quality changes.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

__all__ = ["LEAD_BUCKETS", "ForecastSkill"]

#: Lead buckets (upper bounds, exclusive): the weights are measured and applied per bucket.
LEAD_BUCKETS: tuple[tuple[str, timedelta], ...] = (
    ("0-6 h", timedelta(hours=6)),
    ("6-24 h", timedelta(hours=24)),
    ("24-72 h", timedelta(hours=72)),
    ("72 h+", timedelta.max),
)
_DAY_NS = 86_400 * 10**9


@dataclass
class _Record:
    """Two forecasts of one zone issued together, scored as their targets are observed."""

    issued_ns: int
    targets_ns: np.ndarray  # interval starts
    own: np.ndarray  # log1p of the provider's forecast
    history: np.ndarray  # log1p of the history forecaster's
    scored: int = 0  # targets before this position have been scored


@dataclass
class _Account:
    """Error sums of one zone and lead bucket, per issue day (old days drop out)."""

    days: deque[tuple[int, np.ndarray]] = field(default_factory=deque)

    def add(self, day: int, own_error: np.ndarray, history_error: np.ndarray) -> None:
        sums = np.array(
            [
                own_error.size,
                float(own_error @ own_error),
                float(history_error @ history_error),
                float(own_error @ history_error),
            ]
        )
        if self.days and self.days[-1][0] == day:
            self.days[-1][1][:] += sums
        else:
            self.days.append((day, sums))

    def forget(self, first_day: int) -> None:
        while self.days and self.days[0][0] < first_day:
            self.days.popleft()

    def totals(self) -> np.ndarray:
        return np.sum([s for _, s in self.days], axis=0) if self.days else np.zeros(4)


def _bucket_of(leads_ns: np.ndarray) -> np.ndarray:
    bounds = [b.total_seconds() * 1e9 for _, b in LEAD_BUCKETS[:-1]]
    return np.searchsorted(np.asarray(bounds), leads_ns, side="right")


class ForecastSkill:
    """The two forecasts' errors by zone and lead bucket, and the blend they imply.

    Not thread-safe: its owner (:class:`~lowcarb.SignalSource`) holds a lock.

    Args:
        memory: How far back issue times count.
        min_pairs: Scored target intervals a bucket needs before its weight is measured.
        score_every: Scoring runs at most this often: every kept forecast gains a few
            observed hours at once, instead of one per round (200 zones re-planned hourly
            would score 14,000 forecasts a round).
    """

    def __init__(
        self,
        *,
        memory: timedelta = timedelta(days=14),
        min_pairs: int = 48,
        score_every: timedelta = timedelta(hours=6),
    ) -> None:
        self.memory = memory
        self.min_pairs = min_pairs
        self.score_every = score_every
        self._records: dict[str, list[_Record]] = {}
        self._accounts: dict[tuple[str, int], _Account] = {}
        self._scored_at: datetime | None = None

    def record(self, issued_at: datetime, own: pd.DataFrame, history: pd.DataFrame) -> None:
        """Keep both forecasts (gCO2eq/kWh, same index and zones) until they can be scored.

        Targets the provider did not forecast (NaN) are left out.
        """
        issued = pd.Timestamp(issued_at).as_unit("ns").value
        stamps = pd.DatetimeIndex(own.index).as_unit("ns").asi8
        for zone in own.columns:
            mine = own[zone].to_numpy(dtype=float)
            keep = ~np.isnan(mine)
            if not keep.any():
                continue
            self._records.setdefault(str(zone), []).append(
                _Record(
                    issued,
                    stamps[keep],
                    np.log1p(np.clip(mine[keep], 0, None)),
                    np.log1p(np.clip(history[zone].to_numpy(dtype=float)[keep], 0, None)),
                )
            )

    def score(self, observed: pd.DataFrame, now: datetime) -> None:
        """Score every kept target interval that ``observed`` (gCO2eq/kWh) has a value for.

        Args:
            observed: Measured values, one column per zone, UTC index of interval starts.
            now: The current time: records older than ``memory`` are dropped.
        """
        if self._scored_at is not None and now - self._scored_at < self.score_every:
            return
        self._scored_at = now
        horizon = pd.Timestamp(now).as_unit("ns").value
        first_day = (horizon - int(self.memory.total_seconds() * 1e9)) // _DAY_NS
        stamps = pd.DatetimeIndex(observed.index).as_unit("ns").asi8
        for zone, records in self._records.items():
            if zone not in observed.columns or not len(stamps):
                continue
            values = observed[zone].to_numpy(dtype=float)
            for record in records:
                at = np.searchsorted(stamps, record.targets_ns[record.scored :])
                at = np.minimum(at, len(stamps) - 1)
                hit = stamps[at] == record.targets_ns[record.scored :]
                seen = values[at]
                ok = hit & ~np.isnan(seen)
                if not ok.any():
                    continue
                positions = record.scored + np.flatnonzero(ok)
                truth = np.log1p(np.clip(seen[ok], 0, None))
                buckets = _bucket_of(record.targets_ns[positions] - record.issued_ns)
                day = record.issued_ns // _DAY_NS
                for bucket in np.unique(buckets):
                    sel = buckets == bucket
                    account = self._accounts.setdefault((zone, int(bucket)), _Account())
                    account.add(
                        day,
                        record.own[positions[sel]] - truth[sel],
                        record.history[positions[sel]] - truth[sel],
                    )
                # Targets are observed in order: resume after the last one scored.
                record.scored = int(positions[-1]) + 1
            records[:] = [
                r
                for r in records
                if r.scored < len(r.targets_ns) and r.issued_ns // _DAY_NS >= first_day
            ]
        for account in self._accounts.values():
            account.forget(first_day)

    def weights(self, zone: str, issued_at: datetime, targets: pd.DatetimeIndex) -> np.ndarray:
        """The provider forecast's weight in [0, 1] at each target (1 where unmeasured)."""
        leads = (
            pd.DatetimeIndex(targets).as_unit("ns").asi8
            - pd.Timestamp(issued_at).as_unit("ns").value
        )
        table = self.table(zone)
        by_bucket = np.array([table.get(label, 1.0) for label, _ in LEAD_BUCKETS])
        return np.asarray(by_bucket[_bucket_of(leads)])

    def table(self, zone: str) -> dict[str, float]:
        """The measured weight of each lead bucket of ``zone`` (buckets with enough pairs)."""
        out: dict[str, float] = {}
        for index, (label, _) in enumerate(LEAD_BUCKETS):
            account = self._accounts.get((zone, index))
            if account is None:
                continue
            n, own, history, cross = account.totals()
            if n < self.min_pairs:
                continue
            spread = own + history - 2 * cross
            weight = (history - cross) / spread if spread > 0 else 0.5
            out[label] = float(min(1.0, max(0.0, weight))) if math.isfinite(weight) else 1.0
        return out
