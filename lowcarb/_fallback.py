"""An ordered chain of providers: the first that answers wins, and the answer says so."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from lowcarb._clock import Clock
from lowcarb._provider import Capabilities, CarbonProvider
from lowcarb._series import IntensitySeries
from lowcarb._time import floor_time, format_duration
from lowcarb.exceptions import InvalidInputError, ProviderError

__all__ = ["FallbackProvider"]

log = logging.getLogger("lowcarb")


class FallbackProvider(CarbonProvider):
    """Try providers in order; a :class:`ProviderError` moves on to the next one.

    Bad input (unknown zone, naive datetime) is not a provider failure and is raised
    at once. A member that does not serve a zone is skipped for calls with that zone.
    The series returned carries a note for every provider that was skipped or failed.

    Args:
        providers: The chain, primary first.
        clock: Time source (each member keeps its own).
    """

    name = "fallback"

    def __init__(self, providers: Sequence[CarbonProvider], *, clock: Clock | None = None) -> None:
        super().__init__(clock=clock or (providers[0].clock if providers else None))
        if not providers:
            raise InvalidInputError("a fallback chain needs at least one provider")
        self.providers = list(providers)

    @property
    def capabilities(self) -> Capabilities:
        """The primary's capabilities, with the farthest forecast any member gives."""
        reaches = [r for p in self.providers if (r := p.capabilities.forecast_horizon) is not None]
        return replace(
            self.providers[0].capabilities, forecast_horizon=max(reaches) if reaches else None
        )

    def served_zones(self) -> list[str]:
        """Every zone served by at least one member."""
        return list(dict.fromkeys(z for p in self.providers for z in p.served_zones()))

    def default_zones(self) -> list[str]:
        """The primary's zones: the chain exists to back the primary up."""
        return self.providers[0].default_zones()

    def _run(
        self,
        zones: list[str],
        call: Callable[[CarbonProvider], IntensitySeries],
        ahead: timedelta | None = None,
    ) -> IntensitySeries:
        notes: list[str] = []
        last: ProviderError | None = None
        for provider in self.providers:
            served = set(provider.served_zones())
            lacking = [z for z in zones if z not in served]
            if lacking:
                notes.append(f"{provider.name} skipped: does not serve {', '.join(lacking)}")
                continue
            reach = provider.capabilities.forecast_horizon
            if ahead is not None and (reach is None or reach < ahead):
                notes.append(
                    f"{provider.name} skipped: does not forecast {format_duration(ahead)} ahead"
                )
                continue
            try:
                series = call(provider)
            except ProviderError as exc:
                log.warning("provider %s failed, trying the next one: %s", provider.name, exc)
                notes.append(f"{provider.name} failed: {exc}")
                last = exc
                continue
            if notes:
                notes.append(f"answered by fallback {provider.name}")
            return replace(series, notes=(*notes, *series.notes))
        if last is not None:
            raise type(last)(
                "every provider in the chain failed: " + "; ".join(notes),
                provider=self.name,
            ) from last
        raise InvalidInputError(
            "no provider in the chain can answer for " + ", ".join(zones) + ": " + "; ".join(notes)
        )

    def _latest(self, zones: list[str]) -> IntensitySeries:
        return self._run(zones, lambda p: p.latest(zones))

    def _history(self, zones: list[str], start: datetime, end: datetime) -> IntensitySeries:
        return self._run(zones, lambda p: p.history(zones, start, end))

    def _forecast(self, zones: list[str], start: datetime, horizon: timedelta) -> IntensitySeries:
        # How far ahead of now the forecast reaches, measured as the base class does.
        step = self.capabilities.resolution
        ahead = start + horizon - floor_time(self.clock.now(), step)
        return self._run(zones, lambda p: p.forecast(zones, start, horizon), ahead)

    def close(self) -> None:
        """Close every member."""
        for provider in self.providers:
            provider.close()

    def __repr__(self) -> str:
        return f"FallbackProvider([{', '.join(p.name for p in self.providers)}])"
