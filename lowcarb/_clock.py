"""Injectable clocks: everything in lowcarb that reads time takes one.

Tests and replays pass a :class:`ManualClock`; production code uses :class:`SystemClock`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

from lowcarb._time import ensure_utc

__all__ = ["Clock", "ManualClock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """Source of the current time and of waiting."""

    def now(self) -> datetime:
        """Return the current time, timezone-aware, in UTC."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block for ``seconds`` (real or simulated)."""
        ...

    async def asleep(self, seconds: float) -> None:
        """Wait for ``seconds`` without blocking the event loop."""
        ...


class SystemClock:
    """The wall clock."""

    def now(self) -> datetime:
        """Return the current UTC time."""
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        """Sleep for real."""
        time.sleep(max(0.0, seconds))

    async def asleep(self, seconds: float) -> None:
        """Sleep for real, asynchronously."""
        await asyncio.sleep(max(0.0, seconds))

    def __repr__(self) -> str:
        return "SystemClock()"


class ManualClock:
    """A clock that moves only when told to; sleeping advances it instantly.

    Args:
        start: The initial time; must be timezone-aware.

    Example:
        >>> from datetime import datetime, UTC
        >>> clock = ManualClock(datetime(2024, 1, 1, tzinfo=UTC))
        >>> clock.sleep(3600)
        >>> clock.now().hour
        1
    """

    def __init__(self, start: datetime) -> None:
        self._now = ensure_utc(start, "start")
        # Threads that retry concurrently (a provider's batch) all sleep on this clock.
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """Return the clock's current time."""
        return self._now

    def advance(self, delta: timedelta | float) -> None:
        """Move the clock forward by ``delta`` (a timedelta, or seconds)."""
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        if step < timedelta(0):
            raise ValueError("a ManualClock cannot go backwards")
        with self._lock:
            self._now += step

    def set(self, when: datetime) -> None:
        """Jump to ``when`` (timezone-aware, not before the current time)."""
        target = ensure_utc(when, "when")
        with self._lock:
            if target < self._now:
                raise ValueError("a ManualClock cannot go backwards")
            self._now = target

    def sleep(self, seconds: float) -> None:
        """Advance by ``seconds`` without waiting."""
        self.advance(max(0.0, seconds))

    async def asleep(self, seconds: float) -> None:
        """Advance by ``seconds`` without waiting."""
        self.advance(max(0.0, seconds))

    def __repr__(self) -> str:
        return f"ManualClock({self._now.isoformat()})"
