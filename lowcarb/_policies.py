"""Selection policies: which candidates train this round, and whether it runs now.

A policy sees one round as a :class:`RoundView` (columnar numpy arrays, so a million
candidates cost array operations, not Python loops) and answers with a :class:`Choice`.
Policies know nothing of providers, clocks or frameworks; all are deterministic given
their ``rng``.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from lowcarb._planner import PlanningProblem, solve_plan
from lowcarb.exceptions import InvalidInputError

__all__ = [
    "POLICIES",
    "Choice",
    "GreedyPolicy",
    "Lowcarb2022Policy",
    "LowcarbPolicy",
    "Policy",
    "RandomPolicy",
    "RoundView",
    "fair_share_bounds",
    "get_policy",
]


@dataclass(frozen=True)
class RoundView:
    """Everything a policy may use to choose one round's clients.

    Attributes:
        zone: ``(N,)`` row of each candidate in ``intensity``.
        energy_kwh: ``(N,)`` expected energy of each candidate's round (kWh).
        utility: ``(N,)`` value of each candidate's data (non-negative).
        participation: ``(N,)`` rounds each candidate has already taken.
        intensity: ``(Z, T)`` expected intensity (gCO2eq/kWh) of each zone in each future
            slot; slot 0 is the current one.
        per_round: Clients wanted (K).
        rounds_total: Rounds of the whole training.
        rounds_done: Rounds already run.
        population: Clients taking part in the training (for the fair share).
        available: ``(N, T)`` whether each candidate can train in each slot; None: always.
        utility_price: Grams CO2eq one unit of utility is worth (0: ignore utility).
        deadline_slots: Slots left until the training's deadline when that leaves slack
            (more slots than rounds left); None when every slot must run.
    """

    zone: np.ndarray
    energy_kwh: np.ndarray
    utility: np.ndarray
    participation: np.ndarray
    intensity: np.ndarray
    per_round: int
    rounds_total: int
    rounds_done: int
    population: int
    available: np.ndarray | None = None
    utility_price: float = 0.0
    deadline_slots: int | None = None

    @property
    def size(self) -> int:
        """Number of candidates."""
        return int(self.zone.shape[0])

    @property
    def slots(self) -> int:
        """Slots in the planning horizon."""
        return int(self.intensity.shape[1])

    @property
    def rounds_left(self) -> int:
        """Rounds still to run, this one included (at least 1)."""
        return max(1, self.rounds_total - self.rounds_done)

    def eligible(self) -> np.ndarray:
        """Indices of the candidates that can train in the current slot."""
        if self.available is None:
            return np.arange(self.size)
        return np.flatnonzero(self.available[:, 0])

    def emissions_now(self) -> np.ndarray:
        """Expected gCO2eq of each candidate training in the current slot."""
        return np.asarray(self.energy_kwh * self.intensity[self.zone, 0])


@dataclass(frozen=True)
class Choice:
    """A policy's answer.

    Attributes:
        selected: Indices of the candidates that train now (empty when pausing).
        run_now: False when the round should wait.
        next_slot: When pausing, the slot index at which the next round runs.
        reason: One sentence a person understands.
        next_turn: Per candidate, the slot of its next planned turn after this round
            (-1: selected now, or no turn within the plan); None when the policy does
            not plan ahead.
    """

    selected: np.ndarray
    run_now: bool = True
    next_slot: int = 0
    reason: str = ""
    next_turn: np.ndarray | None = None


def fair_share_bounds(
    rounds_total: int, per_round: int, population: int, fairness: float
) -> tuple[int, int]:
    """Fewest and most rounds one client should take over the whole training.

    At fairness 1 these are ``floor`` and ``ceil`` of the fair share
    ``rounds_total * per_round / population`` (every client within one round of it); at
    0 they are 0 and ``rounds_total`` (no fairness: greedy); in between the range widens
    linearly.
    """
    if not 0.0 <= fairness <= 1.0:
        raise InvalidInputError(f"fairness must be between 0 and 1, got {fairness!r}")
    share = rounds_total * per_round / max(population, 1)
    low = math.floor(fairness * share + 1e-9)
    high = math.ceil(share - 1e-9)
    high += math.ceil((1.0 - fairness) * (rounds_total - high) - 1e-9)
    return low, min(max(high, low), rounds_total)


class Policy(abc.ABC):
    """Chooses the clients of one round."""

    #: Registry name.
    name: ClassVar[str] = ""

    @abc.abstractmethod
    def choose(self, view: RoundView, rng: np.random.Generator) -> Choice:
        """Choose this round's clients.

        Args:
            view: The candidates and the signal.
            rng: The run's random generator (ties, sampling).
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _lowest(values: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of the k smallest values, ties broken at random."""
    order = rng.permutation(values.shape[0])
    if k < values.shape[0] // 8:
        # Partial selection keeps a million candidates cheap.
        part = np.argpartition(values[order], k - 1)[:k]
        part = part[np.argsort(values[order][part], kind="stable")]
        return order[part]
    return order[np.argsort(values[order], kind="stable")[:k]]


class RandomPolicy(Policy):
    """Uniform sampling without replacement: what every framework does."""

    name = "random"

    def choose(self, view: RoundView, rng: np.random.Generator) -> Choice:
        """Draw K candidates uniformly."""
        # An int population draws the same indices without allocating N of them.
        pool = view.size if view.available is None else view.eligible()
        chosen = rng.choice(pool, size=view.per_round, replace=False)
        return Choice(np.sort(chosen), reason="uniform random sample")


class GreedyPolicy(Policy):
    """The K candidates with the lowest expected emissions now; no fairness."""

    name = "greedy"

    def choose(self, view: RoundView, rng: np.random.Generator) -> Choice:
        """Take the K cleanest candidates of the current slot."""
        emissions = view.emissions_now()
        if view.available is not None:
            emissions = np.where(view.available[:, 0], emissions, np.inf)
        chosen = _lowest(emissions, view.per_round, rng)
        return Choice(np.sort(chosen), reason="the lowest expected emissions now")


class Lowcarb2022Policy(Policy):
    """The CarbonHack22 lowcarb heuristic, reimplemented from its description.

    Clients above the 80th percentile of participation are blocked; clients at or below
    half the maximum participation must run now (cleanest first); the others get a
    look-ahead window that grows with their participation and are deferred when the
    forecast in that window drops below now. Intensities are compared as in the original
    (energy is not weighed).

    Args:
        lookahead_slots: The original's ``max_forecast_duration`` in forecast steps
            (their backtest used 25 steps of 15 min, about 6 h).
    """

    name = "lowcarb-2022"
    _HUGE = 1e9

    def __init__(self, lookahead_slots: int = 6) -> None:
        if lookahead_slots < 0:
            raise InvalidInputError("lookahead_slots must be non-negative")
        self.lookahead_slots = lookahead_slots

    def choose(self, view: RoundView, rng: np.random.Generator) -> Choice:
        """Score every candidate as the original did and take the top K."""
        p = view.participation.astype(float)
        forecast = view.intensity[view.zone]  # (N, T)
        now = forecast[:, 0]
        horizon = min(self.lookahead_slots, view.slots - 1)
        p_max = p.max() if p.size else 0.0
        if p_max > 0:
            window = np.rint(np.maximum(0.0, 2.0 * p / p_max - 1.0) * horizon).astype(int)
        else:
            window = np.full(view.size, horizon)
        if horizon > 0:
            # best[i, w-1] = min over the next w steps of (forecast - now).
            ahead = np.minimum.accumulate(forecast[:, 1 : horizon + 1], axis=1) - now[:, None]
            best = ahead[np.arange(view.size), np.maximum(window, 1) - 1]
        else:
            best = np.zeros(view.size)
        score = np.where(window == 0, self._HUGE - now, best)
        score[p > np.percentile(p, 80)] = -self._HUGE
        if view.available is not None:
            score[~view.available[:, 0]] = -np.inf
        chosen = _lowest(-score, view.per_round, rng)
        return Choice(np.sort(chosen), reason="lowcarb-2022 score: forced, then look-ahead")


class LowcarbPolicy(Policy):
    """The fair receding-horizon planner (the default).

    Every round it plans the remaining training over (zone x slot) with per-client
    participation quotas, solves it exactly, and executes only the current slot.

    Args:
        fairness: 1.0 keeps every client within one round of its fair share; lower values
            widen the allowed range, down to greedy at 0.
    """

    name = "lowcarb"

    def __init__(self, fairness: float = 1.0) -> None:
        fair_share_bounds(1, 1, 1, fairness)  # validates
        self.fairness = float(fairness)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(fairness={self.fairness})"

    def choose(self, view: RoundView, rng: np.random.Generator) -> Choice:
        """Plan the rest of the training and take the current slot's part of it."""
        k, left, slots = view.per_round, view.rounds_left, view.slots
        low, high = fair_share_bounds(view.rounds_total, k, view.population, self.fairness)
        lo = np.maximum(low - view.participation, 0)
        hi = np.maximum(high - view.participation, 0)
        rounds = min(left, slots)
        if view.deadline_slots is not None and view.deadline_slots > left:
            # Slack: the window holds its pro-rata share of the remaining rounds.
            rounds = min(slots, left, math.ceil(left * slots / view.deadline_slots))
        if rounds < left:
            # Only part of the remaining training is planned now: pro-rate the quotas.
            lo = np.floor(lo * rounds / left)
            hi = np.ceil(hi * rounds / left)

        available = view.available
        group, first = _groups(view, lo, hi, available)
        # Members of a group share their cost row, so only one row per group is computed:
        # the full (N, T) matrix would take 1.5 GB at a million clients and 96 slots.
        cost = view.energy_kwh[first, None] * view.intensity[view.zone[first]]
        if view.utility_price:
            cost = cost - view.utility_price * view.utility[first, None]
        plan = solve_plan(
            PlanningProblem(
                cost=cost,
                size=np.bincount(group, minlength=first.size),
                quota_lo=lo[first],
                quota_hi=hi[first],
                per_round=k,
                rounds=rounds,
                available=None if available is None else available[first],
                priority=_behind(view.participation[first]),
            )
        )
        if not plan.runs[0]:
            return Choice(
                np.empty(0, dtype=np.int64),
                run_now=False,
                next_slot=plan.next_run,
                reason="paused: cleaner slots come before the deadline",
            )
        chosen, queue = _take_from_groups(group, plan.now, rng)
        reason = "planned: this round's share of the cheapest fair schedule"
        if plan.shortfall or plan.excess:
            reason += f" (quotas missed by {plan.shortfall + plan.excess} client-rounds)"
        return Choice(
            np.sort(chosen), reason=reason, next_turn=_next_turns(group, plan.counts, queue)
        )


def _behind(participation: np.ndarray) -> np.ndarray:
    """How far each group is behind the most-served one, scaled to [0, 1]."""
    gap = participation.max() - participation
    top = gap.max()
    return gap / top if top > 0 else np.zeros(participation.shape)


def _groups(
    view: RoundView, lo: np.ndarray, hi: np.ndarray, available: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Group interchangeable candidates: (group of each candidate, first member of each)."""
    columns = [view.zone, view.energy_kwh, lo, hi]
    if view.utility_price:
        columns.append(view.utility)
    if available is not None:
        columns.append(np.unique(np.packbits(available, axis=1), axis=0, return_inverse=True)[1])
    code = np.zeros(view.size, dtype=np.int64)
    for column in columns:
        # Hash factorisation is O(N); codes combine in mixed radix and are re-compacted.
        labels, uniques = pd.factorize(np.asarray(column).ravel())
        code, _ = pd.factorize(code * len(uniques) + labels)
    # factorize numbers the codes in order of first appearance, so they are already the
    # groups (in np.unique's order), and a group's first member is where the running
    # maximum of the codes first reaches it: O(N), no sort.
    top = np.maximum.accumulate(code)
    first = np.flatnonzero(np.diff(top, prepend=-1) > 0)
    return code.astype(np.int64), first


def _next_turns(group: np.ndarray, counts: np.ndarray, queue: np.ndarray) -> np.ndarray:
    """Slot of each waiting candidate's next turn in the plan (-1: none, or selected now).

    The plan counts clients per group and slot, not which member goes when; members of a
    group are interchangeable, so a group's waiting members take its later turns in their
    ``queue`` order (their place among the group's waiting members; negative: selected
    now), one turn each: any such assignment is a reading of the same plan.
    """
    turns = np.full(group.size, -1, dtype=np.int64)
    later = counts[:, 1:].astype(np.int64)
    if later.size == 0 or not later.any():
        return turns
    # Every group's later turns as one flat list of slots (at most K per slot), so a
    # member's turn is one lookup: its group's offset plus its place in the queue.
    per_group = later.sum(axis=1)
    slots = np.repeat(np.tile(np.arange(1, counts.shape[1]), counts.shape[0]), later.ravel())
    offset = np.concatenate([[0], np.cumsum(per_group)[:-1]])
    # Members queued beyond their group's later turns wait past the plan's horizon.
    who = np.flatnonzero((queue >= 0) & (queue < per_group[group]))
    turns[who] = slots[offset[group[who]] + queue[who]]
    return turns


def _take_from_groups(
    group: np.ndarray, take: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Pick ``take[g]`` random members of each group g.

    Returns:
        The picked candidates, and each candidate's place in the queue of its group's
        members left waiting, in the same random order (negative for the picked).
    """
    order = rng.permutation(group.size)
    keys = group[order]
    if take.size <= 1 << 16:
        # numpy's stable sort of 16-bit keys is a radix sort: O(N) instead of a merge sort
        # (10x faster at a million clients); a stable order is unique, so the result is too.
        keys = keys.astype(np.uint16)
    order = order[np.argsort(keys, kind="stable")]
    ordered_group = group[order]
    starts = np.concatenate([[0], np.cumsum(np.bincount(group, minlength=take.size))[:-1]])
    rank = np.arange(order.size) - starts[ordered_group] - take[ordered_group]
    queue = np.empty(group.size, dtype=np.int64)
    queue[order] = rank
    return np.asarray(order[rank < 0]), queue


POLICIES: dict[str, type[Policy]] = {
    p.name: p for p in (RandomPolicy, GreedyPolicy, Lowcarb2022Policy, LowcarbPolicy)
}


def get_policy(name: str, *, fairness: float = 1.0) -> Policy:
    """Build a policy by name (``oracle`` is :class:`LowcarbPolicy`; the engine feeds it truth).

    Raises:
        InvalidInputError: For an unknown name.
    """
    key = name.strip().lower()
    if key in ("lowcarb", "oracle"):
        return LowcarbPolicy(fairness=fairness)
    if key not in POLICIES:
        known = ", ".join([*POLICIES, "oracle"])
        raise InvalidInputError(f"unknown policy {name!r}; known: {known}")
    return POLICIES[key]()
