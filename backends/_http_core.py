"""The sans-IO core of the HTTP layer, shared by the sync and the async driver.

:class:`HttpCore` never sends anything. It builds the ``httpx.Request`` of a
:class:`~lowcarb.backends._http_calls.Call` (base URL, headers, timeout), answers from
and fills the response caches (:mod:`lowcarb.backends._http_cache`), classifies
responses with the one table :data:`STATUS_ERRORS` and maps transport exceptions, and
hands the retry policy (:mod:`lowcarb.backends._http_retry`) to the drivers.

Secrets: every message, log line and repr passes through :func:`lowcarb.exceptions.redact`
with the provider's known secret values, so a token never leaves in an error.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple, NoReturn

import httpx

from lowcarb._clock import Clock
from lowcarb.backends._http_cache import DiskCache, ResponseCache
from lowcarb.backends._http_calls import Call, describe_request, error_detail
from lowcarb.backends._http_retry import (
    Failure,
    Retryable,
    RetryPolicy,
    give_up,
    retry_after_s,
    tenacity_arguments,
)
from lowcarb.exceptions import (
    AuthenticationError,
    NoDataError,
    ProviderError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RateLimitedError,
    ResponseParseError,
    redact,
)

__all__ = ["STATUS_ERRORS", "HttpCore"]

log = logging.getLogger("lowcarb.backends.http")


class _Row(NamedTuple):
    error: type[ProviderError]
    retry: bool
    what: str


#: The one table from HTTP status to lowcarb error. ``retry`` marks the transient ones.
#: Statuses not listed fall back to ``ProviderError`` (4xx) or
#: ``ProviderUnavailableError`` (5xx), never retried.
STATUS_ERRORS: Mapping[int, _Row] = {
    400: _Row(ProviderError, False, "rejected the request as invalid"),
    401: _Row(AuthenticationError, False, "rejected the credentials"),
    403: _Row(AuthenticationError, False, "refused access"),
    404: _Row(NoDataError, False, "has no data for this request"),
    408: _Row(ProviderTimeoutError, False, "timed out on its side"),
    422: _Row(ProviderError, False, "rejected the request as invalid"),
    429: _Row(RateLimitedError, True, "is rate limiting us"),
    500: _Row(ProviderUnavailableError, False, "failed with an internal error"),
    501: _Row(NoDataError, False, "does not implement this request"),
    502: _Row(ProviderUnavailableError, True, "is unavailable (bad gateway)"),
    503: _Row(ProviderUnavailableError, True, "is unavailable"),
    504: _Row(ProviderUnavailableError, True, "is unavailable (gateway timeout)"),
}

# Transport failures worth another try: the request may not have reached the server, or
# the answer was cut off. Others (proxy, protocol misuse) will fail the same way again.
_TRANSIENT_TRANSPORT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


class HttpCore:
    """Sans-IO half of the HTTP layer, shared by :class:`SyncDriver` and :class:`AsyncDriver`.

    Args:
        provider: Registry name, prefixed to every error.
        base_url: Prepended to every :attr:`Call.path`.
        timeout_s: Timeout of each request (connect, read, write and pool), in seconds.
        retry: The retry policy.
        clock: Time source for the cache, the retry budget and the waits.
        cache: Response cache; None disables caching.
        headers: Headers sent with every request (e.g. ``Accept``, an auth header).
        secrets: Secret values to scrub from every message and log line.
        auth_hint: Appended to authentication errors (which variable to set).
        classify: Provider hook: an error for a response the table would misjudge (e.g.
            a 200 whose body says "error"), or None to use :data:`STATUS_ERRORS`.
        detail: Provider hook: the human message inside an error body.
        rng: Random source of the backoff jitter.
        disk: Persistent second level under ``cache`` (same TTLs); None: memory only.
    """

    def __init__(
        self,
        *,
        provider: str,
        base_url: str,
        timeout_s: float,
        retry: RetryPolicy,
        clock: Clock,
        cache: ResponseCache | None,
        headers: Mapping[str, str] | None = None,
        secrets: Sequence[str] = (),
        auth_hint: str = "",
        classify: Callable[[httpx.Response], ProviderError | None] | None = None,
        detail: Callable[[httpx.Response], str] | None = None,
        rng: random.Random | None = None,
        disk: DiskCache | None = None,
    ) -> None:
        if not (math.isfinite(timeout_s) and timeout_s > 0):
            raise ValueError(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self.timeout = httpx.Timeout(timeout_s)
        self.timeout_s = timeout_s
        self.retry = retry
        self.clock = clock
        self.cache = cache
        self.disk = disk
        self.headers = dict(headers or {})
        self.secrets = tuple(s for s in secrets if s)
        self.auth_hint = auth_hint
        self._classify = classify
        self._detail = detail or error_detail
        self.rng = rng or random.Random()
        #: Requests that went to the network (not the cache), retries included.
        self.requests_sent = 0

    # -- building and describing ----------------------------------------------------------

    def build(self, call: Call) -> httpx.Request:
        """The request for ``call``, with base URL, headers and the timeout attached."""
        params: list[tuple[str, str | int | float | bool | None]] = [
            (key, item)
            for key, value in call.params.items()
            for item in ([value] if isinstance(value, str) else value)
        ]
        return httpx.Request(
            call.method,
            self.base_url + call.path,
            params=params or None,
            headers={**self.headers, **call.headers},
            content=call.body,
            extensions={"timeout": self.timeout.as_dict()},
        )

    def describe(self, request: httpx.Request) -> str:
        """``METHOD URL`` with secrets redacted."""
        return describe_request(request, self.secrets)

    def redact(self, text: str) -> str:
        """``text`` with credentials (patterns and known values) replaced."""
        return redact(text, self.secrets)

    # -- the cache ------------------------------------------------------------------------

    def cached(self, call: Call, request: httpx.Request) -> httpx.Response | None:
        """A fresh cached answer to ``request`` (memory first, then disk), if any."""
        if (self.cache is None and self.disk is None) or not call.cache_ttl:
            return None
        now = self.clock.now()
        entry = self.cache.get(ResponseCache.key(request), now) if self.cache else None
        where = "the cache"
        if entry is None and self.disk is not None:
            entry = self.disk.get(self.disk.key(request, self.secrets), now)
            where = "the disk cache"
        if entry is None:
            return None
        log.debug("%s: %s answered from %s", self.provider, self.describe(request), where)
        response = httpx.Response(
            entry.status_code, headers=entry.headers, content=entry.content, request=request
        )
        if where == "the disk cache" and self.cache is not None:
            self.cache.put(ResponseCache.key(request), response, entry.expires)
        return response

    def store(self, call: Call, request: httpx.Request, response: httpx.Response) -> None:
        """Keep a successful (2xx) answer for ``call.cache_ttl``, in memory and on disk."""
        if not call.cache_ttl or call.cache_ttl <= timedelta(0):
            return
        if not 200 <= response.status_code < 300:
            return
        expires = self.clock.now() + call.cache_ttl
        if self.cache is not None:
            self.cache.put(ResponseCache.key(request), response, expires)
        if self.disk is not None:
            self.disk.put(self.disk.key(request, self.secrets), response, expires, self.secrets)

    # -- classifying outcomes -------------------------------------------------------------

    def check(self, call: Call, request: httpx.Request, response: httpx.Response) -> None:
        """Raise for an error response: :class:`Retryable` if transient, else the error."""
        log.debug("%s: %s -> %d", self.provider, self.describe(request), response.status_code)
        if response.status_code in call.accept:
            return
        failure = self.classify(call, request, response)
        if failure is None:
            return
        if failure.retryable:
            raise Retryable(failure)
        raise failure.build(self.provider)

    def classify(
        self, call: Call, request: httpx.Request, response: httpx.Response
    ) -> Failure | None:
        """What went wrong with ``response``, or None when it is a success."""
        status = response.status_code
        where = self.describe(request) + (f" ({call.label})" if call.label else "")
        special = self._classify(response) if self._classify else None
        if special is not None:
            return Failure(
                type(special),
                str(special).removeprefix(f"{self.provider}: "),
                status,
                getattr(special, "retry_after", None),
                isinstance(special, RateLimitedError) or status in _RETRY_STATUSES,
            )
        if 200 <= status < 300:
            return None
        row = STATUS_ERRORS.get(status)
        if row is None:
            error = ProviderUnavailableError if status >= 500 else ProviderError
            row = _Row(error, False, f"answered with HTTP {status}")
        detail = self.redact(self._detail(response))
        message = f"{where} -> {status}: the provider {row.what}" + (
            f": {detail}" if detail else ""
        )
        if row.error is AuthenticationError and self.auth_hint:
            message += f"; {self.auth_hint}"
        retry_after = self.retry_after(response) if status in (429, 503) else None
        return Failure(row.error, message, status, retry_after, row.retry)

    def transport_failure(self, call: Call, request: httpx.Request, exc: Exception) -> Failure:
        """Map an httpx exception raised while sending ``request``."""
        where = self.describe(request) + (f" ({call.label})" if call.label else "")
        kind = type(exc).__name__
        if isinstance(exc, httpx.TimeoutException):
            return Failure(
                ProviderTimeoutError,
                f"{where} timed out after {self.timeout_s:g} s ({kind})",
                retryable=True,
                cause=exc,
            )
        if isinstance(exc, httpx.DecodingError):
            return Failure(
                ResponseParseError, f"{where}: the body could not be decoded ({exc})", cause=exc
            )
        return Failure(
            ProviderUnavailableError,
            f"{where} failed: {kind}: {self.redact(str(exc)) or 'no detail'}",
            retryable=isinstance(exc, _TRANSIENT_TRANSPORT),
            cause=exc,
        )

    def retry_after(self, response: httpx.Response) -> float | None:
        """Seconds asked by a ``Retry-After`` header (delta-seconds or HTTP date), or None."""
        return retry_after_s(response, now=self.clock.now())

    # -- retrying -------------------------------------------------------------------------

    def retrying_arguments(self, started: datetime) -> dict[str, Any]:
        """Keyword arguments of tenacity's Retrying/AsyncRetrying, except ``sleep``."""
        return tenacity_arguments(
            self.retry,
            started=started,
            clock=self.clock,
            rng=self.rng,
            provider=self.provider,
            redact=self.redact,
        )

    def give_up(self, failed: Retryable, attempts: int, started: datetime) -> NoReturn:
        """Raise the last transient failure as the caller's error, saying why we stopped."""
        give_up(
            failed,
            policy=self.retry,
            attempts=attempts,
            started=started,
            clock=self.clock,
            provider=self.provider,
        )

    def __repr__(self) -> str:
        return f"HttpCore({self.provider!r}, {self.redact(self.base_url)!r})"


_RETRY_STATUSES = frozenset(status for status, row in STATUS_ERRORS.items() if row.retry)
