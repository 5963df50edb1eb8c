"""A real Flower deployment on 127.0.0.1: one SuperLink, four SuperNodes in four zones.

The quickstart App is submitted with ``flwr run``; its ServerApp writes what it selected
to a file. Every process the test starts is stopped by pid (with its descendants) at the
end, within a bounded time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

import pytest
from _processes import free_port, stop, wait_for_port

from lowcarb import Client, Ledger, ManualClock, SelectionEngine
from lowcarb.backends import DefaultProvider

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not sys.platform.startswith("linux"), reason="reads /proc to stop processes"
    ),
]

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "examples" / "flower-quickstart"
BIN = Path(sys.executable).parent
# Two clean grids and two coal-heavy ones; one node each.
ZONES = ["BR-CS", "CA-ON", "ZA", "AU-NSW"]
ROUNDS = 2
START = datetime(2025, 3, 3, tzinfo=UTC)  # the App's fixed start (pyproject defaults)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    home = tmp_path_factory.mktemp("flwr-home")
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "FLWR_HOME": str(home),
        "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
    }
    port = free_port()
    procs: list[subprocess.Popen[bytes]] = []
    files: list[IO[bytes]] = []
    logs = home / "logs"
    logs.mkdir()

    def start(name: str, *args: str) -> None:
        out = (logs / f"{name}.log").open("wb")
        files.append(out)
        procs.append(
            subprocess.Popen(
                [str(BIN / args[0]), *args[1:]],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=home,
            )
        )

    try:
        start(
            "superlink",
            "flower-superlink",
            "--insecure",
            "--port",
            str(port),
            "--disable-runtime-dependency-installation",
        )
        wait_for_port(port, 60)
        for i, zone in enumerate(ZONES):
            start(
                f"supernode-{i}",
                "flower-supernode",
                "--insecure",
                "--superlink",
                f"127.0.0.1:{port}",
                "--port",
                str(free_port()),
                "--node-config",
                f'zone="{zone}" partition-id={i} num-partitions={len(ZONES)}',
            )
        (home / "config.toml").write_text(
            f'[superlink]\ndefault = "test"\n\n[superlink.test]\naddress = "127.0.0.1:{port}"\ninsecure = true\n'
        )
        result = home / "result.json"
        overrides = (
            f"num-server-rounds={ROUNDS} nodes-per-round=1 num-nodes={len(ZONES)} "
            f'result-file="{result}"'
        )
        submitted = subprocess.run(
            [
                str(BIN / "flwr"),
                "run",
                str(APP),
                "test",
                "--run-config",
                overrides,
                "--format",
                "json",
            ],
            env=env,
            cwd=home,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert submitted.returncode == 0, submitted.stdout + submitted.stderr
        assert json.loads(submitted.stdout)["success"] is True
        end = time.monotonic() + 300
        while not result.exists() and time.monotonic() < end:
            assert all(p.poll() is None for p in procs), "a Flower process exited early"
            time.sleep(1)
        if not result.exists():
            tails = {f.name: f.read_text(errors="replace")[-1500:] for f in logs.iterdir()}
            pytest.fail(f"no result after 300 s; logs: {tails}")
        time.sleep(0.5)  # the ServerApp writes the file in one call; let it close
        yield json.loads(result.read_text())
    finally:
        stop(procs)
        for f in files:
            f.close()
    assert all(p.poll() is not None for p in procs)


def test_zones_come_from_the_supernodes_node_config(deployment: dict) -> None:
    assert Counter(deployment["zones"].values()) == Counter(ZONES)


def test_selections_follow_the_zones(deployment: dict) -> None:
    zone_of = {int(node): zone for node, zone in deployment["zones"].items()}
    selected = deployment["selected"]
    assert [len(r) for r in selected] == [1] * ROUNDS
    # The same engine on the same candidates and trace makes the same choice ...
    clock = ManualClock(START)
    engine = SelectionEngine(
        DefaultProvider(clock=clock),
        ledger=Ledger(),
        rounds=ROUNDS,
        round_interval=timedelta(hours=1),
        clock=clock,
    )
    clients = [Client(node, zone) for node, zone in deployment["zones"].items()]
    for chosen in selected:
        decision = engine.select(clients, 1)
        assert [int(i) for i in decision.selected] == chosen
        clock.set(decision.end)
        engine.complete(decision)
        clock.set(decision.start + timedelta(hours=1))
    # ... which trains the nodes on the clean grids, each once (fair shares of 0.5).
    assert sorted(zone_of[r[0]] for r in selected) == ["BR-CS", "CA-ON"]
    assert deployment["emissions_kg"] < deployment["random_kg"]
