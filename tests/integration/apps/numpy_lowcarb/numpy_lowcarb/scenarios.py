"""What the integration tests run inside the ServerApp, each on the live Flower grid.

Every scenario returns what happened as JSON-friendly data: the messages sent (through a
recording view of the grid), what lowcarb booked, and what lowcarb and Flower logged.
``quickstart`` is the App exactly as docs/flower.md adds lowcarb to it; the others
compare a strategy with and without the wrapper, or check what the ledger books.
"""

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message
from flwr.serverapp import Grid
from flwr.serverapp.strategy import (
    DifferentialPrivacyServerSideFixedClipping,
    FedAvg,
    FedXgbCyclic,
    Strategy,
)

from lowcarb import SelectionEngine
from lowcarb.adapters.flower import CarbonAwareStrategy, engine_for_run


class _Capture(logging.Handler):
    """Keeps what lowcarb and Flower log, to report it with each scenario."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.name}: {record.getMessage()}")


LOGS = _Capture()
for _name in ("flwr", "lowcarb"):
    logging.getLogger(_name).addHandler(LOGS)
    logging.getLogger(_name).setLevel(logging.INFO)


class Stopped(Exception):
    """Raised into a strategy left waiting, to end the scenario."""


class Recorder(Grid):
    """The live grid, recording every message sent; ``stop`` ends a waiting strategy."""

    def __init__(self, base: Grid) -> None:
        self._base = base
        self.sent: list[tuple[str, int, int]] = []  # (type, node, exchange)
        self.exchanges = 0
        self.stop = False

    def set_run(self, run: Any) -> None:
        self._base.set_run(run)

    @property
    def run(self) -> Any:
        return self._base.run

    def create_message(self, *args: Any, **kwargs: Any) -> Message:
        return self._base.create_message(*args, **kwargs)

    def get_node_ids(self) -> Iterable[int]:
        if self.stop:
            raise Stopped
        return self._base.get_node_ids()

    def get_nodes(self) -> Iterable[Any]:
        return self._base.get_nodes()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self._base.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self._base.pull_messages(message_ids)

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        messages = list(messages)
        self.exchanges += 1
        self.sent += [
            (m.metadata.message_type, m.metadata.dst_node_id, self.exchanges) for m in messages
        ]
        return self._base.send_and_receive(messages, timeout=timeout)

    def per_exchange(self, kind: str) -> list[int]:
        """Messages of ``kind`` in each exchange that sent some."""
        counts = Counter(exchange for t, _, exchange in self.sent if t == kind)
        return [counts[e] for e in sorted(counts)]


def _arrays() -> ArrayRecord:
    return ArrayRecord([np.zeros(3)])


def _engine(grid: Grid, context: Context, rounds: int, **fields: Any) -> SelectionEngine:
    # Each scenario its own in-memory ledger, so that they do not share fair shares.
    return engine_for_run(context, grid, rounds=rounds, ledger=None, **fields)


def _run(
    strategy: Strategy, grid: Grid, rounds: int, config: dict[str, Any] | None = None
) -> tuple[Any, Recorder, list[str]]:
    view, mark = Recorder(grid), len(LOGS.lines)
    result = strategy.start(
        grid=view,
        initial_arrays=_arrays(),
        num_rounds=rounds,
        train_config=ConfigRecord(config or {}),
    )
    return result, view, LOGS.lines[mark:]


def _booked(strategy: CarbonAwareStrategy) -> list[list[str]]:
    return [[c.client_id for c in r.clients] for r in strategy.engine.records()]


def _partitions(context: Context, strategy: CarbonAwareStrategy) -> dict[str, int]:
    """Node id -> partition id, through the zone each node reported (one per partition)."""
    zones = [z.strip() for z in str(context.run_config["lowcarb.zones"]).split(",")]
    return {str(node): zones.index(zone) for node, zone in strategy.zones.known.items()}


def quickstart(grid: Grid, context: Context) -> dict[str, Any]:
    """The App with lowcarb added as the docs say (engine from the Flower run)."""
    mark = len(LOGS.lines)
    num_rounds = int(context.run_config["num-server-rounds"])
    strategy = FedAvg(
        fraction_train=float(context.run_config["fraction-train"]), min_available_nodes=10
    )
    strategy = CarbonAwareStrategy(strategy, engine_for_run(context, grid, rounds=num_rounds))
    result, view, _ = _run(strategy, grid, num_rounds)
    engine = strategy.engine
    settings = engine.spec.settings
    out = {
        "run_id": engine.run_id,
        "resumed": engine.resumed,
        "ledger": str(engine.ledger.path),
        "sources": dict(settings.sources) if settings else {},
        "policy": engine.policy_name,
        "seed": getattr(engine.provider.members[0], "seed", None),
        "zones": {str(k): v for k, v in strategy.zones.known.items()},
        "booked": _booked(strategy),
        "train": view.per_exchange("train"),
        "evaluate": view.per_exchange("evaluate"),
        "metrics": {str(r): dict(m) for r, m in result.train_metrics_clientapp.items()},
        "logs": LOGS.lines[mark:],
    }
    engine.close()
    return out


def _with_and_without(
    make: Callable[[], Strategy], grid: Grid, context: Context, rounds: int
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("plain", "lowcarb"):
        strategy = make()
        if name == "lowcarb":
            strategy = CarbonAwareStrategy(strategy, _engine(grid, context, rounds))
        result, view, logs = _run(strategy, grid, rounds)
        out[name] = {
            "train": view.per_exchange("train"),
            "evaluate": view.per_exchange("evaluate"),
            "model_moved": len(result.arrays) > 0,
            "evaluated_rounds": sorted(result.evaluate_metrics_clientapp),
            "logs": logs,
        }
        if isinstance(strategy, CarbonAwareStrategy):
            out[name]["booked"] = _booked(strategy)
    return out


def fraction_zero(grid: Grid, context: Context) -> dict[str, Any]:
    """fraction_train=0.0: Flower skips training and evaluates only."""
    return _with_and_without(lambda: FedAvg(fraction_train=0.0), grid, context, 2)


def count(grid: Grid, context: Context) -> dict[str, Any]:
    """How many train: fraction 0.5 with min_train_nodes 3 of 10 nodes."""
    return _with_and_without(
        lambda: FedAvg(fraction_train=0.5, min_train_nodes=3, fraction_evaluate=0.0),
        grid,
        context,
        2,
    )


def evaluation(grid: Grid, context: Context) -> dict[str, Any]:
    """FedAvg's default fraction_evaluate=1.0: every node evaluates."""
    return _with_and_without(lambda: FedAvg(fraction_train=0.3), grid, context, 2)


def waits(grid: Grid, context: Context) -> dict[str, Any]:
    """min_train_nodes=15 with 10 nodes: Flower waits for more nodes."""
    inner = FedAvg(min_train_nodes=15, fraction_evaluate=0.0)
    strategy = CarbonAwareStrategy(inner, _engine(grid, context, 1))
    view, mark = Recorder(grid), len(LOGS.lines)
    ended: list[str] = []

    def train() -> None:
        try:
            strategy.start(grid=view, initial_arrays=_arrays(), num_rounds=1)
            ended.append("finished")
        except Stopped:
            ended.append("stopped")

    thread = threading.Thread(target=train, daemon=True)
    thread.start()
    time.sleep(4.0)
    out = {"waiting": thread.is_alive(), "train": view.per_exchange("train")}
    view.stop = True
    thread.join(timeout=10)
    out.update(ended=ended, logs=LOGS.lines[mark:], booked=strategy.engine.rounds_done)
    return out


def everyone(grid: Grid, context: Context) -> dict[str, Any]:
    """Flower's default fraction_train=1.0: lowcarb has nothing to choose."""
    strategy = CarbonAwareStrategy(FedAvg(fraction_evaluate=0.0), _engine(grid, context, 2))
    _, view, logs = _run(strategy, grid, 2)
    return {"train": view.per_exchange("train"), "logs": logs}


def cyclic(grid: Grid, context: Context) -> dict[str, Any]:
    """FedXgbCyclic trains one node a round."""
    strategy = CarbonAwareStrategy(FedXgbCyclic(fraction_evaluate=0.0), _engine(grid, context, 3))
    result, view, _ = _run(strategy, grid, 3)
    return {
        "train": view.per_exchange("train"),
        "booked": _booked(strategy),
        "grams": [r.emissions_g for r in strategy.engine.records()],
        "model_moved": len(result.arrays) > 0,
    }


def private(grid: Grid, context: Context) -> dict[str, Any]:
    """FedAvg inside Flower's server-side DP wrapper, inside lowcarb's."""
    dp = DifferentialPrivacyServerSideFixedClipping(
        FedAvg(fraction_train=0.3, fraction_evaluate=0.0),
        noise_multiplier=0.1,
        clipping_norm=10.0,
        num_sampled_clients=3,
    )
    strategy = CarbonAwareStrategy(dp, _engine(grid, context, 2))
    result, view, logs = _run(strategy, grid, 2)
    return {
        "train": view.per_exchange("train"),
        "booked": _booked(strategy),
        "model_moved": len(result.arrays) > 0,
        "logs": logs,
    }


def failure(grid: Grid, context: Context) -> dict[str, Any]:
    """Even partitions fail in training; the round goes on with the others."""
    strategy = CarbonAwareStrategy(
        FedAvg(fraction_train=0.5, fraction_evaluate=0.0), _engine(grid, context, 3)
    )
    result, _, logs = _run(strategy, grid, 3, {"fail-partitions": "0,2,4,6,8"})
    return {
        "partitions": _partitions(context, strategy),
        "selected": [list(d.selected) for d in strategy.decisions],
        "booked": _booked(strategy),
        "participation": strategy.engine.participation,
        "metrics": {str(r): dict(m) for r, m in result.train_metrics_clientapp.items()},
        "random_g": [r.random_g for r in strategy.engine.records()],
        "logs": logs,
    }


def unknown_zone(grid: Grid, context: Context) -> dict[str, Any]:
    """An engine that rejects unknown zones, three nodes in a zone nobody serves."""
    nowhere = sorted(grid.get_node_ids())[:3]
    strategy = CarbonAwareStrategy(
        FedAvg(fraction_train=0.3, fraction_evaluate=0.0),
        _engine(grid, context, 4, unknown_zone="error"),
        zones=lambda node: "XX-NOWHERE" if node in nowhere else None,
    )
    _run(strategy, grid, 4)
    summary = strategy.engine.summary()
    return {
        "nowhere": [str(n) for n in nowhere],
        "booked": _booked(strategy),
        "participation": strategy.engine.participation,
        "never": summary.participation["never"],
    }


def energy(grid: Grid, context: Context) -> dict[str, Any]:
    """Energy from the model, then as the nodes report it."""
    out: dict[str, Any] = {}
    for name, config in (("modelled", {}), ("measured", {"energy-kwh": 0.002})):
        strategy = CarbonAwareStrategy(
            FedAvg(fraction_train=0.3, fraction_evaluate=0.0), _engine(grid, context, 1)
        )
        result, _, logs = _run(strategy, grid, 1, config)
        out[name] = {"metrics": dict(result.train_metrics_clientapp[1]), "logs": logs}
    return out


def environment(grid: Grid, context: Context) -> dict[str, Any]:
    """A misspelled value of a known LOWCARB_* variable fails before anything is sent."""
    view = Recorder(grid)
    os.environ["LOWCARB_PROVIDER"] = "electricitymap"
    try:
        engine_for_run(context, view, rounds=1)
        error = ""
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    finally:
        del os.environ["LOWCARB_PROVIDER"]
    return {"error": error, "sent": len(view.sent), "LOWCARB_SRC": os.environ.get("LOWCARB_SRC")}


SCENARIOS: dict[str, Callable[[Grid, Context], dict[str, Any]]] = {
    "quickstart": quickstart,
    "fraction_zero": fraction_zero,
    "count": count,
    "evaluation": evaluation,
    "waits": waits,
    "everyone": everyone,
    "cyclic": cyclic,
    "private": private,
    "failure": failure,
    "unknown_zone": unknown_zone,
    "energy": energy,
    "environment": environment,
}
