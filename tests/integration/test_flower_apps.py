"""Flower's settings keep their meaning with lowcarb, checked in real Flower runs.

A Flower App written like Flower's quickstart-numpy, with lowcarb added as the docs say
(tests/integration/apps/numpy_lowcarb), is submitted with ``flwr run`` to a local
SuperLink in simulation mode (10 simulated SuperNodes, Ray). One run executes every
scenario of the App's ``scenarios.py`` on the live grid, a second run repeats the docs'
quickstart. The SuperLink's environment holds a ``LOWCARB_SRC`` that is not lowcarb's
(a user's own script variable). Every process started is stopped by pid at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from _processes import free_port, stop, wait_for_port

from lowcarb import Ledger

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not sys.platform.startswith("linux"), reason="reads /proc to stop processes"
    ),
]

APP = Path(__file__).resolve().parent / "apps" / "numpy_lowcarb"
BIN = Path(sys.executable).parent
NODES = 10
ZONES = ["DE", "GB", "FR", "PL", "SE", "NO", "ES", "IT", "ZA", "AU-NSW"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("flwr-sim")
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "FLWR_HOME": str(home),
        "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
        "LOWCARB_SRC": "./src",  # someone else's variable under our prefix
    }
    port = free_port()
    logs = home / "superlink.log"
    out: IO[bytes] = logs.open("wb")
    link = subprocess.Popen(
        [
            str(BIN / "flower-superlink"),
            "--insecure",
            "--simulation",
            "--port",
            str(port),
            "--disable-runtime-dependency-installation",
        ],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        cwd=home,  # the SuperLink's directory, not the App's
    )
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "sim"\n\n[superlink.sim]\naddress = "127.0.0.1:{port}"\n'
        "insecure = true\n"
    )

    def submit(scenario: str) -> dict[str, Any]:
        result = home / f"{scenario}-{time.monotonic_ns()}.json"
        done = subprocess.run(
            [
                str(BIN / "flwr"),
                "run",
                str(APP),
                "sim",
                "--run-config",
                f'scenario="{scenario}" result-file="{result}"',
                "--federation-config",
                f"num-supernodes={NODES}",
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
        assert done.returncode == 0, done.stdout + done.stderr
        assert json.loads(done.stdout)["success"] is True, done.stdout
        end = time.monotonic() + 240
        while not result.exists() and time.monotonic() < end:
            text = logs.read_text(errors="replace")
            assert link.poll() is None and "Could not start run" not in text, text[-3000:]
            time.sleep(0.5)
        if not result.exists():
            pytest.fail(f"no result after 240 s: {logs.read_text(errors='replace')[-3000:]}")
        time.sleep(0.3)  # written in one call; let it close
        return dict(json.loads(result.read_text()))

    try:
        wait_for_port(port, 60)
        first = submit("all")
        second = submit("quickstart")
        yield {**first, "again": second["quickstart"]}
    finally:
        stop([link])
        out.close()
    assert link.poll() is not None


def node_zone(run: dict[str, Any]) -> dict[str, str]:
    return dict(run["zones"])


# -- 11: the docs' lines work in simulation ---------------------------------------------


def test_the_docs_lines_give_simulated_nodes_their_zones(runs: dict[str, Any]) -> None:
    quick = runs["quickstart"]
    assert sorted(quick["zones"].values()) == sorted(ZONES)  # from lowcarb.zones
    # lowcarb chose every round (3 of 10 nodes, FedAvg's fraction_train=0.3) and booked it.
    assert quick["train"] == [3, 3, 3]
    assert [len(r) for r in quick["booked"]] == [3, 3, 3]
    assert not any("records nothing" in line for line in quick["logs"])


# -- 8: the App's own configuration under flwr run ----------------------------------------


def test_the_apps_lowcarb_toml_and_run_config_are_read(runs: dict[str, Any]) -> None:
    quick = runs["quickstart"]
    # The ledger named in the App's lowcarb.toml, relative to the installed App (not to
    # the SuperLink's directory), and the seed from [tool.flwr.app.config] (5) over the
    # lowcarb.toml's 11.
    ledger = Path(quick["ledger"])
    assert ledger.name == "lowcarb-ledger.db" and ledger.parent.parent.name == "apps"
    assert quick["sources"]["ledger"] == "lowcarb.toml"
    assert quick["seed"] == 5
    assert quick["sources"]["providers.default.seed"] == "run config"
    assert quick["policy"] == "lowcarb"
    # Said at the start of the run: the chain, the ledger and where each came from.
    start = next(line for line in quick["logs"] if "provider chain" in line)
    assert "provider chain default (provider from default" in start
    assert f"ledger {ledger} (from lowcarb.toml)" in start
    assert f"run '{quick['run_id']}' (new)" in start


# -- 9: environment --------------------------------------------------------------------


def test_an_unknown_lowcarb_variable_warns_and_training_goes_on(runs: dict[str, Any]) -> None:
    quick = runs["quickstart"]
    warning = next(line for line in quick["logs"] if "LOWCARB_SRC" in line)
    assert warning.startswith("WARNING lowcarb: ignoring the environment variable LOWCARB_SRC")
    assert "LOWCARB_PROVIDER" in warning  # names what lowcarb reads
    assert len(quick["booked"]) == 3


def test_a_bad_value_of_a_known_variable_fails_before_anything_is_sent(
    runs: dict[str, Any],
) -> None:
    env = runs["environment"]
    assert env["LOWCARB_SRC"] == "./src"
    assert env["error"].startswith("UnknownProviderError") and "electricitymap" in env["error"]
    assert env["sent"] == 0


# -- 10: one ledger run per Flower run ---------------------------------------------------


def test_a_second_run_of_the_app_is_a_new_ledger_run(runs: dict[str, Any]) -> None:
    first, again = runs["quickstart"], runs["again"]
    assert again["ledger"] == first["ledger"]  # the same file, from the App's lowcarb.toml
    assert again["run_id"] != first["run_id"] and not again["resumed"]
    assert first["run_id"].startswith("flower/lowcarbtests/numpy-lowcarb/")
    with Ledger(first["ledger"]) as ledger:
        assert ledger.rounds_done(first["run_id"]) == 3
        assert ledger.rounds_done(again["run_id"]) == 3


# -- 1, 2, 3: Flower's settings keep their meaning --------------------------------------


def test_fraction_train_zero_skips_training_as_in_flower(runs: dict[str, Any]) -> None:
    plain, lowcarb = runs["fraction_zero"]["plain"], runs["fraction_zero"]["lowcarb"]
    for run in (plain, lowcarb):
        assert run["train"] == []
        assert run["evaluate"] == [NODES, NODES]
        assert run["model_moved"] is False
    assert lowcarb["booked"] == []


def test_the_inner_strategy_decides_how_many_nodes_train(runs: dict[str, Any]) -> None:
    count = runs["count"]
    # max(int(10 x 0.5), min_train_nodes=3) = 5, with and without lowcarb.
    assert count["plain"]["train"] == count["lowcarb"]["train"] == [5, 5]
    assert [len(r) for r in count["lowcarb"]["booked"]] == [5, 5]


def test_min_train_nodes_above_the_federation_waits_as_in_flower(runs: dict[str, Any]) -> None:
    waits = runs["waits"]
    assert waits["waiting"] is True and waits["train"] == []
    assert any(
        "Waiting for nodes to connect: 10 connected (minimum required: 15)" in line
        for line in waits["logs"]
    )
    assert waits["ended"] == ["stopped"] and waits["booked"] == 0


def test_evaluation_stays_the_inner_strategys(runs: dict[str, Any]) -> None:
    plain, lowcarb = runs["evaluation"]["plain"], runs["evaluation"]["lowcarb"]
    assert plain["evaluate"] == lowcarb["evaluate"] == [NODES, NODES]  # fraction_evaluate=1.0
    assert plain["evaluated_rounds"] == lowcarb["evaluated_rounds"] == [1, 2]


# -- 4, 5: the ledger books what ran ------------------------------------------------------


def test_fedxgb_cyclic_is_booked_one_node_a_round(runs: dict[str, Any]) -> None:
    cyclic = runs["cyclic"]
    assert cyclic["train"] == [1, 1, 1]
    assert [len(r) for r in cyclic["booked"]] == [1, 1, 1]
    assert cyclic["model_moved"] is True


def test_a_dp_wrapped_fedavg_composes(runs: dict[str, Any]) -> None:
    private = runs["private"]
    assert private["train"] == [3, 3]  # the wrapped FedAvg's fraction_train=0.3 of 10
    assert [len(r) for r in private["booked"]] == [3, 3]
    assert private["model_moved"] is True
    assert any("clipping" in line.lower() for line in private["logs"])  # DP did its part


def test_a_node_whose_training_fails_is_not_booked_and_keeps_its_share(
    runs: dict[str, Any],
) -> None:
    failure = runs["failure"]
    partition = failure["partitions"]
    failing = {node for node, p in partition.items() if p % 2 == 0}
    rounds_with_failures = 0
    for number, (selected, booked) in enumerate(
        zip(failure["selected"], failure["booked"], strict=True), start=1
    ):
        assert set(booked) == set(selected) - failing
        metrics = failure["metrics"][str(number)]
        assert metrics["lowcarb-nodes"] == len(booked)
        assert metrics["lowcarb-failed-nodes"] == len(set(selected) & failing)
        rounds_with_failures += bool(set(selected) & failing)
    assert rounds_with_failures, "a failing node was selected"
    assert all(failure["participation"][node] == 0 for node in failing)
    # Flower saw the failures too.
    assert any("results and" in line and "0 failures" not in line for line in failure["logs"])


def test_nodes_left_out_for_their_zone_count_as_never_selected(runs: dict[str, Any]) -> None:
    unknown = runs["unknown_zone"]
    booked = {node for r in unknown["booked"] for node in r}
    assert not booked & set(unknown["nowhere"])
    assert all(unknown["participation"][node] == 0 for node in unknown["nowhere"])
    assert unknown["never"] >= 3


# -- 7, 12: saying what the figures are -------------------------------------------------


def test_modelled_energy_is_said_in_metrics_and_log(runs: dict[str, Any]) -> None:
    modelled, measured = runs["energy"]["modelled"], runs["energy"]["measured"]
    assert modelled["metrics"]["lowcarb-modelled-share"] == 1.0
    assert modelled["metrics"]["lowcarb-measured-nodes"] == 0
    assert any("modelled for 3 of 3 nodes" in line for line in modelled["logs"])
    assert measured["metrics"]["lowcarb-modelled-share"] == 0.0
    assert measured["metrics"]["lowcarb-measured-nodes"] == 3
    assert measured["metrics"]["lowcarb-energy-kwh"] == pytest.approx(3 * 0.002)


def test_settings_that_leave_nothing_to_choose_are_said(runs: dict[str, Any]) -> None:
    everyone = runs["everyone"]
    assert everyone["train"] == [NODES, NODES]
    assert sum("cannot choose which nodes train" in line for line in everyone["logs"]) == 1
    even = runs["count"]["lowcarb"]["logs"]
    assert any("2 rounds x 5 nodes share evenly among 10 nodes" in line for line in even)
