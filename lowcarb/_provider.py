"""The provider interface every carbon-intensity source implements, sync and async.

A provider turns "these zones, this time range" into an :class:`IntensitySeries`. It
knows nothing of selection or federated learning. Subclasses implement ``_latest``,
``_history``, ``_forecast`` and ``served_zones``; the public methods validate arguments
once, here, so every provider rejects bad input the same way.
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, ClassVar, Self

from lowcarb._clock import Clock, SystemClock
from lowcarb._series import EmissionBasis, IntensitySeries, Signal
from lowcarb._time import MAX_SPAN, check_range, ensure_utc, floor_time, format_duration
from lowcarb._zones import ZONE_CATALOG, ZoneInfo, ZoneResolution, resolve_zone, suggest_zones
from lowcarb.exceptions import InvalidInputError, NoDataError, UnknownZoneError

__all__ = [
    "AsyncCarbonProvider",
    "CarbonProvider",
    "Capabilities",
    "Credential",
    "ThreadedAsyncProvider",
]


@dataclass(frozen=True)
class Capabilities:
    """What a provider can deliver.

    Attributes:
        signal: ``average`` or ``marginal``.
        basis: ``lifecycle`` or ``direct`` (the emission-factor boundary).
        resolution: Native interval length.
        forecast_horizon: How far ahead forecasts reach (None: no forecasts).
        history: Whether past values can be asked for.
        synthetic: Whether the data is generated rather than measured.
    """

    signal: Signal
    basis: EmissionBasis
    resolution: timedelta
    forecast_horizon: timedelta | None
    history: bool = True
    synthetic: bool = False


@dataclass(frozen=True)
class Credential:
    """A secret a provider needs, read only from the environment.

    The value comes from the variable ``env``, or from the file named by ``env + "_FILE"``
    (the Docker/Kubernetes secrets convention). It is never read from project config.

    Attributes:
        key: The option name inside the provider (e.g. ``token``).
        env: The environment variable (e.g. ``LOWCARB_ELECTRICITYMAPS_TOKEN``).
        required: Whether the provider cannot work without it.
        help: Where a user gets one.
    """

    key: str
    env: str
    required: bool = True
    help: str = ""


class CarbonProvider(abc.ABC):
    """Base class of synchronous carbon-intensity providers.

    Subclasses set ``name`` and ``Options`` (a frozen dataclass of the provider's config
    keys, each with a default or required), list their ``credentials``, and implement the
    underscored methods. Public methods take zone ids, aware datetimes and timedeltas.

    Args:
        clock: The time source; defaults to the wall clock.
    """

    #: Registry name (lowercase).
    name: ClassVar[str] = ""
    #: Config options, a frozen dataclass type. Providers without options keep this.
    Options: ClassVar[type] = type("Options", (), {})
    #: Secrets the provider reads from the environment.
    credentials: ClassVar[tuple[Credential, ...]] = ()

    def __init__(self, *, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or SystemClock()

    @classmethod
    def from_options(
        cls,
        options: Any,
        *,
        secrets: Mapping[str, str] | None = None,
        clock: Clock | None = None,
    ) -> Self:
        """Build the provider from a validated ``Options`` instance and its secrets.

        The default passes every option field, then every secret, as keyword arguments.
        """
        kwargs: dict[str, Any] = {}
        if dataclasses.is_dataclass(options):
            kwargs.update({f.name: getattr(options, f.name) for f in dataclasses.fields(options)})
        kwargs.update(secrets or {})
        return cls(clock=clock, **kwargs)

    # -- what subclasses implement ------------------------------------------------------

    @property
    @abc.abstractmethod
    def capabilities(self) -> Capabilities:
        """What this provider delivers."""

    @abc.abstractmethod
    def served_zones(self) -> list[str]:
        """Zone ids this provider can answer for."""

    @abc.abstractmethod
    def _latest(self, zones: list[str]) -> IntensitySeries: ...

    @abc.abstractmethod
    def _history(self, zones: list[str], start: datetime, end: datetime) -> IntensitySeries: ...

    @abc.abstractmethod
    def _forecast(
        self, zones: list[str], start: datetime, horizon: timedelta
    ) -> IntensitySeries: ...

    # -- public API ---------------------------------------------------------------------

    def default_zones(self) -> list[str]:
        """Zones to use when a caller names none (all served zones, unless overridden)."""
        return self.served_zones()

    def zones(self) -> list[ZoneInfo]:
        """Describe the served zones (name, country, continent, location when known)."""
        return [
            ZONE_CATALOG.get(z) or ZoneInfo(z, z, "", "", float("nan"), float("nan"), "UTC")
            for z in self.served_zones()
        ]

    def resolve(self, location: str) -> ZoneResolution:
        """Turn a zone id, ``LAT,LON`` or ``cloud:region`` into a served zone.

        Raises:
            UnknownZoneError: If no served zone matches (with suggestions).
        """
        return resolve_zone(location, self.served_zones(), where=self.name)

    def latest(self, zones: Sequence[str]) -> IntensitySeries:
        """The most recent interval available at the clock's current time.

        Args:
            zones: Zone ids.

        Returns:
            One row (the latest interval start) per available timestamp; zones with an
            older latest value are NaN in newer rows.
        """
        return self._latest(self._check_zones(zones))

    def history(self, zones: Sequence[str], start: datetime, end: datetime) -> IntensitySeries:
        """Past intensities for the intervals whose start lies in ``[start, end)``.

        Args:
            zones: Zone ids.
            start: Inclusive, timezone-aware.
            end: Exclusive, timezone-aware, after ``start``.
        """
        checked = self._check_zones(zones)
        start, end = check_range(start, end)
        return self._history(checked, start, end)

    def forecast(
        self,
        zones: Sequence[str],
        start: datetime | None = None,
        horizon: timedelta = timedelta(hours=24),
    ) -> IntensitySeries:
        """Intensities expected for the intervals in ``[floor(start), floor(start) + horizon)``.

        ``start`` is floored to the provider's resolution, so a 24-hour hourly forecast
        always holds 24 values. Subclasses receive the floored start.

        Args:
            zones: Zone ids.
            start: Time inside the first interval (timezone-aware); defaults to now.
            horizon: How far ahead, positive.
        """
        checked = self._check_zones(zones)
        first = self.forecast_start(start, horizon)
        return self._forecast(checked, first, horizon)

    def forecast_start(self, start: datetime | None, horizon: timedelta) -> datetime:
        """Check a forecast request and return the start of its first interval.

        Every face of a provider (this sync one, an async one) checks forecasts here, so
        they refuse the same requests with the same errors.

        Args:
            start: Time inside the first interval (timezone-aware); None: now.
            horizon: How far ahead, positive.

        Returns:
            ``start`` floored to ``capabilities.resolution`` (UTC).

        Raises:
            InvalidInputError: For a naive ``start``, a horizon that is not positive or
                longer than :data:`MAX_SPAN`, or a forecast reaching further ahead of now
                than ``capabilities.forecast_horizon``.
            NoDataError: If the provider gives no forecasts.
        """
        first = self.clock.now() if start is None else ensure_utc(start, "start")
        if not isinstance(horizon, timedelta) or horizon <= timedelta(0):
            raise InvalidInputError(f"horizon must be a positive timedelta, got {horizon!r}")
        if horizon > MAX_SPAN:
            raise InvalidInputError(
                f"horizon {format_duration(horizon)} is longer than the maximum "
                f"{format_duration(MAX_SPAN)}"
            )
        reach = self.capabilities.forecast_horizon
        if reach is None:
            raise NoDataError("this provider gives no forecasts", provider=self.name)
        step = self.capabilities.resolution
        # Whole intervals: a 24 h forecast at 10:05 covers 10:00 today .. 10:00 tomorrow.
        first = floor_time(first, step)
        lead = first + horizon - floor_time(self.clock.now(), step)
        if lead > reach:
            raise InvalidInputError(
                f"a forecast to {first + horizon:%Y-%m-%dT%H:%MZ} reaches "
                f"{format_duration(lead)} ahead of now, beyond what {self.name!r} forecasts "
                f"({format_duration(reach)}); ask for a shorter horizon or an earlier start"
            )
        return first

    def to_async(self) -> AsyncCarbonProvider:
        """The async face of this provider (``await face.forecast(...)``).

        The default runs each call of this provider in a worker thread
        (:class:`ThreadedAsyncProvider`), which suits local and blocking providers;
        network providers return their own non-blocking face. Closing the face closes
        this provider.
        """
        return ThreadedAsyncProvider(self)

    def close(self) -> None:  # noqa: B027 - optional hook, most providers hold nothing
        """Release resources (connections, files)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    # -- helpers ------------------------------------------------------------------------

    def _check_zones(self, zones: Sequence[str]) -> list[str]:
        if isinstance(zones, str):
            zones = [zones]
        if not zones:
            raise InvalidInputError("give at least one zone")
        served = self.served_zones()
        by_upper = {z.upper(): z for z in served}
        out: list[str] = []
        for zone in zones:
            if not isinstance(zone, str):
                raise InvalidInputError(f"zone ids are strings, got {zone!r}")
            canonical = by_upper.get(zone.strip().upper())
            if canonical is None:
                raise UnknownZoneError(zone, suggest_zones(zone, served), where=self.name)
            if canonical not in out:
                out.append(canonical)
        return out


class AsyncCarbonProvider(abc.ABC):
    """Asynchronous mirror of :class:`CarbonProvider` (``await p.forecast(...)``)."""

    name: ClassVar[str] = ""

    @property
    @abc.abstractmethod
    def capabilities(self) -> Capabilities:
        """What this provider delivers."""

    @abc.abstractmethod
    async def served_zones(self) -> list[str]:
        """Zone ids this provider can answer for."""

    async def default_zones(self) -> list[str]:
        """Zones to use when a caller names none; see :meth:`CarbonProvider.default_zones`."""
        return await self.served_zones()

    @abc.abstractmethod
    async def latest(self, zones: Sequence[str]) -> IntensitySeries:
        """See :meth:`CarbonProvider.latest`."""

    @abc.abstractmethod
    async def history(
        self, zones: Sequence[str], start: datetime, end: datetime
    ) -> IntensitySeries:
        """See :meth:`CarbonProvider.history`."""

    @abc.abstractmethod
    async def forecast(
        self,
        zones: Sequence[str],
        start: datetime | None = None,
        horizon: timedelta = timedelta(hours=24),
    ) -> IntensitySeries:
        """See :meth:`CarbonProvider.forecast`."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class ThreadedAsyncProvider(AsyncCarbonProvider):
    """Async face of a local (file, in-memory, computed) provider.

    Each call runs the sync provider in a worker thread, so a large file read never
    blocks the event loop. Network providers implement :class:`AsyncCarbonProvider`
    natively instead.

    Args:
        provider: The synchronous provider to wrap.
    """

    def __init__(self, provider: CarbonProvider) -> None:
        self.provider = provider
        self.name = provider.name  # type: ignore[misc]

    @property
    def capabilities(self) -> Capabilities:
        """The wrapped provider's capabilities."""
        return self.provider.capabilities

    async def served_zones(self) -> list[str]:
        """Zone ids served by the wrapped provider."""
        return await asyncio.to_thread(self.provider.served_zones)

    async def default_zones(self) -> list[str]:
        """The wrapped provider's default zones."""
        return await asyncio.to_thread(self.provider.default_zones)

    async def latest(self, zones: Sequence[str]) -> IntensitySeries:
        """See :meth:`CarbonProvider.latest`."""
        return await asyncio.to_thread(self.provider.latest, zones)

    async def history(
        self, zones: Sequence[str], start: datetime, end: datetime
    ) -> IntensitySeries:
        """See :meth:`CarbonProvider.history`."""
        return await asyncio.to_thread(self.provider.history, zones, start, end)

    async def forecast(
        self,
        zones: Sequence[str],
        start: datetime | None = None,
        horizon: timedelta = timedelta(hours=24),
    ) -> IntensitySeries:
        """See :meth:`CarbonProvider.forecast`."""
        return await asyncio.to_thread(self.provider.forecast, zones, start, horizon)

    async def aclose(self) -> None:
        """Close the wrapped provider."""
        self.provider.close()

    def __repr__(self) -> str:
        return f"ThreadedAsyncProvider({self.provider!r})"
