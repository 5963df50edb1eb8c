"""The HTTP layer every network provider shares: a sans-IO core and two drivers.

How the pieces fit (a provider writes only the first one)::

    flow        provider logic, written once: a generator that yields lists of Calls
                and receives their responses, then returns its result (a series, a
                zone). It never sends anything itself, so both drivers run it.
    Call        one request as plain data: path, query, headers, cache TTL, a label.
    HttpCore    sans-IO: builds the httpx.Request (base URL, headers, timeout),
                classifies responses with STATUS_ERRORS, maps transport exceptions,
                computes retry waits, owns the response cache (in memory, and
                optionally on disk: :class:`DiskCache`) and the redaction.
    SyncDriver  sends with httpx.Client, retrying with tenacity.Retrying(sleep=clock.sleep);
                the Calls of one batch go out from a thread pool, at most
                ``max_concurrency`` at a time (the engine fetches many zones per round).
    AsyncDriver sends with httpx.AsyncClient, retrying with tenacity.AsyncRetrying
                (sleep=clock.asleep); the Calls of one batch go out concurrently, at
                most ``max_concurrency`` at a time, and identical cacheable Calls in
                flight are sent once.

Retries: only transient failures are retried (timeouts, connection errors, 429 and
502/503/504), with exponential backoff and jitter, or exactly the server's
``Retry-After``; at most ``RetryPolicy.max_attempts`` tries and never past
``RetryPolicy.max_total_s`` as measured by the injected clock. Authentication and
validation errors (401/403, 400/422) fail at once.

Secrets: every message, log line and repr passes through :func:`lowcarb.exceptions.redact`
with the provider's known secret values, so a token never leaves in an error.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.utils
import hashlib
import json
import logging
import math
import os
import random
import re
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Generator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple, NoReturn, TypeAlias, TypeVar

import httpx
import tenacity

from lowcarb._clock import Clock
from lowcarb.exceptions import (
    AuthenticationError,
    LowcarbError,
    NoDataError,
    ProviderError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RateLimitedError,
    ResponseParseError,
    redact,
)

__all__ = [
    "STATUS_ERRORS",
    "AsyncDriver",
    "Call",
    "DiskCache",
    "Flow",
    "HttpCore",
    "ResponseCache",
    "RetryPolicy",
    "SyncDriver",
    "credential_partition",
    "describe_request",
    "error_detail",
    "json_body",
]

log = logging.getLogger("lowcarb.backends.http")

T = TypeVar("T")

#: A provider's logic for one operation: yields batches of calls, receives their
#: responses in the same order, returns the result.
Flow: TypeAlias = Generator[list["Call"], list[httpx.Response], T]


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


@dataclass(frozen=True)
class Call:
    """One HTTP request a flow wants sent, as plain data (no I/O).

    Attributes:
        path: Appended to the provider's base URL; starts with ``/``.
        params: Query parameters (a list value repeats the parameter).
        method: HTTP method.
        headers: Extra headers for this call (the core adds Accept, User-Agent, auth).
        body: Request body, for POST.
        cache_ttl: How long a successful answer may be reused; None never caches it.
        label: What the call is for, in error messages (e.g. ``forecast GB``).
        accept: Error statuses handed to the flow as responses instead of raised (a flow
            that refreshes a token on 401, or reads a 400 as "unknown postcode").
    """

    path: str
    params: Mapping[str, str | Sequence[str]] = field(default_factory=dict)
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    cache_ttl: timedelta | None = None
    label: str = ""
    accept: frozenset[int] = frozenset()


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to retry transient failures.

    Attributes:
        max_attempts: Tries in all, the first included (1: never retry).
        max_total_s: Budget in seconds, by the clock, from the first try to the last;
            a wait that would end past it is not taken (the last error is raised).
        backoff_s: The first backoff; the n-th is ``backoff_s * 2**(n-1)``, capped,
            and drawn uniformly from its upper half (jitter).
        max_backoff_s: Cap of one backoff.
    """

    max_attempts: int = 4
    max_total_s: float = 60.0
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        for name in ("max_total_s", "backoff_s", "max_backoff_s"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait after failed try number ``attempt`` (1-based), with jitter."""
        ceiling = min(float(self.max_backoff_s), self.backoff_s * 2.0 ** (attempt - 1))
        return ceiling / 2 + rng.uniform(0.0, ceiling / 2)


@dataclass(frozen=True)
class _Cached:
    status_code: int
    headers: list[tuple[str, str]]
    content: bytes
    expires: datetime


class ResponseCache:
    """Successful responses kept in memory until their TTL, measured by a clock, runs out.

    Keys are the request's method, full URL and body digest. One cache may be shared by
    several providers or by a provider's sync and async faces. Thread-safe.

    Args:
        max_entries: Least recently used entries are dropped beyond this.

    Attributes:
        hits: Answers served from the cache.
        misses: Lookups that found nothing fresh.
    """

    def __init__(self, *, max_entries: int = 1024) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[str, _Cached] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(request: httpx.Request) -> str:
        """The cache key of ``request`` (kept in memory only; it may hold query secrets)."""
        body = request.content
        digest = hashlib.sha256(body).hexdigest()[:16] if body else ""
        return f"{request.method} {request.url} {digest}"

    def get(self, key: str, now: datetime) -> _Cached | None:
        """The fresh entry under ``key``, or None (an expired one is dropped)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.expires > now:
                self._entries.move_to_end(key)
                self.hits += 1
                return entry
            if entry is not None:
                del self._entries[key]
            self.misses += 1
            return None

    def put(self, key: str, response: httpx.Response, expires: datetime) -> None:
        """Keep ``response`` (already read) under ``key`` until ``expires``."""
        entry = _Cached(
            response.status_code, _replayable_headers(response), response.content, expires
        )
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget every entry (the counters stay)."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __repr__(self) -> str:
        return f"ResponseCache({len(self)} entries, hits={self.hits}, misses={self.misses})"


# Headers that describe the stored (already decoded) body, and so must not travel with it:
# replaying ``content-encoding: gzip`` over a decoded body would fail to decode again.
_BODY_FRAMING = frozenset({"content-encoding", "content-length", "transfer-encoding"})

#: A JSON field whose name says it holds a credential (``"token":``, ``"access_token":``).
_SECRET_FIELD = re.compile(r'(?i)"[^"]*(token|password|passwd|secret|api[_-]?key)[^"]*"\s*:')

_DISK_FORMAT = "lowcarb-http-cache/1"


def _replayable_headers(response: httpx.Response) -> list[tuple[str, str]]:
    return [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _BODY_FRAMING]


def credential_partition(provider: str, secrets: Sequence[str]) -> str:
    """A one-way digest of a provider's credentials, to keep their disk entries apart.

    PBKDF2 (100,000 rounds), so that even a weak password cannot be guessed back from the
    file names it salts. Empty when there are no credentials (entries are shared).
    """
    values = [s for s in secrets if s]
    if not values:
        return ""
    material = "\0".join(values).encode()
    salt = f"lowcarb-disk-cache/{provider}".encode()
    return hashlib.pbkdf2_hmac("sha256", material, salt, 100_000).hex()


class DiskCache:
    """Successful responses kept in files until their TTL runs out, shared by processes.

    One JSON file per answer, named by the SHA-256 of the *redacted* request: method, URL
    with credentials replaced (:func:`lowcarb.exceptions.redact` with the known secret
    values) and a digest of the body. Request headers (where auth lives) are never part of
    the key, and a file holds only the redacted request, the status, the content type, the
    body and the expiry. An answer that may carry a credential is never written: one to a
    request with HTTP Basic auth (a login), or whose body contains a known secret value or
    a field named like ``token``, ``password``, ``secret`` or ``api_key``.

    Expiry is an absolute time from the provider's clock, compared with that clock on
    read, so a ``ManualClock`` drives it in tests. Files are written under a temporary
    name and renamed into place (atomic on POSIX and Windows): concurrent writers and
    readers in other processes see a whole entry or none. An unreadable or corrupt entry
    is logged as a warning, deleted and treated as a miss (the request is sent again).
    Reads and writes are small blocking file operations, in the async face too.

    Entries are separated by ``partition``: a provider passes a digest of its credentials
    (:func:`credential_partition`), so an answer fetched with one key (whose plan may see
    other zones) is never served to another. The partition only salts the file names.

    Size: about ``max_entries`` files at most; every few writes (every write when
    ``max_entries`` < 16) the least recently written beyond it are deleted. Expired
    entries are deleted when read.

    Args:
        directory: Where the files go; created (mode 0700) if missing.
        max_entries: Files kept at most.
        partition: Salts the file names; entries of another partition are invisible.

    Attributes:
        hits: Answers served from disk.
        misses: Lookups that found no fresh entry.
        writes: Entries written.
    """

    def __init__(
        self, directory: str | os.PathLike[str], *, max_entries: int = 4096, partition: str = ""
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.directory = Path(directory)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.max_entries = max_entries
        self._partition = partition
        self.hits = 0
        self.misses = 0
        self.writes = 0
        self._lock = threading.Lock()
        # Pruning lists the directory: do it every few writes, not on each one.
        self._prune_every = max(1, min(64, max_entries // 8))

    @staticmethod
    def key(request: httpx.Request, secrets: Sequence[str] = ()) -> str:
        """The cache key of ``request``: ``METHOD URL BODY-DIGEST`` with credentials redacted."""
        body = request.content
        digest = hashlib.sha256(body).hexdigest()[:16] if body else ""
        return f"{describe_request(request, secrets)} {digest}".rstrip()

    def path(self, key: str) -> Path:
        """The file that holds the entry under ``key``."""
        name = hashlib.sha256(f"{self._partition}\n{key}".encode()).hexdigest()
        return self.directory / (name + ".json")

    def get(self, key: str, now: datetime) -> _Cached | None:
        """The fresh entry under ``key``, or None (expired and corrupt ones are deleted)."""
        path = self.path(key)
        entry = self._read(path, key)
        if entry is not None and entry.expires > now:
            with self._lock:
                self.hits += 1
            return entry
        if entry is not None:
            path.unlink(missing_ok=True)
        with self._lock:
            self.misses += 1
        return None

    def put(
        self,
        key: str,
        response: httpx.Response,
        expires: datetime,
        secrets: Sequence[str] = (),
    ) -> bool:
        """Write ``response`` (already read) under ``key`` until ``expires``.

        Returns:
            Whether it was written (False for an answer that may carry a credential).
        """
        if not self._storable(key, response, secrets):
            log.debug("not writing %s to the disk cache: it may carry a credential", key)
            return False
        content = response.content
        try:
            body, encoding = content.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            body, encoding = base64.b64encode(content).decode("ascii"), "base64"
        record = {
            "format": _DISK_FORMAT,
            "request": key,
            "status": response.status_code,
            # Only what a parser needs: no cookies or other headers that could identify us.
            "headers": [(k, v) for k, v in response.headers.multi_items() if k == "content-type"],
            "expires": expires.isoformat(),
            "encoding": encoding,
            "body": body,
        }
        target = self.path(key)
        fd, temporary = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=self.directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                json.dump(record, file)
            os.replace(temporary, target)
        except OSError as exc:
            Path(temporary).unlink(missing_ok=True)
            log.warning("could not write the disk cache entry %s: %s", target, exc)
            return False
        with self._lock:
            self.writes += 1
            due = self.writes % self._prune_every == 0
        if due:
            self._prune()
        return True

    def clear(self) -> None:
        """Delete every entry (the counters stay)."""
        for path in self.directory.glob("[!.]*.json"):
            path.unlink(missing_ok=True)

    def __len__(self) -> int:
        return sum(1 for _ in self.directory.glob("[!.]*.json"))

    def __repr__(self) -> str:
        return (
            f"DiskCache({str(self.directory)!r}, hits={self.hits}, misses={self.misses}, "
            f"writes={self.writes})"
        )

    # -- internals ------------------------------------------------------------------------

    @staticmethod
    def _storable(key: str, response: httpx.Response, secrets: Sequence[str]) -> bool:
        authorization = response.request.headers.get("authorization", "")
        if authorization.lower().startswith("basic "):
            return False  # a login: its answer is a token
        text = response.content.decode("utf-8", "replace")
        if _SECRET_FIELD.search(text):
            return False
        return not any(s and (s in text or s in key) for s in secrets)

    def _read(self, path: Path, key: str) -> _Cached | None:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("ignoring the unreadable disk cache entry %s: %s", path, exc)
            return None
        try:
            record = json.loads(raw)
            if record.get("format") != _DISK_FORMAT or record["request"] != key:
                raise ValueError("not an entry of this cache or of this request")
            body = record["body"]
            content = (
                base64.b64decode(body, validate=True)
                if record["encoding"] == "base64"
                else body.encode("utf-8")
            )
            expires = datetime.fromisoformat(record["expires"])
            if expires.tzinfo is None:
                raise ValueError("expiry without a time zone")
            headers = [(str(k), str(v)) for k, v in record["headers"]]
            return _Cached(int(record["status"]), headers, content, expires)
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
            log.warning(
                "ignoring the corrupt disk cache entry %s (%s: %s); it will be fetched again",
                path,
                type(exc).__name__,
                exc,
            )
            path.unlink(missing_ok=True)
            return None

    def _prune(self) -> None:
        """Keep at most ``max_entries`` files; drop temporary files of crashed writers."""
        entries: list[tuple[float, Path]] = []
        stale = time.time() - 600
        for path in self.directory.glob("*.json"):
            try:
                mtime = path.stat().st_mtime
            except FileNotFoundError:
                continue  # another process removed it meanwhile
            if path.name.startswith(".tmp-"):
                if mtime < stale:
                    path.unlink(missing_ok=True)
                continue
            entries.append((mtime, path))
        if len(entries) <= self.max_entries:
            return
        entries.sort()
        for _, path in entries[: len(entries) - self.max_entries]:
            path.unlink(missing_ok=True)


@dataclass
class _Failure:
    """A failed try, before it becomes the exception the caller sees."""

    error: type[ProviderError]
    message: str
    status_code: int | None = None
    retry_after: float | None = None
    retryable: bool = False
    cause: BaseException | None = None

    def build(self, provider: str, suffix: str = "") -> ProviderError:
        message = self.message + suffix
        if issubclass(self.error, RateLimitedError):
            return self.error(
                message,
                provider=provider,
                status_code=self.status_code,
                retry_after=self.retry_after,
            )
        return self.error(message, provider=provider, status_code=self.status_code)


class _Retryable(Exception):
    """Internal signal to tenacity that a try may be repeated; never escapes the driver."""

    def __init__(self, failure: _Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


def describe_request(request: httpx.Request, secrets: Sequence[str] = ()) -> str:
    """``METHOD URL`` of ``request`` with credentials redacted, for messages and logs."""
    return redact(f"{request.method} {request.url}", tuple(secrets))


def json_body(
    response: httpx.Response, *, provider: str, secrets: Sequence[str] = (), label: str = ""
) -> Any:
    """Decode a JSON response body.

    Raises:
        ResponseParseError: If the body is empty, truncated or not JSON; the message names
            the (redacted) request and quotes the start of the body.
    """
    where = describe_request(response.request, secrets)
    what = f" ({label})" if label else ""
    if not response.content.strip():
        raise ResponseParseError(
            f"{where}{what} answered {response.status_code} with an empty body where JSON "
            "was expected",
            provider=provider,
            status_code=response.status_code,
        )
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ResponseParseError(
            f"{where}{what} answered with a body that is not valid JSON ({exc}); it starts "
            f"with {_excerpt(response.content, secrets)!r}",
            provider=provider,
            status_code=response.status_code,
        ) from exc


def _excerpt(content: bytes, secrets: Sequence[str] = (), limit: int = 120) -> str:
    # Redacted before it is cut, so that no credential survives in part.
    text = redact(content.decode("utf-8", "replace"), tuple(secrets))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def error_detail(response: httpx.Response) -> str:
    """A short message from an error body, whatever the provider's error shape."""
    content = response.content
    if not content.strip():
        return ""
    if "html" in response.headers.get("content-type", "").lower():
        return "(an HTML error page)"
    try:
        payload = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return _excerpt(content)
    for key in ("message", "detail", "error", "title"):
        value = payload.get(key) if isinstance(payload, dict) else None
        if isinstance(value, dict):
            # {"error": {"code": "...", "message": "..."}} (UK Carbon Intensity and others)
            value = value.get("message") or value.get("code")
        if isinstance(value, str) and value.strip():
            return _excerpt(value.encode())
    return _excerpt(content)


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
        """Raise for an error response: :class:`_Retryable` if transient, else the error."""
        log.debug("%s: %s -> %d", self.provider, self.describe(request), response.status_code)
        if response.status_code in call.accept:
            return
        failure = self.classify(call, request, response)
        if failure is None:
            return
        if failure.retryable:
            raise _Retryable(failure)
        raise failure.build(self.provider)

    def classify(
        self, call: Call, request: httpx.Request, response: httpx.Response
    ) -> _Failure | None:
        """What went wrong with ``response``, or None when it is a success."""
        status = response.status_code
        where = self.describe(request) + (f" ({call.label})" if call.label else "")
        special = self._classify(response) if self._classify else None
        if special is not None:
            return _Failure(
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
        return _Failure(row.error, message, status, retry_after, row.retry)

    def transport_failure(self, call: Call, request: httpx.Request, exc: Exception) -> _Failure:
        """Map an httpx exception raised while sending ``request``."""
        where = self.describe(request) + (f" ({call.label})" if call.label else "")
        kind = type(exc).__name__
        if isinstance(exc, httpx.TimeoutException):
            return _Failure(
                ProviderTimeoutError,
                f"{where} timed out after {self.timeout_s:g} s ({kind})",
                retryable=True,
                cause=exc,
            )
        if isinstance(exc, httpx.DecodingError):
            return _Failure(
                ResponseParseError, f"{where}: the body could not be decoded ({exc})", cause=exc
            )
        return _Failure(
            ProviderUnavailableError,
            f"{where} failed: {kind}: {self.redact(str(exc)) or 'no detail'}",
            retryable=isinstance(exc, _TRANSIENT_TRANSPORT),
            cause=exc,
        )

    def retry_after(self, response: httpx.Response) -> float | None:
        """Seconds asked by a ``Retry-After`` header (delta-seconds or HTTP date), or None."""
        value = response.headers.get("retry-after", "").strip()
        if not value:
            return None
        try:
            seconds = float(value)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError, IndexError):
                return None
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            seconds = (when - self.clock.now()).total_seconds()
        if not math.isfinite(seconds):
            return None
        return max(0.0, seconds)

    # -- retrying -------------------------------------------------------------------------

    def retrying_arguments(self, started: datetime) -> dict[str, Any]:
        """Keyword arguments of tenacity's Retrying/AsyncRetrying, except ``sleep``."""
        policy = self.retry

        def wait(state: tenacity.RetryCallState) -> float:
            failure = _failure_of(state)
            if failure is not None and failure.retry_after is not None:
                return failure.retry_after
            return policy.backoff(state.attempt_number, self.rng)

        def stop(state: tenacity.RetryCallState) -> bool:
            if state.attempt_number >= policy.max_attempts:
                return True
            elapsed = (self.clock.now() - started).total_seconds()
            return elapsed + state.upcoming_sleep > policy.max_total_s

        def before_sleep(state: tenacity.RetryCallState) -> None:
            failure = _failure_of(state)
            log.warning(
                "%s: %s; retrying in %.1f s (attempt %d of %d)",
                self.provider,
                self.redact(failure.message if failure else "failed"),
                state.upcoming_sleep,
                state.attempt_number + 1,
                policy.max_attempts,
            )

        return {
            "retry": tenacity.retry_if_exception_type(_Retryable),
            "wait": wait,
            "stop": stop,
            "before_sleep": before_sleep,
            "reraise": True,
        }

    def give_up(self, failed: _Retryable, attempts: int, started: datetime) -> NoReturn:
        """Raise the last transient failure as the caller's error, saying why we stopped."""
        failure = failed.failure
        elapsed = (self.clock.now() - started).total_seconds()
        if attempts >= self.retry.max_attempts:
            suffix = f" (gave up after {attempts} attempt{'s' * (attempts != 1)})"
        elif failure.retry_after is not None:
            suffix = (
                f" (asked to retry after {failure.retry_after:g} s, beyond the retry budget of "
                f"{self.retry.max_total_s:g} s)"
            )
        else:
            suffix = f" (gave up after {attempts} attempts in {elapsed:.1f} s)"
        raise failure.build(self.provider, suffix) from failure.cause

    def __repr__(self) -> str:
        return f"HttpCore({self.provider!r}, {self.redact(self.base_url)!r})"


_RETRY_STATUSES = frozenset(status for status, row in STATUS_ERRORS.items() if row.retry)


def _failure_of(state: tenacity.RetryCallState) -> _Failure | None:
    outcome = state.outcome
    exc = outcome.exception() if outcome is not None else None
    return exc.failure if isinstance(exc, _Retryable) else None


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
        except _Retryable as failed:
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
                raise _Retryable(failure) from exc
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
        except _Retryable as failed:
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
                    raise _Retryable(failure) from exc
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
