"""The HTTP side of the ``entsoe`` provider: what entsoe-py sends goes through here.

entsoe-py builds ENTSO-E's queries and parses the XML; it sends them with ``requests``.
:class:`EntsoeGateway` stands in for its ``requests.Session``: one real session with the
configured endpoint and a timeout on every request, retries of transient failures
(timeouts, connection errors, 429 honouring ``Retry-After`` or the ban time in ENTSO-E's
429 page, 502/503/504) with tenacity on the injected clock, the shared
:class:`~lowcarb.backends.toolkit.ResponseCache`, and errors mapped to lowcarb's exceptions.
The token travels as the query parameter ``securityToken``: :func:`scrub` removes it from
text, and :func:`install_log_filter` from the log records of entsoe-py and urllib3.
"""

from __future__ import annotations

import logging
import math
import random
import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import requests
import tenacity
from entsoe.exceptions import NoMatchingDataError

from lowcarb.backends.toolkit import STATUS_ERRORS, Clock, ResponseCache, RetryPolicy
from lowcarb.exceptions import (
    AuthenticationError,
    ProviderError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RateLimitedError,
    ResponseParseError,
    redact,
)

__all__ = ["TOKEN_ENV", "EntsoeGateway", "ScrubTokens", "install_log_filter", "scrub"]

#: Where the token comes from (or ``LOWCARB_ENTSOE_TOKEN_FILE``).
TOKEN_ENV = "LOWCARB_ENTSOE_TOKEN"

log = logging.getLogger("lowcarb.backends.entsoe")

_TOKEN_TEXT = re.compile(r"(?i)(securityToken['\"]?\s*[:=]\s*['\"]?)[^'\"&\s,}]+")
_NO_DATA = "No matching data found"
_BAN = re.compile(r"banned until '?([0-9T:.\-]+Z)")


def scrub(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` without ENTSO-E tokens: as a URL parameter, in a dict repr, or by value."""
    return redact(_TOKEN_TEXT.sub(r"\1REDACTED", text), secrets)


class ScrubTokens(logging.Filter):
    """Rewrites log records that carry a ``securityToken`` (entsoe-py, urllib3)."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if "securitytoken" in text.lower():
            record.msg, record.args = scrub(text), ()
        return True


# entsoe-py logs "Performing request to ... with params {... 'securityToken': ...}" and
# urllib3 logs each URL at DEBUG. A filter on a logger sees only records logged on that
# very logger (not its children's), hence the full names.
_LEAKY_LOGGERS = ("entsoe.entsoe", "entsoe.decorators", "urllib3.connectionpool")
_FILTER = ScrubTokens()
_filter_lock = threading.Lock()


def install_log_filter() -> None:
    with _filter_lock:
        for name in _LEAKY_LOGGERS:
            logger = logging.getLogger(name)
            if _FILTER not in logger.filters:
                logger.addFilter(_FILTER)


@dataclass
class _Transient(Exception):
    """A failed try that may be repeated; never escapes the gateway."""

    error: type[ProviderError]
    message: str
    status_code: int | None = None
    retry_after: float | None = None

    def build(self, provider: str, suffix: str = "") -> ProviderError:
        if issubclass(self.error, RateLimitedError):
            return self.error(
                self.message + suffix,
                provider=provider,
                status_code=self.status_code,
                retry_after=self.retry_after,
            )
        return self.error(self.message + suffix, provider=provider, status_code=self.status_code)


class EntsoeGateway:
    """What entsoe-py sees as its ``requests.Session``; sends through a real one.

    entsoe-py calls ``session.get(url=..., params=..., proxies=..., timeout=...)`` and
    updates ``session.headers``. Each ``get`` goes to the configured endpoint with the
    configured timeout, is retried on transient failures (tenacity, the provider's clock),
    checked (errors become lowcarb exceptions; the "no data" acknowledgement becomes
    entsoe-py's ``NoMatchingDataError`` so that its month blocks stay optional), and kept
    in the response cache.

    Args:
        provider: Registry name, for messages.
        endpoint: The API URL.
        timeout_s: Timeout of each request, in seconds.
        retry: Attempts and budget for transient failures.
        clock: Time source for the cache, the budget and the waits.
        cache: Response cache, or None.
        ttl: How long answers are reused (None: never).
        secrets: Values scrubbed from messages.
        session: The ``requests.Session`` that sends (tests mount adapters on it).
        rng: Random source of the backoff jitter.
    """

    def __init__(
        self,
        *,
        provider: str,
        endpoint: str,
        timeout_s: float,
        retry: RetryPolicy,
        clock: Clock,
        cache: ResponseCache | None,
        ttl: timedelta | None,
        secrets: tuple[str, ...],
        session: Any,
        rng: random.Random,
    ) -> None:
        self.provider = provider
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self.retry = retry
        self.clock = clock
        self.cache = cache
        self.ttl = ttl
        self.secrets = secrets
        self.session = session
        self.rng = rng
        #: Requests that went to the network (not the cache), retries included.
        self.requests_sent = 0
        self._local = threading.local()

    @property
    def headers(self) -> Any:
        """The session's headers (entsoe-py sets its User-Agent here)."""
        return self.session.headers

    @property
    def last_request(self) -> str:
        """The last request of this thread, redacted (for parse errors)."""
        return str(getattr(self._local, "where", "the last request"))

    def get(self, url: str = "", params: Mapping[str, Any] | None = None, **_: Any) -> Any:
        """Send one GET (entsoe-py's URL and timeout are replaced by the configured ones)."""
        prepared = requests.Request("GET", self.endpoint, params=dict(params or {})).prepare()
        url = prepared.url or self.endpoint
        where = f"GET {scrub(url, self.secrets)}"
        self._local.where = where
        key = f"GET {url}"  # in memory only; the cache never leaves the process
        if self.cache is not None and self.ttl:
            entry = self.cache.get(key, self.clock.now())
            if entry is not None:
                return _rebuild(entry.status_code, entry.headers, entry.content, url)
        started = self.clock.now()
        retrying = tenacity.Retrying(
            sleep=self.clock.sleep,
            retry=tenacity.retry_if_exception_type(_Transient),
            wait=self._wait,
            stop=lambda state: self._stop(state, started),
            before_sleep=self._before_sleep,
            reraise=True,
        )
        response: Any = None
        try:
            for attempt in retrying:
                with attempt:
                    response = self._attempt(url, where)
        except _Transient as failed:
            attempts = retrying.statistics.get("attempt_number", 1)
            suffix = f" (gave up after {attempts} attempt{'s' * (attempts != 1)})"
            if failed.retry_after is not None and attempts < self.retry.max_attempts:
                suffix = (
                    f" (asked to wait {failed.retry_after:g} s, beyond the retry budget of "
                    f"{self.retry.max_total_s:g} s)"
                )
            # Not chained: a requests exception's text holds the URL with the token.
            raise failed.build(self.provider, suffix) from None
        self._check(response, where)
        if self.cache is not None and self.ttl:
            stored = httpx.Response(
                response.status_code,
                headers=list(response.headers.items()),
                content=response.content,
            )
            self.cache.put(key, stored, self.clock.now() + self.ttl)
        return response

    # -- one try ----------------------------------------------------------------------------

    def _attempt(self, url: str, where: str) -> Any:
        self.requests_sent += 1
        try:
            response = self.session.get(url, timeout=self.timeout_s)
        except requests.Timeout:
            raise _Transient(
                ProviderTimeoutError, f"{where} timed out after {self.timeout_s:g} s"
            ) from None
        except requests.ConnectionError as exc:
            raise _Transient(
                ProviderUnavailableError, f"{where} failed: {type(exc).__name__}"
            ) from None
        except requests.RequestException as exc:
            raise ProviderUnavailableError(
                f"{where} failed: {type(exc).__name__}", provider=self.provider
            ) from None
        log.debug("%s: %s -> %d", self.provider, where, response.status_code)
        status = response.status_code
        row = STATUS_ERRORS.get(status)
        if row is not None and row.retry:
            detail = _detail(response, self.secrets)
            raise _Transient(
                row.error,
                f"{where} -> {status}: ENTSO-E {row.what}" + (f": {detail}" if detail else ""),
                status,
                self._retry_after(response) if status in (429, 503) else None,
            )
        return response

    def _retry_after(self, response: Any) -> float | None:
        """Seconds to wait: ``Retry-After`` (seconds or date), else the ban in a 429 page."""
        value = str(response.headers.get("retry-after", "")).strip()
        when: datetime | None = None
        if value:
            try:
                return max(0.0, float(value))
            except ValueError:
                import email.utils

                try:
                    when = email.utils.parsedate_to_datetime(value)
                except (TypeError, ValueError, IndexError):
                    return None
        else:
            ban = _BAN.search(response.text or "")
            if ban is None:
                return None
            try:
                when = datetime.fromisoformat(ban.group(1))
            except ValueError:
                return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - self.clock.now()).total_seconds()
        return max(0.0, seconds) if math.isfinite(seconds) else None

    def _wait(self, state: tenacity.RetryCallState) -> float:
        failure = _transient_of(state)
        if failure is not None and failure.retry_after is not None:
            return failure.retry_after
        return self.retry.backoff(state.attempt_number, self.rng)

    def _stop(self, state: tenacity.RetryCallState, started: datetime) -> bool:
        if state.attempt_number >= self.retry.max_attempts:
            return True
        elapsed = (self.clock.now() - started).total_seconds()
        return elapsed + state.upcoming_sleep > self.retry.max_total_s

    def _before_sleep(self, state: tenacity.RetryCallState) -> None:
        failure = _transient_of(state)
        log.warning(
            "%s: %s; retrying in %.1f s (attempt %d of %d)",
            self.provider,
            failure.message if failure else "failed",
            state.upcoming_sleep,
            state.attempt_number + 1,
            self.retry.max_attempts,
        )

    # -- checking answers -------------------------------------------------------------------

    def _check(self, response: Any, where: str) -> None:
        """Raise for an error or an unreadable body; return for a usable XML document."""
        status = response.status_code
        content: bytes = response.content or b""
        if 200 <= status < 300:
            if not content.strip():
                raise ResponseParseError(
                    f"{where} answered {status} with an empty body where XML was expected",
                    provider=self.provider,
                    status_code=status,
                )
            try:
                # Only a well-formedness check (entsoe-py parses with bs4 afterwards); expat
                # >= 2.4 refuses entity-expansion bombs.
                root = ET.fromstring(content)
            except ET.ParseError as exc:
                raise ResponseParseError(
                    f"{where} answered with a body that is not well-formed XML ({exc}; "
                    f"truncated?); it starts with {_excerpt(content, self.secrets)!r}",
                    provider=self.provider,
                    status_code=status,
                ) from exc
            if root.tag.endswith("Acknowledgement_MarketDocument"):
                reason = _reason(root)
                if _NO_DATA in reason:
                    raise NoMatchingDataError(reason)
                raise ProviderError(
                    f"{where} answered with an acknowledgement: "
                    f"{scrub(reason, self.secrets) or 'no reason given'}",
                    provider=self.provider,
                    status_code=status,
                )
            if not root.tag.endswith("MarketDocument"):
                raise ResponseParseError(
                    f"{where} answered with a <{root.tag.rsplit('}', 1)[-1]}> document, not an "
                    f"ENTSO-E market document; it starts with {_excerpt(content, self.secrets)!r}",
                    provider=self.provider,
                    status_code=status,
                )
            return
        # Error pages may echo the request, token included: scrub what is quoted of them.
        detail = _detail(response, self.secrets)
        if _NO_DATA in detail:
            raise NoMatchingDataError(detail)
        if status in (401, 403):
            raise AuthenticationError(
                f"{where} -> {status}: ENTSO-E rejected the security token"
                + (f" ({detail})" if detail else "")
                + f"; check {TOKEN_ENV} (or {TOKEN_ENV}_FILE)",
                provider=self.provider,
                status_code=status,
            )
        row = STATUS_ERRORS.get(status)
        error = row.error if row else (ProviderUnavailableError if status >= 500 else ProviderError)
        what = row.what if row else f"answered with HTTP {status}"
        raise error(
            f"{where} -> {status}: ENTSO-E {what}" + (f": {detail}" if detail else ""),
            provider=self.provider,
            status_code=status,
        )


def _transient_of(state: tenacity.RetryCallState) -> _Transient | None:
    outcome = state.outcome
    exc = outcome.exception() if outcome is not None else None
    return exc if isinstance(exc, _Transient) else None


def _rebuild(status: int, headers: list[tuple[str, str]], content: bytes, url: str) -> Any:
    """A ``requests.Response`` from a cached answer."""
    response = requests.Response()
    response.status_code = status
    response.headers = requests.structures.CaseInsensitiveDict(headers)
    response._content = content
    response.encoding = requests.utils.get_encoding_from_headers(response.headers) or "utf-8"
    response.url = url
    return response


def _excerpt(content: bytes, secrets: tuple[str, ...] = (), limit: int = 120) -> str:
    # Scrubbed before it is cut, so that no token survives in part.
    text = " ".join(scrub(content.decode("utf-8", "replace"), secrets).split())
    return text if len(text) <= limit else text[:limit] + "..."


def _reason(root: ET.Element) -> str:
    """The ``Reason/text`` of an acknowledgement document (namespace-agnostic)."""
    texts = [el.text or "" for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "text"]
    return " ".join(t.strip() for t in texts if t.strip())


def _detail(response: Any, secrets: tuple[str, ...] = ()) -> str:
    """A short human message from an error body (an acknowledgement's reason, or its text).

    Error pages may echo the request: tokens (``secrets`` and ``securityToken=``) are
    scrubbed.
    """
    content: bytes = response.content or b""
    if not content.strip():
        return ""
    try:
        root = ET.fromstring(content)
    except ET.ParseError:
        root = None
    if root is not None and root.tag.endswith("Acknowledgement_MarketDocument"):
        return _excerpt(_reason(root).encode(), secrets)
    # An HTML page (401 "Unauthorized...", 429 "Requester banned until ..."): its text.
    text = re.sub(rb"<[^>]*>", b" ", content)
    return _excerpt(text, secrets)
