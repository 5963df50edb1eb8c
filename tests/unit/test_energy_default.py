"""One energy model, one default: a client-round costs the same in every integration.

The seed scenario once emitted 9.97 kg through Flower and the service (30-minute rounds,
0.0352 kWh a client-round) and 20.06 kg in ``lowcarb simulate`` (hour-long rounds, 0.0702
kWh). The default now lives in :mod:`lowcarb._energy` only; these tests read each
integration's client-round and compare. The Flower App's own figure is checked inside a
real Flower run (tests/integration/test_flower_simulation.py).
"""

from __future__ import annotations

import warnings
from datetime import timedelta

import numpy as np
import pytest

from lowcarb import (
    DEFAULT_DEVICE_POWER_W,
    DEFAULT_ROUND_TIME,
    EnergyModel,
    EngineSpec,
    SelectionEngine,
)
from lowcarb.cli import main

#: 70 W for one hour plus 20 MB at 0.01 kWh/GB: the figure the docs state.
CLIENT_ROUND_KWH = 0.0702


def test_the_default_client_round_is_an_hour_at_70_w() -> None:
    assert timedelta(hours=1) == DEFAULT_ROUND_TIME
    assert DEFAULT_DEVICE_POWER_W == 70.0
    assert EnergyModel().energy_kwh() == CLIENT_ROUND_KWH  # exact: no 0.07020000000000001
    spec = EngineSpec()
    assert spec.energy.round_time == spec.round_interval == DEFAULT_ROUND_TIME


def test_the_engine_and_simulate_cost_a_client_round_alike() -> None:
    from lowcarb.simulation import Scenario
    from lowcarb.simulation._run import _clients

    scenario = Scenario()  # the seed scenario
    assert scenario.slot == DEFAULT_ROUND_TIME
    clients = _clients(scenario, np.random.default_rng(0), scenario.slot)
    assert {c.energy_kwh for c in clients} == {CLIENT_ROUND_KWH}
    engine = SelectionEngine("default", rounds=2)
    decision = engine.select([{"id": "a", "zone": "DE"}, {"id": "b", "zone": "GB"}], k=1)
    assert {c.energy_kwh for c in decision.clients} == {CLIENT_ROUND_KWH}
    engine.close()


def test_the_disco_bridge_uses_the_cores_device_power() -> None:
    from lowcarb.adapters.disco._taskdir import TaskSettings

    assert TaskSettings().device_power_w == DEFAULT_DEVICE_POWER_W


@pytest.mark.parametrize(
    ("args", "kwh"), [((), CLIENT_ROUND_KWH), (("--round-minutes", "30"), 0.0352)]
)
def test_lowcarb_serve_costs_a_client_round_for_its_round_length(
    monkeypatch: pytest.MonkeyPatch, tmp_path, args: tuple[str, ...], kwh: float
) -> None:
    """``lowcarb serve`` answers with the core's default, and --round-minutes sets both."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`", Warning)
        warnings.filterwarnings("ignore", "The anyio.abc.BlockingPortal alias", DeprecationWarning)
        from starlette.testclient import TestClient
    import lowcarb.adapters.service as service

    answers: list[dict] = []

    def fake_serve(app, config, **_: object) -> None:  # instead of uvicorn
        with TestClient(app) as api:
            body = {"task": "t", "k": 1, "candidates": [{"id": "a", "zone": "DE"}]}
            answers.append(api.post("/v1/select", json=body).json())

    monkeypatch.setattr(service, "serve", fake_serve)
    monkeypatch.chdir(tmp_path)
    assert main(["--now", "2025-03-03T00:00Z", "serve", "-p", "default", *args]) == 0
    (answer,) = answers
    assert answer["clients"][0]["energy_kwh"] == pytest.approx(kwh)
    assert answer["expected_energy_kwh"] == pytest.approx(kwh)
