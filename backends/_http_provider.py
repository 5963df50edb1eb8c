"""Base classes of the network providers: one set of flows, a sync and an async face.

A network provider subclasses :class:`HttpProvider` and writes its logic once, as
*flows* (see :mod:`lowcarb.backends._http_calls`): ``_latest_flow``, ``_history_flow``,
``_forecast_flow`` and, when it can look locations up, ``_resolve_flow``; a provider
whose zones come from the API adds ``_zones_flow``. A flow yields lists of
:class:`~lowcarb.backends._http_calls.Call` and receives their responses; it never sends
anything, so the same flow runs under

* the provider itself, a :class:`~lowcarb.CarbonProvider` (sync, ``httpx.Client``), and
* :meth:`HttpProvider.to_async`, an :class:`~lowcarb.AsyncCarbonProvider`
  (``httpx.AsyncClient``) that sends the calls of a batch concurrently, bounded by
  ``max_concurrency``, and shares the provider's response cache.

Both faces validate arguments identically (the async one reuses the provider's checks).
The options every network provider accepts are declared once, in :class:`HttpOptions`.
"""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import httpx
import pandas as pd

from lowcarb import __version__
from lowcarb._clock import Clock
from lowcarb._provider import AsyncCarbonProvider, Capabilities, CarbonProvider
from lowcarb._series import IntensitySeries
from lowcarb._time import check_range
from lowcarb._zones import ZoneInfo, ZoneResolution
from lowcarb.backends._http_cache import DiskCache, ResponseCache, credential_partition
from lowcarb.backends._http_calls import Flow, describe_request, error_detail, json_body
from lowcarb.backends._http_core import HttpCore
from lowcarb.backends._http_drivers import AsyncDriver, SyncDriver
from lowcarb.backends._http_retry import RetryPolicy
from lowcarb.backends._points import GapPolicy
from lowcarb.exceptions import (
    ConfigurationError,
    ProviderError,
    ResponseParseError,
    UnknownZoneError,
    redact,
)

__all__ = ["AsyncHttpProvider", "HttpOptions", "HttpProvider"]

_URL_SCHEMES = ("http://", "https://")

T = TypeVar("T")


@dataclass(frozen=True)
class HttpOptions:
    """Config keys every network provider accepts (``[providers.<name>]``).

    The one declaration of these options: a provider's ``Options`` subclasses it, and
    :class:`HttpProvider` validates its keyword arguments by building one.

    Attributes:
        base_url: The API root; change it for a proxy, a mirror or a test server (empty:
            the provider's ``default_base_url``).
        timeout_s: Timeout of each HTTP request, in seconds.
        max_attempts: Tries per request, the first included, for transient failures
            (timeouts, connection errors, 429, 502/503/504).
        max_retry_time_s: Longest time, in seconds, spent retrying one request.
        cache_ttl_s: How long an answer is reused, in seconds (0: no cache). A training
            then asks each zone's forecast once per this interval, not once per round.
        max_concurrency: Requests of one batch in flight at once (zones, history chunks).
        gaps: Missing intervals: ``interpolate`` short interior runs, ``keep`` as NaN,
            or ``error``.
        max_gap_hours: Longest interior run that ``interpolate`` fills, in hours.
        cache_dir: Also keep answers on disk here, shared by processes and runs, for
            ``cache_ttl_s`` (unset: memory only). Each provider uses a subfolder.

    Raises:
        ConfigurationError: If a value is out of range.
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
        if self.base_url != "":
            _check_url(self.base_url)
        _check_number("timeout_s", self.timeout_s)
        _check_number("max_retry_time_s", self.max_retry_time_s, zero=True)
        _check_number("cache_ttl_s", self.cache_ttl_s, zero=True)
        _check_number("max_gap_hours", self.max_gap_hours, zero=True)
        for name in ("max_attempts", "max_concurrency"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{name} must be an integer >= 1, got {value!r}")
        if self.gaps not in ("interpolate", "keep", "error"):
            raise ConfigurationError(
                f"gaps={self.gaps!r}: must be 'interpolate', 'keep' or 'error'"
            )


def _check_url(value: Any) -> None:
    if not isinstance(value, str) or not value.startswith(_URL_SCHEMES):
        raise ConfigurationError(f"base_url must start with http:// or https://, got {value!r}")


def _check_number(name: str, value: Any, *, zero: bool = False) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    ok = ok and math.isfinite(value) and (value >= 0 if zero else value > 0)
    if not ok:
        bound = ">= 0" if zero else "> 0"
        raise ConfigurationError(f"{name} must be a number {bound}, got {value!r}")


class HttpProvider(CarbonProvider):
    """Base of providers that answer over HTTP.

    Subclasses set ``name``, ``default_base_url`` and ``Options`` (a subclass of
    :class:`HttpOptions`), set their credential attributes *before* calling
    ``super().__init__()`` (headers and redaction are built from them), and implement
    ``capabilities``, ``served_zones`` and the flows. Optional hooks:
    :meth:`request_headers`, :meth:`classify_error`, :meth:`error_detail`,
    :meth:`_resolve_flow`, :meth:`_resolve_locally`, :meth:`_zones_flow`.

    Args:
        transport: An httpx transport for the sync client (tests: ``httpx.MockTransport``,
            which the async face then uses too).
        client: A ready ``httpx.Client`` (not closed by the provider).
        cache: A response cache to share; by default each provider has its own.
        rng: Random source of the retry jitter.
        clock: Time source: "now", the cache's TTL and the retry waits.
        **options: The fields of :class:`HttpOptions` (``base_url``, ``timeout_s``,
            ``max_attempts``, ``max_retry_time_s``, ``cache_ttl_s``, ``max_concurrency``,
            ``gaps``, ``max_gap_hours``, ``cache_dir``). ``cache_dir`` gets a
            :class:`DiskCache` in its ``<name>`` subfolder, used with the in-memory cache
            and the same TTLs.

    Raises:
        ConfigurationError: For an option out of range or a ``cache_dir`` that cannot
            hold the disk cache.
    """

    #: The API root used when no ``base_url`` is configured.
    default_base_url: ClassVar[str] = ""
    #: A failed :meth:`_zones_flow` is raised again, not sent again, for this long.
    zones_retry_after: ClassVar[timedelta] = timedelta(minutes=1)
    #: Whether zone checks need what :meth:`_zones_flow` fetches (the zones a key may
    #: read): the async face then fetches it before every call. False for data that only
    #: describes zones (names): fetched when a location is resolved, or on first use.
    zones_flow_checks_zones: ClassVar[bool] = True

    def __init__(
        self,
        *,
        transport: httpx.BaseTransport | None = None,
        client: httpx.Client | None = None,
        cache: ResponseCache | None = None,
        rng: random.Random | None = None,
        clock: Clock | None = None,
        **options: Any,
    ) -> None:
        super().__init__(clock=clock)
        checked = HttpOptions(**options)
        if not checked.base_url:
            _check_url(self.default_base_url)
            checked = dataclasses.replace(checked, base_url=self.default_base_url)
        #: The validated options (``base_url`` resolved to the default when unset).
        self.options = checked
        self.base_url = checked.base_url.rstrip("/")
        self.timeout_s = float(checked.timeout_s)
        self.cache_ttl = timedelta(seconds=checked.cache_ttl_s) if checked.cache_ttl_s else None
        self.max_concurrency = checked.max_concurrency
        self.gaps: GapPolicy = checked.gaps
        self.max_gap = timedelta(hours=checked.max_gap_hours)
        self.cache = ResponseCache() if cache is None else cache
        #: The on-disk cache, when ``cache_dir`` is set and caching is on.
        self.disk_cache = self._open_disk_cache(checked.cache_dir) if self.cache_ttl else None
        self._transport = transport
        self._static_secrets = self.secret_values()
        self._core = HttpCore(
            provider=self.name,
            base_url=self.base_url,
            timeout_s=self.timeout_s,
            retry=RetryPolicy(
                max_attempts=checked.max_attempts, max_total_s=checked.max_retry_time_s
            ),
            clock=self.clock,
            cache=self.cache,
            headers=self.request_headers(),
            secrets=self._static_secrets,
            auth_hint=self._auth_hint(),
            classify=self.classify_error,
            detail=self.error_detail,
            rng=rng,
            disk=self.disk_cache,
        )
        self._driver = SyncDriver(
            self._core, transport=transport, client=client, max_concurrency=self.max_concurrency
        )
        # What _zones_flow fetched, and its last failure (when, what).
        self._zone_data: Any = None
        self._zone_data_fetched = False
        self._zone_data_failure: tuple[datetime, ProviderError] | None = None

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

    def _zones_flow(self) -> Flow[Any] | None:
        """A flow that fetches what the zone methods need from the API, or None.

        For a provider whose zones come from the API (a key that may read some zones
        only): its result is kept for the provider's life and read with
        :meth:`_fetched_zones`. Each face runs it through its own driver before zones
        are checked (or, with :attr:`zones_flow_checks_zones` False, before a location is
        resolved), so the async face never blocks on the sync client. A failure is
        raised again, without a request, for :attr:`zones_retry_after`.
        """
        return None

    # -- zones fetched over HTTP ----------------------------------------------------------

    def _fetched_zones(self) -> Any:
        """What :meth:`_zones_flow` returned, fetched with the sync client on first use.

        Raises:
            ProviderError: If fetching failed (now, or less than
                :attr:`zones_retry_after` ago).
        """
        flow = self._pending_zones_flow()
        if flow is not None:
            try:
                self._keep_zones(self._driver.run(flow))
            except ProviderError as exc:
                self._zones_failed(exc)
                raise
        return self._zone_data

    def _pending_zones_flow(self) -> Flow[Any] | None:
        """The zones flow still to run, or None (fetched, or none); raises a recent failure.

        One call checks zones, then reads them: a refused key costs one request, not two.
        """
        if self._zone_data_fetched:
            return None
        if self._zone_data_failure is not None:
            when, exc = self._zone_data_failure
            if self.clock.now() - when < self.zones_retry_after:
                raise exc
        return self._zones_flow()

    def _keep_zones(self, data: Any) -> None:
        self._zone_data, self._zone_data_fetched = data, True

    def _zones_failed(self, exc: ProviderError) -> None:
        self._zone_data_failure = (self.clock.now(), exc)

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
            transport: An async httpx transport (default: the provider's own transport
                when it serves async clients too, as ``httpx.MockTransport`` does).
            client: A ready ``httpx.AsyncClient`` (not closed by the provider).
            max_concurrency: Requests in flight at once (default: the option).

        Example:
            >>> async def main():  # doctest: +SKIP
            ...     async with open_provider("ukcarbon").to_async() as p:
            ...         return await p.forecast(["GB", "GB-R13"])
        """
        return AsyncHttpProvider(
            self, transport=transport, client=client, max_concurrency=max_concurrency
        )

    def async_driver(
        self,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        client: httpx.AsyncClient | None = None,
        max_concurrency: int | None = None,
    ) -> AsyncDriver:
        """A driver that runs this provider's flows over an ``httpx.AsyncClient``.

        It shares the provider's requests, cache, error mapping, retry policy and
        redaction. Arguments as for :meth:`to_async`.
        """
        # A transport that serves both kinds of client (httpx.MockTransport) is shared, so
        # that a provider built for tests never sends its async requests to the network.
        own: object = self._transport  # typed as a sync transport, but may serve both
        if transport is None and client is None and isinstance(own, httpx.AsyncBaseTransport):
            transport = own
        return AsyncDriver(
            self._core,
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
        """``METHOD URL`` of the request ``response`` answers, credentials redacted."""
        return describe_request(response.request, self._core.secrets)

    def _redact(self, text: str) -> str:
        """``text`` with credentials (patterns and this provider's secrets) replaced."""
        return redact(text, self._core.secrets)

    def _json(self, response: httpx.Response, label: str = "") -> Any:
        """The JSON body of ``response``; see :func:`~lowcarb.backends.toolkit.json_body`."""
        return json_body(response, provider=self.name, secrets=self._core.secrets, label=label)

    def _retry_after(self, response: httpx.Response) -> float | None:
        """Seconds asked by the ``Retry-After`` header of ``response``, or None."""
        return self._core.retry_after(response)

    def _session_secrets(self, *values: str) -> None:
        """Also redact ``values`` (a login token), replacing the previous session's ones."""
        self._core.secrets = (*self._static_secrets, *(v for v in values if v))

    def _object(self, item: Any, where: str) -> dict[str, Any]:
        """``item`` if it is a JSON object, else a :class:`ResponseParseError` naming ``where``."""
        if not isinstance(item, dict):
            raise ResponseParseError(
                f"{where} is {type(item).__name__}, not an object", provider=self.name
            )
        return item

    def _list(self, value: Any, where: str) -> list[Any]:
        """``value`` if it is a JSON array, else a :class:`ResponseParseError` naming ``where``."""
        if not isinstance(value, list):
            raise ResponseParseError(
                f"{where} is {type(value).__name__}, not a list", provider=self.name
            )
        return value

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
            f"{type(self).__name__}(base_url={self._redact(self.base_url)!r}, "
            f"timeout_s={self.timeout_s:g}, cache_ttl_s="
            f"{self.cache_ttl.total_seconds() if self.cache_ttl else 0:g})"
        )


class AsyncHttpProvider(AsyncCarbonProvider):
    """The async face of an :class:`HttpProvider`; build it with :meth:`HttpProvider.to_async`.

    It runs the provider's own flows over an ``httpx.AsyncClient``: the requests of one
    call (zones, history chunks) go out concurrently, at most ``max_concurrency`` at a
    time, and it shares the provider's options, clock, response cache and checks. A
    provider whose zones come from the API (:meth:`HttpProvider._zones_flow`) has them
    fetched here, over the async client, before they are checked.

    Args:
        provider: The provider whose flows and checks are used.
        transport: An async httpx transport (default: see :meth:`HttpProvider.to_async`).
        client: A ready ``httpx.AsyncClient`` (not closed here).
        max_concurrency: Requests in flight at once (default: the provider's option).
    """

    def __init__(
        self,
        provider: HttpProvider,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        client: httpx.AsyncClient | None = None,
        max_concurrency: int | None = None,
    ) -> None:
        self.provider = provider
        self.name = provider.name  # type: ignore[misc]
        self.clock = provider.clock
        self._driver = provider.async_driver(
            transport=transport, client=client, max_concurrency=max_concurrency
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
        await self._fetch_zones(checks=True)
        return self.provider.served_zones()

    async def default_zones(self) -> list[str]:
        """The provider's default zones."""
        await self._fetch_zones(checks=True)
        return self.provider.default_zones()

    def zones(self) -> list[ZoneInfo]:
        """Describe the served zones."""
        return self.provider.zones()

    async def resolve(self, location: str) -> ZoneResolution:
        """See :meth:`HttpProvider.resolve`."""
        flow = self.provider._resolve_flow(location)
        # A lookup over HTTP checks zones; a local resolution may need their description.
        await self._fetch_zones(checks=flow is not None)
        if flow is None:
            return self.provider._resolve_locally(location)
        return await self._driver.run(flow)

    async def latest(self, zones: Any) -> IntensitySeries:
        """See :meth:`CarbonProvider.latest`."""
        await self._fetch_zones(checks=True)
        checked = self.provider._check_zones(zones)
        return await self._driver.run(self.provider._latest_flow(checked))

    async def history(self, zones: Any, start: datetime, end: datetime) -> IntensitySeries:
        """See :meth:`CarbonProvider.history`."""
        await self._fetch_zones(checks=True)
        checked = self.provider._check_zones(zones)
        start, end = check_range(start, end)
        return await self._driver.run(self.provider._history_flow(checked, start, end))

    async def forecast(
        self,
        zones: Any,
        start: datetime | None = None,
        horizon: timedelta = timedelta(hours=24),
    ) -> IntensitySeries:
        """See :meth:`CarbonProvider.forecast`."""
        await self._fetch_zones(checks=True)
        checked = self.provider._check_zones(zones)
        first = self.provider.forecast_start(start, horizon)
        return await self._driver.run(self.provider._forecast_flow(checked, first, horizon))

    async def aclose(self) -> None:
        """Close the async HTTP client if this face created it."""
        await self._driver.aclose()

    async def _run(self, flow: Flow[T]) -> T:
        """Run one of the provider's flows over this face's client (for extra operations)."""
        return await self._driver.run(flow)

    async def _fetch_zones(self, *, checks: bool) -> None:
        """Run the provider's zones flow over the async client, if it still has to run.

        ``checks``: the caller is about to check zones (else to describe or resolve them
        locally); a provider whose zones flow only describes zones
        (``zones_flow_checks_zones`` False) is not asked for checks. A failure
        is only recorded: the zone checks then raise it (or the provider falls back on
        zones it knows), without another request.
        """
        provider = self.provider
        if checks and not provider.zones_flow_checks_zones:
            return
        try:
            flow = provider._pending_zones_flow()
        except ProviderError:
            return  # failed moments ago: recorded already
        if flow is None:
            return
        try:
            provider._keep_zones(await self._driver.run(flow))
        except ProviderError as exc:
            provider._zones_failed(exc)

    def __repr__(self) -> str:
        return f"AsyncHttpProvider({self.provider!r})"
