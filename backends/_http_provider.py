"""Base classes of the network providers: one set of flows, a sync and an async face.

A network provider subclasses :class:`HttpProvider` and writes its logic once, as
*flows* (see :mod:`lowcarb.backends._http`): ``_latest_flow``, ``_history_flow``,
``_forecast_flow`` and, when it can look locations up, ``_resolve_flow``. A flow
yields lists of :class:`~lowcarb.backends._http.Call` and receives their responses; it
never sends anything, so the same flow runs under

* the provider itself, a :class:`~lowcarb.CarbonProvider` (sync, ``httpx.Client``), and
* :meth:`HttpProvider.to_async`, an :class:`~lowcarb.AsyncCarbonProvider`
  (``httpx.AsyncClient``) that sends the calls of a batch concurrently, bounded by
  ``max_concurrency``, and shares the provider's response cache.

Both faces validate arguments identically (the async one reuses the provider's checks).
The options every network provider accepts are :class:`HttpOptions`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal

import httpx
import pandas as pd

from lowcarb import __version__
from lowcarb._clock import Clock
from lowcarb._provider import (
    AsyncCarbonProvider,
    Capabilities,
    CarbonProvider,
    _check_range,
)
from lowcarb._series import IntensitySeries
from lowcarb._zones import ZoneInfo, ZoneResolution
from lowcarb.backends._http import (
    AsyncDriver,
    DiskCache,
    Flow,
    HttpCore,
    ResponseCache,
    RetryPolicy,
    SyncDriver,
    credential_partition,
    describe_request,
    error_detail,
)
from lowcarb.backends._points import GapPolicy
from lowcarb.exceptions import ConfigurationError, ProviderError, UnknownZoneError

__all__ = ["AsyncHttpProvider", "HttpOptions", "HttpProvider"]


def _check_http_options(
    *,
    base_url: str,
    timeout_s: float,
    max_attempts: int,
    max_retry_time_s: float,
    cache_ttl_s: float,
    max_concurrency: int,
    gaps: str,
    max_gap_hours: float,
) -> None:
    def positive(name: str, value: Any, *, zero: bool = False) -> None:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        ok = ok and math.isfinite(value) and (value >= 0 if zero else value > 0)
        if not ok:
            bound = ">= 0" if zero else "> 0"
            raise ConfigurationError(f"{name} must be a number {bound}, got {value!r}")

    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        raise ConfigurationError(f"base_url must start with http:// or https://, got {base_url!r}")
    positive("timeout_s", timeout_s)
    positive("max_retry_time_s", max_retry_time_s, zero=True)
    positive("cache_ttl_s", cache_ttl_s, zero=True)
    positive("max_gap_hours", max_gap_hours, zero=True)
    for name, value in (("max_attempts", max_attempts), ("max_concurrency", max_concurrency)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigurationError(f"{name} must be an integer >= 1, got {value!r}")
    if gaps not in ("interpolate", "keep", "error"):
        raise ConfigurationError(f"gaps={gaps!r}: must be 'interpolate', 'keep' or 'error'")


@dataclass(frozen=True)
class HttpOptions:
    """Config keys every network provider accepts (``[providers.<name>]``).

    Attributes:
        base_url: The API root; change it for a proxy, a mirror or a test server.
        timeout_s: Timeout of each HTTP request, in seconds.
        max_attempts: Tries per request, the first included, for transient failures
            (timeouts, connection errors, 429, 502/503/504).
        max_retry_time_s: Longest time, in seconds, spent retrying one request.
        cache_ttl_s: How long an answer is reused, in seconds (0: no cache). A training
            then asks each zone's forecast once per this interval, not once per round.
        max_concurrency: Requests of one batch in flight at once (zones, history chunks).
        gaps: Missing intervals: ``interpolate`` short interior runs, ``keep`` as NaN,
            or ``error``.
        max_gap_hours: Longest interior run that ``interpolate`` fills.
        cache_dir: Also keep answers on disk here, shared by processes and runs, for
            ``cache_ttl_s`` (unset: memory only). Each provider uses a subfolder.
    """

    base_url: str = ""
    timeout_s: float = 10.0
    max_attempts: int = 4
    max_retry_time_s: float = 60.0
    cache_ttl_s: float = 1800.0
    max_concurrency: int = 8
    gaps: Literal["interpolate", "keep", "error"] = "interpolate"
    max_gap_hours: float = 2.0
    cache_dir: Path | None = None

    def __post_init__(self) -> None:
        _check_http_options(
            base_url=self.base_url or "https://set-by-the-provider",
            timeout_s=self.timeout_s,
            max_attempts=self.max_attempts,
            max_retry_time_s=self.max_retry_time_s,
            cache_ttl_s=self.cache_ttl_s,
            max_concurrency=self.max_concurrency,
            gaps=self.gaps,
            max_gap_hours=self.max_gap_hours,
        )


class HttpProvider(CarbonProvider):
    """Base of providers that answer over HTTP.

    Subclasses set ``name``, ``default_base_url`` and ``Options`` (a subclass of
    :class:`HttpOptions`), set their credential attributes *before* calling
    ``super().__init__()`` (headers and redaction are built from them), and implement
    ``capabilities``, ``served_zones`` and the flows. Optional hooks:
    :meth:`request_headers`, :meth:`classify_error`, :meth:`error_detail`,
    :meth:`_resolve_flow`, :meth:`_resolve_locally`.

    Args:
        base_url: API root (default: ``default_base_url``).
        timeout_s: Timeout of each request, in seconds.
        max_attempts: Tries per request for transient failures, the first included.
        max_retry_time_s: Longest time spent retrying one request, in seconds.
        cache_ttl_s: How long answers are reused, in seconds (0: never).
        max_concurrency: Requests of one batch in flight at once (zones, history chunks).
        gaps: Gap policy: ``interpolate``, ``keep`` or ``error``.
        max_gap_hours: Longest interior gap ``interpolate`` fills, in hours.
        cache_dir: Folder of the on-disk cache (a :class:`DiskCache` in its ``<name>``
            subfolder), used with the in-memory one and the same TTLs; None: memory only.
        transport: An httpx transport for the sync client (tests: ``httpx.MockTransport``).
        client: A ready ``httpx.Client`` (not closed by the provider).
        cache: A response cache to share; by default each provider has its own.
        rng: Random source of the retry jitter.
        clock: Time source: "now", the cache's TTL and the retry waits.
    """

    #: The API root used when no ``base_url`` is configured.
    default_base_url: ClassVar[str] = ""

    def __init__(
        self,
        *,
        base_url: str = "",
        timeout_s: float = 10.0,
        max_attempts: int = 4,
        max_retry_time_s: float = 60.0,
        cache_ttl_s: float = 1800.0,
        max_concurrency: int = 8,
        gaps: GapPolicy = "interpolate",
        max_gap_hours: float = 2.0,
        cache_dir: str | Path | None = None,
        transport: httpx.BaseTransport | None = None,
        client: httpx.Client | None = None,
        cache: ResponseCache | None = None,
        rng: random.Random | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(clock=clock)
        base_url = base_url or self.default_base_url
        _check_http_options(
            base_url=base_url,
            timeout_s=timeout_s,
            max_attempts=max_attempts,
            max_retry_time_s=max_retry_time_s,
            cache_ttl_s=cache_ttl_s,
            max_concurrency=max_concurrency,
            gaps=gaps,
            max_gap_hours=max_gap_hours,
        )
        self.base_url = base_url.rstrip("/")
        self.timeout_s = float(timeout_s)
        self.cache_ttl = timedelta(seconds=cache_ttl_s) if cache_ttl_s > 0 else None
        self.max_concurrency = max_concurrency
        self.gaps: GapPolicy = gaps
        self.max_gap = timedelta(hours=max_gap_hours)
        self.cache = ResponseCache() if cache is None else cache
        #: The on-disk cache, when ``cache_dir`` is set and caching is on.
        self.disk_cache = self._open_disk_cache(cache_dir) if self.cache_ttl else None
        self._core = HttpCore(
            provider=self.name,
            base_url=self.base_url,
            timeout_s=self.timeout_s,
            retry=RetryPolicy(max_attempts=max_attempts, max_total_s=max_retry_time_s),
            clock=self.clock,
            cache=self.cache,
            headers=self.request_headers(),
            secrets=self.secret_values(),
            auth_hint=self._auth_hint(),
            classify=self.classify_error,
            detail=self.error_detail,
            rng=rng,
            disk=self.disk_cache,
        )
        self._driver = SyncDriver(
            self._core, transport=transport, client=client, max_concurrency=max_concurrency
        )

    def _open_disk_cache(self, cache_dir: str | Path | None) -> DiskCache | None:
        if cache_dir is None or cache_dir == "":
            return None
        if not isinstance(cache_dir, str | Path):
            raise ConfigurationError(f"cache_dir must be a path, got {cache_dir!r}")
        folder = Path(cache_dir).expanduser() / self.name
        # Static credentials only: a login token that changes must not empty the cache.
        partition = credential_partition(self.name, self.secret_values())
        try:
            return DiskCache(folder, partition=partition)
        except OSError as exc:
            raise ConfigurationError(
                f"cache_dir {str(cache_dir)!r} cannot hold the disk cache: {exc.strerror or exc}"
            ) from None

    # -- hooks ----------------------------------------------------------------------------

    def request_headers(self) -> dict[str, str]:
        """Headers sent with every request; add auth headers here (they are redacted)."""
        return {"Accept": "application/json", "User-Agent": f"lowcarb/{__version__}"}

    def secret_values(self) -> tuple[str, ...]:
        """Credential values to scrub from messages: each ``credentials`` key's attribute."""
        values = (getattr(self, c.key, None) for c in self.credentials)
        return tuple(v for v in values if isinstance(v, str) and v)

    def classify_error(self, response: httpx.Response) -> ProviderError | None:
        """A provider-specific error for ``response``, or None to use the status table."""
        return None

    def error_detail(self, response: httpx.Response) -> str:
        """The human message in an error body (default: common JSON shapes)."""
        return error_detail(response)

    def _auth_hint(self) -> str:
        required = [c for c in self.credentials if c.required]
        if not required:
            return ""
        names = " and ".join(f"{c.env} (or {c.env}_FILE)" for c in required)
        return f"check {names}"

    # -- flows (subclasses) ---------------------------------------------------------------

    def _latest_flow(self, zones: list[str]) -> Flow[IntensitySeries]:
        raise NotImplementedError

    def _history_flow(
        self, zones: list[str], start: datetime, end: datetime
    ) -> Flow[IntensitySeries]:
        raise NotImplementedError

    def _forecast_flow(
        self, zones: list[str], start: datetime, horizon: timedelta
    ) -> Flow[IntensitySeries]:
        raise NotImplementedError

    def _resolve_flow(self, location: str) -> Flow[ZoneResolution] | None:
        """A flow that resolves ``location`` over HTTP, or None to resolve locally."""
        return None

    def _resolve_locally(self, location: str) -> ZoneResolution:
        """Resolution without HTTP (default: ids, names, ``LAT,LON``, cloud regions)."""
        return super().resolve(location)

    # -- the sync face --------------------------------------------------------------------

    def _latest(self, zones: list[str]) -> IntensitySeries:
        return self._driver.run(self._latest_flow(zones))

    def _history(self, zones: list[str], start: datetime, end: datetime) -> IntensitySeries:
        return self._driver.run(self._history_flow(zones, start, end))

    def _forecast(self, zones: list[str], start: datetime, horizon: timedelta) -> IntensitySeries:
        return self._driver.run(self._forecast_flow(zones, start, horizon))

    def resolve(self, location: str) -> ZoneResolution:
        """Turn a zone id, a name, ``LAT,LON``, a cloud region or a provider lookup into a zone.

        Raises:
            UnknownZoneError: If no served zone matches (with suggestions).
        """
        flow = self._resolve_flow(location)
        if flow is None:
            return self._resolve_locally(location)
        return self._driver.run(flow)

    def to_async(
        self,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        client: httpx.AsyncClient | None = None,
        max_concurrency: int | None = None,
    ) -> AsyncHttpProvider:
        """The async face of this provider: same options, clock and response cache.

        Args:
            transport: An async httpx transport (tests: ``httpx.MockTransport``).
            client: A ready ``httpx.AsyncClient`` (not closed by the provider).
            max_concurrency: Requests in flight at once (default: the option).

        Example:
            >>> async def main():  # doctest: +SKIP
            ...     async with open_provider("ukcarbon").to_async() as p:
            ...         return await p.forecast(["GB", "GB-R13"])
        """
        return AsyncHttpProvider(
            self,
            transport=transport,
            client=client,
            max_concurrency=max_concurrency or self.max_concurrency,
        )

    @property
    def requests_sent(self) -> int:
        """HTTP requests that went to the network (not the cache), retries included."""
        return self._core.requests_sent

    def close(self) -> None:
        """Close the HTTP client if the provider created it."""
        self._driver.close()

    # -- helpers for flows ----------------------------------------------------------------

    def _ttl(self, ttl: timedelta | None = None) -> timedelta | None:
        """The cache TTL of a call: ``ttl`` (default: the option), or None if caching is off."""
        if self.cache_ttl is None:
            return None
        return ttl or self.cache_ttl

    def _where(self, response: httpx.Response) -> str:
        return describe_request(response.request, self._core.secrets)

    def _lookup_refused(
        self, query: str, response: httpx.Response, default: str
    ) -> UnknownZoneError:
        """The error for a location lookup the API refused (400/404), quoting its reason."""
        return UnknownZoneError(
            query,
            [],
            where=self.name,
            detail=f"{self._where(response)} -> {response.status_code}: "
            f"{self.error_detail(response) or default}",
        )

    def _series(
        self,
        values: pd.DataFrame,
        estimated: pd.DataFrame | None,
        notes: list[str],
        **meta: Any,
    ) -> IntensitySeries:
        caps = self.capabilities
        values.index.name = "start"
        return IntensitySeries(
            values,
            caps.resolution,
            signal=caps.signal,
            basis=caps.basis,
            provider=self.name,
            estimated=estimated,
            notes=tuple(dict.fromkeys(notes)),
            **meta,
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={self._core.redact(self.base_url)!r}, "
            f"timeout_s={self.timeout_s:g}, cache_ttl_s="
            f"{self.cache_ttl.total_seconds() if self.cache_ttl else 0:g})"
        )


class AsyncHttpProvider(AsyncCarbonProvider):
    """The async face of an :class:`HttpProvider`; build it with :meth:`HttpProvider.to_async`.

    It runs the provider's own flows over an ``httpx.AsyncClient``: the requests of one
    call (zones, history chunks) go out concurrently, at most ``max_concurrency`` at a
    time, and it shares the provider's options, clock and response cache.

    Args:
        provider: The provider whose flows and checks are used.
        transport: An async httpx transport.
        client: A ready ``httpx.AsyncClient`` (not closed here).
        max_concurrency: Requests in flight at once.
    """

    def __init__(
        self,
        provider: HttpProvider,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        client: httpx.AsyncClient | None = None,
        max_concurrency: int = 8,
    ) -> None:
        self.provider = provider
        self.name = provider.name  # type: ignore[misc]
        self.clock = provider.clock
        self._driver = AsyncDriver(
            provider._core, transport=transport, client=client, max_concurrency=max_concurrency
        )

    @property
    def capabilities(self) -> Capabilities:
        """The provider's capabilities."""
        return self.provider.capabilities

    @property
    def peak_concurrency(self) -> int:
        """The most requests this face had in flight at once."""
        return self._driver.peak_concurrency

    async def served_zones(self) -> list[str]:
        """The provider's zones."""
        return self.provider.served_zones()

    async def default_zones(self) -> list[str]:
        """The provider's default zones."""
        return self.provider.default_zones()

    def zones(self) -> list[ZoneInfo]:
        """Describe the served zones (no I/O)."""
        return self.provider.zones()

    async def resolve(self, location: str) -> ZoneResolution:
        """See :meth:`HttpProvider.resolve`."""
        flow = self.provider._resolve_flow(location)
        if flow is None:
            return self.provider._resolve_locally(location)
        return await self._driver.run(flow)

    async def latest(self, zones: Any) -> IntensitySeries:
        """See :meth:`CarbonProvider.latest`."""
        checked = self.provider._check_zones(zones)
        return await self._driver.run(self.provider._latest_flow(checked))

    async def history(self, zones: Any, start: datetime, end: datetime) -> IntensitySeries:
        """See :meth:`CarbonProvider.history`."""
        checked = self.provider._check_zones(zones)
        start, end = _check_range(start, end)
        return await self._driver.run(self.provider._history_flow(checked, start, end))

    async def forecast(
        self,
        zones: Any,
        start: datetime | None = None,
        horizon: timedelta = timedelta(hours=24),
    ) -> IntensitySeries:
        """See :meth:`CarbonProvider.forecast`."""
        checked = self.provider._check_zones(zones)
        first = self.provider._forecast_start(start, horizon)
        return await self._driver.run(self.provider._forecast_flow(checked, first, horizon))

    async def aclose(self) -> None:
        """Close the async HTTP client if this face created it."""
        await self._driver.aclose()

    def __repr__(self) -> str:
        return f"AsyncHttpProvider({self.provider!r})"
