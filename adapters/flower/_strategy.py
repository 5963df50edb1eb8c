"""The carbon-aware strategy wrapper for Flower's Message API."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from lowcarb import Client, Decision, ManualClock, SelectionEngine
from lowcarb.adapters.flower._client import ENERGY_METRIC, ZONES_KEY
from lowcarb.adapters.flower._selection import (
    readdress,
    sampling_strategy,
    select_placed,
    uniform,
    wait_for_slot,
)
from lowcarb.adapters.flower._zones import ZoneDirectory, ZoneMap
from lowcarb.exceptions import InvalidInputError, UnknownZoneError

__all__ = ["NO_ZONE_HINT", "CarbonAwareStrategy", "EvaluationMode"]

_log = logging.getLogger("flwr.lowcarb")

EvaluationMode = Literal["inner", "train", "carbon"]
_MODES = ("inner", "train", "carbon")
# A plan pauses only until its next slot; more pauses than this in one round means the
# clock does not move (e.g. a ManualClock nobody advances), not a real plan.
_MAX_PAUSES = 10_000
#: Said when no candidate has a zone the engine can cost: the round goes on without lowcarb.
NO_ZONE_HINT = (
    "give nodes a zone: in a deployment flower-supernode --node-config 'zone=\"DE\"'; in "
    f'simulation {ZONES_KEY} = "DE,FR,PL" in [tool.flwr.app.config] (zones by '
    "partition-id); answer_zone_query(app) on the ClientApp reads either"
)


def _destinations(messages: list[Message]) -> list[int]:
    return list(dict.fromkeys(m.metadata.dst_node_id for m in messages))


class CarbonAwareStrategy(Strategy):
    """Runs any Flower strategy, letting lowcarb choose which nodes train.

    The inner strategy keeps every decision Flower gives it: it waits for its
    ``min_available_nodes``, decides how many nodes train (``fraction_train``,
    ``min_train_nodes``; ``fraction_train=0`` trains nobody), builds the messages and
    aggregates the replies. lowcarb only chooses *which* nodes receive the training
    instructions, among the connected ones, and may wait for a greener slot. After the
    round it books the nodes that trained (a node that failed keeps its fair share) in
    the engine's ledger and adds the carbon figures to the round's train metrics.

    Args:
        strategy: The inner strategy (FedAvg, FedProx, FedXgbBagging, a DP wrapper, ...),
            unchanged.
        engine: The selection engine; :func:`engine_for_run` builds one from the Flower
            run's config.
        evaluation: Who evaluates: ``inner`` (the inner strategy's own sampling),
            ``train`` (the nodes that trained this round) or ``carbon`` (a carbon-aware
            choice of as many nodes as the inner strategy samples). An inner strategy
            that evaluates nobody turns client evaluation off in every mode.
        min_nodes: Nodes to wait for before the first round, so that its count sees the
            whole federation (default: the inner strategy's ``min_available_nodes``).
        node_timeout: Longest wait for ``min_nodes`` (s); then the inner strategy's own
            waiting rule applies.
        zones: Server-side ``node_id -> zone`` mapping or function.
        query_zones: Ask new nodes for their zone (see :func:`answer_zone_query`).
        use_location: Use the SuperNodes' registered ``lat,lon`` locations.
        query_timeout: Longest wait for zone replies (s).
        simulated_time: Advance the engine's clock by the round time instead of living in
            real time (default: True when the engine runs on a :class:`ManualClock`).
        poll_interval: Seconds between checks while waiting for nodes.

    Example:
        >>> strategy = CarbonAwareStrategy(
        ...     FedAvg(fraction_train=0.1), engine_for_run(context, grid, rounds=10)
        ... )  # doctest: +SKIP
        >>> strategy.start(grid=grid, initial_arrays=arrays, num_rounds=10)  # doctest: +SKIP
    """

    def __init__(
        self,
        strategy: Strategy,
        engine: SelectionEngine,
        *,
        evaluation: EvaluationMode = "inner",
        min_nodes: int | None = None,
        node_timeout: float = 600.0,
        zones: ZoneMap | None = None,
        query_zones: bool = True,
        use_location: bool = True,
        query_timeout: float = 60.0,
        simulated_time: bool | None = None,
        poll_interval: float = 1.0,
    ) -> None:
        if not isinstance(strategy, Strategy):
            raise InvalidInputError(f"strategy must be a Flower Strategy, got {strategy!r}")
        if not isinstance(engine, SelectionEngine):
            raise InvalidInputError(f"engine must be a SelectionEngine, got {engine!r}")
        if evaluation not in _MODES:
            raise InvalidInputError(f"evaluation={evaluation!r}: use one of {', '.join(_MODES)}")
        if min_nodes is not None and (not isinstance(min_nodes, int) or min_nodes < 1):
            raise InvalidInputError(f"min_nodes must be a positive integer, got {min_nodes!r}")
        if not math.isfinite(node_timeout) or node_timeout < 0:
            raise InvalidInputError(f"node_timeout must be >= 0 s, got {node_timeout!r}")
        if not math.isfinite(poll_interval) or poll_interval <= 0:
            raise InvalidInputError(f"poll_interval must be > 0 s, got {poll_interval!r}")
        if simulated_time and not isinstance(engine.clock, ManualClock):
            raise InvalidInputError(
                "simulated_time=True needs an engine on a ManualClock; "
                f"this engine runs on {engine.clock!r}"
            )
        self.strategy = strategy
        self.engine = engine
        self.evaluation: EvaluationMode = evaluation
        sampler = sampling_strategy(strategy)
        self.min_nodes = min_nodes or int(getattr(sampler, "min_available_nodes", 1))
        self.node_timeout = float(node_timeout)
        self.simulated_time = (
            isinstance(engine.clock, ManualClock) if simulated_time is None else simulated_time
        )
        self.poll_interval = float(poll_interval)
        self.zones = ZoneDirectory(
            lambda text: engine.provider.resolve(text).zone,
            zones=zones,
            query=query_zones,
            use_location=use_location,
            timeout=query_timeout,
        )
        self.decisions: list[Decision] = []
        self._waited = False
        self._noted: set[str] = set()
        self._current: Decision | None = None
        self._trained: list[int] = []
        self._evaluator: SelectionEngine | None = None

    def __repr__(self) -> str:
        return (
            f"CarbonAwareStrategy({type(self.strategy).__name__}, "
            f"policy={self.engine.policy_name!r}, evaluation={self.evaluation!r})"
        )

    def _once(self, key: str, level: int, message: str, *args: object) -> None:
        if key not in self._noted:
            self._noted.add(key)
            _log.log(level, message, *args)

    # --- selection -----------------------------------------------------------------

    def _wait_for_nodes(self, grid: Grid) -> None:
        # Flower's FedAvg counts whoever has connected when round 1 starts (it can train
        # 2 "out of 20"); wait once for the expected population so the count sees it.
        if self._waited:
            return
        self._waited = True
        deadline = time.monotonic() + self.node_timeout
        nodes = list(grid.get_node_ids())
        while len(nodes) < self.min_nodes and time.monotonic() < deadline:
            _log.info("lowcarb: waiting for nodes: %d of %d connected", len(nodes), self.min_nodes)
            time.sleep(self.poll_interval)
            nodes = list(grid.get_node_ids())
        if len(nodes) < self.min_nodes:
            _log.warning(
                "lowcarb: only %d of %d nodes connected after %.0f s; the inner strategy's "
                "own waiting rule applies",
                len(nodes),
                self.min_nodes,
                self.node_timeout,
            )

    def _candidates(self, grid: Grid, nodes: list[int]) -> list[Client]:
        zones = self.zones.lookup(grid, nodes)
        return [Client(str(node), zones[node]) for node in nodes]

    def _decide(self, grid: Grid, k: int) -> Decision | None:
        """This round's decision for ``k`` nodes, after any planned wait."""
        for _ in range(_MAX_PAUSES):
            # Nodes may come or go, during a planned wait too: decide among those here.
            nodes = list(grid.get_node_ids())
            if not nodes:
                return None
            decision = select_placed(self.engine, self._candidates(grid, nodes), k)
            if decision.run_now:
                self._note_scope(k, len(nodes))
                return decision
            wait_for_slot(self.engine, decision)
        raise InvalidInputError("the engine keeps pausing but its clock does not move")

    def _note_scope(self, k: int, n: int) -> None:
        """Say once when the inner strategy's settings leave lowcarb little to choose."""
        if k >= n:
            self._once(
                "all",
                logging.WARNING,
                "lowcarb: the inner strategy trains all %d connected nodes every round "
                "(fraction_train=1.0, Flower's default, or min_train_nodes >= nodes): "
                "lowcarb cannot choose which nodes train and saves nothing; it records the "
                "carbon. Lower fraction_train to let it choose.",
                n,
            )
        elif self.engine.rounds and (self.engine.rounds * k) % n == 0:
            self._once(
                "even",
                logging.INFO,
                "lowcarb: %d rounds x %d nodes share evenly among %d nodes (%d rounds "
                "each): every node trains its share, so lowcarb saves only by choosing "
                "when each node trains",
                self.engine.rounds,
                k,
                n,
                self.engine.rounds * k // n,
            )

    def _unmanaged(self, server_round: int, messages: list[Message], why: str) -> list[Message]:
        _log.warning(
            "lowcarb: round %d: %s; the inner strategy's own choice stands and lowcarb "
            "records nothing",
            server_round,
            why,
        )
        return messages

    # --- Strategy interface ----------------------------------------------------------

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Let the inner strategy configure the round, then send it to lowcarb's choice."""
        self._wait_for_nodes(grid)
        self._current = None
        messages = list(self.strategy.configure_train(server_round, arrays, config, grid))
        wanted = len(_destinations(messages))
        if not wanted:
            # The inner strategy trains nobody (e.g. fraction_train=0): neither does lowcarb.
            return messages
        if not uniform(messages):
            return self._unmanaged(
                server_round, messages, "the inner strategy instructs each node differently"
            )
        try:
            decision = self._decide(grid, wanted)
        except UnknownZoneError as exc:
            return self._unmanaged(server_round, messages, f"{exc}; {NO_ZONE_HINT}")
        if decision is None:
            _log.warning("lowcarb: no nodes connected; round %d trains nobody", server_round)
            return []
        self._current = decision
        self.decisions.append(decision)
        chosen = [int(i) for i in decision.selected]
        _log.info(
            "lowcarb: round %d trains %d nodes (%.1f g expected vs %.1f g random): %s",
            server_round,
            len(chosen),
            decision.expected_emissions_g,
            decision.random_expected_g,
            decision.reason,
        )
        return readdress(messages, chosen) or []

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Aggregate with the inner strategy; book the nodes that trained."""
        replies = list(replies)
        arrays, metrics = self.strategy.aggregate_train(server_round, replies)
        self._trained = [r.metadata.src_node_id for r in replies if not r.has_error()]
        decision, self._current = self._current, None
        if decision is None:
            return arrays, metrics
        merged = MetricRecord(dict(metrics) if metrics is not None else {})
        for key, value in self._finish(decision, replies, metrics).items():
            merged[key] = value
        return arrays, merged

    def _measured(self, replies: list[Message]) -> dict[str, float]:
        measured: dict[str, float] = {}
        for reply in replies:
            for record in reply.content.metric_records.values():
                value = record.get(ENERGY_METRIC)
                if value is None:
                    continue
                if isinstance(value, int | float) and math.isfinite(value) and value >= 0:
                    measured[str(reply.metadata.src_node_id)] = float(value)
                else:
                    # A bad report must not stop the training: the model stands in.
                    _log.warning(
                        "lowcarb: node %s reported %s=%r, not a finite number >= 0 kWh; "
                        "its energy comes from the engine's model",
                        reply.metadata.src_node_id,
                        ENERGY_METRIC,
                        value,
                    )
        return measured

    def _finish(
        self, decision: Decision, replies: list[Message], metrics: MetricRecord | None
    ) -> dict[str, int | float]:
        selected = set(decision.selected)
        ok = [r for r in replies if not r.has_error() and str(r.metadata.src_node_id) in selected]
        trained = [str(r.metadata.src_node_id) for r in ok]
        measured = self._measured(ok)
        clock = self.engine.clock
        if self.simulated_time and isinstance(clock, ManualClock):
            # Simulated time: the round "lasts" its modelled duration, so the actual
            # intensity of its slot is known when it is completed.
            clock.set(max(clock.now(), decision.end))
        scalars = {
            k: float(v)
            for k, v in (metrics or {}).items()
            if isinstance(v, int | float) and math.isfinite(v)
        }
        record = self.engine.complete(
            decision, trained=trained, energy_kwh=measured or None, metrics=scalars
        )
        if self.simulated_time and isinstance(clock, ManualClock):
            clock.set(max(clock.now(), decision.start + self.engine.round_interval))
        modelled = [c for c in record.clients if c.energy_source != "measured"]
        modelled_kwh = sum(c.energy_kwh for c in modelled)
        total_kwh = record.energy_kwh
        failed = len(selected) - len(trained)
        self._log_round(decision.round, len(trained), failed, record.emissions_g, len(modelled))
        out: dict[str, int | float] = {
            "lowcarb-emissions-g": record.emissions_g,
            "lowcarb-energy-kwh": record.energy_kwh,
            "lowcarb-nodes": len(trained),
            "lowcarb-failed-nodes": failed,
            "lowcarb-measured-nodes": len(record.clients) - len(modelled),
            "lowcarb-modelled-nodes": len(modelled),
            "lowcarb-modelled-share": modelled_kwh / total_kwh if total_kwh else 0.0,
        }
        if record.random_g is not None:
            out["lowcarb-random-g"] = float(record.random_g)
        return out

    def _log_round(
        self, number: int, trained: int, failed: int, grams: float, modelled: int
    ) -> None:
        energy = (
            "measured by every node"
            if not modelled
            else f"modelled for {modelled} of {trained} nodes by the engine's EnergyModel"
        )
        _log.info(
            "lowcarb: round %d booked %d nodes%s: %.1f g CO2eq; energy %s",
            number,
            trained,
            f" ({failed} selected nodes did not train and keep their share)" if failed else "",
            grams,
            energy,
        )
        if modelled:
            self._once(
                "modelled",
                logging.WARNING,
                "lowcarb: nodes report no %r in their train metrics, so their energy and "
                "the carbon figures are modelled (%.3f kWh a node-round), not measured; "
                "see 'Energy and carbon records' in docs/flower.md",
                ENERGY_METRIC,
                self.engine.energy.energy_kwh(),
            )

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """The inner strategy's evaluation, sent where the evaluation mode says."""
        messages = list(self.strategy.configure_evaluate(server_round, arrays, config, grid))
        if self.evaluation == "inner" or not messages:
            return messages
        if self.evaluation == "train":
            nodes = list(self._trained)
        else:
            nodes = list(grid.get_node_ids())
            try:
                pick = select_placed(
                    self._evaluation_engine(),
                    self._candidates(grid, nodes),
                    len(_destinations(messages)),
                )
            except UnknownZoneError as exc:
                return self._unmanaged(server_round, messages, f"evaluation: {exc}")
            nodes = [int(i) for i in pick.selected]
        moved = readdress(messages, nodes)
        if moved is None:
            return self._unmanaged(
                server_round, messages, "the inner strategy evaluates each node differently"
            )
        return moved

    def _evaluation_engine(self) -> SelectionEngine:
        # Evaluation has its own fair shares and ledger run, so that it never shifts
        # the training's round count or participation.
        if self._evaluator is None:
            main = self.engine
            self._evaluator = SelectionEngine(
                main.provider,
                spec=main.spec.replace(run_id=f"{main.run_id}/evaluate"),
                ledger=main.ledger,
                clock=main.clock,
            )
        return self._evaluator

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        """Delegate to the inner strategy."""
        return self.strategy.aggregate_evaluate(server_round, replies)

    def summary(self) -> None:
        """Log the inner strategy's summary, then lowcarb's settings and where they came from."""
        self.strategy.summary()
        engine = self.engine
        _log.info("lowcarb: %s", _describe(engine))
        _log.info(
            "lowcarb: %s policy, evaluation=%s, waiting for %d nodes, %s time",
            engine.policy_name,
            self.evaluation,
            self.min_nodes,
            "simulated" if self.simulated_time else "real",
        )
        if engine.rounds_done:
            _log.warning(
                "lowcarb: ledger run %r already holds %d rounds; this training continues "
                "it (its fair shares and plan carry over)",
                engine.run_id,
                engine.rounds_done,
            )


def _describe(engine: SelectionEngine) -> str:
    """Which provider chain, ledger and run are in force, and where each came from."""
    settings = engine.spec.settings
    sources = dict(settings.sources) if settings is not None else {}

    def origin(key: str) -> str:
        if settings is None:
            return "given in code"
        return sources.get(key, "default")

    members = " > ".join(m.name for m in engine.provider.members)
    path = engine.ledger.path
    configured = engine.spec.ledger
    # A Ledger handed to the engine overrides the configured one.
    given = (configured is None) != (path == ":memory:") or (
        configured is not None and Path(path) != configured
    )
    return (
        f"provider chain {members} (provider from {origin('provider')}, fallback from "
        f"{origin('fallback')}); ledger {path if path != ':memory:' else 'in memory'} "
        f"(from {'code' if given else origin('ledger')}); run {engine.run_id!r} "
        f"({'continued' if engine.resumed else 'new'})"
    )
