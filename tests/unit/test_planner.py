"""The planner's constraints hold for any instance (hypothesis), and its optimum is exact."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lowcarb._planner import PlanningProblem, solve_plan
from lowcarb.exceptions import InvalidInputError, LowcarbError


@st.composite
def problems(draw: st.DrawFn, pause: bool = False) -> PlanningProblem:
    groups = draw(st.integers(1, 5))
    rounds = draw(st.integers(1, 8))
    slots = rounds + (draw(st.integers(1, 4)) if pause else 0)
    size = np.array(draw(st.lists(st.integers(1, 4), min_size=groups, max_size=groups)))
    k = draw(st.integers(1, int(size.sum())))
    cost = np.array(
        draw(
            st.lists(
                st.floats(0, 1000, allow_nan=False),
                min_size=groups * slots,
                max_size=groups * slots,
            )
        )
    ).reshape(groups, slots)
    # Quotas around the fair share, so feasible instances are common but not guaranteed.
    share = rounds * k / size.sum()
    lo = np.full(groups, np.floor(share)) - draw(st.integers(0, 1))
    hi = np.full(groups, np.ceil(share)) + draw(st.integers(0, 1))
    return PlanningProblem(
        cost=cost,
        size=size,
        quota_lo=np.maximum(lo, 0),
        quota_hi=np.minimum(hi, rounds),
        per_round=k,
        rounds=rounds,
    )


def _check_constraints(problem: PlanningProblem, plan) -> None:
    counts = plan.counts
    assert counts.min() >= 0
    assert np.all(counts <= problem.size[:, None])
    assert plan.runs.sum() == problem.rounds
    per_slot = counts.sum(axis=0)
    assert np.all(per_slot[plan.runs] == problem.per_round)
    assert np.all(per_slot[~plan.runs] == 0)
    totals = counts.sum(axis=1)
    low = problem.size * problem.quota_lo
    high = problem.size * problem.quota_hi
    assert plan.shortfall == int(np.maximum(low - totals, 0).sum())
    assert plan.excess == int(np.maximum(totals - high, 0).sum())


@settings(max_examples=60, deadline=None)
@given(problems())
def test_every_slot_runs_k_clients_within_capacity(problem: PlanningProblem) -> None:
    plan = solve_plan(problem)
    _check_constraints(problem, plan)
    assert plan.runs.all()


@settings(max_examples=40, deadline=None)
@given(problems(pause=True))
def test_with_slack_exactly_the_remaining_rounds_run(problem: PlanningProblem) -> None:
    plan = solve_plan(problem)
    _check_constraints(problem, plan)


@settings(max_examples=40, deadline=None)
@given(problems())
def test_quotas_hold_whenever_a_fair_schedule_exists(problem: PlanningProblem) -> None:
    # A fair schedule exists when the totals fit: sum of minimums <= rounds*K <= sum of
    # maximums (each client may run at most once per slot, and quota_hi <= rounds).
    need = problem.rounds * problem.per_round
    low = float((problem.size * problem.quota_lo).sum())
    high = float((problem.size * problem.quota_hi).sum())
    plan = solve_plan(problem)
    if low <= need <= high:
        assert plan.shortfall == 0
        assert plan.excess == 0


def _brute_force(problem: PlanningProblem) -> float:
    """Cheapest fair schedule by enumeration (tiny instances only)."""
    _groups, slots = problem.cost.shape
    per_slot = [
        combo
        for combo in itertools.product(*(range(s + 1) for s in problem.size))
        if sum(combo) == problem.per_round
    ]
    best = np.inf
    for schedule in itertools.product(per_slot, repeat=slots):
        counts = np.array(schedule).T
        totals = counts.sum(axis=1)
        if np.all(totals >= problem.size * problem.quota_lo) and np.all(
            totals <= problem.size * problem.quota_hi
        ):
            best = min(best, float((counts * problem.cost).sum()))
    return best


@pytest.mark.parametrize("seed", range(8))
def test_optimum_matches_enumeration(seed: int) -> None:
    rng = np.random.default_rng(seed)
    problem = PlanningProblem(
        cost=rng.uniform(0, 100, (3, 3)).round(1),
        size=np.array([2, 1, 2]),
        quota_lo=np.array([1.0, 1.0, 1.0]),
        quota_hi=np.array([2.0, 2.0, 2.0]),
        per_round=2,
        rounds=3,
    )
    plan = solve_plan(problem)
    assert plan.shortfall == plan.excess == 0
    assert plan.cost == pytest.approx(_brute_force(problem))


def test_pause_waits_for_the_clean_slot() -> None:
    # One group, two slots, one round: the plan must skip the dirty first slot.
    plan = solve_plan(
        PlanningProblem(
            cost=np.array([[500.0, 100.0]]),
            size=np.array([3]),
            quota_lo=np.array([0.0]),
            quota_hi=np.array([1.0]),
            per_round=2,
            rounds=1,
        )
    )
    assert plan.runs.tolist() == [False, True]
    assert plan.next_run == 1
    assert plan.now.tolist() == [0]


def test_unavailable_clients_are_not_planned() -> None:
    plan = solve_plan(
        PlanningProblem(
            cost=np.array([[1.0, 1.0], [9.0, 9.0]]),
            size=np.array([1, 1]),
            quota_lo=np.array([0.0, 0.0]),
            quota_hi=np.array([2.0, 2.0]),
            per_round=1,
            rounds=2,
            available=np.array([[False, True], [True, True]]),
        )
    )
    assert plan.counts.tolist() == [[0, 1], [1, 0]]


def test_infeasible_quotas_are_missed_as_little_as_possible() -> None:
    # Two groups must each get 2 rounds, but only 3 client-rounds exist.
    plan = solve_plan(
        PlanningProblem(
            cost=np.array([[1.0, 1.0, 1.0], [5.0, 5.0, 5.0]]),
            size=np.array([1, 1]),
            quota_lo=np.array([2.0, 2.0]),
            quota_hi=np.array([2.0, 2.0]),
            per_round=1,
            rounds=3,
        )
    )
    assert (plan.shortfall, plan.excess) == (1, 0)
    assert plan.counts.sum(axis=1).tolist() == [2, 1]  # the cheaper group is served first


def test_too_few_available_clients_is_an_error() -> None:
    with pytest.raises(LowcarbError, match="available clients"):
        solve_plan(
            PlanningProblem(
                cost=np.ones((1, 2)),
                size=np.array([2]),
                quota_lo=np.zeros(1),
                quota_hi=np.full(1, 2.0),
                per_round=2,
                rounds=2,
                available=np.array([[True, False]]),
            )
        )


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"rounds": 0}, "rounds"),
        ({"rounds": 5}, "rounds"),
        ({"per_round": 0}, "per_round"),
        ({"size": np.array([1, 2])}, "size"),
        ({"cost": np.array([[np.nan, 1.0]])}, "finite"),
        ({"available": np.ones((2, 2), dtype=bool)}, "available"),
    ],
)
def test_bad_problems_are_refused(changes: dict, match: str) -> None:
    base = {
        "cost": np.ones((1, 2)),
        "size": np.array([2]),
        "quota_lo": np.zeros(1),
        "quota_hi": np.ones(1),
        "per_round": 1,
        "rounds": 2,
    }
    with pytest.raises(InvalidInputError, match=match):
        PlanningProblem(**{**base, **changes})


@settings(max_examples=25, deadline=None)
@given(problems(pause=True))
def test_a_decision_comes_in_bounded_time_even_when_branching_is_cut(problem) -> None:
    # With no time to branch, the planner falls back to the slots the relaxation leans
    # to most; every constraint still holds, and the gap to the bound is reported.
    import lowcarb._planner as planner

    saved = planner.MIP_TIME_LIMIT_S
    planner.MIP_TIME_LIMIT_S = 0.0
    try:
        plan = solve_plan(problem)
    finally:
        planner.MIP_TIME_LIMIT_S = saved
    _check_constraints(problem, plan)
    assert plan.gap >= -1e-9


def _lp_optimum(problem: PlanningProblem) -> tuple[float, float]:
    """(quota violation, cost) of the best plan without pauses, by a general LP solver."""
    from scipy.optimize import linprog

    groups, slots = problem.cost.shape
    size = problem.size.astype(float)
    low, high = size * problem.quota_lo, size * problem.quota_hi

    def solve(c: np.ndarray, violation: float | None) -> tuple[float, np.ndarray]:
        # x (G*T), shortfall (G), excess (G)
        n = groups * slots + 2 * groups
        a_eq = np.zeros((slots, n))
        for t in range(slots):
            a_eq[t, t : groups * slots : slots] = 1.0
        rows, bounds = [], []
        for g in range(groups):
            row = np.zeros(n)
            row[g * slots : (g + 1) * slots] = 1.0
            row[groups * slots + g] = 1.0
            row[groups * slots + groups + g] = -1.0
            rows.append(row)
            bounds.append((low[g], high[g]))
        a_ub = np.vstack([np.array(rows), -np.array(rows)])
        b_ub = np.concatenate([[b[1] for b in bounds], [-b[0] for b in bounds]])
        if violation is not None:
            cap_row = np.zeros(n)
            cap_row[groups * slots :] = 1.0
            a_ub = np.vstack([a_ub, cap_row])
            b_ub = np.append(b_ub, violation + 1e-7)
        var_bounds = [(0.0, float(s)) for s in np.repeat(size, slots)] + [(0, None)] * (2 * groups)
        res = linprog(
            c,
            A_ub=a_ub,
            b_ub=b_ub,
            A_eq=a_eq,
            b_eq=np.full(slots, float(problem.per_round)),
            bounds=var_bounds,
            method="highs",
        )
        assert res.status == 0
        return float(res.fun), res.x

    n_x = groups * slots
    # Violation first, then cost among the least violating plans.
    least, _ = solve(np.concatenate([np.zeros(n_x), np.ones(2 * groups)]), None)
    cost, _ = solve(np.concatenate([problem.cost.ravel(), np.zeros(2 * groups)]), least)
    return least, cost


@settings(max_examples=60, deadline=None)
@given(problems())
def test_the_flow_solution_is_as_good_as_the_lp_optimum(problem: PlanningProblem) -> None:
    # Without slack the plan is a min-cost flow; a general LP over the same transportation
    # problem (fewest quota misses first, then cost) finds nothing better.
    plan = solve_plan(problem)
    violation, cost = _lp_optimum(problem)
    assert plan.shortfall + plan.excess == pytest.approx(violation, abs=1e-6)
    # The flow optimises integer-rounded costs with tie-breaks of ~1e-4 of the range.
    span = float(np.ptp(problem.cost)) or 1.0
    assert plan.cost <= cost + 2e-4 * span * problem.rounds * problem.per_round + 1e-6
