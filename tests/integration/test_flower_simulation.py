"""A real Flower simulation (Ray): the quickstart App with 20 nodes, lowcarb vs random.

``examples/flower-quickstart/run_simulation.py`` submits the App with ``flwr run --stream``
to a simulation SuperLink of its own (Flower's ``run_simulation`` is deprecated); one run
replays a CSV of real-looking intensities through the ``file`` provider.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lowcarb import Client, Ledger, ManualClock, SelectionEngine
from lowcarb.backends import DefaultProvider
from lowcarb.simulation import DEFAULT_ZONES, Scenario

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "examples" / "flower-quickstart" / "run_simulation.py"
NODES, ROUNDS, PER_ROUND = 20, 6, 2
START = datetime(2025, 3, 3, tzinfo=UTC)  # the App's fixed start (pyproject defaults)
ZONES = DEFAULT_ZONES  # the App spreads its nodes over the seed scenario's 14 zones


def simulate(policy: str, out: Path, *extra: str) -> dict:
    path = out / f"{policy}{len(extra)}.json"
    cmd = [
        sys.executable,
        str(SCRIPT),
        "--nodes",
        str(NODES),
        "--rounds",
        str(ROUNDS),
        "--per-round",
        str(PER_ROUND),
        "--policy",
        policy,
        "--json",
        str(path),
        *extra,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return {**json.loads(path.read_text()), "output": done.stdout + done.stderr}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    out = tmp_path_factory.mktemp("flower-sim")
    # The lowcarb run streams Flower's log (what a user sees); the random one is --quiet.
    return {"lowcarb": simulate("lowcarb", out), "random": simulate("random", out, "--quiet")}


def test_the_run_is_seen_and_no_deprecation_warning_prints(runs: dict[str, dict]) -> None:
    shown = runs["lowcarb"]["output"]
    assert "Successfully started run" in shown
    assert "lowcarb: round 1 booked 2 nodes" in shown  # the run's own log, streamed
    assert "deprecat" not in shown.lower(), shown[-3000:]


def test_a_node_round_costs_what_it_costs_in_lowcarb_simulate(runs: dict[str, dict]) -> None:
    """One energy model: the App's node-round is `lowcarb simulate`'s client-round."""
    scenario = Scenario()  # the seed scenario: the App's zones, start and hourly rounds
    from lowcarb.simulation._run import _clients

    (per_client,) = {
        c.energy_kwh for c in _clients(scenario, np.random.default_rng(0), scenario.slot)
    }
    assert per_client == pytest.approx(0.0702)
    for doc in runs.values():
        assert doc["energy_kwh"] == pytest.approx(ROUNDS * PER_ROUND * per_client)


def test_real_data_is_replayed_through_the_file_provider(tmp_path: Path) -> None:
    """--data replays a CSV (the file provider) from --start: every node-round is costed
    at its zone's value in the file, and nothing synthetic stands in."""
    start = datetime(2024, 3, 18, tzinfo=UTC)
    values = {zone: 50.0 + 40.0 * i for i, zone in enumerate(ZONES)}
    hours = pd.date_range(start - timedelta(days=15), start + timedelta(days=2), freq="h")
    frame = pd.DataFrame({z: np.full(len(hours), v) for z, v in values.items()}, index=hours)
    frame.index = frame.index.strftime("%Y-%m-%dT%H:%M:%SZ")
    frame.index.name = "datetime_utc"
    data = tmp_path / "measured.csv"
    frame.to_csv(data)
    doc = simulate(
        "lowcarb", tmp_path, "--quiet", "--data", str(data), "--start", "2024-03-18T00:00:00Z"
    )
    zone_of = {int(node): zone for node, zone in doc["zones"].items()}
    expected_g = sum(0.0702 * values[zone_of[n]] for r in doc["selected"] for n in r)
    assert doc["emissions_kg"] == pytest.approx(expected_g / 1000)
    # lowcarb chose the cleanest nodes it could while keeping shares: nobody twice.
    assert max(Counter(n for r in doc["selected"] for n in r).values()) == 1


def test_every_round_trains_the_requested_nodes(runs: dict[str, dict]) -> None:
    for doc in runs.values():
        assert doc["nodes"] == NODES and doc["rounds"] == ROUNDS
        assert len(doc["selected"]) == ROUNDS
        assert all(len(set(r)) == PER_ROUND for r in doc["selected"])
        assert {n for r in doc["selected"] for n in r} <= {int(n) for n in doc["zones"]}
        assert 0.0 < doc["accuracy"] <= 1.0
    # lowcarb keeps fair shares: 6 rounds x 2 of 20 nodes is 0.6 each, so nobody twice.
    counts = Counter(n for r in runs["lowcarb"]["selected"] for n in r)
    assert max(counts.values()) == 1


def test_zones_came_from_the_nodes(runs: dict[str, dict]) -> None:
    # Partition i is in zone i mod 14 (the ClientApp's zone query answer).
    expected = Counter(ZONES[i % len(ZONES)] for i in range(NODES))
    for doc in runs.values():
        assert Counter(doc["zones"].values()) == expected


@pytest.mark.parametrize("policy", ["lowcarb", "random"])
def test_selection_is_the_engines_on_the_same_trace(runs: dict[str, dict], policy: str) -> None:
    doc = runs[policy]
    clock = ManualClock(START)
    engine = SelectionEngine(
        DefaultProvider(clock=clock),
        ledger=Ledger(),
        policy=policy,
        rounds=ROUNDS,
        round_interval=timedelta(hours=1),
        clock=clock,
    )
    # The same candidates in the same order as the strategy saw them.
    clients = [Client(node, zone) for node, zone in doc["zones"].items()]
    grams = 0.0
    for selected in doc["selected"]:
        decision = engine.select(clients, PER_ROUND)
        assert {int(i) for i in decision.selected} == set(selected)
        clock.set(decision.end)
        engine.complete(decision)
        clock.set(decision.start + timedelta(hours=1))
    grams = engine.summary().emissions_g
    assert doc["emissions_kg"] == pytest.approx(grams / 1000)


def test_lowcarb_emits_less_than_random_on_the_same_trace(runs: dict[str, dict]) -> None:
    # Random selection's expectation on the same rounds of the same trace (K x the mean
    # client-round); one random draw can be lucky, its expectation cannot.
    assert runs["lowcarb"]["emissions_kg"] < 0.9 * runs["lowcarb"]["random_kg"]
    assert runs["random"]["random_kg"] == pytest.approx(runs["lowcarb"]["random_kg"])
