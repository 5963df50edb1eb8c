"""The selection service: routes, validation, limits, auth, restarts, and `lowcarb serve`."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lowcarb import ManualClock, TaskEngines
from lowcarb._provider import Capabilities, CarbonProvider
from lowcarb.adapters.service import ServiceConfig, create_app
from lowcarb.adapters.service._schema import CANDIDATE, RequestError
from lowcarb.backends import DefaultProvider
from lowcarb.cli import main
from lowcarb.cli._app import is_loopback
from lowcarb.cli._serve import read_token
from lowcarb.exceptions import (
    ConfigurationError,
    InvalidInputError,
    ProviderUnavailableError,
)

with warnings.catch_warnings():
    # Starlette 1.x prefers the httpx2 fork for its test client (httpx behaves the same),
    # and its test client still names an anyio alias that anyio 4.16 deprecates.
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`", UserWarning)
    warnings.filterwarnings("ignore", "The anyio.abc.BlockingPortal alias", DeprecationWarning)
    from starlette.testclient import TestClient

START = datetime(2025, 3, 3, 9, tzinfo=UTC)
TOKEN = "s3cret-token-for-tests"
CANDIDATES = [
    {"id": "berlin", "zone": "DE"},
    {"id": "london", "location": "51.5,-0.12"},
    {"id": "singapore", "zone": "SG"},
    {"id": "joburg", "zone": "ZA", "energy_kwh": 0.05},
    {"id": "seoul", "zone": "KR", "utility": 3},
    {"id": "tokyo", "location": "aws:ap-northeast-1"},
]


def _select(task: str = "mnist", k: int = 2, **extra: Any) -> dict[str, Any]:
    return {"task": task, "k": k, "candidates": CANDIDATES, **extra}


def _engines(state_dir: Path | None, clock: ManualClock, **kw: Any) -> TaskEngines:
    provider = kw.pop("provider", None) or DefaultProvider(clock=clock)
    kw.setdefault("rounds", 6)
    return TaskEngines(state_dir, provider=provider, clock=clock, **kw)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def api(clock: ManualClock) -> Iterator[TestClient]:
    with TestClient(create_app(_engines(None, clock))) as client:
        yield client


def _schema_check(document: dict[str, Any], name: str, body: Any) -> None:
    """Validate ``body`` against a component schema of the OpenAPI document."""
    schema = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    jsonschema.Draft202012Validator(schema).validate(body)


# -- select ---------------------------------------------------------------------------------


def test_select_answers_the_decision_with_its_provenance(api: TestClient) -> None:
    answer = api.post("/v1/select", json=_select(k=2))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    ids = [c["id"] for c in CANDIDATES]
    assert body["task"] == "mnist" and body["round"] == 1 and not body["replayed"]
    assert body["run_now"] and body["wait_until"] is None
    assert len(body["selected"]) == 2
    assert sorted(body["selected"] + body["deferred"]) == sorted(ids)
    zones = {c["id"]: c["zone"] for c in body["clients"]}
    assert zones["london"] == "GB" and zones["tokyo"] == "JP-TK"
    assert set(body["intensities"]) == set(zones.values())
    chosen = [c for c in body["clients"] if c["selected"]]
    assert body["expected_emissions_g"] == pytest.approx(sum(c["emissions_g"] for c in chosen))
    assert next(c for c in body["clients"] if c["id"] == "joburg")["energy_kwh"] == 0.05
    assert body["provenance"]["provider"] == "default"
    assert body["provenance"]["fallback"] is None
    resolved = {r["id"]: r for r in body["resolved"]}
    assert resolved["london"]["method"] == "nearest-zone"
    assert resolved["tokyo"]["method"] == "cloud-region"
    assert "berlin" not in resolved
    _schema_check(api.get("/v1/openapi.json").json(), "SelectResponse", body)


def test_rounds_advance_and_participation_stays_fair(api: TestClient, clock: ManualClock) -> None:
    for expected in range(1, 7):
        body = api.post("/v1/select", json=_select(k=2, round=expected)).json()
        assert body["round"] == expected
        clock.advance(timedelta(hours=1))
    task = api.get("/v1/tasks/mnist").json()
    assert task["rounds_done"] == 6
    assert sorted(task["participation"].values()) == [2] * 6


def test_a_retried_round_is_replayed_and_a_future_round_is_a_conflict(api: TestClient) -> None:
    first = api.post("/v1/select", json=_select(round=1)).json()
    again = api.post("/v1/select", json=_select(round=1)).json()
    assert again["replayed"] and again["selected"] == first["selected"]
    assert api.get("/v1/tasks/mnist").json()["rounds_done"] == 1
    ahead = api.post("/v1/select", json=_select(round=3))
    assert ahead.status_code == 409
    assert ahead.json()["field"] == "round"
    assert "decides round 2 next" in ahead.json()["error"]


def test_an_unknown_zone_falls_back_to_the_mean_by_default(api: TestClient) -> None:
    candidates = [*CANDIDATES[:3], {"id": "mars", "zone": "MARS-1"}]
    body = api.post("/v1/select", json={"task": "t", "k": 1, "candidates": candidates}).json()
    assert "MARS-1" in body["provenance"]["fallback"]
    assert body["provenance"]["sources"]["MARS-1"] == "mean of other zones"
    assert "mean of the other zones" in body["reason"]


UNSERVED = [
    ("zone", "MARS-1"),
    ("zone", "XX"),
    ("location", "-48.9,-123.4"),  # the South Pacific: no grid
]


@pytest.mark.parametrize(("kind", "where"), UNSERVED)
def test_an_unserved_zone_or_location_is_a_422_naming_it_when_the_service_refuses_them(
    clock: ManualClock, kind: str, where: str
) -> None:
    app = create_app(_engines(None, clock, unknown_zone="error"))
    candidates = [*CANDIDATES[:3], {"id": "far", kind: where}]
    with TestClient(app) as api:
        answer = api.post("/v1/select", json={"task": "t", "k": 1, "candidates": candidates})
        zones = api.get("/v1/zones")
    assert answer.status_code == 422
    assert answer.json()["field"] == f"candidates[3].{kind}"
    error = answer.json()["error"]
    assert where in error
    # An HTTP caller is pointed at the route that lists the zones, not at a CLI command.
    assert "GET /v1/zones" in error and "lowcarb zones" not in error
    assert zones.status_code == 200


@pytest.mark.parametrize(("kind", "where"), UNSERVED)
def test_an_unserved_zone_or_location_is_costed_at_the_mean_by_default(
    api: TestClient, kind: str, where: str
) -> None:
    candidates = [*CANDIDATES[:3], {"id": "far", kind: where}]
    answer = api.post("/v1/select", json={"task": "t", "k": 1, "candidates": candidates})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    far = next(c for c in body["clients"] if c["id"] == "far")
    known = [c["intensity_g_per_kwh"] for c in body["clients"] if c["id"] != "far"]
    # The mean of the zones that have a signal, and the answer says so.
    assert far["intensity_g_per_kwh"] == pytest.approx(sum(known) / len(known), rel=1e-6)
    assert body["provenance"]["sources"][far["zone"]] == "mean of other zones"
    assert f"no signal for {where}" in body["reason"]


class DeadProvider(CarbonProvider):
    """Serves zones but fails every call, like an API that is down."""

    name = "dead"

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities("average", "lifecycle", timedelta(hours=1), timedelta(hours=24))

    def served_zones(self) -> list[str]:
        return ["DE", "GB", "SG", "ZA", "KR", "JP-TK"]

    def _fail(self, *args: object) -> Any:
        raise ProviderUnavailableError("connection refused", provider=self.name)

    _latest = _history = _forecast = _fail


def test_a_provider_outage_still_gets_an_answer_from_the_fallbacks(clock: ManualClock) -> None:
    app = create_app(_engines(None, clock, provider=DeadProvider(clock=clock)))
    with TestClient(app) as api:
        body = api.post("/v1/select", json=_select(k=2)).json()
        forecast = api.get("/v1/forecast", params={"zone": "DE", "hours": 3}).json()
    assert len(body["selected"]) == 2
    assert body["provenance"]["fallback"].startswith("default answered")
    assert "dead failed" in body["provenance"]["notes"][0]
    assert forecast["provenance"]["sources"]["DE"].startswith("default (fallback)")
    assert len(forecast["data"]["DE"]) == 3


# -- validation -----------------------------------------------------------------------------


def _with(candidate: dict[str, Any], at: int = 0) -> list[dict[str, Any]]:
    out = [dict(c) for c in CANDIDATES]
    out[at] = candidate
    return out


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"k": 1, "candidates": CANDIDATES}, "task"),
        ({"task": "../etc", "k": 1, "candidates": CANDIDATES}, "task"),
        ({"task": 7, "k": 1, "candidates": CANDIDATES}, "task"),
        ({"task": "t", "candidates": CANDIDATES}, "k"),
        ({"task": "t", "k": 0, "candidates": CANDIDATES}, "k"),
        ({"task": "t", "k": "2", "candidates": CANDIDATES}, "k"),
        ({"task": "t", "k": 1.5, "candidates": CANDIDATES}, "k"),
        ({"task": "t", "k": True, "candidates": CANDIDATES}, "k"),
        ({"task": "t", "k": 7, "candidates": CANDIDATES}, "k"),
        ({"task": "t", "k": 1, "round": 0, "candidates": CANDIDATES}, "round"),
        ({"task": "t", "k": 1}, "candidates"),
        ({"task": "t", "k": 1, "candidates": []}, "candidates"),
        ({"task": "t", "k": 1, "candidates": {"id": "a"}}, "candidates"),
        ({"task": "t", "k": 1, "candidates": CANDIDATES, "kk": 1}, "kk"),
        ({"task": "t", "k": 1, "candidates": _with({"zone": "DE"})}, "candidates[0].id"),
        ({"task": "t", "k": 1, "candidates": _with({"id": "a"})}, "candidates[0].zone"),
        (
            {"task": "t", "k": 1, "candidates": _with({"id": "a", "zone": "DE", "location": "DE"})},
            "candidates[0].location",
        ),
        (
            {"task": "t", "k": 1, "candidates": _with({"id": "a", "zone": "DE", "power": 5}, 2)},
            "candidates[2].power",
        ),
        (
            {"task": "t", "k": 1, "candidates": _with({"id": "a", "zone": "DE", "energy_kwh": -1})},
            "candidates[0].energy_kwh",
        ),
        (
            {"task": "t", "k": 1, "candidates": _with({"id": "a", "zone": "DE", "utility": "x"})},
            "candidates[0].utility",
        ),
        (
            {"task": "t", "k": 1, "candidates": _with({"id": "a", "zone": " "})},
            "candidates[0].zone",
        ),
        ({"task": "t", "k": 1, "candidates": _with({"id": 5, "zone": "DE"})}, "candidates[0].id"),
        (
            {"task": "t", "k": 1, "candidates": _with({"id": "a", "zone": None})},
            "candidates[0].zone",
        ),
        (
            {"task": "t", "k": 1, "candidates": _with({"id": "london", "zone": "DE"})},
            "candidates[1].id",
        ),
        (
            {"task": "t", "k": 1, "candidates": _with({"id": "a", "location": "95,0"})},
            "candidates[0].location",
        ),
        ([1, 2], None),
    ],
)
def test_invalid_select_requests_name_the_field(api: TestClient, body: Any, field: str) -> None:
    answer = api.post("/v1/select", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == field
    assert answer.json()["error"]
    _schema_check(api.get("/v1/openapi.json").json(), "Error", answer.json())
    assert api.get("/v1/tasks/t").status_code == 404  # nothing was recorded


@pytest.mark.parametrize(
    ("raw", "status", "field"),
    [
        (b'{"task": "t", "k": 1,', 400, None),
        (b'{"task": "t", "k": NaN, "candidates": []}', 400, None),
        (b'{"task": "t", "task": "u", "k": 1, "candidates": []}', 400, "task"),
        (b"\xff\xfe{}", 400, None),
        (b"[" * 100_000 + b"]" * 100_000, 400, None),
        (b'{"task": "t", "k": ' + b"1" * 5000 + b', "candidates": []}', 400, None),
    ],
)
def test_malformed_bodies_are_refused(api: TestClient, raw: bytes, status: int, field: Any) -> None:
    assert len(raw) <= ServiceConfig().max_body_bytes
    answer = api.post("/v1/select", content=raw, headers={"content-type": "application/json"})
    assert answer.status_code == status
    assert answer.json()["field"] == field


@pytest.mark.slow
def test_the_cli_and_the_service_package_import_no_http_framework() -> None:
    code = (
        "import sys, lowcarb.cli, lowcarb._tasks, lowcarb.adapters.service; "
        "bad = [m for m in ('starlette', 'uvicorn') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_body_that_is_not_json_is_415(api: TestClient) -> None:
    answer = api.post("/v1/select", content=b"task=t", headers={"content-type": "text/plain"})
    assert answer.status_code == 415


def test_request_size_is_limited(clock: ManualClock) -> None:
    config = ServiceConfig(max_body_bytes=1000, max_candidates=4)
    many = [{"id": f"client-{i}", "zone": "DE"} for i in range(60)]
    with TestClient(create_app(_engines(None, clock), config)) as api:
        big = api.post("/v1/select", json={"task": "t", "k": 1, "candidates": many})
        assert big.status_code == 413 and "1000 bytes" in big.json()["error"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit counts what arrives
            yield b'{"task": "t", "k": 1, "candidates": ['
            yield from (json.dumps(c).encode() + b"," for c in many)

        streamed = api.post(
            "/v1/select", content=chunks(), headers={"content-type": "application/json"}
        )
        assert streamed.status_code == 413
        five = api.post("/v1/select", json={"task": "t", "k": 1, "candidates": many[:5]})
        assert five.status_code == 422 and five.json()["field"] == "candidates"
        assert "at most 4" in five.json()["error"]
        assert api.post("/v1/select", json={"task": "t", "k": 1, "candidates": many[:4]}).is_success


# -- complete ---------------------------------------------------------------------------------


def test_complete_records_measured_energy_and_metrics(api: TestClient, clock: ManualClock) -> None:
    decision = api.post("/v1/select", json=_select(k=2)).json()
    measured = dict.fromkeys(decision["selected"], 0.25)
    clock.advance(timedelta(hours=1))
    answer = api.post(
        "/v1/complete",
        json={"task": "mnist", "round": 1, "energy_kwh": measured, "metrics": {"accuracy": 0.7}},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["energy_kwh"] == pytest.approx(0.5)
    assert body["metrics"] == {"accuracy": 0.7}
    assert body["completed_at"] is not None
    _schema_check(api.get("/v1/openapi.json").json(), "CompleteResponse", body)
    task = api.get("/v1/tasks/mnist").json()
    assert task["energy_kwh"] == pytest.approx(0.5)
    _schema_check(api.get("/v1/openapi.json").json(), "TaskResponse", task)


def test_energy_spent_by_clients_left_out_counts_in_the_task_footprint(
    api: TestClient, clock: ManualClock
) -> None:
    decision = api.post("/v1/select", json=_select(k=2)).json()
    left_out, chosen = decision["deferred"][0], decision["selected"][0]
    clock.advance(timedelta(hours=1))
    wrong = api.post(
        "/v1/complete",
        json={"task": "mnist", "round": 1, "excluded_energy_kwh": {chosen: 0.1}},
    )
    assert wrong.status_code == 422
    assert wrong.json()["field"] == f"excluded_energy_kwh.{chosen}"
    assert "was not a candidate left out in round 1" in wrong.json()["error"]
    assert api.get("/v1/tasks/mnist").json()["excluded_energy_kwh"] == 0
    answer = api.post(
        "/v1/complete",
        json={"task": "mnist", "round": 1, "excluded_energy_kwh": {left_out: 0.1}},
    )
    assert answer.status_code == 200, answer.text
    task = api.get("/v1/tasks/mnist").json()
    assert task["excluded_energy_kwh"] == pytest.approx(0.1)
    assert task["excluded_emissions_g"] > 0
    assert task["participation"][left_out] == 0
    _schema_check(api.get("/v1/openapi.json").json(), "TaskResponse", task)


def test_bad_completions_are_refused_and_lose_nothing(api: TestClient) -> None:
    decision = api.post("/v1/select", json=_select(k=2)).json()
    outsider = decision["deferred"][0]
    refused = api.post(
        "/v1/complete", json={"task": "mnist", "round": 1, "energy_kwh": {outsider: 1.0}}
    )
    assert refused.status_code == 422 and refused.json()["field"] == f"energy_kwh.{outsider}"
    assert f"client {outsider!r} was not selected in round 1" in refused.json()["error"]
    negative = api.post(
        "/v1/complete",
        json={"task": "mnist", "round": 1, "energy_kwh": {decision["selected"][0]: -1}},
    )
    assert negative.status_code == 422
    assert negative.json()["field"] == f"energy_kwh.{decision['selected'][0]}"
    assert api.post("/v1/complete", json={"task": "mnist", "round": 2}).status_code == 409
    assert api.post("/v1/complete", json={"task": "other", "round": 1}).status_code == 404
    assert api.post("/v1/complete", json={"task": "mnist"}).json()["field"] == "round"
    nan = api.post(
        "/v1/complete",
        content=b'{"task": "mnist", "round": 1, "metrics": {"loss": Infinity}}',
        headers={"content-type": "application/json"},
    )
    assert nan.status_code == 400
    task = api.get("/v1/tasks/mnist").json()
    assert task["rounds_done"] == 1
    assert task["energy_kwh"] == pytest.approx(decision["expected_energy_kwh"])


# -- persistence ------------------------------------------------------------------------------


def test_state_per_task_survives_a_restart(tmp_path: Path, clock: ManualClock) -> None:
    with TestClient(create_app(_engines(tmp_path, clock))) as api:
        for n in range(1, 4):
            api.post("/v1/select", json=_select(round=n))
            clock.advance(timedelta(hours=1))
        api.post("/v1/select", json=_select(task="other", k=1))
        before = api.get("/v1/tasks/mnist").json()
    with TestClient(create_app(_engines(tmp_path, clock))) as api:
        after = api.get("/v1/tasks/mnist").json()
        assert after["rounds_done"] == 3
        assert after["participation"] == before["participation"]
        assert api.get("/v1/tasks/other").json()["rounds_done"] == 1
        done = api.post("/v1/complete", json={"task": "mnist", "round": 3, "metrics": {"loss": 1}})
        assert done.status_code == 200, done.text
        assert api.post("/v1/select", json=_select(round=4)).json()["round"] == 4
    with TestClient(create_app(_engines(tmp_path, clock))) as api:
        final = api.get("/v1/tasks/mnist").json()
    assert final["rounds_done"] == 4
    assert sum(final["participation"].values()) == 8


def test_every_acknowledged_round_can_be_completed_in_any_order(
    tmp_path: Path, clock: ManualClock
) -> None:
    """Decisions live in the ledger: 40 rounds decided, then completed newest first."""
    with TestClient(create_app(_engines(tmp_path, clock, rounds=None))) as api:
        decided = []
        for _ in range(40):
            answer = api.post("/v1/select", json=_select(k=2))
            assert answer.status_code == 200, answer.text
            decided.append(answer.json())
            clock.advance(timedelta(hours=1))
        for body in reversed(decided):
            done = api.post(
                "/v1/complete",
                json={"task": "mnist", "round": body["round"], "metrics": {"loss": 0.5}},
            )
            assert done.status_code == 200, done.text
            assert done.json()["round"] == body["round"]
            assert done.json()["emissions_g"] > 0
        # An early round is replayed exactly as it was answered.
        again = api.post("/v1/select", json=_select(k=2, round=1)).json()
        assert again["replayed"] and again["selected"] == decided[0]["selected"]
    # Beside the ledger only the state folder's lock (its holder record went with it).
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lowcarb.lock", "mnist.ledger.sqlite"]


# -- forecast, zones, health, tasks -----------------------------------------------------------


def test_forecast_gives_hourly_values_per_zone(api: TestClient) -> None:
    answer = api.get("/v1/forecast", params={"zone": ["DE", "GB"], "location": "1.3,103.8"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["zones"] == ["DE", "GB", "SG"]
    assert [len(body["data"][z]) for z in body["zones"]] == [24, 24, 24]
    assert body["data"]["DE"][0]["start"] == START.isoformat()
    assert all(v["g_co2_per_kwh"] > 0 for v in body["data"]["GB"])
    assert body["resolved"][0]["zone"] == "SG"
    _schema_check(api.get("/v1/openapi.json").json(), "ForecastResponse", body)
    assert len(api.get("/v1/forecast?zone=DE&hours=5").json()["data"]["DE"]) == 5


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("", "zone"),
        ("zone=DE&hours=0", "hours"),
        ("zone=DE&hours=169", "hours"),
        ("zone=DE&hours=x", "hours"),
        ("zone=DE&hours=2&hours=3", "hours"),
        ("zone=DE&start=now", "start"),
        ("zone=MARS-1", "zone"),
        ("location=0,-150", "location"),
        ("zone=" + "&zone=".join(["DE"] * 51), "zone"),
    ],
)
def test_bad_forecast_queries_name_the_parameter(api: TestClient, query: str, field: str) -> None:
    answer = api.get(f"/v1/forecast?{query}")
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == field


def test_zones_lists_what_the_provider_serves(api: TestClient) -> None:
    body = api.get("/v1/zones").json()
    assert body["provider"] == "default"
    assert {"DE", "GB", "SG"} <= {z["zone"] for z in body["zones"]}
    _schema_check(api.get("/v1/openapi.json").json(), "ZonesResponse", body)
    assert api.get("/v1/zones?x=1").json()["field"] == "x"


def test_health_says_how_the_service_runs(api: TestClient) -> None:
    body = api.get("/v1/health").json()
    assert body["status"] == "ok" and body["provider"] == "default"
    assert body["persistent"] is False and body["auth"] is False
    _schema_check(api.get("/v1/openapi.json").json(), "HealthResponse", body)


def test_unknown_tasks_and_bad_task_ids(api: TestClient) -> None:
    missing = api.get("/v1/tasks/never")
    assert missing.status_code == 404 and missing.json()["field"] == "task"
    bad = api.get("/v1/tasks/.hidden")
    assert bad.status_code == 422 and bad.json()["field"] == "task"


def test_unknown_routes_are_404_and_wrong_methods_405(api: TestClient) -> None:
    assert "lowcarb dashboard" in api.get("/").text  # / is the dashboard's page
    for path in ("/v1", "/v2/select", "/v1/select/extra"):
        answer = api.get(path)
        assert answer.status_code == 404 and answer.json() == {
            "error": "no such route",
            "field": None,
        }
    wrong = api.get("/v1/select")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
    assert wrong.json()["error"] == "method not allowed"
    assert api.post("/v1/zones", json={}).status_code == 405
    assert api.delete("/v1/tasks/mnist").status_code == 405


# -- auth -------------------------------------------------------------------------------------


def test_a_token_guards_every_route_but_health_and_the_document(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    config = ServiceConfig(token=TOKEN)
    assert TOKEN not in repr(config)
    with TestClient(create_app(_engines(None, clock), config)) as api:
        for method, path, body in [
            ("POST", "/v1/select", _select()),
            ("POST", "/v1/complete", {"task": "mnist", "round": 1}),
            ("GET", "/v1/forecast?zone=DE", None),
            ("GET", "/v1/zones", None),
            ("GET", "/v1/tasks/mnist", None),
        ]:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
                answer = api.request(method, path, json=body, headers=headers)
                assert answer.status_code == 401, (path, headers)
                assert answer.headers["www-authenticate"] == "Bearer"
        good = {"Authorization": f"Bearer {TOKEN}"}
        assert api.post("/v1/select", json=_select(), headers=good).status_code == 200
        assert api.get("/v1/zones", headers=good).status_code == 200
        assert api.get("/v1/health").json()["auth"] is True
        document = api.get("/v1/openapi.json")
        assert document.status_code == 200
        assert document.json()["paths"]["/v1/select"]["post"]["security"] == [{"bearerAuth": []}]
        texts = [document.text, api.get("/v1/health").text]
    assert TOKEN not in caplog.text
    assert all(TOKEN not in text for text in texts)


def test_an_unauthorized_request_is_refused_before_its_body_is_read(clock: ManualClock) -> None:
    config = ServiceConfig(token=TOKEN, max_body_bytes=10)
    with TestClient(create_app(_engines(None, clock), config)) as api:
        assert api.post("/v1/select", json=_select()).status_code == 401


@pytest.mark.parametrize(
    "kw",
    [{"token": ""}, {"token": "  "}, {"max_body_bytes": 0}, {"max_candidates": True}],
)
def test_bad_service_configuration_is_refused(kw: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        ServiceConfig(**kw)


# -- the OpenAPI document ---------------------------------------------------------------------


def test_the_openapi_document_lists_every_route(api: TestClient) -> None:
    document = json.loads(api.get("/v1/openapi.json").text)
    assert document["openapi"] == "3.1.0"
    served = {
        (route.path, method.lower())
        for route in api.app.routes  # type: ignore[attr-defined]
        for method in route.methods - {"HEAD"}
        if route.path.startswith("/v1")  # the dashboard's page and state are not the API
    }
    listed = {(path, method) for path, ops in document["paths"].items() for method in ops}
    assert listed == served
    assert len(served) == 7
    text = json.dumps(document)
    for ref in set(re.findall(r'"#/components/schemas/([A-Za-z]+)"', text)):
        assert ref in document["components"]["schemas"], ref
    for schema in document["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)
    limit = document["components"]["schemas"]["SelectRequest"]["properties"]["candidates"]
    assert limit["maxItems"] == 10_000


def test_the_request_schemas_accept_the_documented_examples(api: TestClient) -> None:
    document = api.get("/v1/openapi.json").json()
    _schema_check(document, "SelectRequest", _select(round=1))
    _schema_check(
        document,
        "CompleteRequest",
        {"task": "t", "round": 1, "energy_kwh": {"a": 0.1}, "metrics": {"loss": 0.2}},
    )


# The validator and the published schema come from one declaration; check they agree.
_DROP = object()
_junk = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from(["", " ", "x" * 257, "DE", "c2"]),
    st.floats(-2, 2),
    st.integers(-1, 1),
    st.lists(st.integers(0, 1), max_size=1),
    st.just(_DROP),
)
_valid_candidates = st.fixed_dictionaries(
    {
        "id": st.sampled_from(["c1", " a ", "x" * 256]),
        "where": st.sampled_from(["zone", "location"]),
    },
    optional={
        "energy_kwh": st.floats(0, 2),
        "power_w": st.integers(0, 500),
        "utility": st.floats(0, 10),
    },
).map(lambda d: {**{k: v for k, v in d.items() if k != "where"}, d["where"]: "DE"})
_edits = st.dictionaries(
    st.sampled_from(["id", "zone", "location", "energy_kwh", "power_w", "utility", "other"]),
    _junk,
    max_size=2,
)


def _edited(candidate: dict[str, Any], edits: dict[str, Any]) -> dict[str, Any]:
    out = {**candidate, **edits}
    return {k: v for k, v in out.items() if v is not _DROP}


_candidates = st.builds(_edited, _valid_candidates, _edits)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(candidate=_candidates)
def test_the_validator_agrees_with_the_published_schema(candidate: dict[str, Any]) -> None:
    schema = {"$ref": "#/components/schemas/Candidate", "components": {"schemas": {}}}
    schema["components"]["schemas"]["Candidate"] = CANDIDATE.schema()
    valid = jsonschema.Draft202012Validator(schema).is_valid(candidate)
    if valid:
        CANDIDATE.parse(candidate, "c")
    else:
        with pytest.raises(RequestError) as refused:
            CANDIDATE.parse(candidate, "c")
        assert refused.value.field is not None and refused.value.field.startswith("c")


# -- the command ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.0.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.2", False),
        ("example.org", False),
    ],
)
def test_loopback_detection(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_serve_refuses_other_addresses_unless_allowed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--host", "0.0.0.0"]) == 2
    assert "--allow-remote" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--log-level", "bogus"], "--log-level 'bogus'"),
        (["--policy", "bogus"], "unknown policy 'bogus'"),
        (["--fairness", "-1"], "fairness must be between 0 and 1"),
    ],
)
def test_serve_refuses_bad_engine_options_before_listening(
    args: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import uvicorn

    def listen(*a: object, **kw: object) -> None:
        raise AssertionError("lowcarb serve started listening with bad options")

    monkeypatch.setattr(uvicorn.Server, "run", listen)
    assert main(["serve", "--port", "0", *args]) != 0
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_the_token_comes_from_the_environment_or_a_file(tmp_path: Path) -> None:
    assert read_token("SVC_TOKEN", {"SVC_TOKEN": " abc \n"}) == "abc"
    secret = tmp_path / "token"
    secret.write_text("from-file\n")
    assert read_token("SVC_TOKEN", {"SVC_TOKEN_FILE": str(secret)}) == "from-file"
    for env, message in [
        ({}, "set SVC_TOKEN or SVC_TOKEN_FILE"),
        ({"SVC_TOKEN_FILE": str(tmp_path / "none")}, "cannot be read"),
        ({"SVC_TOKEN_FILE": str(tmp_path)}, "is a directory"),
        ({"SVC_TOKEN_FILE": "/dev/zero"}, "is not a regular file"),
    ]:
        with pytest.raises(ConfigurationError, match=message):
            read_token("SVC_TOKEN", env)
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigurationError, match="empty"):
        read_token("SVC_TOKEN", {"SVC_TOKEN_FILE": str(tmp_path / "empty")})
    with pytest.raises(ConfigurationError, match="LOWCARB_"):
        read_token("LOWCARB_TOKEN", {"LOWCARB_TOKEN": "x"})


def test_serve_without_the_token_variable_fails_clearly(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SVC_TOKEN", raising=False)
    monkeypatch.delenv("SVC_TOKEN_FILE", raising=False)
    assert main(["serve", "--token-env", "SVC_TOKEN", "--port", "0"]) == 2
    assert "set SVC_TOKEN" in capsys.readouterr().err


def _wait_for_port(log: Path, process: subprocess.Popen[bytes], deadline: float) -> int:
    while time.monotonic() < deadline:
        found = re.search(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", log.read_text())
        if found:
            return int(found.group(1))
        if process.poll() is not None:
            pytest.fail(f"lowcarb serve exited with {process.returncode}: {log.read_text()}")
        time.sleep(0.1)
    pytest.fail(f"lowcarb serve did not start: {log.read_text()}")


@pytest.mark.slow
def test_lowcarb_serve_runs_as_a_real_process(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    state = tmp_path / "state"
    env = {**os.environ, "SVC_TOKEN": TOKEN, "LOWCARB_NOW": "2025-03-03T09:00Z"}
    command = [sys.executable, "-m", "lowcarb", "serve", "--port", "0", "--state-dir", str(state)]
    command += ["--token-env", "SVC_TOKEN", "--rounds", "4"]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=tmp_path
        )
    try:
        port = _wait_for_port(log, process, time.monotonic() + 60)
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=30) as http:
            health = http.get("/v1/health")
            assert health.status_code == 200 and health.json()["persistent"] is True
            assert http.post("/v1/select", json=_select()).status_code == 401
            answer = http.post(
                "/v1/select", json=_select(k=3), headers={"Authorization": f"Bearer {TOKEN}"}
            )
            assert answer.status_code == 200, answer.text
            assert len(answer.json()["selected"]) == 3
            assert answer.json()["decided_at"].startswith("2025-03-03T09:00")
        process.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught.
        assert process.wait(timeout=20) in (0, -signal.SIGTERM)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    output = log.read_text()
    assert "task state in" in output and TOKEN not in output
    assert "POST /v1/select" in output  # uvicorn's access log, without headers
    assert "Application shutdown complete" in output  # the ledgers were closed
    assert (state / "mnist.ledger.sqlite").is_file()
