"""The two drivers of the HTTP layer: they run flows, and differ only in how they send.

:class:`SyncDriver` sends with ``httpx.Client``, retrying with
``tenacity.Retrying(sleep=clock.sleep)``; the calls of one batch go out from a thread
pool, at most ``max_concurrency`` at a time (the engine fetches many zones per round).
:class:`AsyncDriver` sends with ``httpx.AsyncClient``, retrying with
``tenacity.AsyncRetrying(sleep=clock.asleep)``; the calls of one batch go out
concurrently, at most ``max_concurrency`` at a time, and identical cacheable calls in
flight are sent once. Everything else (requests, cache, errors, retry policy) is the
shared :class:`~lowcarb.backends._http_core.HttpCore`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import httpx
import tenacity

from lowcarb.backends._http_cache import ResponseCache
from lowcarb.backends._http_calls import Call, Flow
from lowcarb.backends._http_core import HttpCore
from lowcarb.backends._http_retry import Retryable
from lowcarb.exceptions import LowcarbError, ResponseParseError

__all__ = ["AsyncDriver", "SyncDriver"]

T = TypeVar("T")


def _bad_flow(core: HttpCore, exc: Exception, last: list[httpx.Request]) -> ResponseParseError:
    # Defence in depth: a parser bug or a body shaped in a way nobody foresaw must become
    # a provider error (so a fallback can take over), not a crash inside training.
    where = ", ".join(core.describe(r) for r in last) or "the response"
    return ResponseParseError(
        f"could not interpret the answer to {where}: {type(exc).__name__}: {core.redact(str(exc))}",
        provider=core.provider,
    )


class SyncDriver:
    """Runs flows over an ``httpx.Client`` (created on first use unless one is given).

    Args:
        core: The sans-IO core.
        transport: An httpx transport (tests pass ``httpx.MockTransport``).
        client: A ready client; the caller keeps ownership (it is not closed here).
        max_concurrency: Requests of one batch in flight at once, from worker threads
            (``httpx.Client`` is thread-safe); 1 sends them one after another.
    """

    def __init__(
        self,
        core: HttpCore,
        *,
        transport: httpx.BaseTransport | None = None,
        client: httpx.Client | None = None,
        max_concurrency: int = 1,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        self.max_concurrency = max_concurrency
        self.core = core
        self._transport = transport
        self._client = client
        self._owns_client = client is None
        self._lock = threading.Lock()

    @property
    def client(self) -> httpx.Client:
        """The httpx client, created on first use."""
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(transport=self._transport, follow_redirects=False)
            return self._client

    def run(self, flow: Flow[T]) -> T:
        """Drive ``flow`` to its result, sending each batch of calls in order."""
        sent: list[httpx.Request] = []
        try:
            calls = next(flow)
            while True:
                responses = self.send_all(calls)
                sent = [r.request for r in responses]
                calls = flow.send(responses)
        except StopIteration as stop:
            result: T = stop.value
            return result
        except LowcarbError:
            raise  # our own errors (provider failures, bad input) pass through untouched
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise _bad_flow(self.core, exc, sent) from exc
        finally:
            flow.close()

    def send_all(self, calls: Sequence[Call]) -> list[httpx.Response]:
        """Send ``calls``, several at once when allowed.

        The first failure (in call order) is raised once every request has finished.
        """
        workers = min(self.max_concurrency, len(calls))
        if workers <= 1:
            return [self.send(call) for call in calls]
        with ThreadPoolExecutor(workers, thread_name_prefix="lowcarb-http") as pool:
            futures = [pool.submit(self.send, call) for call in calls]
        return [future.result() for future in futures]

    def send(self, call: Call) -> httpx.Response:
        """Send one call: cache, timeout, retries and error mapping included."""
        core = self.core
        request = core.build(call)
        cached = core.cached(call, request)
        if cached is not None:
            return cached
        started = core.clock.now()
        retrying = tenacity.Retrying(sleep=core.clock.sleep, **core.retrying_arguments(started))
        response: httpx.Response | None = None
        try:
            for attempt in retrying:
                with attempt:
                    response = self._attempt(call, request)
        except Retryable as failed:
            core.give_up(failed, retrying.statistics.get("attempt_number", 1), started)
        assert response is not None
        core.store(call, request, response)
        return response

    def _attempt(self, call: Call, request: httpx.Request) -> httpx.Response:
        core = self.core
        core.requests_sent += 1
        try:
            response = self.client.send(request)
        except httpx.RequestError as exc:
            failure = core.transport_failure(call, request, exc)
            if failure.retryable:
                raise Retryable(failure) from exc
            raise failure.build(core.provider) from exc
        core.check(call, request, response)
        return response

    def close(self) -> None:
        """Close the client if this driver created it."""
        with self._lock:
            if self._client is not None and self._owns_client:
                self._client.close()
                self._client = None

    def __repr__(self) -> str:
        return f"SyncDriver({self.core!r})"


class AsyncDriver:
    """Runs flows over an ``httpx.AsyncClient``, sending each batch concurrently.

    Args:
        core: The sans-IO core (shared with a sync driver to share the cache).
        transport: An async httpx transport (tests pass ``httpx.MockTransport``).
        client: A ready client; the caller keeps ownership.
        max_concurrency: Requests in flight at once, at most.
    """

    def __init__(
        self,
        core: HttpCore,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        client: httpx.AsyncClient | None = None,
        max_concurrency: int = 8,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        self.core = core
        self.max_concurrency = max_concurrency
        self._transport = transport
        self._client = client
        self._owns_client = client is None
        self._semaphore: asyncio.Semaphore | None = None
        self._inflight: dict[str, asyncio.Future[httpx.Response]] = {}
        #: The most requests that were in flight at once (for tests and benchmarks).
        self.peak_concurrency = 0
        self._active = 0

    @property
    def client(self) -> httpx.AsyncClient:
        """The httpx async client, created on first use."""
        if self._client is None:
            self._client = httpx.AsyncClient(transport=self._transport, follow_redirects=False)
        return self._client

    async def run(self, flow: Flow[T]) -> T:
        """Drive ``flow`` to its result; the calls of one batch go out concurrently."""
        sent: list[httpx.Request] = []
        try:
            calls = next(flow)
            while True:
                responses = await self.send_all(calls)
                sent = [r.request for r in responses]
                calls = flow.send(responses)
        except StopIteration as stop:
            result: T = stop.value
            return result
        except LowcarbError:
            raise  # our own errors (provider failures, bad input) pass through untouched
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise _bad_flow(self.core, exc, sent) from exc
        finally:
            flow.close()

    async def send_all(self, calls: Sequence[Call]) -> list[httpx.Response]:
        """Send ``calls`` concurrently; the first failure (in call order) is raised."""
        if len(calls) == 1:
            return [await self.send(calls[0])]
        outcomes = await asyncio.gather(*(self.send(c) for c in calls), return_exceptions=True)
        responses: list[httpx.Response] = []
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
            responses.append(outcome)
        return responses

    async def send(self, call: Call) -> httpx.Response:
        """Send one call: cache, in-flight sharing, timeout, retries and error mapping."""
        core = self.core
        request = core.build(call)
        cached = core.cached(call, request)
        if cached is not None:
            return cached
        if (core.cache is None and core.disk is None) or not call.cache_ttl:
            return await self._send(call, request)
        # An identical cacheable request already on its way: wait for its answer.
        key = ResponseCache.key(request)
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[httpx.Response] = asyncio.get_running_loop().create_future()
        # Mark a failure as retrieved even if nobody else was waiting for it.
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._inflight[key] = future
        try:
            response = await self._send(call, request)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            raise
        else:
            future.set_result(response)
            return response
        finally:
            self._inflight.pop(key, None)

    async def _send(self, call: Call, request: httpx.Request) -> httpx.Response:
        core = self.core
        started = core.clock.now()
        retrying = tenacity.AsyncRetrying(
            sleep=core.clock.asleep, **core.retrying_arguments(started)
        )
        response: httpx.Response | None = None
        try:
            async for attempt in retrying:
                with attempt:
                    response = await self._attempt(call, request)
        except Retryable as failed:
            core.give_up(failed, retrying.statistics.get("attempt_number", 1), started)
        assert response is not None
        core.store(call, request, response)
        return response

    async def _attempt(self, call: Call, request: httpx.Request) -> httpx.Response:
        core = self.core
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.max_concurrency)
        async with self._semaphore:
            core.requests_sent += 1
            self._active += 1
            self.peak_concurrency = max(self.peak_concurrency, self._active)
            try:
                response = await self.client.send(request)
            except httpx.RequestError as exc:
                failure = core.transport_failure(call, request, exc)
                if failure.retryable:
                    raise Retryable(failure) from exc
                raise failure.build(core.provider) from exc
            finally:
                self._active -= 1
        core.check(call, request, response)
        return response

    async def aclose(self) -> None:
        """Close the client if this driver created it."""
        if self._client is not None and self._owns_client:
            await self._client.aclose()
            self._client = None

    def __repr__(self) -> str:
        return f"AsyncDriver({self.core!r}, max_concurrency={self.max_concurrency})"
