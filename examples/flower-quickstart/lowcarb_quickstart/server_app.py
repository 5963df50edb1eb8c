"""ServerApp: FedAvg, with lowcarb choosing which nodes train each round."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from flwr.app import ArrayRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg
from lowcarb.adapters.flower import CarbonAwareStrategy
from lowcarb.backends import DefaultProvider

from lowcarb import Ledger, ManualClock, SelectionEngine
from lowcarb_quickstart.task import from_record, task, to_record

DEFAULTS: dict[str, Any] = {
    "num-server-rounds": 10,
    "nodes-per-round": 10,
    "num-nodes": 100,
    "policy": "lowcarb",
    "start": "2025-03-03T00:00:00Z",
    "round-minutes": 60,
    "result-file": "",
}


@dataclass
class Outcome:
    """What a run produced (read by run_simulation.py)."""

    selected: list[list[int]] = field(default_factory=list)
    zones: dict[int, str] = field(default_factory=dict)
    emissions_kg: float = 0.0
    random_kg: float = 0.0
    accuracy: float = 0.0


def run(grid: Grid, config: dict[str, Any]) -> Outcome:
    """Train for ``num-server-rounds`` rounds of ``nodes-per-round`` carbon-aware nodes."""
    cfg = {**DEFAULTS, **config}
    rounds, nodes = int(cfg["num-server-rounds"]), int(cfg["num-nodes"])
    data = task(nodes)
    start = str(cfg["start"])
    # A fixed start replays simulated time on the offline default provider; without it
    # the engine runs on the wall clock with the configured provider.
    clock = ManualClock(datetime.fromisoformat(start)) if start else None
    engine = SelectionEngine(
        DefaultProvider(clock=clock) if clock else None,
        ledger=Ledger(),
        policy=str(cfg["policy"]),
        rounds=rounds,
        round_interval=timedelta(minutes=int(cfg["round-minutes"])),
        clock=clock,
    )
    strategy = CarbonAwareStrategy(
        FedAvg(fraction_evaluate=0.0, min_available_nodes=nodes),
        engine,
        per_round=int(cfg["nodes-per-round"]),
    )

    def central_accuracy(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        return MetricRecord({"accuracy": data.evaluate(from_record(arrays))})

    result = strategy.start(
        grid=grid,
        initial_arrays=to_record(data.new_model()),
        num_rounds=rounds,
        evaluate_fn=central_accuracy,
    )
    summary = engine.summary()
    final = result.evaluate_metrics_serverapp.get(rounds)
    engine.close()
    return Outcome(
        selected=[[int(i) for i in d.selected] for d in strategy.decisions],
        zones=strategy.zones.known,
        emissions_kg=summary.emissions_g / 1000,
        random_kg=(summary.random_g or 0.0) / 1000,
        accuracy=float(final["accuracy"]) if final is not None else float("nan"),
    )


app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Entry point for ``flwr run``: settings from ``[tool.flwr.app.config]``."""
    outcome = run(grid, dict(context.run_config))
    path = str(context.run_config.get("result-file", ""))
    if path:
        Path(path).write_text(json.dumps(asdict(outcome), indent=2) + "\n")
    print(
        f"lowcarb: {outcome.emissions_kg:.3f} kg CO2eq "
        f"(random selection: {outcome.random_kg:.3f} kg), accuracy {outcome.accuracy:.3f}"
    )
