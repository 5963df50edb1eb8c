"""The dashboard's routes: the page, its assets, its state behind the token, in every server.

Figures are drawn by a stand-in here (matplotlib takes seconds); the browser tests in
tests/slow draw the real ones.
"""

from __future__ import annotations

import warnings
from datetime import UTC, datetime
from pathlib import Path

import pytest
from _report_ledgers import TASK, hospitals, write_run
from starlette.applications import Starlette

with warnings.catch_warnings():
    # As in test_service: Starlette 1.x prefers the httpx2 fork for its test client.
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`", Warning)
    warnings.filterwarnings("ignore", "The anyio.abc.BlockingPortal alias", DeprecationWarning)
    from starlette.testclient import TestClient

import lowcarb
from lowcarb import ConfigurationError, Ledger, ManualClock, TaskEngines
from lowcarb.report import PathSource, build_report, dashboard_app, dashboard_routes

STATE = "/dashboard/api/state"
FAKE = {"zones": "<svg>z</svg>", "cumulative": "<svg>c</svg>", "participation": "<svg>p</svg>"}


@pytest.fixture(autouse=True)
def fake_figures(monkeypatch):
    monkeypatch.setattr("lowcarb.report._dashboard.render_plots", lambda snapshot, report: FAKE)


@pytest.fixture(scope="module")
def ledger(tmp_path_factory):
    return write_run(tmp_path_factory.mktemp("dash") / "run.ledger.sqlite", rounds=6, planned=12)


def test_the_page_and_its_assets_come_from_lowcarb(ledger):
    client = TestClient(dashboard_app(PathSource(ledger)))
    page = client.get("/")
    assert page.status_code == 200 and "lowcarb dashboard" in page.text
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    assert 'src="dashboard/static/dashboard.js"' in page.text and "http" not in page.text
    assert (
        client.get("/dashboard/static/dashboard.js")
        .headers["content-type"]
        .startswith("text/javascript")
    )
    assert client.get("/dashboard/static/lowcarb.css").status_code == 200
    for name in ("dashboard.html", "..%2F_dashboard.py", "missing.js"):
        assert client.get(f"/dashboard/static/{name}").status_code == 404


def test_the_state_is_the_reports_account(ledger):
    client = TestClient(dashboard_app(PathSource(ledger)))
    state = client.get(STATE).json()
    (task,) = state["tasks"]
    report = build_report(PathSource(ledger).snapshot(TASK))
    assert task["account"]["emissions_g"] == report["sci"]["total_g"]
    assert task["account"]["random_g"] == report["counterfactual"]["random_g"]
    assert task["account"]["participation"] == report["participation"]
    assert task["figures"] == FAKE
    decision = task["decision"]
    assert decision["round"] == 6 and decision["completed"]
    assert len(decision["selected"]) == 5 and decision["deferred_count"] == 25
    turns = [c["next_turn"] for c in decision["deferred"]]
    planned = [t for t in turns if t is not None]
    # The plan's horizon holds some of the waiting clients' next turns, listed first.
    assert planned and planned == sorted(planned) == turns[: len(planned)]
    assert all(t > decision["start"] for t in planned)
    assert decision["signal"]["kind"] == "average" and decision["signal"]["fallback"] is None


def test_polls_get_304_until_the_ledger_changes(tmp_path):
    path = write_run(tmp_path / "live.ledger.sqlite", rounds=2, planned=6)
    client = TestClient(dashboard_app(PathSource(path)))
    first = client.get(STATE)
    etag = first.headers["etag"]
    again = client.get(STATE, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    write_run(path, rounds=3, planned=6)  # the training goes on
    later = client.get(STATE, headers={"If-None-Match": etag})
    assert later.status_code == 200 and later.headers["etag"] != etag
    assert later.json()["tasks"][0]["run"]["rounds"] == 3


def test_the_state_obeys_the_token(ledger):
    client = TestClient(dashboard_app(PathSource(ledger), token="s3cret-token"))
    assert client.get("/").status_code == 200  # the page holds no data
    refused = client.get(STATE)
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert client.get(STATE, headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = client.get(STATE, headers={"Authorization": "Bearer s3cret-token"})
    assert ok.status_code == 200 and "s3cret" not in ok.text


def test_every_task_of_a_state_folder_with_its_problems(tmp_path):
    write_run(tmp_path / f"{TASK}.ledger.sqlite", rounds=1)
    with Ledger(tmp_path / "fresh.ledger.sqlite") as raw:
        raw.open_run("fresh", config={"rounds": 10})
    (tmp_path / "broken.ledger.sqlite").write_bytes(b"this is no database" * 50)
    state = TestClient(dashboard_app(PathSource(tmp_path))).get(STATE).json()
    by_task = {t["task"]: t for t in state["tasks"]}
    assert set(by_task) == {"broken", "fresh", TASK}
    assert "not a lowcarb ledger" in by_task["broken"]["error"]
    assert str(tmp_path) not in by_task["broken"]["error"]
    assert by_task["fresh"]["empty"] and by_task["fresh"]["rounds_planned"] == 10
    assert by_task[TASK]["run"]["rounds"] == 1


def test_without_matplotlib_the_numbers_still_show(ledger, monkeypatch):
    def missing(snapshot, report):
        raise ConfigurationError("plots need matplotlib: pip install 'lowcarb[plot]'")

    monkeypatch.setattr("lowcarb.report._dashboard.render_plots", missing)
    (task,) = TestClient(dashboard_app(PathSource(ledger))).get(STATE).json()["tasks"]
    assert "lowcarb[plot]" in task["figures"]["missing"] and task["account"]["emissions_g"] > 0


def test_a_servers_tasks_in_memory():
    clock = ManualClock(datetime(2024, 6, 3, tzinfo=UTC))
    engines = TaskEngines(provider="default", clock=clock)
    engines.select("mnist", hospitals(8), 2)
    app = Starlette(routes=dashboard_routes(engines))
    state = TestClient(app).get(STATE).json()
    (task,) = state["tasks"]
    assert task["task"] == "mnist" and task["origin"] == "memory"
    assert task["decision"]["round"] == 1 and not task["decision"]["completed"]
    engines.close()


def test_a_path_without_ledgers_is_refused_at_once(tmp_path):
    with pytest.raises(lowcarb.InvalidInputError, match="no ledger file or state folder"):
        PathSource(Path(tmp_path) / "nothing")


def test_a_pause_says_until_when_and_why(tmp_path):
    from datetime import UTC, datetime, timedelta

    clock = ManualClock(datetime(2024, 6, 3, 18, tzinfo=UTC))
    path = tmp_path / "p.ledger.sqlite"
    with lowcarb.SelectionEngine(
        "default", rounds=3, deadline=timedelta(hours=24), run_id="t", ledger=path, clock=clock
    ) as engine:
        decision = engine.select(hospitals(3), k=1)
    assert not decision.run_now  # the evening is dirtier than tomorrow morning
    (task,) = TestClient(dashboard_app(PathSource(path))).get(STATE).json()["tasks"]
    assert task["empty"] and task["pause"]["wait_until"] == decision.wait_until.isoformat()
    assert task["pause"]["reason"].startswith("paused: cleaner slots come before the deadline")
