"""The selection service under hostile input, storage faults, a hanging provider and
exhausted connections: every refusal a 4xx, every fault a clear 503, nothing recorded lost."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lowcarb import Capabilities, CarbonProvider, ManualClock, TaskEngines
from lowcarb.adapters.service import ServiceConfig, create_app
from lowcarb.adapters.service._server import server_config
from lowcarb.backends import DefaultProvider
from lowcarb.exceptions import ProviderUnavailableError

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`", UserWarning)
    warnings.filterwarnings("ignore", "The anyio.abc.BlockingPortal alias", DeprecationWarning)
    from starlette.testclient import TestClient

START = datetime(2025, 3, 3, 9, tzinfo=UTC)
CANDIDATES = [
    {"id": "berlin", "zone": "DE"},
    {"id": "london", "zone": "GB"},
    {"id": "singapore", "zone": "SG"},
    {"id": "joburg", "zone": "ZA"},
]
HUGE = 10**400  # Python's json reads it; math.isfinite(HUGE) raises OverflowError


def _select(task: str = "t", k: int = 2, **extra: Any) -> dict[str, Any]:
    return {"task": task, "k": k, "candidates": CANDIDATES, **extra}


def _engines(state: Path | None, clock: ManualClock, **kw: Any) -> TaskEngines:
    provider = kw.pop("provider", None) or DefaultProvider(clock=clock)
    kw.setdefault("rounds", 10)
    return TaskEngines(state, provider=provider, clock=clock, **kw)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def api(clock: ManualClock, tmp_path: Path) -> Iterator[TestClient]:
    # raise_server_exceptions=False: a 500 must come back as an answer, as on a real server.
    app = create_app(_engines(tmp_path, clock))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _post(api: TestClient, path: str, raw: str) -> httpx.Response:
    # The raw text: json= would refuse a lone surrogate before it reached the server.
    return api.post(
        path,
        content=raw.encode("utf-8", "surrogatepass"),
        headers={"content-type": "application/json"},
    )


def _still_readable(api: TestClient, task: str = "t") -> None:
    answer = api.get(f"/v1/tasks/{task}")
    assert answer.status_code in (200, 404), answer.text
    if answer.status_code == 200:
        json.dumps(answer.json(), allow_nan=False)


# -- values that pass validation must never break a later read -------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"round": 1, "energy_kwh": {"CHOSEN": 1e308}}, "energy_kwh.CHOSEN"),
        ({"round": 1, "energy_kwh": {"CHOSEN": HUGE}}, "energy_kwh.CHOSEN"),
        ({"round": 1, "excluded_energy_kwh": {"LEFT": 1e308}}, "excluded_energy_kwh.LEFT"),
        ({"round": 1, "excluded_energy_kwh": {"LEFT": 10001}}, "excluded_energy_kwh.LEFT"),
        ({"round": 1, "actual": {"DE": 1e9}}, "actual.DE"),
        ({"round": 1, "metrics": {"loss": 1e300}}, "metrics.loss"),
        ({"round": 1, "metrics": {"loss": -HUGE}}, "metrics.loss"),
        ({"round": HUGE}, "round"),
        ({"round": 10**9 + 1}, "round"),
    ],
)
def test_implausible_completions_are_refused_before_anything_is_written(
    api: TestClient, body: dict[str, Any], field: str
) -> None:
    decided = api.post("/v1/select", json=_select()).json()
    chosen, left = decided["selected"][0], decided["deferred"][0]
    text = json.dumps({"task": "t", **body}).replace("CHOSEN", chosen).replace("LEFT", left)
    refused = _post(api, "/v1/complete", text)
    assert refused.status_code == 422, refused.text
    assert refused.json()["field"] == field.replace("CHOSEN", chosen).replace("LEFT", left)
    assert "must be" in refused.json()["error"]
    task = api.get("/v1/tasks/t")
    assert task.status_code == 200 and task.json()["energy_kwh"] == pytest.approx(
        decided["expected_energy_kwh"]
    )
    # The round is still completable with sane values.
    assert api.post("/v1/complete", json={"task": "t", "round": 1}).status_code == 200


@pytest.mark.parametrize(
    ("candidate", "field"),
    [
        ({"id": "x", "zone": "DE", "energy_kwh": 1e308}, "candidates[4].energy_kwh"),
        ({"id": "x", "zone": "DE", "power_w": 1e308}, "candidates[4].power_w"),
        ({"id": "x", "zone": "DE", "utility": HUGE}, "candidates[4].utility"),
        ({"id": "x\ud800", "zone": "DE"}, "candidates[4].id"),
        ({"id": "x", "zone": "D\udfffE"}, "candidates[4].zone"),
        ({"id": "x", "location": "\ud83d"}, "candidates[4].location"),
    ],
)
def test_implausible_or_unencodable_candidates_are_refused(
    api: TestClient, candidate: dict[str, Any], field: str
) -> None:
    text = json.dumps({"task": "t", "k": 2, "candidates": [*CANDIDATES, candidate]})
    refused = _post(api, "/v1/select", text)
    assert refused.status_code == 422, refused.text
    assert refused.json()["field"] == field
    assert api.get("/v1/tasks/t").status_code == 404  # no task was created


@pytest.mark.parametrize(
    "raw",
    [
        '{"task": "t", "k": ' + "9" * 401 + ', "candidates": []}',
        '{"task": "t", "round": '
        + "9" * 401
        + ', "k": 1, "candidates": [{"id": "a", "zone": "DE"}]}',
        '{"task": "t", "round": 1, "metrics": {"\\ud800": 1.0}}',
        '{"task": "t", "round": 1, "energy_kwh": {"\\udc00x": 1.0}}',
        '{"task": "t", "round": 1, "actual": {"\\ud800": 1.0}}',
        '{"task": "t", "round": 1, "excluded_energy_kwh": {"\\ud800": 1.0}}',
    ],
)
def test_input_errors_are_4xx_and_the_round_stays_completable(api: TestClient, raw: str) -> None:
    api.post("/v1/select", json=_select())
    path = "/v1/complete" if '"k"' not in raw else "/v1/select"
    answer = _post(api, path, raw)
    assert 400 <= answer.status_code < 500, answer.text
    again = api.post("/v1/complete", json={"task": "t", "round": 1, "metrics": {"loss": 0.5}})
    assert again.status_code == 200, again.text
    assert api.post("/v1/complete", json={"task": "t", "round": 1}).status_code == 200
    _still_readable(api)


@pytest.mark.parametrize(
    "hours", ["%C2%B2", "9" * 5000, "%D9%A3", "+5", " 5", "5.0", "0x10", "-1", "0", "169", ""]
)
def test_bad_forecast_hours_are_422(api: TestClient, hours: str) -> None:
    answer = api.get(f"/v1/forecast?zone=DE&hours={hours}")
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == "hours"


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    energy=st.dictionaries(st.sampled_from(["berlin", "london", "x", "\ud800"]), _JSON, max_size=2),
    metrics=st.dictionaries(st.text(max_size=4), _JSON, max_size=2),
    round_=st.one_of(st.integers(), st.floats(allow_nan=False), _JSON),
)
def test_no_completion_whatever_its_values_breaks_the_service(
    api: TestClient, energy: dict[str, Any], metrics: dict[str, Any], round_: Any
) -> None:
    if api.get("/v1/tasks/t").status_code != 200:
        api.post("/v1/select", json=_select())
    raw = json.dumps({"task": "t", "round": round_, "energy_kwh": energy, "metrics": metrics})
    answer = _post(api, "/v1/complete", raw)
    assert answer.status_code in (200, 400, 404, 409, 422), answer.text
    _still_readable(api)


# -- storage faults ---------------------------------------------------------------------------


def _break_storage(engines: TaskEngines, task: str, pragma: str) -> None:
    with engines.session(task) as engine:
        db = engine.ledger._db
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(pragma.format(pages=pages))


@pytest.mark.parametrize(
    ("pragma", "meaning"),
    [
        ("PRAGMA max_page_count = {pages}", "the disk is full"),
        ("PRAGMA query_only = ON", "read-only"),
    ],
)
def test_a_storage_fault_is_a_clear_503_and_health_reports_it(
    tmp_path: Path, clock: ManualClock, pragma: str, meaning: str
) -> None:
    engines = _engines(tmp_path, clock, rounds=None)
    with TestClient(create_app(engines), raise_server_exceptions=False) as api:
        api.post("/v1/select", json=_select())
        _break_storage(engines, "t", pragma)
        many = [{"id": f"client-{i}-" + "x" * 200, "zone": "DE"} for i in range(300)]
        clock.advance(timedelta(hours=1))
        refused = api.post("/v1/select", json={"task": "t", "k": 2, "candidates": many})
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"]
        error = refused.json()["error"]
        assert meaning in error and "t.ledger.sqlite" in error and str(tmp_path) not in error
        done = api.post(
            "/v1/complete",
            json={
                "task": "t",
                "round": 1,
                "metrics": {f"m{i}" + "x" * 250: 1.0 for i in range(64)},
            },
        )
        assert done.status_code == 503 and done.json()["field"] is None  # not energy_kwh
        health = api.get("/v1/health")
        assert health.status_code == 503 and health.json()["status"] == "degraded"
        assert meaning in health.json()["storage"]["t"]
        # Round 1 is intact and, once storage works again, the task carries on.
        with engines.session("t") as engine:
            engine.ledger._db.execute("PRAGMA max_page_count = 1000000")
            engine.ledger._db.execute("PRAGMA query_only = OFF")
        assert api.post("/v1/complete", json={"task": "t", "round": 1}).status_code == 200
        assert api.get("/v1/health").json()["status"] == "ok"
        assert api.get("/v1/tasks/t").json()["rounds_done"] == 1


@pytest.mark.parametrize(
    ("content", "meaning"),
    [
        (b"garbage, not SQLite\n" * 100, "not an SQLite database"),
        (None, "SQLite database of something else"),
    ],
)
def test_a_task_file_that_is_not_a_ledger_is_503(
    tmp_path: Path, clock: ManualClock, content: bytes | None, meaning: str
) -> None:
    path = tmp_path / "t.ledger.sqlite"
    if content is None:
        import sqlite3

        with contextlib.closing(sqlite3.connect(path)) as db, db:
            db.execute("CREATE TABLE notes (x)")
    else:
        path.write_bytes(content)
    before = path.read_bytes()
    with TestClient(create_app(_engines(tmp_path, clock)), raise_server_exceptions=False) as api:
        answer = api.post("/v1/select", json=_select())
        assert answer.status_code == 503, answer.text
        assert meaning in answer.json()["error"] and str(tmp_path) not in answer.json()["error"]
        assert api.post("/v1/select", json=_select(task="other")).status_code == 200
        assert api.get("/v1/health").json()["storage_faults"] == 1
    assert path.read_bytes() == before


def test_tasks_past_the_cap_are_403(tmp_path: Path, clock: ManualClock) -> None:
    with TestClient(create_app(_engines(tmp_path, clock, max_tasks=2))) as api:
        assert api.post("/v1/select", json=_select(task="a")).status_code == 200
        assert api.post("/v1/select", json=_select(task="b")).status_code == 200
        refused = api.post("/v1/select", json=_select(task="c"))
        assert refused.status_code == 403 and refused.json()["field"] == "task"
        assert "at most 2 tasks" in refused.json()["error"]
        assert api.post("/v1/select", json=_select(task="a")).json()["round"] == 2
        assert api.get("/v1/health").json()["tasks"] == 2


def test_an_unexpected_error_is_a_500_that_closes_its_connection(
    api: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lowcarb.adapters.service import _app

    def bug(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(_app._Service, "_select", bug)
    answer = api.post("/v1/select", json=_select())
    assert answer.status_code == 500
    assert answer.headers["connection"] == "close"
    assert answer.json()["error"] == "internal error; see the server log"


# -- a real server: deadlines, head size, connection cap, a hanging provider -----------------


@contextlib.contextmanager
def serving(app: Any, config: ServiceConfig) -> Iterator[tuple[str, int]]:
    """Run ``app`` under uvicorn with ``config``'s limits on a free loopback port."""
    server = uvicorn.Server(server_config(app, config, port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(400):  # at most 20 s
        if server.started:
            break
        time.sleep(0.05)
    assert server.started, "the server did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield "127.0.0.1", port
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def _raw(address: tuple[str, int], data: bytes, *, tolerate_reset: bool = False) -> bytes:
    """Send raw bytes; read until the server closes (bounded by a 10 s socket timeout).

    With ``tolerate_reset``, a server that answers and closes while the data is still
    being sent (so the rest resets the connection) is fine: what it answered is returned.
    """
    with socket.create_connection(address, timeout=10) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            if not tolerate_reset:
                raise
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            if not tolerate_reset:
                raise
        return b"".join(chunks)


def test_a_half_sent_request_is_answered_408(tmp_path: Path, clock: ManualClock) -> None:
    config = ServiceConfig(request_timeout_s=0.3)
    with serving(create_app(_engines(tmp_path, clock)), config) as address:
        answer = _raw(address, b"POST /v1/select HTTP/1.1\r\nhost: x\r\ncontent-")
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert b"not received within 0.3 s" in answer
        # A body that never ends is cut off too (the handler sees the client gone).
        head = b"POST /v1/select HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        assert _raw(address, head + b"content-length: 100\r\n\r\n{") == b""
        with httpx.Client(base_url=f"http://{address[0]}:{address[1]}") as http:
            assert http.get("/v1/health").status_code == 200


def test_an_oversized_request_head_is_431(tmp_path: Path, clock: ManualClock) -> None:
    config = ServiceConfig(max_header_bytes=4096)
    with serving(create_app(_engines(tmp_path, clock)), config) as address:
        for size in (8192, 4 * 2**20):  # read at once, and in many pieces
            head = b"GET /v1/health HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * size + b"\r\n\r\n"
            answer = _raw(address, head, tolerate_reset=True)
            assert answer.startswith(b"HTTP/1.1 431 ") and b"larger than 4096 bytes" in answer
        small = b"GET /v1/health HTTP/1.1\r\nhost: x\r\nconnection: close\r\nx-ok: "
        assert _raw(address, small + b"a" * 1000 + b"\r\n\r\n").startswith(b"HTTP/1.1 200 ")


class BlockingProvider(CarbonProvider):
    """Serves DE, GB, SG and ZA, answers no data until released, then fails."""

    name = "blocking"

    def __init__(self, release: threading.Event) -> None:
        super().__init__()
        self.release = release
        self.waiting = 0
        self._lock = threading.Lock()

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities("average", "lifecycle", timedelta(hours=1), timedelta(hours=24))

    def served_zones(self) -> list[str]:
        return ["DE", "GB", "SG", "ZA"]

    def _block(self, *args: object) -> Any:
        with self._lock:
            self.waiting += 1
        self.release.wait(60)  # bounded: a broken test fails instead of hanging
        raise ProviderUnavailableError("gave up", provider=self.name)

    _latest = _history = _forecast = _block

    def wait_for(self, calls: int) -> None:
        """Return once ``calls`` calls are blocked (bounded: at most 20 s)."""
        for _ in range(400):
            if self.waiting >= calls:
                return
            time.sleep(0.05)
        raise AssertionError(f"only {self.waiting} calls reached the provider")


@pytest.mark.slow
def test_held_connections_never_lock_out_health(tmp_path: Path, clock: ManualClock) -> None:
    """Half-sent requests fill every slot; a newcomer displaces the longest waiting."""
    config = ServiceConfig(max_connections=5, request_timeout_s=30)
    with serving(create_app(_engines(tmp_path, clock)), config) as address:
        held = [socket.create_connection(address, timeout=10) for _ in range(5)]
        try:
            for sock in held:
                sock.sendall(b"GET /v1/health HTTP/1.1\r\nhost: x\r\n")  # never finished
            for _ in range(3):  # each on a new connection, as a health probe makes them
                with httpx.Client(base_url=f"http://{address[0]}:{address[1]}") as http:
                    assert http.get("/v1/health").status_code == 200
            closed = 0
            for sock in held:
                sock.settimeout(0.5)  # the displaced one is closed already
                try:
                    closed += sock.recv(10) == b""
                except ConnectionResetError:
                    closed += 1
                except TimeoutError:
                    pass
            # The first newcomer displaced the longest-held connection; the later ones
            # found a free slot (the first had left), so the other four stay open.
            assert closed == 1
        finally:
            for sock in held:
                sock.close()


@pytest.mark.slow
def test_health_answers_while_every_worker_waits_on_a_hanging_provider(
    tmp_path: Path, clock: ManualClock
) -> None:
    release = threading.Event()
    provider = BlockingProvider(release)
    engines = TaskEngines(
        tmp_path, provider=provider, clock=clock, rounds=10, default_fallback=False
    )
    config = ServiceConfig(max_connections=100)
    url = ""

    async def load() -> tuple[list[int], int]:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            selects = [
                asyncio.create_task(http.post("/v1/select", json=_select(task=f"t{i}")))
                for i in range(45)
            ]
            # Every worker thread of the service (40) now waits on the provider.
            await asyncio.to_thread(provider.wait_for, 40)
            health = await http.get("/v1/health", timeout=5)
            pending = sum(not t.done() for t in selects)
            release.set()
            answers = await asyncio.gather(*selects)
            return [a.status_code for a in answers], health.status_code if pending else -1

    try:
        with serving(create_app(engines), config) as (host, port):
            url = f"http://{host}:{port}"
            statuses, health = asyncio.run(load())
    finally:
        release.set()
    assert health == 200
    assert set(statuses) == {503}  # no signal at all (no fallback), said clearly


def test_past_the_provider_deadline_the_fallback_answers(
    tmp_path: Path, clock: ManualClock
) -> None:
    release = threading.Event()
    engines = TaskEngines(
        tmp_path, provider=BlockingProvider(release), clock=clock, rounds=10, provider_timeout_s=0.2
    )
    try:
        with TestClient(create_app(engines)) as api:
            answer = api.post("/v1/select", json=_select())
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["provenance"]["provider"] == "default"
            assert "no answer to forecast within 0.2 s" in " ".join(body["provenance"]["notes"])
            assert "signal fallback" in body["reason"]
    finally:
        release.set()


def test_a_full_house_of_requests_in_progress_is_503(tmp_path: Path, clock: ManualClock) -> None:
    release = threading.Event()
    provider = BlockingProvider(release)
    engines = TaskEngines(
        tmp_path, provider=provider, clock=clock, rounds=10, default_fallback=False
    )
    config = ServiceConfig(max_connections=3)
    url = ""

    async def load() -> list[int]:
        limits = httpx.Limits(max_connections=3)
        async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:
            busy = [
                asyncio.create_task(http.post("/v1/select", json=_select(task=f"t{i}")))
                for i in range(3)
            ]
            await asyncio.to_thread(provider.wait_for, 3)
            async with httpx.AsyncClient(base_url=url, timeout=5) as other:
                extra = await other.get("/v1/health")
            release.set()
            await asyncio.gather(*busy)
            return [extra.status_code, int(extra.headers.get("connection") == "close")]

    try:
        with serving(create_app(engines), config) as (host, port):
            url = f"http://{host}:{port}"
            assert asyncio.run(load()) == [503, 1]
    finally:
        release.set()


# -- lowcarb serve: one process per state folder ---------------------------------------------


@pytest.mark.slow
def test_a_second_server_on_the_same_state_folder_refuses_to_start(tmp_path: Path) -> None:
    import os
    import re
    import subprocess
    import sys

    state = tmp_path / "state"
    env = {**os.environ, "LOWCARB_NOW": "2025-03-03T09:00Z"}
    command = [sys.executable, "-m", "lowcarb", "serve", "--port", "0", "--state-dir", str(state)]
    log = tmp_path / "first.log"
    with log.open("wb") as sink:
        first = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
    try:
        for _ in range(600):  # at most 60 s
            if re.search(r"Uvicorn running on", log.read_text()) or first.poll() is not None:
                break
            time.sleep(0.1)
        assert first.poll() is None, log.read_text()
        second = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
        assert second.returncode == 1
        assert second.stderr.count("\n") == 1, second.stderr
        assert f"is in use by process {first.pid} on " in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        first.terminate()
        first.wait(timeout=30)


@pytest.mark.slow
def test_many_more_tasks_than_file_descriptors_under_lowcarb_serve(tmp_path: Path) -> None:
    """250 tasks (three descriptors per open ledger) on a server limited to 192."""
    import os
    import re
    import resource
    import subprocess
    import sys

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (192, 192))

    env = {**os.environ, "LOWCARB_NOW": "2025-03-03T09:00Z"}
    command = [sys.executable, "-m", "lowcarb", "serve", "--port", "0", "--state-dir"]
    command += [str(tmp_path / "state"), "--max-connections", "20"]
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        server = subprocess.Popen(
            command, stdout=sink, stderr=subprocess.STDOUT, env=env, preexec_fn=limit
        )
    try:
        port = None
        for _ in range(600):  # at most 60 s
            found = re.search(r"running on http://127\.0\.0\.1:(\d+)", log.read_text())
            if found or server.poll() is not None:
                port = found and int(found.group(1))
                break
            time.sleep(0.1)
        assert port, log.read_text()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            for i in range(250):
                answer = http.post("/v1/select", json=_select(task=f"task-{i}"))
                assert answer.status_code == 200, (i, answer.text)
            health = http.get("/v1/health")
            assert health.status_code == 200 and health.json()["tasks"] == 250
            for i in (0, 100, 249):  # early tasks reopen from their ledgers
                assert http.get(f"/v1/tasks/task-{i}").json()["rounds_done"] == 1
                done = http.post("/v1/complete", json={"task": f"task-{i}", "round": 1})
                assert done.status_code == 200, done.text
    finally:
        server.terminate()
        server.wait(timeout=30)
