"""The legacy API in a real Flower simulation: start_simulation with CarbonAwareClientManager."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

# Runs in its own interpreter: Ray and the deprecated legacy entry point warn, and the
# test suite turns warnings into errors.
SCRIPT = textwrap.dedent(
    """
    import json, sys
    from datetime import UTC, datetime, timedelta
    import numpy as np
    import flwr as fl
    from lowcarb import Ledger, ManualClock, SelectionEngine
    from lowcarb.backends import DefaultProvider
    from lowcarb.adapters.flower import CarbonAwareClientManager

    ZONES = ["BR-CS", "CA-ON", "ZA", "AU-NSW", "BR-CS", "ZA"]

    class Node(fl.client.NumPyClient):
        def __init__(self, pid):
            self.pid = pid
        def get_properties(self, config):
            return {"zone": ZONES[self.pid]}
        def get_parameters(self, config):
            return [np.zeros(2)]
        def fit(self, parameters, config):
            if ZONES[self.pid] == "AU-NSW":
                raise RuntimeError("out of memory")  # Flower counts it among the failures
            return [p + 1.0 for p in parameters], 10, {}
        def evaluate(self, parameters, config):
            return float(parameters[0][0]), 10, {}

    def client_fn(context):
        return Node(int(context.node_config["partition-id"])).to_client()

    clock = ManualClock(datetime(2025, 3, 3, tzinfo=UTC))
    engine = SelectionEngine(DefaultProvider(clock=clock), ledger=Ledger(), rounds=3,
                             clock=clock, round_interval=timedelta(hours=1))
    manager = CarbonAwareClientManager(engine)
    # No initial parameters and client-side evaluation: Flower's server samples a client
    # for the first and FedAvg samples for the second; neither is a training round.
    strategy = fl.server.strategy.FedAvg(
        fraction_fit=0.34, min_fit_clients=2, fraction_evaluate=0.34, min_evaluate_clients=2,
        min_available_clients=6)
    fl.simulation.start_simulation(
        client_fn=client_fn, num_clients=6, client_manager=manager, strategy=strategy,
        config=fl.server.ServerConfig(num_rounds=3), client_resources={"num_cpus": 1},
        ray_init_args={"num_cpus": 2, "include_dashboard": False, "logging_level": "ERROR"})
    manager.close_round()
    print(json.dumps({"selected": [list(d.selected) for d in manager.decisions],
                      "zones": manager.zones, "rounds_done": engine.rounds_done,
                      "booked": [[c.client_id for c in r.clients] for r in engine.records()]}))
    """
)


def test_start_simulation_samples_through_the_engine(tmp_path: Path) -> None:
    script = tmp_path / "legacy.py"
    script.write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=240, check=False
    )
    assert done.returncode == 0, done.stderr[-4000:]
    doc = json.loads(done.stdout.strip().splitlines()[-1])
    # 3 Flower rounds are 3 engine rounds: the initial-parameter and evaluation samples
    # are not (they made 7 of 3 before).
    assert doc["rounds_done"] == 3 and len(doc["selected"]) == 3
    assert "Requesting initial parameters from one random client" in done.stdout + done.stderr
    assert Counter(doc["zones"].values()) == Counter(
        ["BR-CS", "CA-ON", "ZA", "AU-NSW", "BR-CS", "ZA"]
    )
    assert [len(r) for r in doc["selected"]] == [2, 2, 2]
    # The client whose fit raised is not booked (it keeps its share, so it is owed a
    # round); the others are, each once: 3 rounds x 2 of 6 clients, whatever the zone.
    failing = {cid for cid, zone in doc["zones"].items() if zone == "AU-NSW"}
    assert failing & {c for r in doc["selected"] for c in r}
    for selected, booked in zip(doc["selected"], doc["booked"], strict=True):
        assert set(booked) == set(selected) - failing
    assert set(Counter(c for r in doc["booked"] for c in r).values()) == {1}
    assert "1 failures" in done.stdout + done.stderr
