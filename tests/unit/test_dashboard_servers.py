"""``lowcarb serve`` and ``lowcarb disco serve`` serve the dashboard at ``/``."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime

import pytest

from lowcarb import ManualClock, TaskEngines

with warnings.catch_warnings():
    # As in test_service: Starlette 1.x prefers the httpx2 fork for its test client.
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`", Warning)
    warnings.filterwarnings("ignore", "The anyio.abc.BlockingPortal alias", DeprecationWarning)
    from starlette.testclient import TestClient

STATE = "/dashboard/api/state"


@pytest.fixture(autouse=True)
def fake_figures(monkeypatch):
    fake = {"zones": "<svg/>", "cumulative": "<svg/>", "participation": "<svg/>"}
    monkeypatch.setattr("lowcarb.report._dashboard.render_plots", lambda snapshot, report: fake)


def test_lowcarb_serve_serves_the_page_behind_its_token(tmp_path):
    from lowcarb.adapters.service import ServiceConfig, create_app

    clock = ManualClock(datetime(2024, 6, 3, tzinfo=UTC))
    engines = TaskEngines(tmp_path, provider="default", clock=clock)
    auth = {"Authorization": "Bearer t0ken-for-tests"}
    with TestClient(create_app(engines, ServiceConfig(token="t0ken-for-tests"))) as api:
        body = {"task": "mnist", "k": 1, "candidates": [{"id": "a", "zone": "DE"}]}
        assert api.post("/v1/select", json=body, headers=auth).status_code == 200
        assert api.get("/").status_code == 200
        assert api.get(STATE).status_code == 401
        (task,) = api.get(STATE, headers=auth).json()["tasks"]
        assert task["task"] == "mnist" and task["origin"] == "mnist.ledger.sqlite"


def test_the_disco_bridge_serves_the_page(tmp_path):
    from _disco_harness import make_tasks

    from lowcarb.adapters.disco import create_app, load_tasks, open_engines
    from lowcarb.backends import DefaultProvider

    tasks = load_tasks(make_tasks(tmp_path, "v2"), "v2")
    engines = open_engines(tasks, DefaultProvider(), protocol="v2")
    with TestClient(create_app(tasks, engines, protocol="v2")) as bridge:
        assert "lowcarb dashboard" in bridge.get("/").text
        assert bridge.get(STATE).json()["tasks"] == []
        assert bridge.get("/tasks").status_code == 200
    engines.close()
