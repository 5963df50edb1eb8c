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
from lowcarb.adapters.flower import CarbonAwareStrategy, engine_for_run

from lowcarb import EnergyModel, ManualClock
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
    energy_kwh: float = 0.0
    accuracy: float = 0.0


def run(grid: Grid, context: Context, config: dict[str, Any] | None = None) -> Outcome:
    """Train for ``num-server-rounds`` rounds of ``nodes-per-round`` carbon-aware nodes."""
    cfg = {**DEFAULTS, **dict(context.run_config), **(config or {})}
    rounds, nodes = int(cfg["num-server-rounds"]), int(cfg["num-nodes"])
    per_round = min(int(cfg["nodes-per-round"]), nodes)
    data = task(nodes)
    start = str(cfg["start"])
    # A fixed start replays simulated time (deterministic runs); without it the engine
    # lives on the wall clock.
    clock = ManualClock(datetime.fromisoformat(start)) if start else None
    round_time = timedelta(minutes=int(cfg["round-minutes"]))
    engine = engine_for_run(
        context,
        grid,
        rounds=rounds,
        clock=clock,
        policy=str(cfg["policy"]),
        round_interval=round_time,
        # A node trains through its round (70 W for an hour by default), as in
        # `lowcarb simulate`.
        energy=EnergyModel(round_time=round_time),
    )
    # Flower's own sampling settings say how many nodes train; lowcarb chooses which.
    strategy = CarbonAwareStrategy(
        FedAvg(
            fraction_train=per_round / nodes,
            min_train_nodes=per_round,
            fraction_evaluate=0.0,
            min_available_nodes=nodes,
        ),
        engine,
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
        energy_kwh=summary.energy_kwh,
        accuracy=float(final["accuracy"]) if final is not None else float("nan"),
    )


app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Entry point for ``flwr run``: settings from ``[tool.flwr.app.config]``."""
    outcome = run(grid, context)
    path = str(context.run_config.get("result-file", ""))
    if path:
        Path(path).write_text(json.dumps(asdict(outcome), indent=2) + "\n")
    print(
        f"lowcarb: {outcome.emissions_kg:.3f} kg CO2eq "
        f"(random selection: {outcome.random_kg:.3f} kg), {outcome.energy_kwh:.2f} kWh "
        f"modelled, accuracy {outcome.accuracy:.3f}"
    )
