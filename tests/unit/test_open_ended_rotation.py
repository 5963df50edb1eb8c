"""An open-ended training (no rounds given) rotates, and says when deferred clients train.

``lowcarb serve``'s quickstart ran at a fixed ``--now`` without ``--rounds``: five selects
of 2 out of 4 went to the same two clients every time while each answer spoke of "the
cheapest fair schedule". The schedule rolled over a day of slots from the same instant
every time, so the slots it had planned for the deferred clients never came. A round
now occupies its slot: one asked for before the last round's slot has passed takes the
next one, so the rolling window moves with the rounds.
"""

from __future__ import annotations

import warnings
from collections import Counter
from datetime import UTC, datetime, timedelta

from lowcarb import EngineSpec, ManualClock, TaskEngines

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`", Warning)
    warnings.filterwarnings("ignore", "The anyio.abc.BlockingPortal alias", DeprecationWarning)
    from starlette.testclient import TestClient

NOW = datetime(2025, 3, 3, 9, tzinfo=UTC)  # the service docs' --now
CANDIDATES = [
    {"id": "hospital-berlin", "zone": "DE"},
    {"id": "hospital-london", "location": "51.5,-0.12"},
    {"id": "hospital-sg", "zone": "SG", "energy_kwh": 0.05},
    {"id": "lab-tokyo", "location": "aws:ap-northeast-1"},
]


def _answers(rounds: int) -> list[dict]:
    from lowcarb.adapters.service import ServiceConfig, create_app

    clock = ManualClock(NOW)  # never moves, as under `lowcarb --now ... serve`
    engines = TaskEngines(None, spec=EngineSpec(provider="default"), clock=clock)
    with TestClient(create_app(engines, ServiceConfig())) as api:
        body = {"task": "mnist", "k": 2, "candidates": CANDIDATES}
        return [api.post("/v1/select", json=body).json() for _ in range(rounds)]


def test_a_fixed_clock_open_ended_training_rotates_within_its_window() -> None:
    answers = _answers(12)
    counts = Counter(i for a in answers for i in a["selected"])
    assert set(counts) == {c["id"] for c in CANDIDATES}, counts  # everyone trained
    assert max(counts.values()) - min(counts.values()) <= 6
    # Each round takes the next hourly slot; the rounds' starts say so.
    starts = [datetime.fromisoformat(a["start"]) for a in answers]
    assert starts == [NOW + timedelta(hours=r) for r in range(12)]


def test_every_answer_says_when_each_deferred_client_trains() -> None:
    for answer in _answers(5):
        deferred = [c for c in answer["clients"] if not c["selected"]]
        assert {c["id"] for c in deferred} == set(answer["deferred"])
        for client in deferred:
            turn = datetime.fromisoformat(client["next_turn"])
            assert datetime.fromisoformat(answer["start"]) < turn <= NOW + timedelta(days=1)
        assert all(c["next_turn"] is None for c in answer["clients"] if c["selected"])


def test_the_openapi_document_describes_next_turn() -> None:
    from lowcarb.adapters.service import ServiceConfig, create_app

    engines = TaskEngines(None, spec=EngineSpec(provider="default"))
    with TestClient(create_app(engines, ServiceConfig())) as api:
        schema = api.get("/v1/openapi.json").json()["components"]["schemas"]
    turn = schema["ClientDecision"]["properties"]["next_turn"]
    assert turn["format"] == "date-time" and "null" in turn["type"]
