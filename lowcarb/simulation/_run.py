"""``lowcarb simulate``: the policies on a carbon trace, with real federated learning.

Each policy drives its own :class:`SelectionEngine` on a simulated clock over the same
trace, the same clients and the same initial model. Decisions see only what a real run
would (history before the decision time, or the chosen forecast); scores always use the
true intensities.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lowcarb import (
    DEFAULT_DEVICE_POWER_W,
    DEFAULT_ROUND_TIME,
    CarbonProvider,
    Client,
    EnergyModel,
    EngineSpec,
    Forecaster,
    InvalidInputError,
    Ledger,
    ManualClock,
    NoDataError,
    NoisyForecaster,
    OracleForecaster,
    SelectionEngine,
    UnknownZoneError,
    ensure_utc,
    get_forecaster,
    get_policy,
    get_provider_class,
    jain_index,
    slot_means,
)
from lowcarb._time import format_duration

__all__ = [
    "DEFAULT_POLICIES",
    "DEFAULT_ZONES",
    "PolicyResult",
    "Scenario",
    "SimulationResult",
    "simulate",
]

#: The seed scenario's zones: 14 measured grids on six continents.
DEFAULT_ZONES = (
    "DE",
    "GB",
    "US-CAL-CISO",
    "US-TEX-ERCO",
    "US-NY-NYIS",
    "US-MIDA-PJM",
    "CA-ON",
    "BR-CS",
    "CL-SEN",
    "ZA",
    "KR",
    "SG",
    "AU-NSW",
    "AU-VIC",
)
DEFAULT_POLICIES = ("random", "lowcarb-2022", "greedy", "lowcarb", "oracle")
#: Device classes for ``--energy mixed`` (W, share), after FedZero's hardware mix
#: (T4-, V100- and A100-class machines).
MIXED_POWER_W = ((70.0, 0.39), (300.0, 0.30), (700.0, 0.31))
#: A round's length by default: the energy model's (one hour).
DEFAULT_ROUND_MINUTES = int(DEFAULT_ROUND_TIME / timedelta(minutes=1))


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """Everything that defines a simulation (the JSON ``scenario`` block).

    Attributes:
        zones: Zone ids; clients are spread over them.
        start: Start of the first round (UTC).
        hours: Length of the window when there is no deadline (h).
        clients: Number of clients.
        per_round: Clients per round (K).
        round_minutes: Length of a round and of a planning slot (min); a client trains
            through its round (default: the energy model's hour).
        rounds: Rounds to run (default: one per slot of ``hours``).
        deadline_hours: When set, the rounds must end within this many hours; planning
            policies may pause in the slack (h).
        assignment: ``round-robin`` (client i in zone i mod Z) or ``random``.
        energy: ``uniform`` (one device class) or ``mixed`` (three classes).
        policies: Policy names to compare.
        forecast: ``best``, ``persistence``, ``weekly``, ``oracle`` or ``noisy:SIGMA``.
        fairness: The fairness knob of the planning policies (0..1).
        learning: ``digits`` (real FedAvg on scikit-learn's digits) or ``none``.
        seed: Seeds everything random.
        data: A data file or folder (None: the embedded default provider).
        provider_seed: Seed of the synthetic default provider.
        signal: What ``data`` holds, and so what the policies plan on: ``average`` or
            ``marginal`` intensities (the default provider is average).
        score_data: Judge emissions on this data instead (same zones), e.g. plan on the
            average signal and judge on the marginal one; None: ``data``. The
            ``oracle`` policy then plans on it: the bound of what can be saved as judged.
        score_signal: What ``score_data`` holds; None: the same as ``signal``.
    """

    zones: tuple[str, ...] = DEFAULT_ZONES
    start: datetime = datetime(2025, 3, 3, tzinfo=UTC)
    hours: int = 96
    clients: int = 100
    per_round: int = 10
    round_minutes: int = DEFAULT_ROUND_MINUTES
    rounds: int | None = None
    deadline_hours: float | None = None
    assignment: str = "round-robin"
    energy: str = "uniform"
    policies: tuple[str, ...] = DEFAULT_POLICIES
    forecast: str = "best"
    fairness: float = 1.0
    learning: str = "digits"
    seed: int = 0
    data: Path | None = None
    provider_seed: int = 0
    signal: str = "average"
    score_data: Path | None = None
    score_signal: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", ensure_utc(self.start, "start"))
        if not self.zones:
            raise InvalidInputError("--zones: give at least one zone")
        if len(set(self.zones)) != len(self.zones):
            raise InvalidInputError("--zones: a zone is listed twice")
        for name in ("hours", "clients", "per_round", "round_minutes"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"--{name.replace('_', '-')} must be a positive integer")
        if self.per_round > self.clients:
            raise InvalidInputError(
                f"--per-round {self.per_round} is more than the {self.clients} clients"
            )
        if self.rounds is not None and self.rounds < 1:
            raise InvalidInputError("--rounds must be a positive integer")
        window = self.window_hours
        if self.deadline_hours is not None and not (
            math.isfinite(self.deadline_hours) and self.deadline_hours > 0
        ):
            raise InvalidInputError("--deadline-hours must be a positive number")
        needed = self.total_rounds * self.round_minutes / 60
        if needed > window + 1e-9:
            raise InvalidInputError(
                f"{self.total_rounds} rounds of {self.round_minutes} min need {needed:g} h, "
                f"more than the {window:g} h available; give more --hours or "
                "--deadline-hours, or fewer --rounds"
            )
        if self.assignment not in ("round-robin", "random"):
            raise InvalidInputError("--assignment must be round-robin or random")
        if self.energy not in ("uniform", "mixed"):
            raise InvalidInputError("--energy must be uniform or mixed")
        if self.learning not in ("digits", "none"):
            raise InvalidInputError("--learning must be digits or none")
        if not 0.0 <= self.fairness <= 1.0:
            raise InvalidInputError("--fairness must be between 0 and 1")
        if not self.policies:
            raise InvalidInputError("--policies: give at least one policy")
        for option, kind in (("--signal", self.signal), ("--score-signal", self.score_signal)):
            if kind is not None and kind not in ("average", "marginal"):
                raise InvalidInputError(f"{option} must be average or marginal")
        if self.data is None and self.signal != "average":
            raise InvalidInputError("--signal marginal needs --data (the default is average)")
        if self.score_data is None and self.score_signal not in (None, self.signal):
            raise InvalidInputError("--score-signal needs --score-data")

        for name in self.policies:
            get_policy(name)
        _parse_forecast(self.forecast)

    @property
    def slot(self) -> timedelta:
        """Length of a round (one planning slot)."""
        return timedelta(minutes=self.round_minutes)

    @property
    def window_hours(self) -> float:
        """Hours the rounds may span: the deadline when set, else ``hours``."""
        return float(self.deadline_hours) if self.deadline_hours is not None else float(self.hours)

    @property
    def total_rounds(self) -> int:
        """Rounds to run."""
        if self.rounds is not None:
            return self.rounds
        return int(self.hours * 60 // self.round_minutes)

    @property
    def judged_signal(self) -> str:
        """The kind of intensity emissions are judged on."""
        return self.score_signal or self.signal

    @property
    def end(self) -> datetime:
        """End of the window."""
        return self.start + timedelta(hours=self.window_hours)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form with every input."""
        out = asdict(self)
        out["start"] = self.start.isoformat()
        out["zones"] = list(self.zones)
        out["policies"] = list(self.policies)
        out["data"] = None if self.data is None else str(self.data)
        out["score_data"] = None if self.score_data is None else str(self.score_data)
        out["score_signal"] = self.judged_signal
        out["rounds"] = self.total_rounds
        return out


def _parse_forecast(text: str) -> tuple[str, float]:
    name, _, arg = text.partition(":")
    if name == "noisy":
        try:
            sigma = float(arg)
        except ValueError:
            raise InvalidInputError(
                f"--forecast {text!r}: write noisy:SIGMA, e.g. noisy:0.1"
            ) from None
        if not math.isfinite(sigma) or sigma < 0:
            raise InvalidInputError("--forecast noisy:SIGMA needs SIGMA >= 0")
        return name, sigma
    if arg or name not in ("best", "oracle", "persistence", "weekly", "profile"):
        raise InvalidInputError(
            f"--forecast {text!r}: use best, persistence, weekly, oracle or noisy:SIGMA"
        )
    return name, 0.0


@dataclass(frozen=True)
class PolicyResult:
    """How one policy did.

    Attributes:
        name: Policy name.
        emissions_kg: Total kg CO2eq (true intensities).
        energy_kwh: Total energy (kWh).
        mean_intensity: Energy-weighted mean gCO2eq/kWh of the client-rounds that ran.
        saving_vs_random: ``1 - emissions / random baseline`` (see ``SimulationResult``).
        participation: min, max, Jain's index and clients never selected.
        accuracy: Final test accuracy (None without learning).
        rounds: Rounds run.
        duration_hours: From the start to the end of the last round (h).
        decision_ms: p50 and p99 of the engine's decision time (ms).
        selections: Client indices per round (for plots).
        round_starts: Start of each round.
        cumulative_kg: Cumulative kg CO2eq after each round.
        counts: Rounds per client.
    """

    name: str
    emissions_kg: float
    energy_kwh: float
    mean_intensity: float
    saving_vs_random: float
    participation: dict[str, float]
    accuracy: float | None
    rounds: int
    duration_hours: float
    decision_ms: dict[str, float]
    selections: list[list[int]] = field(repr=False)
    round_starts: list[datetime] = field(repr=False)
    cumulative_kg: list[float] = field(repr=False)
    counts: list[int] = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The stable JSON keys."""
        return {
            "emissions_kg": self.emissions_kg,
            "energy_kwh": self.energy_kwh,
            "mean_intensity": self.mean_intensity,
            "saving_vs_random": self.saving_vs_random,
            "participation": dict(self.participation),
            "accuracy": self.accuracy,
            "rounds": self.rounds,
            "duration_hours": self.duration_hours,
            "decision_ms": dict(self.decision_ms),
        }


@dataclass(frozen=True)
class SimulationResult:
    """All policies on one scenario.

    ``saving_vs_random`` compares with the *expected* emissions of uniform random
    selection running the rounds back to back from the start (K times the mean
    client-round emissions of each slot, true intensities): the baseline every framework
    gives, without the luck of one random draw.

    Attributes:
        scenario: The inputs.
        policies: Results by policy name, in the order run.
        random_baseline_kg: The expected random-selection emissions (kg CO2eq).
        truth: True intensities (gCO2eq/kWh) over the window, for plots.
        client_zones: Zone of each client.
        provider: Description of the data source.
    """

    scenario: Scenario
    policies: dict[str, PolicyResult]
    random_baseline_kg: float
    truth: pd.DataFrame = field(repr=False)
    client_zones: list[str] = field(repr=False)
    provider: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The stable JSON document."""
        scenario = self.scenario.to_dict()
        scenario["source"] = self.provider
        scenario["random_baseline_kg"] = self.random_baseline_kg
        return {
            "scenario": scenario,
            "policies": {name: r.to_dict() for name, r in self.policies.items()},
        }


def _clients(scenario: Scenario, rng: np.random.Generator, slot: timedelta) -> list[Client]:
    zones = scenario.zones
    if scenario.assignment == "round-robin":
        where = [zones[i % len(zones)] for i in range(scenario.clients)]
    else:
        where = [zones[j] for j in rng.integers(0, len(zones), scenario.clients)]
    model = EnergyModel(round_time=slot)
    if scenario.energy == "uniform":
        power = np.full(scenario.clients, DEFAULT_DEVICE_POWER_W)
    else:
        watts, shares = zip(*MIXED_POWER_W, strict=True)
        power = rng.choice(watts, size=scenario.clients, p=shares)
    return [
        Client(f"client-{i:0{len(str(scenario.clients))}d}", z, energy_kwh=model.energy_kwh(p))
        for i, (z, p) in enumerate(zip(where, power, strict=True))
    ]


def _open_source(
    scenario: Scenario, clock: ManualClock, *, data: Path | None = None, signal: str = "average"
) -> tuple[CarbonProvider, pd.DataFrame, str]:
    """A provider over ``data``, and its true trace over the window plus lookback.

    Both come from the registry: the embedded ``default`` (synthetic) when ``data`` is
    None, else the ``file`` provider over it, whose values are ``signal`` intensities.
    The truth is the same provider's history read with a clock at the window's end.
    """
    lookback = timedelta(days=14)
    first, end = scenario.start - lookback, scenario.end + scenario.slot
    options: dict[str, Any]
    if data is None:
        name, options = "default", {"seed": scenario.provider_seed}
        where, label = "the default provider", "default provider (synthetic)"
    else:
        name, options = "file", {"path": data, "signal": signal}
        where, label = str(data), f"file {data}"
    label += f", {signal} signal"
    cls = get_provider_class(name)
    provider = cls(clock=clock, **options)
    served = provider.served_zones()
    missing = [z for z in scenario.zones if z not in served]
    if missing:
        # The hint speaks of the data given: its own zones, or how to list the default's.
        if data is None:
            detail, listing = (
                "use --data for other zones",
                "Run `lowcarb zones -p default` to list its zones.",
            )
        else:
            detail, listing = f"the data has {', '.join(served)}", ""
        raise UnknownZoneError(
            missing[0],
            [],
            where=where,
            detail=detail,
            listing=listing,
        )
    try:
        truth = cls(clock=ManualClock(end), **options).history(list(scenario.zones), first, end)
    except NoDataError as exc:
        raise NoDataError(
            f"the window {scenario.start:%Y-%m-%dT%H:%MZ} + {scenario.window_hours:g} h, with "
            f"{format_duration(lookback)} of history before it, is not inside the data; "
            f"choose --start and --hours so that it is ({exc})"
        ) from None
    frame = truth.values.ffill().bfill()
    if frame.isna().to_numpy().any():
        raise NoDataError("a zone has no values at all in the window", provider=label)
    return provider, frame, label


def _forecaster(scenario: Scenario, truth: pd.DataFrame) -> Forecaster:
    name, sigma = _parse_forecast(scenario.forecast)
    if name == "oracle":
        return OracleForecaster(truth)
    if name == "noisy":
        return NoisyForecaster(truth, sigma, seed=scenario.seed)
    return get_forecaster(name)


def _check_new_runs(ledger: str | Path, runs: tuple[str, ...]) -> None:
    """Refuse a ledger that already holds a run of one of the policies (it would resume)."""
    if not Path(ledger).is_file():
        return
    with Ledger.open_read_only(ledger) as existing:
        taken = sorted(set(existing.runs()) & set(runs))
    if taken:
        raise InvalidInputError(
            f"{Path(ledger).name} already holds runs {', '.join(taken)}: record the "
            "simulation in a new ledger file"
        )


def simulate(
    scenario: Scenario,
    *,
    progress: Callable[[str, int], None] | None = None,
    ledger: str | Path | None = None,
) -> SimulationResult:
    """Run every policy of the scenario and score it on the true trace.

    Args:
        scenario: The inputs.
        progress: Called as ``progress(policy, rounds_done_in_this_step)``.
        ledger: A ledger file to record every policy's rounds in, one run per policy
            named after it (for ``lowcarb report`` and ``lowcarb dashboard``); None keeps
            them in memory.

    Raises:
        InvalidInputError: For zones missing from the data or a window outside it, or a
            ledger that already holds a run of one of the policies.
    """
    if ledger is not None:
        _check_new_runs(ledger, scenario.policies)
    # The planner imports its solver on first use; import it now so that decision times
    # measure deciding, not importing.
    import highspy  # noqa: F401
    import scipy.sparse  # noqa: F401
    from ortools.graph.python import min_cost_flow  # noqa: F401

    rng = np.random.default_rng([scenario.seed, 1])
    slot = scenario.slot
    clock = ManualClock(scenario.start)
    provider, planned, label = _open_source(
        scenario, clock, data=scenario.data, signal=scenario.signal
    )
    truth = planned  # what emissions are judged on
    if scenario.score_data is not None:
        judge, truth, judged = _open_source(
            scenario,
            ManualClock(scenario.start),
            data=scenario.score_data,
            signal=scenario.judged_signal,
        )
        judge.close()
        label += f"; judged on {judged}"
    clients = _clients(scenario, rng, slot)
    index = {c.id: i for i, c in enumerate(clients)}
    zone_row = {z: i for i, z in enumerate(truth.columns)}
    rows = np.array([zone_row[c.zone] for c in clients])
    energy = np.array([c.energy_kwh or 0.0 for c in clients])
    resolution = (truth.index[1] - truth.index[0]).to_pytimedelta()
    plan_resolution = (planned.index[1] - planned.index[0]).to_pytimedelta()
    rounds = scenario.total_rounds
    k = scenario.per_round

    # Expected random selection, rounds back to back: K x mean client-round emissions.
    back_to_back = pd.date_range(scenario.start, periods=rounds, freq=pd.Timedelta(slot))
    slot_truth = slot_means(truth, resolution, back_to_back, slot)  # (zones, rounds)
    baseline_g = float((k * (energy[:, None] * slot_truth[rows]).mean(axis=0)).sum())

    task = None
    if scenario.learning == "digits":
        from lowcarb.simulation._learning import FederatedDigits

        task = FederatedDigits(scenario.clients, seed=scenario.seed)

    spec = EngineSpec(
        rounds=rounds,
        round_interval=slot,
        energy=EnergyModel(round_time=slot),
        deadline=None if scenario.deadline_hours is None else scenario.end,
        fairness=scenario.fairness,
        default_fallback=False,
        seed=scenario.seed,
    )
    results: dict[str, PolicyResult] = {}
    for name in scenario.policies:
        # Every policy replays the same window on its own clock.
        clock = ManualClock(scenario.start)
        provider.clock = clock
        # The oracle knows the judged future: the bound of what can be saved as judged.
        forecaster = OracleForecaster(truth) if name == "oracle" else _forecaster(scenario, planned)
        # In memory unless a ledger is given: never the configured one.
        engine = SelectionEngine(
            provider,
            spec=spec.replace(policy=name, forecaster=forecaster, run_id=name),
            clock=clock,
            ledger=ledger,
        )
        weights = task.new_model() if task is not None else None
        selections: list[list[int]] = []
        starts: list[datetime] = []
        cumulative: list[float] = []
        times: list[float] = []
        grams = kwh = 0.0
        counts = np.zeros(scenario.clients, dtype=int)
        last_end = scenario.start
        while engine.rounds_done < rounds:
            decision = engine.select(clients, k)
            times.append(decision.decision_ms)
            if not decision.run_now:
                assert decision.wait_until is not None
                clock.set(decision.wait_until)
                continue
            chosen = [index[cid] for cid in decision.selected]
            span = pd.DatetimeIndex([decision.start])
            actual = slot_means(truth, resolution, span, slot)[:, 0]
            # The ledger records what the planning provider measured for the round.
            measured = slot_means(planned, plan_resolution, span, slot)[:, 0]
            actual_by_zone = dict(zip(planned.columns, measured.tolist(), strict=True))
            round_g = float((energy[chosen] * actual[rows[chosen]]).sum())
            grams += round_g
            kwh += float(energy[chosen].sum())
            counts[chosen] += 1
            selections.append(chosen)
            starts.append(decision.start)
            cumulative.append(grams / 1000)
            if task is not None and weights is not None:
                weights = task.train_round(weights, chosen, round_index=decision.round)
            last_end = decision.end
            clock.set(decision.start + slot)
            engine.complete(decision, actual=actual_by_zone)
            if progress is not None:
                progress(name, 1)
        engine.close()
        accuracy = task.evaluate(weights) if task is not None and weights is not None else None
        results[name] = PolicyResult(
            name=name,
            emissions_kg=grams / 1000,
            energy_kwh=kwh,
            mean_intensity=grams / kwh if kwh else float("nan"),
            saving_vs_random=1.0 - grams / baseline_g if baseline_g else 0.0,
            participation={
                "min": int(counts.min()),
                "max": int(counts.max()),
                "jain": jain_index(counts),
                "never": int((counts == 0).sum()),
            },
            accuracy=accuracy,
            rounds=len(selections),
            duration_hours=(last_end - scenario.start) / timedelta(hours=1),
            decision_ms={
                "p50": float(np.percentile(times, 50)),
                "p99": float(np.percentile(times, 99)),
            },
            selections=selections,
            round_starts=starts,
            cumulative_kg=cumulative,
            counts=counts.tolist(),
        )
    provider.close()
    window = truth[
        (truth.index >= pd.Timestamp(scenario.start)) & (truth.index < pd.Timestamp(scenario.end))
    ]
    return SimulationResult(
        scenario=scenario,
        policies=results,
        random_baseline_kg=baseline_g / 1000,
        truth=window,
        client_zones=[c.zone for c in clients],
        provider=label,
    )
