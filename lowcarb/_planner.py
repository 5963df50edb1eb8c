"""The fair carbon planner: the rest of the training as a transportation problem.

Clients that share a zone, an energy per round, a utility, an availability pattern and a
remaining quota are interchangeable, so they form one *group*. The planner decides how
many clients of each group take part in each future slot::

    minimise    sum_{g,t} x[g,t] * cost[g,t]  +  M * (quota shortfall + quota excess)
    subject to  sum_g x[g,t] = K * y[t]                 every slot runs K clients or none
                sum_t y[t] = rounds                     the training's remaining rounds
                size[g] * lo[g] <= sum_t x[g,t] <= size[g] * hi[g]   (soft, penalty M)
                0 <= x[g,t] <= size[g] * available[g,t],  x integer,  y binary

When every slot must run (no deadline slack) ``y`` is fixed to 1 and the problem is a
bounded transportation problem: a min-cost flow from the groups to the slots, solved
exactly by OR-Tools' ``SimpleMinCostFlow`` (integral by construction). A general LP
solver took 3-7 times as long on the same instances (``docs/benchmarks.md``). With slack,
the binaries ``y`` let the plan pause whole rounds or start later (Pause-and-Resume,
Flexible Start), and HiGHS solves the model: its LP relaxation is nearly always integral
already; when a few ``y`` come out fractional, the planner fixes the others and branches
on those few (relax-and-fix), reporting the gap to the relaxation's bound (``Plan.gap``).
On three decisions captured from the seed scenario with 96 rounds within 120 h this took
300-480 ms down to 80-90 ms.

Quotas are soft with a penalty larger than any possible saving, so a plan always exists
(for example when new clients join late and cannot all reach their share); the penalty
makes the planner violate them as little as possible, and the result reports by how much.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from lowcarb.exceptions import InvalidInputError, LowcarbError

__all__ = ["MIP_TIME_LIMIT_S", "Plan", "PlanningProblem", "solve_plan"]

#: Longest time the deadline planner branches before taking its best schedule (s).
MIP_TIME_LIMIT_S = 2.0


@dataclass(frozen=True)
class PlanningProblem:
    """One planning instance over groups of interchangeable clients.

    Attributes:
        cost: ``(G, T)`` cost of one client of group g taking part in slot t (gCO2eq,
            possibly minus a utility value); slot 0 is the current round.
        size: ``(G,)`` clients per group.
        quota_lo: ``(G,)`` fewest further rounds each client of the group should take.
        quota_hi: ``(G,)`` most further rounds each client of the group may take.
        per_round: Clients per round (K).
        rounds: Rounds to place in the T slots (``rounds == T``: every slot runs).
        available: ``(G, T)`` whether the group's clients can run in slot t; None: always.
        priority: ``(G,)`` in [0, 1]: among (nearly) equal costs, groups with a higher
            priority run in the current slot first (the clients furthest behind their
            share); None: no preference.
    """

    cost: np.ndarray
    size: np.ndarray
    quota_lo: np.ndarray
    quota_hi: np.ndarray
    per_round: int
    rounds: int
    available: np.ndarray | None = None
    priority: np.ndarray | None = None

    def __post_init__(self) -> None:
        groups, slots = self.cost.shape
        if groups == 0 or slots == 0:
            raise InvalidInputError("a plan needs at least one group and one slot")
        for name in ("size", "quota_lo", "quota_hi"):
            if getattr(self, name).shape != (groups,):
                raise InvalidInputError(f"{name} must have one entry per group ({groups})")
        if not np.all(np.isfinite(self.cost)):
            raise InvalidInputError("plan costs must be finite")
        if not 1 <= self.rounds <= slots:
            raise InvalidInputError(f"rounds={self.rounds} must be between 1 and {slots} slots")
        if self.per_round < 1:
            raise InvalidInputError(f"per_round={self.per_round} must be at least 1")
        if self.available is not None and self.available.shape != (groups, slots):
            raise InvalidInputError("available must have shape (groups, slots)")
        if self.priority is not None and (
            self.priority.shape != (groups,)
            or not np.all((self.priority >= 0) & (self.priority <= 1))
        ):
            raise InvalidInputError("priority must have one entry in [0, 1] per group")


@dataclass(frozen=True)
class Plan:
    """The planner's answer.

    Attributes:
        counts: ``(G, T)`` clients of each group in each slot (integers).
        runs: ``(T,)`` whether a round runs in each slot.
        cost: Planned total cost (same unit as the problem's cost).
        shortfall: Client-rounds below the lower quotas the plan could not avoid.
        excess: Client-rounds above the upper quotas the plan could not avoid.
        gap: Relative distance of the plan's objective from the LP bound; 0 means proven
            optimal (always so without slack).
    """

    counts: np.ndarray
    runs: np.ndarray
    cost: float
    shortfall: int
    excess: int
    gap: float = 0.0

    @property
    def now(self) -> np.ndarray:
        """Clients of each group in the current slot."""
        return self.counts[:, 0]

    @property
    def next_run(self) -> int:
        """Index of the first slot that runs (0 = now)."""
        return int(np.argmax(self.runs))


def _silent_highs() -> Any:
    """A new ``highspy.Highs`` that writes nothing to stdout, not even HiGHS's banner.

    HiGHS prints a banner on file descriptor 1 at an instance's first call, unless
    ``output_flag`` was switched off before it (its documented way to silence it). The
    constructor of ``highspy.Highs`` makes that first call itself (``enableCallbacks``),
    and highspy 1.16 prints the banner there, where a later ``setOptionValue`` is too late;
    so the flag is switched off inside that call, on this instance only.
    """
    return _silent_highs_class()()


@functools.cache
def _silent_highs_class() -> type[Any]:
    import highspy

    class SilentHighs(highspy.Highs):
        def enableCallbacks(self) -> None:
            self.setOptionValue("output_flag", False)
            super().enableCallbacks()  # type: ignore[no-untyped-call]

    return SilentHighs


class _Model:
    """One HiGHS model solved with changing bounds and integrality.

    HiGHS is called through highspy directly: scipy's ``milp`` wrapper loops in Python
    over every column and costs as much as the solve itself on these problems.
    """

    def __init__(self, cost: np.ndarray, matrix: Any, row_lo: np.ndarray, row_hi: np.ndarray):
        self.cost, self.matrix, self.row_lo, self.row_hi = cost, matrix, row_lo, row_hi

    def solve(
        self, lower: np.ndarray, upper: np.ndarray, integrality: np.ndarray
    ) -> tuple[np.ndarray | None, float]:
        """(solution, objective), or (None, nan) when HiGHS finds no optimum."""
        import highspy

        inf = highspy.kHighsInf
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = int(self.cost.size), int(self.matrix.shape[0])
        lp.col_cost_ = self.cost
        lp.col_lower_ = lower
        lp.col_upper_ = np.where(np.isinf(upper), inf, upper)
        lp.row_lower_ = self.row_lo
        lp.row_upper_ = self.row_hi
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = self.matrix.indptr
        lp.a_matrix_.index_ = self.matrix.indices
        lp.a_matrix_.value_ = self.matrix.data
        highs = _silent_highs()
        highs.setOptionValue("output_flag", False)  # highspy < 1.8 has no hook for it
        if integrality.any():
            kinds = (highspy.HighsVarType.kContinuous, highspy.HighsVarType.kInteger)
            lp.integrality_ = [kinds[int(v)] for v in integrality]
            highs.setOptionValue("mip_rel_gap", 1e-9)
            # A decision must come in bounded time: past the limit the best schedule
            # found so far is taken (its distance from the bound goes to Plan.gap).
            highs.setOptionValue("time_limit", MIP_TIME_LIMIT_S)
        else:
            # Presolve finds little to remove in a transportation-like LP and costs ~20 %.
            highs.setOptionValue("presolve", "off")
        highs.passModel(lp)
        highs.run()
        status = highs.getModelStatus()
        if status != highspy.HighsModelStatus.kOptimal and not (
            status == highspy.HighsModelStatus.kTimeLimit
            and highs.getInfo().primal_solution_status == 2  # a feasible incumbent
        ):
            return None, float("nan")
        values = np.asarray(highs.getSolution().col_value, dtype=float)
        return values, float(highs.getInfo().objective_function_value)


def _scaled_costs(problem: PlanningProblem) -> np.ndarray:
    """Costs normalised to [0, 1], with the planner's tie-breaks added.

    Normalised, a quota penalty of a few units is larger than any achievable saving, so
    fairness is lexicographically first.
    """
    cost, slots = problem.cost, problem.cost.shape[1]
    low, span = float(cost.min()), float(np.ptp(cost))
    scaled = (cost - low) / span if span > 0 else np.zeros_like(cost)
    # Among (nearly) equal costs prefer earlier slots: the training ends sooner, and near
    # slots rest on the more certain part of the forecast. The nudge is at most 1e-4 of
    # the cost range, above the solvers' tolerances and below any real difference.
    scaled = scaled + 1e-4 * np.arange(slots) / slots
    if problem.priority is not None:
        # Ties in the current slot go to the groups furthest behind (without it a client
        # can be put off round after round while the plan keeps "its turn" for later).
        scaled[:, 0] -= 1e-5 * problem.priority
    return np.asarray(scaled)


#: Integer cost units per unit of normalised cost in the flow solver: resolves the
#: tie-break nudges (1e-4 of the range = 100 units, so one unit or more between slots)
#: while keeping the cost range, and so the solver's scaling phases, small (10**7 took
#: 50 % longer with 100 clients).
_FLOW_COST_UNITS = 10**6


def _solve_flow(problem: PlanningProblem, scaled: np.ndarray, cap: np.ndarray) -> Plan:
    """Every slot runs: the plan as a min-cost flow, source -> groups -> slots.

    Each slot node demands K; arc (g, t) carries up to ``cap[g, t]`` clients at the
    slot's cost. Quotas are first met exactly: each group node supplies its minimum
    ``size * lo`` itself and the source supplies the rest through arcs of capacity
    ``size * (hi - lo)``. Only when that has no solution are the quotas made soft.
    """
    from ortools.graph.python import min_cost_flow

    groups, slots = scaled.shape
    k = problem.per_round
    need = k * slots
    low = np.rint(problem.size * problem.quota_lo).astype(np.int64)
    high = np.maximum(np.rint(problem.size * problem.quota_hi).astype(np.int64), low)
    unit = np.rint(scaled * _FLOW_COST_UNITS).astype(np.int64)
    # Node 0 is the source, then the groups, then the slots.
    group_node, slot_node = 1 + np.arange(groups), 1 + groups + np.arange(slots)
    transport = (
        np.repeat(group_node, slots),
        np.tile(slot_node, groups),
        cap.ravel().astype(np.int64),
        unit.ravel(),
    )

    def solve(
        quota_arcs: tuple[np.ndarray, ...], supplies: np.ndarray
    ) -> tuple[Any, np.ndarray] | None:
        flow = min_cost_flow.SimpleMinCostFlow()
        tails, heads, caps, costs = (
            np.concatenate(parts) for parts in zip(quota_arcs, transport, strict=True)
        )
        flow.add_arcs_with_capacity_and_unit_cost(tails, heads, caps, costs)
        flow.set_nodes_supplies(np.arange(1 + groups + slots), supplies)
        if flow.solve() != flow.OPTIMAL:
            return None
        return flow, flow.flows(np.arange(flow.num_arcs()))

    slot_demand = np.full(slots, -k, dtype=np.int64)
    shortfall = excess = 0
    answer = None
    if low.sum() <= need <= high.sum():
        quota = (np.zeros(groups, np.int64), group_node, high - low, np.zeros(groups, np.int64))
        supplies = np.concatenate([[need - low.sum()], low, slot_demand])
        answer = solve(quota, supplies)
        arcs_before = groups
    if answer is None:
        # Soft quotas: a unit below the minimum or above the maximum costs more than any
        # path of transfers between groups can save (a simple path visits each slot at
        # most once, and each visit changes the normalised cost by at most ~1).
        penalty = (min(groups, slots) + 2) * 2 * _FLOW_COST_UNITS
        quota = (
            np.zeros(3 * groups, np.int64),
            np.tile(group_node, 3),
            np.concatenate([low, high - low, np.full(groups, need)]),
            np.repeat(np.array([-penalty, 0, penalty], dtype=np.int64), groups),
        )
        supplies = np.concatenate([[need], np.zeros(groups, np.int64), slot_demand])
        answer = solve(quota, supplies)
        if answer is None:  # pragma: no cover - soft quotas and runnable slots are feasible
            raise LowcarbError("the planner found no plan")
        flows = answer[1]
        shortfall = int((low - flows[:groups]).sum())
        excess = int(flows[2 * groups : 3 * groups].sum())
        arcs_before = 3 * groups
    counts = answer[1][arcs_before:].reshape(groups, slots).astype(np.int64)
    return Plan(
        counts=counts,
        runs=np.ones(slots, dtype=bool),
        cost=float((counts * problem.cost).sum()),
        shortfall=shortfall,
        excess=excess,
    )


def solve_plan(problem: PlanningProblem) -> Plan:
    """Solve the planning problem exactly: min-cost flow, or HiGHS when it may pause.

    Raises:
        LowcarbError: If some slot cannot be filled with K available clients.
    """
    cost, size, k = problem.cost, problem.size.astype(float), problem.per_round
    groups, slots = cost.shape
    cap = np.broadcast_to(size[:, None], (groups, slots)).astype(float)
    if problem.available is not None:
        cap = cap * problem.available
    runnable = cap.sum(axis=0) >= k
    if runnable.sum() < problem.rounds:
        raise LowcarbError(
            f"only {int(runnable.sum())} of {slots} slots have {k} available clients, "
            f"but {problem.rounds} rounds are needed"
        )
    scaled = _scaled_costs(problem)
    if problem.rounds == slots:
        return _solve_flow(problem, scaled, cap)
    return _solve_with_pauses(problem, scaled, cap, runnable)


def _solve_with_pauses(
    problem: PlanningProblem, scaled: np.ndarray, cap: np.ndarray, runnable: np.ndarray
) -> Plan:
    """Fewer rounds than slots: the plan with binaries ``y`` (which slots run), by HiGHS."""
    import scipy.sparse as sp

    size, k = problem.size.astype(float), problem.per_round
    groups, slots = scaled.shape
    # With normalised costs, a quota penalty of (client-rounds + 1) is larger than any
    # achievable saving.
    penalty = float(problem.rounds * k + 1)

    n_x = groups * slots
    n_y = slots
    # Variables: x (group-major), y (slots), shortfall (G), excess (G).
    c = np.concatenate([scaled.ravel(), np.zeros(n_y), np.full(2 * groups, penalty)])
    n = c.size
    x_cols = np.arange(n_x)
    g_of, t_of = np.divmod(x_cols, slots)
    y_cols = n_x + np.arange(n_y)
    short_cols = n_x + n_y + np.arange(groups)
    blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (rows, cols, values)
    row_lo: list[np.ndarray] = []
    row_hi: list[np.ndarray] = []

    # Slot rows: sum_g x[g,t] - K y[t] = 0.
    blocks.append((t_of, x_cols, np.ones(n_x)))
    blocks.append((np.arange(slots), y_cols, np.full(slots, -float(k))))
    row_lo.append(np.zeros(slots))
    row_hi.append(np.zeros(slots))
    # Group rows: size*lo <= sum_t x + shortfall - excess <= size*hi.
    group_rows = slots + np.arange(groups)
    blocks.append((slots + g_of, x_cols, np.ones(n_x)))
    blocks.append((group_rows, short_cols, np.ones(groups)))
    blocks.append((group_rows, short_cols + groups, -np.ones(groups)))
    row_lo.append(size * problem.quota_lo)
    row_hi.append(size * problem.quota_hi)
    n_rows = slots + groups
    # Exactly the remaining rounds run.
    blocks.append((np.full(slots, n_rows), y_cols, np.ones(slots)))
    row_lo.append(np.array([float(problem.rounds)]))
    row_hi.append(np.array([float(problem.rounds)]))
    n_rows += 1

    gap = 0.0
    rows, cols, vals = (np.concatenate(part) for part in zip(*blocks, strict=True))
    matrix = sp.csr_matrix((vals, (rows, cols)), shape=(n_rows, n))
    upper = np.concatenate([cap.ravel(), np.where(runnable, 1.0, 0.0), np.full(2 * groups, np.inf)])
    model = _Model(c, matrix.tocsc(), np.concatenate(row_lo), np.concatenate(row_hi))
    lower = np.zeros(n)
    integrality = np.zeros(n, dtype=bool)
    # The LP relaxation: with y fixed the matrix is totally unimodular, so x is integral
    # at a vertex, and in practice y is integral too; then the relaxation is the optimum.
    x, objective = model.solve(lower, upper, integrality)
    if x is not None:
        y = x[n_x : n_x + n_y]
        fractional = (y > 1e-6) & (y < 1 - 1e-6)
        if fractional.any():
            # Relax-and-fix: keep the slots the relaxation runs or skips outright and
            # branch only on the undecided few (exact on that restriction; the gap to the
            # relaxation's bound is reported in Plan.gap).
            lower[n_x : n_x + n_y] = np.where(y >= 1 - 1e-6, 1.0, 0.0)
            upper[n_x : n_x + n_y] = np.where(y <= 1e-6, 0.0, upper[n_x : n_x + n_y])
            # Only y branches: once y is integral, x is integral at a vertex (above).
            integrality[n_x : n_x + n_y] = fractional
            bound, relaxed = objective, y
            x, objective = model.solve(lower, upper, integrality)
            if x is None:
                # No schedule within the time limit: run the slots the relaxation leans
                # to most, and let the LP place the clients.
                order = np.argsort(-relaxed, kind="stable")[: problem.rounds]
                lower[n_x : n_x + n_y] = 0.0
                upper[n_x : n_x + n_y] = 0.0
                lower[n_x + order] = upper[n_x + order] = 1.0
                integrality[:] = False
                x, objective = model.solve(lower, upper, integrality)
            if x is not None:
                gap = (objective - bound) / max(abs(bound), 1e-12)
    if x is not None and np.abs(x - np.rint(x)).max() > 1e-6:
        # A solver may stop at a non-vertex optimum of a degenerate LP; ask for integers.
        integrality[: n_x + n_y] = True
        x, objective = model.solve(lower, upper, integrality)
    if x is None:  # pragma: no cover - the soft quotas make every instance feasible
        raise LowcarbError("the planner found no plan")
    solution = np.rint(x)
    counts = solution[:n_x].reshape(groups, slots).astype(np.int64)
    return Plan(
        counts=counts,
        runs=solution[n_x : n_x + n_y] > 0.5,
        cost=float((counts * problem.cost).sum()),
        shortfall=int(solution[n_x + n_y : n_x + n_y + groups].sum()),
        excess=int(solution[n_x + n_y + groups :].sum()),
        gap=gap,
    )
