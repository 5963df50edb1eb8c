"""Retry policy of the HTTP layer: which failures are tried again, when, and for how long.

Only transient failures are retried (timeouts, connection errors, 429 and 502/503/504),
with exponential backoff and jitter, or exactly the server's ``Retry-After``; at most
``RetryPolicy.max_attempts`` tries, and never past ``RetryPolicy.max_total_s`` as measured
by the injected clock. The drivers hand :func:`tenacity_arguments` to tenacity's
``Retrying``/``AsyncRetrying`` with the clock's ``sleep``/``asleep``.
"""

from __future__ import annotations

import email.utils
import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn

import httpx
import tenacity

from lowcarb._clock import Clock
from lowcarb.exceptions import ProviderError, RateLimitedError

__all__ = [
    "Failure",
    "RetryPolicy",
    "Retryable",
    "give_up",
    "retry_after_s",
    "tenacity_arguments",
]

log = logging.getLogger("lowcarb.backends.http")


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


@dataclass
class Failure:
    """A failed try, before it becomes the exception the caller sees."""

    error: type[ProviderError]
    message: str
    status_code: int | None = None
    retry_after: float | None = None
    retryable: bool = False
    cause: BaseException | None = None

    def build(self, provider: str, suffix: str = "") -> ProviderError:
        """The exception for the caller, ``suffix`` appended to the message."""
        message = self.message + suffix
        if issubclass(self.error, RateLimitedError):
            return self.error(
                message,
                provider=provider,
                status_code=self.status_code,
                retry_after=self.retry_after,
            )
        return self.error(message, provider=provider, status_code=self.status_code)


class Retryable(Exception):
    """Internal signal to tenacity that a try may be repeated; never escapes the driver."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


def retry_after_s(response: httpx.Response, *, now: datetime) -> float | None:
    """Seconds asked by a ``Retry-After`` header (delta-seconds or HTTP date), or None.

    Args:
        response: The answer that may carry the header.
        now: The clock's time, against which an HTTP date is measured.
    """
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
        seconds = (when - now).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def tenacity_arguments(
    policy: RetryPolicy,
    *,
    started: datetime,
    clock: Clock,
    rng: random.Random,
    provider: str,
    redact: Callable[[str], str],
) -> dict[str, Any]:
    """Keyword arguments of tenacity's ``Retrying``/``AsyncRetrying``, except ``sleep``.

    Args:
        policy: Attempts, budget and backoff.
        started: When the first try began (by ``clock``); the budget counts from here.
        clock: Time source of the budget.
        rng: Random source of the backoff jitter.
        provider: Registry name, for the log line before each wait.
        redact: Scrubs credentials from that log line.
    """

    def wait(state: tenacity.RetryCallState) -> float:
        failure = _failure_of(state)
        if failure is not None and failure.retry_after is not None:
            return failure.retry_after
        return policy.backoff(state.attempt_number, rng)

    def stop(state: tenacity.RetryCallState) -> bool:
        if state.attempt_number >= policy.max_attempts:
            return True
        elapsed = (clock.now() - started).total_seconds()
        return elapsed + state.upcoming_sleep > policy.max_total_s

    def before_sleep(state: tenacity.RetryCallState) -> None:
        failure = _failure_of(state)
        log.warning(
            "%s: %s; retrying in %.1f s (attempt %d of %d)",
            provider,
            redact(failure.message if failure else "failed"),
            state.upcoming_sleep,
            state.attempt_number + 1,
            policy.max_attempts,
        )

    return {
        "retry": tenacity.retry_if_exception_type(Retryable),
        "wait": wait,
        "stop": stop,
        "before_sleep": before_sleep,
        "reraise": True,
    }


def give_up(
    failed: Retryable,
    *,
    policy: RetryPolicy,
    attempts: int,
    started: datetime,
    clock: Clock,
    provider: str,
) -> NoReturn:
    """Raise the last transient failure as the caller's error, saying why retrying stopped."""
    failure = failed.failure
    elapsed = (clock.now() - started).total_seconds()
    if attempts >= policy.max_attempts:
        suffix = f" (gave up after {attempts} attempt{'s' * (attempts != 1)})"
    elif failure.retry_after is not None:
        suffix = (
            f" (asked to retry after {failure.retry_after:g} s, beyond the retry budget of "
            f"{policy.max_total_s:g} s)"
        )
    else:
        suffix = f" (gave up after {attempts} attempts in {elapsed:.1f} s)"
    raise failure.build(provider, suffix) from failure.cause


def _failure_of(state: tenacity.RetryCallState) -> Failure | None:
    outcome = state.outcome
    exc = outcome.exception() if outcome is not None else None
    return exc.failure if isinstance(exc, Retryable) else None
