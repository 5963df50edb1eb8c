"""The carbon-aware strategy wrapper for Flower's Message API."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Literal

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from lowcarb import Client, Decision, ManualClock, SelectionEngine
from lowcarb.adapters.flower._client import ENERGY_METRIC
from lowcarb.adapters.flower._grid import SelectedGrid
from lowcarb.adapters.flower._zones import ZoneDirectory, ZoneMap
from lowcarb.exceptions import InvalidInputError, UnknownZoneError

__all__ = [
    "CarbonAwareStrategy",
    "EvaluationMode",
    "sampling_strategy",
    "select_placed",
    "wait_for_slot",
]

_log = logging.getLogger("flwr.lowcarb")

EvaluationMode = Literal["all", "train", "carbon"]
_MODES = ("all", "train", "carbon")
# A plan pauses only until its next slot; more pauses than this in one round means the
# clock does not move (e.g. a ManualClock nobody advances), not a real plan.
_MAX_PAUSES = 10_000
#: Said when no candidate has a zone the engine can cost (e.g. a simulation whose nodes
#: have no ``zone`` in their node_config): the round goes on without lowcarb.
NO_ZONE_HINT = (
    "give nodes a zone: flower-supernode --node-config 'zone=\"DE\"', "
    "answer_zone_query(app, fn) in simulation, or a server-side zones= mapping"
)


def sampling_strategy(strategy: Strategy) -> Strategy:
    """The strategy whose sampling knobs count.

    Wrappers such as Flower's differential-privacy strategies hold the strategy that
    samples in ``.strategy`` and have no ``fraction_train`` of their own.
    """
    while not hasattr(strategy, "fraction_train") and isinstance(
        getattr(strategy, "strategy", None), Strategy
    ):
        strategy = strategy.strategy  # type: ignore[attr-defined]
    return strategy


def select_placed(engine: SelectionEngine, candidates: list[Client], k: int) -> Decision:
    """``engine.select``, leaving out nodes an ``unknown_zone="error"`` engine rejects."""
    try:
        return engine.select(candidates, k)
    except UnknownZoneError as exc:
        # Leave the unplaced nodes out of this round rather than stopping the training.
        placed = [c for c in candidates if c.zone != exc.zone]
        _log.warning("lowcarb: %s; leaving its nodes out", exc)
        if not placed:
            raise
        return select_placed(engine, placed, min(k, len(placed)))


def wait_for_slot(engine: SelectionEngine, decision: Decision) -> None:
    """Wait until a paused decision's next slot, saying why.

    A ManualClock jumps; the system clock sleeps for real. The engine pauses only while
    its deadline leaves slack, so the deadline bounds every wait.
    """
    assert decision.wait_until is not None
    seconds = max(0.0, (decision.wait_until - engine.clock.now()).total_seconds())
    _log.info(
        "lowcarb: round %d waits %s until %s: %s",
        decision.round,
        timedelta(seconds=round(seconds)),
        f"{decision.wait_until:%Y-%m-%d %H:%M}Z",
        decision.reason,
    )
    engine.clock.sleep(seconds)


@contextmanager
def _exact_sampling(inner: Strategy, phase: str, k: int) -> Iterator[None]:
    """Make a FedAvg-family inner strategy take all ``k`` nodes it is shown.

    The inner strategy keeps its own message building and aggregation; only its
    sampling knobs (fraction, minimum nodes) are set for the duration of one call, then
    restored, so that its ``sample_nodes`` neither subsamples nor waits.
    """
    knobs = {
        f"fraction_{phase}": 1.0,
        f"min_{phase}_nodes": k,
        "min_available_nodes": k,
    }
    saved = {name: getattr(inner, name) for name in knobs if hasattr(inner, name)}
    try:
        for name in saved:
            setattr(inner, name, knobs[name])
        yield
    finally:
        for name, value in saved.items():
            setattr(inner, name, value)


class CarbonAwareStrategy(Strategy):
    """Runs any Flower strategy on the nodes lowcarb selects.

    Each training round the wrapper waits (once) for the expected nodes, learns the zone
    of new nodes, asks the engine which nodes train (and whether to wait first), then
    lets the inner strategy build the train messages for exactly those nodes and
    aggregate their replies. After the round it records the round in the engine's
    ledger and adds the carbon figures to the round's train metrics.

    How many nodes train: ``per_round``, else the inner strategy's own rule,
    ``max(int(n * fraction_train), min_train_nodes)`` over the ``n`` connected nodes.

    Args:
        strategy: The inner strategy (FedAvg, FedProx, FedAdam, ...), unchanged.
        engine: The selection engine (policy, provider, ledger, clock).
        per_round: Nodes per training round (default: the inner strategy's rule).
        evaluation: Who evaluates: ``train`` (this round's training nodes), ``all``
            (every connected node) or ``carbon`` (a separate carbon-aware selection
            sized by the inner strategy's ``fraction_evaluate``/``min_evaluate_nodes``).
            An inner ``fraction_evaluate`` of 0 turns client evaluation off.
        min_nodes: Nodes to wait for before the first selection (default: the inner
            strategy's ``min_available_nodes``).
        node_timeout: Longest wait for ``min_nodes`` (s); then the run goes on with the
            nodes connected, and says so.
        zones: Server-side ``node_id -> zone`` mapping or function.
        query_zones: Ask new nodes for their zone (see :func:`answer_zone_query`).
        use_location: Use the SuperNodes' registered ``lat,lon`` locations.
        query_timeout: Longest wait for zone replies (s).
        simulated_time: Advance the engine's clock by the round time instead of living in
            real time (default: True when the engine runs on a :class:`ManualClock`).
        poll_interval: Seconds between checks while waiting for nodes.

    Example:
        >>> engine = SelectionEngine(rounds=10)  # doctest: +SKIP
        >>> strategy = CarbonAwareStrategy(FedAvg(fraction_train=0.1), engine)  # doctest: +SKIP
        >>> strategy.start(grid=grid, initial_arrays=arrays, num_rounds=10)  # doctest: +SKIP
    """

    def __init__(
        self,
        strategy: Strategy,
        engine: SelectionEngine,
        *,
        per_round: int | None = None,
        evaluation: EvaluationMode = "train",
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
        if per_round is not None and (not isinstance(per_round, int) or per_round < 1):
            raise InvalidInputError(f"per_round must be a positive integer, got {per_round!r}")
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
        # The strategy that samples (below Flower's DP wrappers, for example).
        self._sampler = sampling_strategy(strategy)
        self.engine = engine
        self.per_round = per_round
        self.evaluation: EvaluationMode = evaluation
        self.min_nodes = min_nodes or int(getattr(self._sampler, "min_available_nodes", 1))
        self.node_timeout = float(node_timeout)
        self.simulated_time = (
            isinstance(engine.clock, ManualClock) if simulated_time is None else simulated_time
        )
        self.poll_interval = float(poll_interval)
        self.zones = ZoneDirectory(
            self._resolve,
            zones=zones,
            query=query_zones,
            use_location=use_location,
            timeout=query_timeout,
        )
        self.decisions: list[Decision] = []
        self._waited = False
        self._current: Decision | None = None
        self._trained: list[int] = []
        self._evaluator: SelectionEngine | None = None

    # --- selection -----------------------------------------------------------------

    def _resolve(self, text: str) -> str:
        return self.engine.provider.resolve(text).zone

    def _node_ids(self, grid: Grid) -> list[int]:
        nodes = list(grid.get_node_ids())
        if self._waited:
            return nodes
        self._waited = True
        # Flower's FedAvg samples from whoever has connected when round 1 starts; wait
        # for the expected population so that the first selection sees all of it.
        deadline = time.monotonic() + self.node_timeout
        while len(nodes) < self.min_nodes and time.monotonic() < deadline:
            _log.info("lowcarb: waiting for nodes: %d of %d connected", len(nodes), self.min_nodes)
            time.sleep(self.poll_interval)
            nodes = list(grid.get_node_ids())
        if len(nodes) < self.min_nodes:
            _log.warning(
                "lowcarb: only %d of %d nodes connected after %.0f s; selecting among them",
                len(nodes),
                self.min_nodes,
                self.node_timeout,
            )
        return nodes

    def _size(self, phase: str, available: int) -> int:
        if phase == "train" and self.per_round is not None:
            wanted = self.per_round
        else:
            fraction = float(getattr(self._sampler, f"fraction_{phase}", 1.0))
            floor = int(getattr(self._sampler, f"min_{phase}_nodes", 1))
            wanted = max(int(available * fraction), floor, 1)
        return min(wanted, available)

    def _candidates(self, grid: Grid, nodes: list[int]) -> list[Client]:
        zones = self.zones.lookup(grid, nodes)
        return [Client(str(node), zones[node]) for node in nodes]

    def _decide(self, grid: Grid, nodes: list[int]) -> Decision | None:
        """This round's decision, after any planned wait; None when no node is left."""
        for _ in range(_MAX_PAUSES):
            candidates = self._candidates(grid, nodes)
            decision = select_placed(self.engine, candidates, self._size("train", len(nodes)))
            if decision.run_now:
                return decision
            wait_for_slot(self.engine, decision)
            # Nodes may have come or gone during the wait: decide again among those here.
            nodes = list(grid.get_node_ids())
            if not nodes:
                return None
        raise InvalidInputError("the engine keeps pausing but its clock does not move")

    # --- Strategy interface ----------------------------------------------------------

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Select this round's nodes, then let the inner strategy configure them."""
        nodes = self._node_ids(grid)
        self._current, self._trained = None, []
        try:
            decision = self._decide(grid, nodes) if nodes else None
        except UnknownZoneError as exc:
            # No node can be costed, so there is nothing to choose by: train as if
            # lowcarb were not there rather than stopping the run.
            _log.warning(
                "lowcarb: round %d: %s; the inner strategy samples this round itself and "
                "lowcarb records nothing; %s",
                server_round,
                exc,
                NO_ZONE_HINT,
            )
            messages = list(self.strategy.configure_train(server_round, arrays, config, grid))
            self._trained = [m.metadata.dst_node_id for m in messages]
            return messages
        self._current = decision
        if decision is None:
            _log.warning("lowcarb: no nodes connected; round %d trains nobody", server_round)
            return []
        self.decisions.append(decision)
        chosen = [int(i) for i in decision.selected]
        _log.info(
            "lowcarb: round %d trains %d of %d nodes (%.1f g expected vs %.1f g random): %s",
            server_round,
            len(chosen),
            len(nodes),
            decision.expected_emissions_g,
            decision.random_expected_g,
            decision.reason,
        )
        with _exact_sampling(self._sampler, "train", len(chosen)):
            messages = list(
                self.strategy.configure_train(
                    server_round, arrays, config, SelectedGrid(grid, chosen)
                )
            )
        self._trained = chosen
        configured = {m.metadata.dst_node_id for m in messages}
        if configured != set(chosen):
            _log.warning(
                "lowcarb: the inner strategy configured %d of the %d selected nodes in "
                "round %d; the ledger counts the selection",
                len(configured & set(chosen)),
                len(chosen),
                server_round,
            )
        return messages

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Aggregate with the inner strategy; record the round's carbon."""
        replies = list(replies)
        arrays, metrics = self.strategy.aggregate_train(server_round, replies)
        decision, self._current = self._current, None
        if decision is None:
            return arrays, metrics
        carbon = self._finish(decision, replies, metrics)
        merged = MetricRecord(dict(metrics) if metrics is not None else {})
        for key, value in carbon.items():
            merged[key] = value
        return arrays, merged

    def _finish(
        self, decision: Decision, replies: list[Message], metrics: MetricRecord | None
    ) -> dict[str, int | float]:
        measured: dict[str, float] = {}
        for reply in replies:
            if reply.has_error():
                continue
            node = reply.metadata.src_node_id
            for metric_record in reply.content.metric_records.values():
                value = metric_record.get(ENERGY_METRIC)
                if value is None:
                    continue
                if isinstance(value, int | float) and math.isfinite(value) and value >= 0:
                    measured[str(node)] = float(value)
                else:
                    # A bad report must not stop the training: the model stands in.
                    _log.warning(
                        "lowcarb: node %s reported %s=%r, not a finite number >= 0 kWh; "
                        "its energy comes from the engine's model",
                        node,
                        ENERGY_METRIC,
                        value,
                    )
        measured = {cid: kwh for cid, kwh in measured.items() if cid in decision.selected}
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
        record = self.engine.complete(decision, energy_kwh=measured or None, metrics=scalars)
        if self.simulated_time and isinstance(clock, ManualClock):
            clock.set(max(clock.now(), decision.start + self.engine.round_interval))
        random_g = record.random_g
        out: dict[str, int | float] = {
            "lowcarb-emissions-g": record.emissions_g,
            "lowcarb-energy-kwh": record.energy_kwh,
            "lowcarb-nodes": len(decision.selected),
            "lowcarb-measured-nodes": len(measured),
        }
        if random_g is not None:
            out["lowcarb-random-g"] = float(random_g)
        return out

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Pick the evaluating nodes by the evaluation mode; the inner strategy builds."""
        if float(getattr(self._sampler, "fraction_evaluate", 1.0)) == 0.0:
            return []
        if self.evaluation == "train":
            nodes = list(self._trained)
        else:
            nodes = self._node_ids(grid)
            if self.evaluation == "carbon" and nodes:
                candidates = self._candidates(grid, nodes)
                try:
                    pick = select_placed(
                        self._evaluation_engine(), candidates, self._size("evaluate", len(nodes))
                    )
                except UnknownZoneError as exc:
                    _log.warning(
                        "lowcarb: round %d: %s; the inner strategy samples the evaluation",
                        server_round,
                        exc,
                    )
                    return list(
                        self.strategy.configure_evaluate(server_round, arrays, config, grid)
                    )
                nodes = [int(i) for i in pick.selected]
        if not nodes:
            return []
        with _exact_sampling(self._sampler, "evaluate", len(nodes)):
            return list(
                self.strategy.configure_evaluate(
                    server_round, arrays, config, SelectedGrid(grid, nodes)
                )
            )

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
        """Log the inner strategy's summary and lowcarb's settings."""
        self.strategy.summary()
        _log.info(
            "lowcarb: %s policy, evaluation=%s, waiting for %d nodes, %s time",
            self.engine.policy_name,
            self.evaluation,
            self.min_nodes,
            "simulated" if self.simulated_time else "real",
        )
        if self.engine.rounds_done:
            # A ledger file shared by several Flower runs under one run_id makes them one
            # training: fair shares and the plan carry over. Say so, it may be unintended.
            _log.warning(
                "lowcarb: ledger run %r already holds %d rounds; this training continues "
                "it (pass SelectionEngine(run_id=...) to start a new one)",
                self.engine.run_id,
                self.engine.rounds_done,
            )

    def __getattr__(self, name: str) -> Any:
        # Attributes the runtime or user code reads on the inner strategy (e.g.
        # weighted_by_key) stay reachable through the wrapper.
        if name == "strategy":
            raise AttributeError(name)
        return getattr(self.strategy, name)
