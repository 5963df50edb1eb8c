"""Run the quickstart App in Flower's simulation runtime and write what happened as JSON.

Example:
    python examples/flower-quickstart/run_simulation.py --nodes 100 --rounds 10 \
        --policy lowcarb --json lowcarb.json

The JSON holds ``policy``, ``rounds``, ``nodes``, ``selected`` (node ids per round),
``zones`` (node id -> zone), ``emissions_kg`` (actual, on the replayed trace),
``random_kg`` (expected emissions of random selection on the same rounds) and
``accuracy`` (test accuracy of the final model).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Ray's workers import the ClientApp's module: make the App importable for them too.
sys.path.insert(0, str(HERE))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))

from flwr.app import Context  # noqa: E402
from flwr.serverapp import Grid, ServerApp  # noqa: E402
from flwr.simulation import run_simulation  # noqa: E402
from lowcarb_quickstart.client_app import app as client_app  # noqa: E402
from lowcarb_quickstart.server_app import Outcome, run  # noqa: E402

POLICIES = ("random", "lowcarb", "greedy", "lowcarb-2022")


def simulate(nodes: int, rounds: int, policy: str, per_round: int = 10, cpus: int = 2) -> dict:
    """One simulated training run; returns the JSON document."""
    outcomes: list[Outcome] = []
    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        config = {
            "num-server-rounds": rounds,
            "num-nodes": nodes,
            "nodes-per-round": min(per_round, nodes),
            "policy": policy,
        }
        outcomes.append(run(grid, context, config))

    run_simulation(
        server_app=server_app,
        client_app=client_app,
        num_supernodes=nodes,
        backend_config={
            "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
            "init_args": {"num_cpus": cpus, "include_dashboard": False, "logging_level": "ERROR"},
        },
    )
    if not outcomes:
        raise SystemExit("the simulation ended without a result (see Flower's log above)")
    out = outcomes[0]
    return {
        "policy": policy,
        "rounds": rounds,
        "nodes": nodes,
        "selected": out.selected,
        "zones": {str(node): zone for node, zone in out.zones.items()},
        "emissions_kg": out.emissions_kg,
        "random_kg": out.random_kg,
        "accuracy": out.accuracy,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=100, help="simulated nodes (default 100)")
    parser.add_argument("--rounds", type=int, default=10, help="training rounds (default 10)")
    parser.add_argument("--per-round", type=int, default=10, help="nodes per round (default 10)")
    parser.add_argument("--policy", choices=POLICIES, default="lowcarb")
    parser.add_argument("--json", type=Path, help="write the result here")
    parser.add_argument("--quiet", action="store_true", help="only warnings from Flower")
    args = parser.parse_args(argv)
    if args.nodes < 1 or args.rounds < 1 or args.per_round < 1:
        parser.error("--nodes, --rounds and --per-round must be positive")
    if args.quiet:
        logging.getLogger("flwr").setLevel(logging.WARNING)
    doc = simulate(args.nodes, args.rounds, args.policy, args.per_round)
    text = json.dumps(doc, indent=2)
    if args.json:
        args.json.write_text(text + "\n")
    print(
        f"{args.policy}: {doc['emissions_kg']:.3f} kg CO2eq "
        f"(random expectation {doc['random_kg']:.3f} kg), accuracy {doc['accuracy']:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
