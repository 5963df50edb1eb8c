"""A real Flower simulation (Ray): the quickstart App with 20 nodes, lowcarb vs random."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lowcarb import Client, Ledger, ManualClock, SelectionEngine
from lowcarb.backends import DefaultProvider
from lowcarb.simulation import DEFAULT_ZONES

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "examples" / "flower-quickstart" / "run_simulation.py"
NODES, ROUNDS, PER_ROUND = 20, 6, 2
START = datetime(2025, 3, 3, tzinfo=UTC)  # the App's fixed start (pyproject defaults)
ZONES = DEFAULT_ZONES  # the App spreads its nodes over the seed scenario's 14 zones


def simulate(policy: str, out: Path) -> dict:
    path = out / f"{policy}.json"
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
        "--quiet",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    out = tmp_path_factory.mktemp("flower-sim")
    return {policy: simulate(policy, out) for policy in ("lowcarb", "random")}


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
