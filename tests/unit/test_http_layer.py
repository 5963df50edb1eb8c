"""The shared HTTP layer over httpx.MockTransport: retries, errors, timeouts, cache, redaction."""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from lowcarb import ManualClock
from lowcarb.backends._http_core import HttpCore
from lowcarb.backends.toolkit import (
    STATUS_ERRORS,
    AsyncDriver,
    Call,
    Flow,
    ResponseCache,
    RetryPolicy,
    SyncDriver,
    json_body,
)
from lowcarb.exceptions import (
    AuthenticationError,
    InvalidInputError,
    NoDataError,
    ProviderError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RateLimitedError,
    ResponseParseError,
)

T0 = datetime(2024, 6, 1, 12, tzinfo=UTC)
SECRET = "s3cr3t-t0ken-value"
OK = {"data": [1, 2, 3]}


class Server:
    """Scripted answers, then 200 OK; records every request."""

    def __init__(self, *script: httpx.Response | Exception) -> None:
        self.script = list(script)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.script:
            item = self.script.pop(0)
            if isinstance(item, Exception):
                raise item
            return item
        return httpx.Response(200, json=OK)


def make_core(clock: ManualClock, **kwargs) -> HttpCore:
    defaults = dict(
        provider="testgrid",
        base_url="https://api.example.org/v1/",
        timeout_s=5.0,
        retry=RetryPolicy(max_attempts=4, max_total_s=60, backoff_s=1, max_backoff_s=8),
        clock=clock,
        cache=ResponseCache(),
        headers={"auth-token": SECRET, "Accept": "application/json"},
        secrets=(SECRET,),
        auth_hint="check LOWCARB_TESTGRID_TOKEN",
        rng=random.Random(0),
    )
    defaults.update(kwargs)
    return HttpCore(**defaults)


def sync(server: Server, clock: ManualClock | None = None, **kwargs) -> SyncDriver:
    return SyncDriver(
        make_core(clock or ManualClock(T0), **kwargs), transport=httpx.MockTransport(server)
    )


def get(path: str = "/zone/DE", **kwargs) -> Call:
    return Call(path, **kwargs)


# -- requests -------------------------------------------------------------------------------


def test_every_request_has_a_timeout_base_url_and_headers():
    server = Server()
    driver = sync(server)
    response = driver.send(get(params={"zone": "DE", "zones": ["A", "B"]}))
    assert response.json() == OK
    (request,) = server.requests
    assert str(request.url) == "https://api.example.org/v1/zone/DE?zone=DE&zones=A&zones=B"
    assert request.extensions["timeout"] == {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 5.0}
    assert (
        request.headers["auth-token"] == SECRET and request.headers["accept"] == "application/json"
    )


def test_status_table_retries_only_transient_statuses():
    retryable = {status for status, row in STATUS_ERRORS.items() if row.retry}
    assert retryable == {429, 502, 503, 504}
    assert STATUS_ERRORS[401].error is AuthenticationError
    assert STATUS_ERRORS[403].error is AuthenticationError
    assert STATUS_ERRORS[404].error is NoDataError
    assert STATUS_ERRORS[429].error is RateLimitedError


# -- retries --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [502, 503, 504])
def test_transient_5xx_is_retried_with_backoff_on_the_clock(status):
    clock = ManualClock(T0)
    server = Server(httpx.Response(status), httpx.Response(status))
    response = sync(server, clock).send(get())
    assert response.status_code == 200 and len(server.requests) == 3
    waited = (clock.now() - T0).total_seconds()
    # Backoffs 1 s then 2 s, each drawn from the upper half of its ceiling.
    assert 0.5 + 1.0 <= waited <= 1.0 + 2.0


def test_retries_are_bounded_in_count():
    clock = ManualClock(T0)
    server = Server(*[httpx.Response(503) for _ in range(10)])
    with pytest.raises(ProviderUnavailableError, match="gave up after 4 attempts") as info:
        sync(server, clock).send(get())
    assert len(server.requests) == 4 and info.value.status_code == 503


def test_retries_are_bounded_in_total_time_by_the_clock():
    clock = ManualClock(T0)
    server = Server(*[httpx.Response(502) for _ in range(10)])
    driver = sync(
        server,
        clock,
        retry=RetryPolicy(max_attempts=50, max_total_s=10, backoff_s=2, max_backoff_s=8),
    )
    with pytest.raises(ProviderUnavailableError, match="gave up"):
        driver.send(get())
    assert (clock.now() - T0).total_seconds() <= 10
    assert 2 <= len(server.requests) < 10


def test_429_honours_retry_after_seconds():
    clock = ManualClock(T0)
    server = Server(httpx.Response(429, headers={"Retry-After": "7"}))
    assert sync(server, clock).send(get()).status_code == 200
    assert clock.now() - T0 == timedelta(seconds=7)


def test_429_honours_retry_after_http_date():
    clock = ManualClock(T0)
    when = format_datetime(T0 + timedelta(seconds=12), usegmt=True)
    server = Server(httpx.Response(429, headers={"Retry-After": when}))
    sync(server, clock).send(get())
    assert clock.now() - T0 == timedelta(seconds=12)


def test_429_beyond_the_budget_fails_at_once_with_retry_after():
    clock = ManualClock(T0)
    server = Server(httpx.Response(429, headers={"Retry-After": "600"}, json={"message": "slow"}))
    with pytest.raises(RateLimitedError, match="beyond the retry budget") as info:
        sync(server, clock).send(get())
    assert info.value.retry_after == 600 and len(server.requests) == 1
    assert clock.now() == T0  # never slept


def test_429_exhausted_keeps_retry_after():
    server = Server(*[httpx.Response(429, headers={"Retry-After": "1"}) for _ in range(4)])
    with pytest.raises(RateLimitedError) as info:
        sync(server).send(get())
    assert info.value.retry_after == 1 and info.value.status_code == 429


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, ProviderError),
        (401, AuthenticationError),
        (403, AuthenticationError),
        (404, NoDataError),
        (422, ProviderError),
        (500, ProviderUnavailableError),
        (501, NoDataError),
        (418, ProviderError),
        (599, ProviderUnavailableError),
        (302, ProviderError),
    ],
)
def test_other_errors_are_never_retried(status, error):
    clock = ManualClock(T0)
    server = Server(httpx.Response(status, json={"message": "nope"}))
    with pytest.raises(error) as info:
        sync(server, clock).send(get())
    assert type(info.value) is error
    assert len(server.requests) == 1 and clock.now() == T0
    assert info.value.status_code == status
    assert info.value.provider == "testgrid"


def test_authentication_error_says_which_variable_to_set():
    server = Server(httpx.Response(401, json={"error": "Invalid auth-token"}))
    with pytest.raises(AuthenticationError) as info:
        sync(server).send(get())
    text = str(info.value)
    assert "LOWCARB_TESTGRID_TOKEN" in text and "Invalid auth-token" in text
    assert "GET https://api.example.org/v1/zone/DE -> 401" in text


@pytest.mark.parametrize(
    ("exc", "error"),
    [
        (httpx.ConnectTimeout("connect timed out"), ProviderTimeoutError),
        (httpx.ReadTimeout("read timed out"), ProviderTimeoutError),
        (httpx.ConnectError("connection refused"), ProviderUnavailableError),
        (httpx.RemoteProtocolError("peer closed"), ProviderUnavailableError),
    ],
)
def test_transient_transport_failures_are_retried_then_succeed(exc, error):
    server = Server(exc)
    assert sync(server).send(get()).status_code == 200
    assert len(server.requests) == 2


def test_a_provider_slower_than_the_timeout_is_a_timeout_error():
    server = Server(*[httpx.ReadTimeout("timed out") for _ in range(4)])
    with pytest.raises(ProviderTimeoutError, match="timed out after 5 s") as info:
        sync(server).send(get(label="forecast DE"))
    assert isinstance(info.value, TimeoutError)
    assert "GET https://api.example.org/v1/zone/DE (forecast DE)" in str(info.value)
    assert isinstance(info.value.__cause__, httpx.ReadTimeout)
    assert len(server.requests) == 4


def test_non_transient_transport_failure_is_not_retried():
    server = Server(httpx.UnsupportedProtocol("no"))
    with pytest.raises(ProviderUnavailableError):
        sync(server).send(get())
    assert len(server.requests) == 1


def test_accepted_statuses_reach_the_flow():
    server = Server(httpx.Response(401, json={"error": "expired"}))
    response = sync(server).send(get(accept=frozenset({401})))
    assert response.status_code == 401


def test_unexpected_exceptions_are_not_swallowed_or_retried():
    class Boom(Exception):
        pass

    server = Server(Boom("cassette miss"))
    with pytest.raises(Boom):
        sync(server).send(get())
    assert len(server.requests) == 1


# -- redaction ------------------------------------------------------------------------------


def test_secrets_never_appear_in_errors_logs_or_reprs(caplog):
    body = {"message": f"bad token {SECRET}"}
    server = Server(
        httpx.Response(503, json=body),
        httpx.Response(403, json=body),
    )
    driver = sync(server)
    caplog.set_level(logging.DEBUG, logger="lowcarb.backends.http")
    with pytest.raises(AuthenticationError) as info:
        driver.send(get(params={"securityToken": "other-secret-123", "zone": "DE"}))
    texts = [str(info.value), caplog.text, repr(driver), repr(driver.core)]
    for text in texts:
        assert SECRET not in text and "other-secret-123" not in text
    assert "securityToken=REDACTED" in str(info.value)
    assert "retrying" in caplog.text


# -- flows ----------------------------------------------------------------------------------


def two_step() -> Flow[int]:
    (first,) = yield [get("/a")]
    second, third = yield [get("/b"), get("/c")]
    return len(first.json()["data"]) + second.status_code + third.status_code


def test_sync_driver_runs_a_flow_in_order():
    server = Server()
    assert sync(server).run(two_step()) == 3 + 200 + 200
    assert [r.url.path for r in server.requests] == ["/v1/a", "/v1/b", "/v1/c"]


def test_a_parser_bug_becomes_a_response_parse_error_naming_the_request():
    def flow() -> Flow[int]:
        (response,) = yield [get("/a", params={"securityToken": "hush-123"})]
        return response.json()["missing"]

    with pytest.raises(ResponseParseError, match="KeyError") as info:
        sync(Server()).run(flow())
    assert "GET https://api.example.org/v1/a" in str(info.value)
    assert "hush-123" not in str(info.value)


def test_lowcarb_errors_from_a_flow_pass_through():
    def flow() -> Flow[int]:
        yield [get()]
        raise InvalidInputError("bad zone")

    with pytest.raises(InvalidInputError, match="bad zone"):
        sync(Server()).run(flow())


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "empty body"),
        (b'{"data": [{"from": "2024-06-01T12:00Z", "to"', "not valid JSON"),
        (b"<html>oops</html>", "not valid JSON"),
    ],
)
def test_json_body_rejects_empty_truncated_and_non_json(content, match):
    request = httpx.Request("GET", "https://x.org/a?token=abc123def")
    response = httpx.Response(200, content=content, request=request)
    with pytest.raises(ResponseParseError, match=match) as info:
        json_body(response, provider="testgrid")
    assert "abc123def" not in str(info.value) and "https://x.org/a" in str(info.value)


# -- cache ----------------------------------------------------------------------------------


def test_cache_serves_within_ttl_and_refetches_after_it():
    clock = ManualClock(T0)
    server = Server()
    driver = sync(server, clock)
    call = get(cache_ttl=timedelta(minutes=30))
    for _ in range(5):
        assert driver.send(call).json() == OK
    assert len(server.requests) == 1 and driver.core.cache.hits == 4
    clock.advance(timedelta(minutes=29))
    driver.send(call)
    assert len(server.requests) == 1
    clock.advance(timedelta(minutes=1))
    driver.send(call)
    assert len(server.requests) == 2
    assert driver.core.requests_sent == 2


def test_cache_keys_on_the_full_request_and_skips_uncached_calls_and_errors():
    clock = ManualClock(T0)
    server = Server(httpx.Response(404))
    driver = sync(server, clock)
    ttl = timedelta(hours=1)
    with pytest.raises(NoDataError):
        driver.send(get(cache_ttl=ttl))
    driver.send(get(cache_ttl=ttl))  # the error was not cached
    driver.send(get(cache_ttl=ttl, params={"zone": "FR"}))
    driver.send(get())  # no TTL: never cached
    driver.send(get())
    assert len(server.requests) == 5


def test_cache_is_bounded():
    cache = ResponseCache(max_entries=2)
    request = httpx.Request("GET", "https://x.org/")
    response = httpx.Response(200, content=b"{}", request=request)
    for key in "abc":
        cache.put(key, response, T0 + timedelta(hours=1))
    assert len(cache) == 2 and cache.get("a", T0) is None and cache.get("c", T0) is not None


def test_a_disabled_cache_never_serves():
    server = Server()
    driver = sync(server, cache=None)
    for _ in range(3):
        driver.send(get(cache_ttl=timedelta(hours=1)))
    assert len(server.requests) == 3


def test_sync_driver_sends_a_batch_from_threads_in_order_and_bounded():
    state = {"active": 0, "peak": 0}
    lock = threading.Lock()
    both_in = threading.Barrier(2, timeout=5)

    def handler(request: httpx.Request) -> httpx.Response:
        with lock:
            state["active"] += 1
            state["peak"] = max(state["peak"], state["active"])
        if request.url.path.endswith("/0") or request.url.path.endswith("/1"):
            both_in.wait()  # the first two are in flight together, or this times out
        with lock:
            state["active"] -= 1
        if request.url.path.endswith("/7"):
            return httpx.Response(404, json={"error": "no zone 7"})
        return httpx.Response(200, json={"path": request.url.path})

    driver = SyncDriver(
        make_core(ManualClock(T0)), transport=httpx.MockTransport(handler), max_concurrency=3
    )
    responses = driver.send_all([get(f"/zone/{i}") for i in range(6)])
    assert [r.json()["path"] for r in responses] == [f"/v1/zone/{i}" for i in range(6)]
    assert 2 <= state["peak"] <= 3
    with pytest.raises(NoDataError, match="zone/7"):
        driver.send_all([get(f"/zone/{i}") for i in range(5, 9)])
    one_at_a_time = SyncDriver(make_core(ManualClock(T0)), transport=httpx.MockTransport(handler))
    state["peak"] = 0
    one_at_a_time.send_all([get(f"/zone/{i}") for i in range(2, 6)])
    assert state["peak"] == 1


# -- async ----------------------------------------------------------------------------------


def test_async_driver_bounds_concurrency():
    clock = ManualClock(T0)
    state = {"active": 0, "peak": 0}

    async def handler(request: httpx.Request) -> httpx.Response:
        state["active"] += 1
        state["peak"] = max(state["peak"], state["active"])
        for _ in range(5):
            await asyncio.sleep(0)
        state["active"] -= 1
        return httpx.Response(200, json={"path": request.url.path})

    driver = AsyncDriver(
        make_core(clock), transport=httpx.MockTransport(handler), max_concurrency=3
    )
    calls = [get(f"/zone/{i}") for i in range(20)]

    async def run() -> list[httpx.Response]:
        try:
            return await driver.send_all(calls)
        finally:
            await driver.aclose()

    responses = asyncio.run(run())
    assert [r.json()["path"] for r in responses] == [f"/v1/zone/{i}" for i in range(20)]
    assert state["peak"] == 3 and driver.peak_concurrency == 3


def test_async_driver_shares_identical_cacheable_calls_in_flight():
    clock = ManualClock(T0)
    count = {"n": 0}

    async def handler(request: httpx.Request) -> httpx.Response:
        count["n"] += 1
        for _ in range(3):
            await asyncio.sleep(0)
        return httpx.Response(200, json=OK)

    driver = AsyncDriver(make_core(clock), transport=httpx.MockTransport(handler))
    call = get(cache_ttl=timedelta(minutes=5))

    async def run() -> None:
        await asyncio.gather(*(driver.send(call) for _ in range(10)))
        await driver.aclose()

    asyncio.run(run())
    assert count["n"] == 1


def test_async_driver_retries_on_the_clock_and_maps_errors():
    clock = ManualClock(T0)
    server = Server(httpx.Response(429, headers={"Retry-After": "3"}), httpx.Response(503))

    async def run() -> httpx.Response:
        driver = AsyncDriver(make_core(clock), transport=httpx.MockTransport(server))
        try:
            return await driver.send(get())
        finally:
            await driver.aclose()

    assert asyncio.run(run()).status_code == 200
    assert len(server.requests) == 3
    assert 3 + 0.5 <= (clock.now() - T0).total_seconds() <= 3 + 2

    server = Server(httpx.Response(401))

    async def fail() -> None:
        driver = AsyncDriver(make_core(clock), transport=httpx.MockTransport(server))
        try:
            await driver.send(get())
        finally:
            await driver.aclose()

    with pytest.raises(AuthenticationError):
        asyncio.run(fail())
    assert len(server.requests) == 1


def test_async_driver_runs_the_same_flow_and_raises_the_first_failure_in_order():
    server = Server()
    clock = ManualClock(T0)

    async def run(flow: Flow[int], srv: Server) -> int:
        driver = AsyncDriver(make_core(clock), transport=httpx.MockTransport(srv))
        try:
            return await driver.run(flow)
        finally:
            await driver.aclose()

    assert asyncio.run(run(two_step(), server)) == 403
    failing = Server(httpx.Response(200, json=OK), httpx.Response(404), httpx.Response(400))
    with pytest.raises(NoDataError):
        asyncio.run(run(two_step(), failing))


def test_retry_policy_validates_and_jitters_within_bounds():
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(max_total_s=float("nan"))
    policy = RetryPolicy(backoff_s=1, max_backoff_s=5)
    rng = random.Random(1)
    waits = [policy.backoff(n, rng) for n in range(1, 8)]
    assert 0.5 <= waits[0] <= 1 and 1 <= waits[1] <= 2 and all(w <= 5 for w in waits)
    assert all(2.5 <= w <= 5 for w in waits[3:])


@pytest.mark.parametrize("pad", [0, 100])
def test_a_malformed_body_is_quoted_without_the_secret(pad):
    # A truncated answer that echoes the key, also where the quote is cut (pad 100).
    body = ("x" * pad + f'{{"echo": "{SECRET}", "data": [1, 2').encode()
    request = httpx.Request("GET", "https://api.test/v1/data")
    response = httpx.Response(200, content=body, request=request)
    with pytest.raises(ResponseParseError, match="not valid JSON") as info:
        json_body(response, provider="test", secrets=[SECRET])
    assert SECRET[:8] not in str(info.value)
