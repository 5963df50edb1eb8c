"""The selection engine: one object per training run.

It holds the provider chain, the policy, the forecaster, the ledger and the clock. Each
round the caller hands it the candidates and K and gets a :class:`Decision`; after the
round, :meth:`SelectionEngine.complete` adds what became known (actual intensity,
measured energy, metrics) to the ledger.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lowcarb._accounting import RunSummary, summarize
from lowcarb._bounds import MAX_CLIENT_ROUND_KWH, check_quantity
from lowcarb._chain import ProviderChain
from lowcarb._clock import Clock, SystemClock
from lowcarb._config import Settings
from lowcarb._energy import Client
from lowcarb._forecast import Forecaster
from lowcarb._ledger import ClientRound, Ledger, RoundRecord
from lowcarb._policies import Policy, RoundView
from lowcarb._provider import CarbonProvider
from lowcarb._signal import PlanningSignal, SignalSource
from lowcarb._spec import EngineSpec
from lowcarb._time import ensure_utc
from lowcarb.exceptions import DataValidationError, InvalidInputError

__all__ = ["FAIRNESS_WINDOW", "ClientDecision", "Decision", "SelectionEngine"]

#: Without a known number of rounds, fair shares hold over this rolling window.
FAIRNESS_WINDOW = timedelta(days=1)


@dataclass(frozen=True)
class ClientDecision:
    """What the engine expects for one candidate in the current slot.

    Attributes:
        id: The client.
        zone: Its zone.
        selected: Whether it trains this round.
        intensity_g_per_kwh: Expected intensity used for the decision.
        energy_kwh: Expected energy of its round.
        emissions_g: Expected gCO2eq of its round.
        available: Whether it could train in this slot (its availability windows).
        next_turn: For a candidate that waits, when the policy's current plan next has
            it train (UTC start of that slot); None when selected, when the plan holds no
            turn for it within its horizon, or when the policy does not plan ahead.
    """

    id: str
    zone: str
    selected: bool
    intensity_g_per_kwh: float
    energy_kwh: float
    emissions_g: float
    available: bool = True
    next_turn: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        out = dict(vars(self))
        out["next_turn"] = None if self.next_turn is None else self.next_turn.isoformat()
        return out


@dataclass(frozen=True)
class Decision:
    """The engine's answer for one round.

    Attributes:
        round: Number of the round this decision runs (1-based); a pause keeps the
            number for the round that will run later.
        run_now: False when the round should wait until ``wait_until``.
        wait_until: When to ask again (pauses only).
        selected: Ids that train now.
        deferred: Candidates that do not train now.
        clients: Per candidate: expected intensity, energy and emissions now.
        signal: Provenance of the carbon signal (provider, issued_at, fallback, sources).
        reason: A short human explanation.
        policy: The policy's name.
        decided_at: The decision time (UTC).
        start: Start of the round's slot (UTC).
        end: Expected end of the round (UTC).
        expected_energy_kwh: Energy of the selected clients' round.
        expected_emissions_g: gCO2eq of the selected clients' round.
        random_expected_g: Expected gCO2eq of K random candidates (the counterfactual).
        decision_ms: Time the engine took (ms).
    """

    round: int
    run_now: bool
    wait_until: datetime | None
    selected: tuple[str, ...]
    deferred: tuple[str, ...]
    clients: tuple[ClientDecision, ...]
    signal: Mapping[str, Any]
    reason: str
    policy: str
    decided_at: datetime
    start: datetime
    end: datetime
    expected_energy_kwh: float
    expected_emissions_g: float
    random_expected_g: float
    decision_ms: float = field(compare=False, default=0.0)

    @property
    def fallback(self) -> str | None:
        """The fallback taken for the signal, if any."""
        value = self.signal.get("fallback")
        return None if value is None else str(value)

    def _header(self) -> dict[str, Any]:
        """Every field but the candidates, JSON-friendly (no deep copies: this is hot)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "clients"}
        for key in ("wait_until", "decided_at", "start", "end"):
            out[key] = None if out[key] is None else out[key].isoformat()
        out["signal"] = dict(self.signal)
        out["selected"], out["deferred"] = list(self.selected), list(self.deferred)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {**self._header(), "clients": [c.to_dict() for c in self.clients]}

    def to_record(self) -> dict[str, Any]:
        """A compact JSON-friendly form for the ledger (candidates as columns).

        Per candidate only its id, zone and energy are kept (intensity and emissions
        follow from the zone), so a round of 10,000 candidates stays near 300 kB.
        """
        out = self._header()
        zones = list(dict.fromkeys(c.zone for c in self.clients))
        row = {z: i for i, z in enumerate(zones)}
        intensity = dict.fromkeys(zones, 0.0)
        for c in self.clients:
            intensity[c.zone] = c.intensity_g_per_kwh
        energies = [c.energy_kwh for c in self.clients]
        out["candidates"] = {
            "zones": zones,
            "intensity": [intensity[z] for z in zones],
            "id": [c.id for c in self.clients],
            "zone": [row[c.zone] for c in self.clients],
            "energy_kwh": energies[0] if len(set(energies)) == 1 else energies,
            "unavailable": [i for i, c in enumerate(self.clients) if not c.available],
        }
        turns = [c.next_turn for c in self.clients]
        if any(t is not None for t in turns):
            # Seconds after the decision, -1 for none: a plan's turns in a few bytes each
            # (a plan has few distinct slots, so each is converted once).
            seconds: dict[datetime | None, int] = {None: -1}
            for t in set(turns) - {None}:
                assert t is not None
                seconds[t] = int((t - self.decided_at).total_seconds())
            out["candidates"]["next_turn_s"] = [seconds[t] for t in turns]
        return out

    @classmethod
    def from_record(cls, data: Mapping[str, Any]) -> Decision:
        """Rebuild a decision from its :meth:`to_record` form.

        Raises:
            DataValidationError: If ``data`` is not a recorded decision.
        """
        try:
            table = data["candidates"]
            zones, ids = table["zones"], table["id"]
            energy = table["energy_kwh"]
            energies = energy if isinstance(energy, list) else [energy] * len(ids)
            off = set(table["unavailable"])
            turns = table.get("next_turn_s") or [-1] * len(ids)
            decided = datetime.fromisoformat(data["decided_at"])
            chosen = set(data["selected"])
            clients = []
            for i, (cid, z, kwh) in enumerate(zip(ids, table["zone"], energies, strict=True)):
                intensity = float(table["intensity"][z])
                clients.append(
                    ClientDecision(
                        id=cid,
                        zone=zones[z],
                        selected=cid in chosen,
                        intensity_g_per_kwh=intensity,
                        energy_kwh=float(kwh),
                        emissions_g=float(kwh) * intensity,
                        available=i not in off,
                        next_turn=None if turns[i] < 0 else decided + timedelta(seconds=turns[i]),
                    )
                )
            header = {k: v for k, v in data.items() if k != "candidates"}
            return cls._build(header, tuple(clients))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise DataValidationError(f"not a recorded decision: {exc}") from None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Decision:
        """Rebuild a decision from its :meth:`to_dict` form.

        Raises:
            DataValidationError: If ``data`` is not a decision's dictionary.
        """
        try:
            clients = tuple(
                ClientDecision(
                    **{
                        **c,
                        "next_turn": None
                        if c.get("next_turn") is None
                        else datetime.fromisoformat(c["next_turn"]),
                    }
                )
                for c in data["clients"]
            )
            header = {k: v for k, v in data.items() if k != "clients"}
            return cls._build(header, clients)
        except (KeyError, TypeError, ValueError) as exc:
            raise DataValidationError(f"not a stored decision: {exc}") from None

    @classmethod
    def _build(cls, header: Mapping[str, Any], clients: tuple[ClientDecision, ...]) -> Decision:
        values = dict(header)
        values["selected"], values["deferred"] = (
            tuple(header["selected"]),
            tuple(header["deferred"]),
        )
        for key in ("wait_until", "decided_at", "start", "end"):
            value = values[key]
            values[key] = None if value is None else datetime.fromisoformat(value)
        return cls(**values, clients=clients)


def _as_client(item: Client | Mapping[str, Any]) -> Client:
    if isinstance(item, Client):
        return item
    if isinstance(item, Mapping):
        try:
            return Client(**item)
        except TypeError as exc:
            raise InvalidInputError(f"bad client {dict(item)!r}: {exc}") from None
    raise InvalidInputError(f"a candidate must be a Client or a mapping, got {type(item).__name__}")


class SelectionEngine:
    """Carbon-aware, fair client selection for one training run.

    The training is described by an :class:`~lowcarb.EngineSpec` (pass ``spec=``, or its
    fields as keyword arguments); the engine adds the running parts: the provider chain,
    the ledger and the clock.

    Args:
        provider: Where intensities come from: a provider or chain instance (nothing is
            read from the environment then), a registry name (its options and
            credentials come from the configuration), or None for the configured chain
            (``lowcarb.toml``, ``LOWCARB_PROVIDER``; the embedded offline ``default``
            when nothing is configured).
        spec: The training's description; keyword arguments below override its fields.
        ledger: A :class:`Ledger` or a database path; None uses the spec's (the
            configured ``ledger`` when the configuration is read), else memory.
        clock: Time source (defaults to the wall clock).
        fallbacks: Provider instances tried, in order, when the primary fails or lacks a
            zone (before the embedded default, which ends the chain unless the spec's
            ``default_fallback`` is False).
        settings: Loaded settings to use instead of reading the configuration.
        **options: Fields of :class:`~lowcarb.EngineSpec`: ``policy``, ``forecaster``,
            ``run_id``, ``rounds``, ``round_interval``, ``energy``, ``deadline``,
            ``fairness``, ``utility_price``, ``horizon``, ``default_fallback``,
            ``unknown_zone``, ``seed``.

    Example:
        >>> engine = SelectionEngine("default", rounds=10)
        >>> clients = [Client(f"c{i}", zone) for i, zone in enumerate(["DE", "GB", "SG"])]
        >>> decision = engine.select(clients, k=1)  # doctest: +SKIP
        >>> decision.selected, decision.reason  # doctest: +SKIP
    """

    def __init__(
        self,
        provider: CarbonProvider | str | None = None,
        *,
        spec: EngineSpec | None = None,
        ledger: Ledger | str | Path | None = None,
        clock: Clock | None = None,
        fallbacks: Sequence[CarbonProvider] = (),
        settings: Settings | None = None,
        **options: Any,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        spec = EngineSpec.resolve(provider, spec, settings=settings, **options)
        if isinstance(provider, CarbonProvider):
            chain = ProviderChain.of(
                provider,
                fallbacks=fallbacks,
                default_fallback=spec.default_fallback,
                clock=self.clock,
            )
        else:
            chain = spec.open_chain(clock=self.clock, fallbacks=tuple(fallbacks))
        self.spec = spec
        #: The provider chain every intensity comes from.
        self.provider: ProviderChain = chain
        self.policy: Policy = spec.build_policy()
        self.policy_name = spec.policy_name
        self.forecaster: Forecaster = spec.build_forecaster()
        self.source = SignalSource(
            chain,
            forecaster=self.forecaster,
            use_provider_forecast=spec.forecaster is None,
            unknown_zone=spec.unknown_zone,
        )
        ledger = ledger if ledger is not None else spec.ledger
        self.ledger = ledger if isinstance(ledger, Ledger) else Ledger(ledger)
        self.run_id = spec.run_id
        self.rounds = spec.rounds
        self.round_interval = spec.round_interval
        self.energy = spec.energy
        self.fairness = spec.fairness
        self.utility_price = float(spec.utility_price)
        self.horizon = spec.horizon
        self.seed = spec.seed
        deadline = spec.deadline
        if isinstance(deadline, timedelta):
            # A duration counts from the run's start; the absolute time is stored in the
            # ledger so that a restarted process keeps the same deadline.
            deadline = self.clock.now() + deadline
        self.resumed = self.ledger.open_run(
            self.run_id,
            config={
                "policy": self.policy_name,
                "rounds": self.rounds,
                "seed": self.seed,
                "deadline": None if deadline is None else deadline.isoformat(),
            },
            now=self.clock.now(),
        )
        stored = self.ledger.run_config(self.run_id).get("deadline")
        self._deadline: datetime | None = (
            datetime.fromisoformat(stored) if self.resumed and stored else deadline
        )
        self._participation = self.ledger.participation(self.run_id)
        self._rounds_done = self.ledger.rounds_done(self.run_id)
        last = (
            self.ledger.rounds(self.run_id, since=self._rounds_done - 1)
            if self._rounds_done
            else []
        )
        #: Start of the last decided round's slot (see ``select``: a round occupies a slot).
        self._last_start: datetime | None = last[-1].start if last else None

    def __repr__(self) -> str:
        return (
            f"SelectionEngine(provider={self.provider.name!r}, policy={self.policy_name!r}, "
            f"forecaster={self.forecaster.name!r}, run_id={self.run_id!r}, "
            f"rounds_done={self._rounds_done})"
        )

    @property
    def rounds_done(self) -> int:
        """Rounds recorded so far (survives restarts through the ledger)."""
        return self._rounds_done

    @property
    def participation(self) -> dict[str, int]:
        """Rounds taken so far by each known client."""
        return dict(self._participation)

    def _slots(self, now: datetime) -> tuple[int, int | None, bool]:
        """(slots to plan, slots until the deadline or None, whether it can be met)."""
        done = self._rounds_done
        left = max(1, (self.rounds or done + 1) - done)
        horizon = max(1, int(self.horizon / self.round_interval))
        if self._deadline is None:
            if self.rounds is None:
                # An open-ended training is planned as if it ended a window from now: a
                # week-long window would let a client's turn slide for days.
                return min(horizon, max(1, int(FAIRNESS_WINDOW / self.round_interval))), None, True
            return min(left, horizon), None, True
        fit = int((self._deadline - self.energy.round_time - now) / self.round_interval) + 1
        if fit <= left:
            return min(left, horizon), None, fit == left
        return min(fit, horizon), fit, True

    def _canonical(self, candidates: list[Client]) -> list[Client]:
        """The candidates with the chain's spelling of their zones (``de`` is ``DE``)."""
        spelled = {z: self.provider.canonical(z) for z in {c.zone for c in candidates}}
        if all(z == v for z, v in spelled.items()):
            return candidates
        return [
            c if spelled[c.zone] == c.zone else replace(c, zone=spelled[c.zone]) for c in candidates
        ]

    def select(
        self, clients: Iterable[Client | Mapping[str, Any]], k: int, *, now: datetime | None = None
    ) -> Decision:
        """Choose this round's clients.

        Args:
            clients: The candidates available now (ids unique).
            k: Clients wanted, between 1 and the number of candidates.
            now: Decision time (UTC); defaults to the clock.

        Raises:
            InvalidInputError: For duplicate ids, ``k`` out of range, bad energies.
            UnknownZoneError: With ``unknown_zone='error'`` for a zone without a signal.
        """
        tick = time.perf_counter()
        candidates = self._canonical([_as_client(c) for c in clients])
        ids = [c.id for c in candidates]
        if len(set(ids)) != len(ids):
            dups = sorted(i for i, n in Counter(ids).items() if n > 1)
            raise InvalidInputError(f"duplicate client ids: {', '.join(dups[:5])}")
        if not isinstance(k, int | np.integer) or isinstance(k, bool) or k < 1:
            raise InvalidInputError(f"k must be a positive integer, got {k!r}")
        if k > len(candidates):
            raise InvalidInputError(f"k={k} but only {len(candidates)} candidates are available")
        now = ensure_utc(now, "now") if now is not None else self.clock.now()

        slots, deadline_slots, reachable = self._slots(now)
        first = now
        if self.rounds is None and self._deadline is None and self._last_start is not None:
            # A round occupies its slot. An open-ended training's fairness window rolls
            # with time; rounds asked for faster than one a slot (a fixed --now, or rounds
            # shorter than round_interval) would re-plan the same window again and again
            # and defer the same clients every time. Such a round takes the next slot.
            first = max(now, self._last_start + self.round_interval)
        starts = pd.date_range(first, periods=slots, freq=pd.Timedelta(self.round_interval))
        zones = list(dict.fromkeys(c.zone for c in candidates))
        signal = self.source.signal(zones, now, starts, self.energy.round_time)
        row = {z: i for i, z in enumerate(signal.zones)}
        new = {c.id: c.zone for c in candidates if c.id not in self._participation}
        if new:
            self.ledger.register_clients(self.run_id, new)
            self._participation.update(dict.fromkeys(new, 0))

        energy = np.array(
            [
                c.energy_kwh if c.energy_kwh is not None else self.energy.energy_kwh(c.power_w)
                for c in candidates
            ]
        )
        zone = np.array([row[c.zone] for c in candidates])
        available = None
        if any(c.availability for c in candidates):
            length = self.energy.round_time
            available = np.array(
                [
                    [c.available_at(s, s + length) for s in starts.to_pydatetime()]
                    for c in candidates
                ]
            )
            if int(available[:, 0].sum()) < k:
                raise InvalidInputError(
                    f"k={k} but only {int(available[:, 0].sum())} of {len(candidates)} "
                    "candidates are available now (availability windows)"
                )
        done = self._rounds_done
        total = self.rounds if self.rounds is not None else done + slots
        view = RoundView(
            zone=zone,
            energy_kwh=energy,
            utility=np.array([c.utility for c in candidates]),
            participation=np.array([self._participation.get(i, 0) for i in ids]),
            intensity=signal.intensity,
            per_round=int(k),
            rounds_total=max(total, done + 1),
            rounds_done=done,
            population=len(self._participation),
            available=available,
            utility_price=self.utility_price,
            deadline_slots=deadline_slots,
        )
        rng = np.random.default_rng([self.seed, done + 1])
        choice = self.policy.choose(view, rng)
        return self._decide(candidates, view, signal, choice, now, starts, reachable, tick)

    def _decide(
        self,
        candidates: list[Client],
        view: RoundView,
        signal: PlanningSignal,
        choice: Any,
        now: datetime,
        starts: pd.DatetimeIndex,
        reachable: bool,
        tick: float,
    ) -> Decision:
        now_g = view.emissions_now()
        chosen = set(choice.selected.tolist())
        usable = np.ones(view.size, dtype=bool) if view.available is None else view.available[:, 0]
        random_g = float(view.per_round * now_g[usable].mean()) if usable.any() else 0.0
        reason = choice.reason
        if not reachable:
            reason += "; the deadline cannot hold every remaining round, so none pauses"
        if signal.fallback:
            reason += f"; signal fallback: {signal.fallback}"
        intensity_now = view.intensity[view.zone, 0]
        slot_starts = starts.to_pydatetime()
        turns = choice.next_turn if choice.next_turn is not None else np.full(view.size, -1)
        clients = tuple(
            ClientDecision(
                id=c.id,
                zone=c.zone,
                selected=i in chosen,
                intensity_g_per_kwh=float(intensity_now[i]),
                energy_kwh=float(view.energy_kwh[i]),
                emissions_g=float(now_g[i]),
                available=bool(usable[i]),
                next_turn=None if turns[i] < 0 else slot_starts[turns[i]],
            )
            for i, c in enumerate(candidates)
        )
        start = starts[0 if choice.run_now else choice.next_slot].to_pydatetime()
        if not choice.run_now:
            reason += f"; next round at {start:%Y-%m-%d %H:%M}Z"
        decision = Decision(
            round=self._rounds_done + 1,
            run_now=bool(choice.run_now),
            wait_until=None if choice.run_now else start,
            selected=tuple(c.id for c in clients if c.selected),
            deferred=tuple(c.id for c in clients if not c.selected),
            clients=clients,
            signal=self._provenance(signal),
            reason=reason,
            policy=self.policy_name,
            decided_at=now,
            start=start,
            end=start + self.energy.round_time,
            expected_energy_kwh=float(view.energy_kwh[choice.selected].sum()),
            expected_emissions_g=float(now_g[choice.selected].sum()),
            random_expected_g=random_g,
            decision_ms=(time.perf_counter() - tick) * 1000.0,
        )
        if decision.run_now:
            self._record(decision)
        else:
            self.ledger.record_pause(
                self.run_id, decided_at=now, wait_until=start, reason=decision.reason
            )
        return decision

    def _provenance(self, signal: PlanningSignal) -> dict[str, Any]:
        """The signal's provenance, with what the primary provider's values are.

        Kind (average or marginal), emission basis and whether the data is synthetic
        say what the round's intensities mean, for its account and its report.
        """
        caps = self.provider.capabilities
        return {
            **signal.describe(),
            "kind": caps.signal,
            "basis": caps.basis,
            "synthetic": caps.synthetic,
        }

    def _record(self, decision: Decision) -> None:
        record = RoundRecord(
            round=decision.round,
            decided_at=decision.decided_at,
            start=decision.start,
            end=decision.end,
            policy=decision.policy,
            reason=decision.reason,
            signal=decision.signal,
            candidates=len(decision.clients),
            clients=tuple(
                ClientRound(c.id, c.zone, c.energy_kwh, "model", c.intensity_g_per_kwh)
                for c in decision.clients
                if c.selected
            ),
            random_expected_g=decision.random_expected_g,
        )
        self.ledger.record_round(self.run_id, record, decision=decision.to_record())
        self._rounds_done = decision.round
        self._last_start = decision.start
        for cid in decision.selected:
            self._participation[cid] = self._participation.get(cid, 0) + 1

    def decision(self, round_number: int) -> Decision:
        """The decision of a round already decided, as it was taken (from the ledger).

        Raises:
            InvalidInputError: If the round was not decided (or was decided by a lowcarb
                that kept no decisions).
        """
        if isinstance(round_number, bool) or not isinstance(round_number, int):
            raise InvalidInputError(f"round must be a positive integer, got {round_number!r}")
        stored = self.ledger.decision(self.run_id, round_number)
        if stored is None:
            raise InvalidInputError(
                f"round {round_number} of run {self.run_id!r} has no recorded decision "
                f"(rounds decided: 1 to {self._rounds_done})"
            )
        return Decision.from_record(stored)

    def records(self, *, since: int = 0) -> list[RoundRecord]:
        """The run's rounds as recorded, from round ``since + 1``."""
        return self.ledger.rounds(self.run_id, since=since)

    def complete(
        self,
        decision: Decision | int,
        *,
        energy_kwh: Mapping[str, float] | None = None,
        metrics: Mapping[str, float] | None = None,
        actual: Mapping[str, float] | None = None,
        excluded_energy_kwh: Mapping[str, float] | None = None,
        excluded_zones: Mapping[str, str] | None = None,
        details: Mapping[str, Any] | None = None,
        trained: Iterable[str] | None = None,
    ) -> RoundRecord:
        """Record what became known after a round ran.

        Args:
            decision: The round's decision (``run_now`` True), or its round number (the
                decision is read from the ledger).
            energy_kwh: Measured energy per client (kWh); replaces the model's estimate.
            metrics: Metrics such as ``accuracy`` (fraction) or ``loss``.
            actual: Actual mean intensity per zone over the round (gCO2eq/kWh); fetched
                through the provider chain when omitted and the round has ended.
            excluded_energy_kwh: Energy (kWh) that clients *not* selected spent on the
                round anyway, because the framework could not hold them back (DISCO v2).
                It counts in the run's footprint (``RunSummary.excluded_*``), not in
                participation. Priced at the intensity the decision used for the
                client's zone.
            excluded_zones: Zones of excluded clients that were not candidates of the
                decision (they joined later); a zone the decision did not cost is priced
                at the mean of the decision's intensities.
            details: What the integration records about the round (JSON-friendly).
            trained: The selected clients that really trained (None: all of them). The
                others (a failed or silent client) are taken out of the round: no energy
                is booked for them and they keep their fair share. The random
                counterfactual is then that of as many random clients as trained.

        Returns:
            The round as recorded: selection, energy (measured or modelled), emissions
            with expected and actual intensity, excluded energy and its emissions.

        Raises:
            InvalidInputError: For a paused decision, bad energies or an unknown client.
        """
        if not isinstance(decision, Decision):
            decision = self.decision(decision)
        if not decision.run_now:
            raise InvalidInputError("a paused decision has no round to complete")
        for cid, value in {**(energy_kwh or {}), **(excluded_energy_kwh or {})}.items():
            check_quantity(f"measured energy of {cid!r} (kWh)", value, most=MAX_CLIENT_ROUND_KWH)
        dropped = self._dropped(decision, trained, energy_kwh or {})
        ran = len(decision.selected) - len(dropped)
        excluded = self._excluded(decision, excluded_energy_kwh or {}, excluded_zones or {})
        now = self.clock.now()
        zones = list(dict.fromkeys(c.zone for c in decision.clients))
        if actual is None and now >= decision.end:
            actual = self.source.actual(zones, decision.start, decision.end)
        random_actual = None
        if actual is not None and all(z in actual for z in zones):
            pool = [c for c in decision.clients if c.available]
            random_actual = ran * float(np.mean([c.energy_kwh * actual[c.zone] for c in pool]))
        random_expected = None
        if dropped:
            random_expected = decision.random_expected_g * ran / len(decision.selected)
        record = self.ledger.complete_round(
            self.run_id,
            decision.round,
            completed_at=now,
            actual=actual,
            energy_kwh=energy_kwh,
            random_actual_g=random_actual,
            metrics=metrics,
            excluded=excluded,
            details=details,
            dropped=dropped,
            random_expected_g=random_expected,
        )
        if dropped:
            self._participation = self.ledger.participation(self.run_id)
        return record

    @staticmethod
    def _dropped(
        decision: Decision, trained: Iterable[str] | None, energy: Mapping[str, float]
    ) -> list[str]:
        """The selected clients that did not train, checked against the decision."""
        if trained is None:
            return []
        ran = {str(c) for c in trained}
        strangers = sorted(ran - set(decision.selected))
        if strangers:
            raise InvalidInputError(
                f"round {decision.round}: {', '.join(strangers[:5])} trained but were not "
                "selected (report their energy as excluded_energy_kwh)"
            )
        dropped = [c for c in decision.selected if c not in ran]
        measured = sorted(set(dropped) & set(energy))
        if measured:
            raise InvalidInputError(
                f"round {decision.round}: energy measured for {', '.join(measured[:5])}, "
                "which did not train"
            )
        return dropped

    def register(self, clients: Iterable[Client | Mapping[str, Any]]) -> None:
        """Count clients in the run's population without selecting them.

        For candidates a round had to leave out (e.g. a zone that an
        ``unknown_zone="error"`` engine rejects): they then appear in the fairness
        summary as never selected, instead of vanishing from it. Known clients keep
        their participation.
        """
        new = {c.id: c.zone for c in map(_as_client, clients) if c.id not in self._participation}
        if new:
            self.ledger.register_clients(self.run_id, new)
            self._participation.update(dict.fromkeys(new, 0))

    @staticmethod
    def _excluded(
        decision: Decision, energy: Mapping[str, float], zones: Mapping[str, str]
    ) -> list[ClientRound]:
        """Price the energy of clients left out that trained anyway."""
        by_id = {c.id: c for c in decision.clients}
        by_zone = {c.zone: c.intensity_g_per_kwh for c in decision.clients}
        mean = float(np.mean(list(by_zone.values()))) if by_zone else 0.0
        out = []
        for cid, kwh in energy.items():
            candidate = by_id.get(cid)
            if candidate is not None and not candidate.selected:
                zone, intensity = candidate.zone, candidate.intensity_g_per_kwh
            elif candidate is None and cid in zones:
                zone = zones[cid]
                intensity = by_zone.get(zone, mean)
            else:
                raise InvalidInputError(
                    f"excluded energy for {cid!r}: not a candidate left out of round "
                    f"{decision.round} (give the zone of a client that joined later)"
                )
            out.append(ClientRound(cid, zone, float(kwh), "reported", intensity))
        return out

    def summary(self) -> RunSummary:
        """The run's energy and carbon account so far (see :func:`summarize`)."""
        return summarize(
            self.ledger.rounds(self.run_id),
            run_id=self.run_id,
            population=self.ledger.participation(self.run_id),
        )

    def close(self) -> None:
        """Close the ledger and the providers."""
        self.ledger.close()
        self.provider.close()

    def __enter__(self) -> SelectionEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
