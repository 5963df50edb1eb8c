"""A deadline on every call to a provider, so that a hanging one cannot hold a decision.

HTTP providers have their own timeouts, but a provider may hang for other reasons (a
third-party provider without timeouts, a host that accepts and never answers through a
long retry schedule). :class:`DeadlineProvider` runs each call of the provider it wraps
in a daemon thread and waits ``timeout_s`` for it. Past that, the call raises
:class:`~lowcarb.ProviderTimeoutError`, so the :class:`~lowcarb.ProviderChain` moves the
zones to its next member (usually the embedded ``default``) and the decision says so.

The abandoned call runs on until the provider returns. Once ``max_pending`` calls of one
provider are abandoned and still running, a new call fails at once (until one returns),
so a provider that never answers costs a bounded number of threads and no more waiting.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from lowcarb._provider import Capabilities, CarbonProvider
from lowcarb._series import IntensitySeries
from lowcarb._zones import ZoneInfo, ZoneResolution
from lowcarb.exceptions import InvalidInputError, ProviderTimeoutError

__all__ = ["DeadlineProvider"]

T = TypeVar("T")


class DeadlineProvider(CarbonProvider):
    """Another provider, each of whose calls must answer within ``timeout_s`` seconds.

    Args:
        inner: The provider wrapped (closed with this one).
        timeout_s: Seconds a call may take (wall clock: a blocked thread cannot be
            driven by a manual clock).
        max_pending: Calls left running past their deadline before new calls fail at
            once (calls within their deadline are not limited: their callers are).

    Example:
        >>> from lowcarb import open_provider
        >>> bounded = DeadlineProvider(open_provider("default"), timeout_s=5)
        >>> bounded.name
        'default'
    """

    def __init__(self, inner: CarbonProvider, *, timeout_s: float, max_pending: int = 4) -> None:
        super().__init__(clock=inner.clock)
        self.inner = inner
        self.name = inner.name  # type: ignore[misc]  # the wrapped provider's registry name
        self.timeout_s = self.check_timeout(timeout_s)
        self.max_pending = max_pending
        self._abandoned = 0  # calls past their deadline, still running
        self._lock = threading.Lock()

    @staticmethod
    def check_timeout(timeout_s: object) -> float:
        """Return ``timeout_s`` (seconds) as a float if it is a positive finite number.

        Raises:
            InvalidInputError: Otherwise.
        """
        if (
            isinstance(timeout_s, bool)
            or not isinstance(timeout_s, int | float)
            or not 0 < timeout_s < 86_400
        ):
            raise InvalidInputError(
                f"a provider timeout must be between 0 and 86400 s, got {timeout_s!r}"
            )
        return float(timeout_s)

    def __repr__(self) -> str:
        return f"DeadlineProvider({self.inner!r}, timeout_s={self.timeout_s:g})"

    def _call(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        with self._lock:
            if self._abandoned >= self.max_pending:
                raise ProviderTimeoutError(
                    f"not answering: {self._abandoned} calls past their deadline still wait",
                    provider=self.name,
                )
        done = threading.Event()
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["value"] = fn(*args)
            except BaseException as exc:  # handed to the waiting caller below
                box["error"] = exc
            finally:
                with self._lock:
                    if box.get("abandoned"):
                        self._abandoned -= 1
                    done.set()

        # A daemon thread: one that never returns must not hold the process at exit.
        threading.Thread(target=run, name=f"lowcarb-{self.name}-{what}", daemon=True).start()
        if not done.wait(self.timeout_s):
            with self._lock:
                if not done.is_set():  # it may have finished in the meantime
                    box["abandoned"] = True
                    self._abandoned += 1
                    raise ProviderTimeoutError(
                        f"no answer to {what} within {self.timeout_s:g} s", provider=self.name
                    )
        if "error" in box:
            raise box["error"]
        value: T = box["value"]
        return value

    # -- the provider interface, each call bounded ------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        """The wrapped provider's capabilities."""
        return self.inner.capabilities

    def served_zones(self) -> list[str]:
        """The wrapped provider's zones (bounded)."""
        return self._call("served_zones", self.inner.served_zones)

    def default_zones(self) -> list[str]:
        """The wrapped provider's default zones (bounded)."""
        return self._call("default_zones", self.inner.default_zones)

    def zones(self) -> list[ZoneInfo]:
        """The wrapped provider's zone descriptions (bounded)."""
        return self._call("zones", self.inner.zones)

    def resolve(self, location: str) -> ZoneResolution:
        """The wrapped provider's resolution of ``location`` (bounded)."""
        return self._call("resolve", self.inner.resolve, location)

    def latest(self, zones: Sequence[str]) -> IntensitySeries:
        """The wrapped provider's latest values (bounded)."""
        return self._call("latest", self.inner.latest, zones)

    def history(self, zones: Sequence[str], start: datetime, end: datetime) -> IntensitySeries:
        """The wrapped provider's history (bounded)."""
        return self._call("history", self.inner.history, zones, start, end)

    def forecast(
        self,
        zones: Sequence[str],
        start: datetime | None = None,
        horizon: timedelta = timedelta(hours=24),
    ) -> IntensitySeries:
        """The wrapped provider's forecast (bounded)."""
        return self._call("forecast", self.inner.forecast, zones, start, horizon)

    def forecast_start(self, start: datetime | None, horizon: timedelta) -> datetime:
        """The wrapped provider's check of a forecast request (no I/O)."""
        return self.inner.forecast_start(start, horizon)

    # The public methods above never reach these; they exist for the abstract base.
    def _latest(self, zones: list[str]) -> IntensitySeries:
        return self.latest(zones)

    def _history(self, zones: list[str], start: datetime, end: datetime) -> IntensitySeries:
        return self.history(zones, start, end)

    def _forecast(self, zones: list[str], start: datetime, horizon: timedelta) -> IntensitySeries:
        return self.forecast(zones, start, horizon)

    def close(self) -> None:
        """Close the wrapped provider."""
        self.inner.close()
