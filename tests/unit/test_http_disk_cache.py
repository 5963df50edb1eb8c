"""The optional on-disk response cache: shared by instances and processes, TTL on the clock,
no secrets written, corrupt entries refetched, bounded in size."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pandas as pd
import pytest

from lowcarb import Capabilities, Credential, ManualClock, load_settings
from lowcarb.backends import UKCarbonIntensityProvider
from lowcarb.backends.toolkit import Call, DiskCache, Flow, HttpOptions, HttpProvider, json_body
from lowcarb.exceptions import ConfigurationError

T0 = datetime(2024, 6, 1, 12, tzinfo=UTC)
SECRET = "tk-9f8e7d6c5b4a-secret"
HOUR = timedelta(hours=1)
COOKIE = "c00kie-5e55ion"


class TokenGrid(HttpProvider):
    """A provider that sends its key in a header *and* in the query, like the worst APIs."""

    name = "tokengrid"
    default_base_url = "https://grid.example.org/v1"
    credentials = (Credential("api_key", "TOKENGRID_API_KEY"),)

    class Options(HttpOptions):
        pass

    def __init__(self, *, api_key: str = SECRET, **options) -> None:
        self.api_key = api_key
        super().__init__(**options)

    def request_headers(self) -> dict[str, str]:
        return {**super().request_headers(), "auth-token": self.api_key}

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            signal="average", basis="lifecycle", resolution=HOUR, forecast_horizon=timedelta(0)
        )

    def served_zones(self) -> list[str]:
        return ["DE", "FR"]

    def _latest_flow(self, zones: list[str]) -> Flow:
        calls = [
            Call(
                "/latest",
                params={"zone": z, "securityToken": self.api_key},
                cache_ttl=self._ttl(),
                label=f"latest {z}",
            )
            for z in zones
        ]
        responses = yield calls
        rows = [json_body(r, provider=self.name) for r in responses]
        index = pd.DatetimeIndex([pd.Timestamp(rows[0]["datetime"])])
        values = pd.DataFrame(
            {z: [float(r["carbonIntensity"])] for z, r in zip(zones, rows, strict=True)}
        )
        values.index = index
        return self._series(values, None, [])


class Api:
    """Answers ``/latest`` with a value that changes with every request, so a test can tell
    a cached answer from a fresh one."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        body = {
            "zone": request.url.params["zone"],
            "carbonIntensity": 100 + len(self.requests),
            "datetime": "2024-06-01T12:00:00.000Z",
        }
        return httpx.Response(200, json=body, headers={"set-cookie": f"session={COOKIE}"})


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def api() -> Api:
    return Api()


def grid(api: Api, clock: ManualClock, cache_dir: Path, **kwargs) -> TokenGrid:
    return TokenGrid(transport=httpx.MockTransport(api), clock=clock, cache_dir=cache_dir, **kwargs)


def entries(cache_dir: Path) -> list[Path]:
    return sorted(p for p in cache_dir.rglob("*") if p.is_file())


# -- sharing and expiry ----------------------------------------------------------------------


def test_an_answer_on_disk_serves_another_provider_instance(api, clock, tmp_path):
    first = grid(api, clock, tmp_path).latest(["DE", "FR"])
    second_provider = grid(api, clock, tmp_path)  # its own, empty, in-memory cache
    second = second_provider.latest(["DE", "FR"])

    assert len(api.requests) == 2 and second_provider.requests_sent == 0
    pd.testing.assert_frame_equal(second.values, first.values)
    assert second_provider.disk_cache is not None and second_provider.disk_cache.hits == 2
    assert [p.parent.name for p in entries(tmp_path)] == ["tokengrid", "tokengrid"]


def test_the_async_face_reads_and_fills_the_same_disk_cache(api, clock, tmp_path):
    grid(api, clock, tmp_path).latest(["DE"])

    async def both() -> None:
        face = grid(api, clock, tmp_path).to_async(transport=httpx.MockTransport(api))
        try:
            await face.latest(["DE", "FR"])
        finally:
            await face.aclose()

    asyncio.run(both())
    assert [r.url.params["zone"] for r in api.requests] == ["DE", "FR"]
    grid(api, clock, tmp_path).latest(["DE", "FR"])
    assert len(api.requests) == 2


def test_disk_entries_expire_with_the_injected_clock(api, clock, tmp_path):
    grid(api, clock, tmp_path, cache_ttl_s=600).latest(["DE"])
    clock.advance(599)
    assert grid(api, clock, tmp_path, cache_ttl_s=600).latest(["DE"]).values.iloc[0, 0] == 101
    clock.advance(2)
    fresh = grid(api, clock, tmp_path, cache_ttl_s=600).latest(["DE"])
    assert fresh.values.iloc[0, 0] == 102 and len(api.requests) == 2
    (entry,) = entries(tmp_path)
    assert datetime.fromisoformat(json.loads(entry.read_text())["expires"]) == clock.now() + (
        timedelta(seconds=600)
    )


def test_no_disk_cache_without_cache_dir_or_with_caching_off(api, clock, tmp_path):
    assert TokenGrid(transport=httpx.MockTransport(api), clock=clock).disk_cache is None
    off = grid(api, clock, tmp_path, cache_ttl_s=0)
    off.latest(["DE"])
    off.latest(["DE"])
    assert off.disk_cache is None and len(api.requests) == 2 and entries(tmp_path) == []


# -- secrets -------------------------------------------------------------------------------


def test_no_secret_reaches_the_cache_files_or_their_names(api, clock, tmp_path):
    grid(api, clock, tmp_path).latest(["DE", "FR"])
    assert api.requests[0].headers["auth-token"] == SECRET  # it was sent...
    assert SECRET in str(api.requests[0].url)
    files = entries(tmp_path)
    assert len(files) == 2
    for path in files:  # ...but never written
        text = path.read_text()
        assert SECRET not in text and SECRET not in str(path)
        assert "auth-token" not in text.lower() and COOKIE not in text
        record = json.loads(text)
        assert record["headers"] == [["content-type", "application/json"]]
        assert "securityToken=REDACTED" in record["request"]
        assert record["request"].startswith("GET https://grid.example.org/v1/latest?zone=")


def test_answers_fetched_with_one_key_are_never_served_to_another(api, clock, tmp_path):
    other = "another-key-0123456789"
    grid(api, clock, tmp_path).latest(["DE"])
    grid(api, clock, tmp_path, api_key=other).latest(["DE"])  # its plan may differ
    grid(api, clock, tmp_path, api_key=other).latest(["DE"])
    grid(api, clock, tmp_path).latest(["DE"])
    assert [r.headers["auth-token"] for r in api.requests] == [SECRET, other]
    assert len(entries(tmp_path)) == 2
    assert all(other not in p.read_text() and other not in p.name for p in entries(tmp_path))


def test_a_provider_without_credentials_shares_entries(tmp_path):
    request = httpx.Request("GET", "https://grid.example.org/v1/latest?zone=DE")
    key = DiskCache.key(request)
    DiskCache(tmp_path).put(key, httpx.Response(200, json={}, request=request), T0 + HOUR)
    assert DiskCache(tmp_path).get(key, T0) is not None
    assert DiskCache(tmp_path, partition="p").get(key, T0) is None


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({"Authorization": "Basic dXNlcjpwYXNz"}, {"ok": True}),  # a login exchange
        ({}, {"token": "eyJhbGciOi.payload.sig"}),
        ({}, {"access_token": "abc", "expires_in": 1800}),
        ({}, {"echo": f"you sent {SECRET}"}),
    ],
)
def test_answers_that_may_carry_a_credential_are_never_written(tmp_path, headers, body):
    disk = DiskCache(tmp_path)
    request = httpx.Request("GET", "https://grid.example.org/v1/login", headers=headers)
    response = httpx.Response(200, json=body, request=request)
    key = DiskCache.key(request, (SECRET,))
    assert disk.put(key, response, T0 + HOUR, (SECRET,)) is False
    assert entries(tmp_path) == [] and disk.get(key, T0) is None


# -- faults ----------------------------------------------------------------------------------


def _corruptions() -> Iterator[tuple[str, bytes | None]]:
    yield "empty", b""
    yield "not json", b"{this is not json"
    yield "truncated", None  # the first half of a real entry
    yield "foreign", json.dumps({"format": "something-else/9", "body": "{}"}).encode()
    yield "bad base64", None
    yield "no zone", None


@pytest.mark.parametrize(("kind", "content"), list(_corruptions()))
def test_a_corrupt_entry_is_ignored_with_a_warning_and_fetched_again(
    api, clock, tmp_path, caplog, kind, content
):
    grid(api, clock, tmp_path).latest(["DE"])
    (path,) = entries(tmp_path)
    good = path.read_bytes()
    if kind == "truncated":
        content = good[: len(good) // 2]
    elif kind == "bad base64":
        record = json.loads(good)
        content = json.dumps({**record, "encoding": "base64", "body": "%%%"}).encode()
    elif kind == "no zone":
        record = json.loads(good)
        content = json.dumps({**record, "expires": "2024-06-01T13:00:00"}).encode()
    assert content is not None
    path.write_bytes(content)

    with caplog.at_level(logging.WARNING, logger="lowcarb.backends.http"):
        series = grid(api, clock, tmp_path).latest(["DE"])

    assert series.values.iloc[0, 0] == 102 and len(api.requests) == 2
    assert "corrupt disk cache entry" in caplog.text and path.name in caplog.text
    assert json.loads(path.read_bytes())["format"] == "lowcarb-http-cache/1"  # rewritten whole


def test_an_entry_under_the_wrong_name_is_not_served(api, clock, tmp_path, caplog):
    # A hash collision or a copied file: the stored request must match the key.
    provider = grid(api, clock, tmp_path)
    provider.latest(["DE", "FR"])
    de, fr = (DiskCache.key(r, (SECRET,)) for r in api.requests)
    disk = provider.disk_cache
    assert disk is not None
    disk.path(de).write_bytes(disk.path(fr).read_bytes())
    with caplog.at_level(logging.WARNING):
        assert disk.get(de, T0) is None
    assert "corrupt" in caplog.text


def test_a_gzip_encoded_answer_replays_from_memory_and_disk(clock, tmp_path):
    payload = {"zone": "DE", "carbonIntensity": 321, "datetime": "2024-06-01T12:00:00.000Z"}

    def gzipped(request: httpx.Request) -> httpx.Response:
        body = gzip.compress(json.dumps(payload).encode())
        return httpx.Response(200, headers={"content-encoding": "gzip"}, content=body)

    transport = httpx.MockTransport(gzipped)
    p = TokenGrid(transport=transport, clock=clock, cache_dir=tmp_path)
    assert p.latest(["DE"]).values.iloc[0, 0] == 321
    assert p.latest(["DE"]).values.iloc[0, 0] == 321  # from memory
    again = TokenGrid(transport=transport, clock=clock, cache_dir=tmp_path)
    assert again.latest(["DE"]).values.iloc[0, 0] == 321 and again.requests_sent == 0


# -- size and concurrency --------------------------------------------------------------------


def _fill(disk: DiskCache, keys: list[str], at: float = 1_700_000_000) -> None:
    import os

    for n, key in enumerate(keys):
        request = httpx.Request("GET", f"https://grid.example.org/{key}")
        disk.put(key, httpx.Response(200, json={"n": n}, request=request), T0 + HOUR)
        os.utime(disk.path(key), (at + n, at + n))  # distinct, ordered write times


def test_the_disk_cache_keeps_at_most_max_entries_dropping_the_oldest(tmp_path):
    disk = DiskCache(tmp_path, max_entries=3)
    keys = [f"GET /k{n}" for n in range(6)]
    _fill(disk, keys)
    assert len(disk) <= 3
    _fill(disk, ["GET /last"], at=1_800_000_000)  # the newest write prunes the older ones
    assert len(disk) == 3
    assert disk.get("GET /last", T0) is not None and disk.get("GET /k0", T0) is None


def test_disk_cache_rejects_a_bad_bound_and_a_file_as_directory(tmp_path):
    with pytest.raises(ValueError, match="max_entries"):
        DiskCache(tmp_path, max_entries=0)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigurationError, match="cache_dir"):
        TokenGrid(cache_dir=blocker)


def _writer(directory: str, worker: int, rounds: int) -> int:
    disk = DiskCache(directory)
    request = httpx.Request("GET", "https://grid.example.org/v1/latest?zone=DE")
    key = DiskCache.key(request)
    body = json.dumps({"worker": worker, "pad": "x" * 20_000})
    for _ in range(rounds):
        disk.put(key, httpx.Response(200, text=body, request=request), T0 + HOUR)
        entry = disk.get(key, T0)
        assert entry is not None and len(json.loads(entry.content)["pad"]) == 20_000
    return disk.writes


@pytest.mark.slow
def test_concurrent_writer_processes_leave_one_whole_entry(tmp_path, caplog):
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("needs the fork start method")
    context = multiprocessing.get_context("fork")
    with (
        caplog.at_level(logging.WARNING),
        ProcessPoolExecutor(max_workers=3, mp_context=context) as pool,
    ):
        futures = [pool.submit(_writer, str(tmp_path), w, 40) for w in range(3)]
        written = [f.result() for f in futures]
    assert written == [40, 40, 40]
    (entry,) = entries(tmp_path)  # one entry, no temporary file left behind
    assert json.loads(json.loads(entry.read_text())["body"])["worker"] in {0, 1, 2}
    assert "corrupt" not in caplog.text


# -- configuration ---------------------------------------------------------------------------


def test_cache_dir_comes_from_the_environment_per_provider(tmp_path):
    settings = load_settings(environ={"LOWCARB_UKCARBON_CACHE_DIR": str(tmp_path / "c")})
    options = settings.provider_options("ukcarbon")
    assert options.cache_dir == tmp_path / "c"
    provider = settings.open_provider("ukcarbon")
    assert isinstance(provider, UKCarbonIntensityProvider)
    assert provider.disk_cache is not None
    assert provider.disk_cache.directory == tmp_path / "c" / "ukcarbon"
    assert (tmp_path / "c" / "ukcarbon").is_dir()


def test_cache_dir_defaults_to_memory_only():
    assert load_settings(environ={}).provider_options("ukcarbon").cache_dir is None


def test_a_relative_cache_dir_in_a_project_file_is_relative_to_that_file(tmp_path):
    project = tmp_path / "project"
    (project / "sub").mkdir(parents=True)
    (project / "lowcarb.toml").write_text('[providers.ukcarbon]\ncache_dir = ".cache"\n')
    settings = load_settings(environ={}, cwd=project / "sub")  # found in the parent
    assert settings.provider_options("ukcarbon").cache_dir == project / ".cache"
