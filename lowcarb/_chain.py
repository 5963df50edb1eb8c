"""The provider chain: an ordered list of providers, tried zone by zone.

This is lowcarb's one fallback mechanism. For each zone the chain asks the first member
that serves it; when that member fails, the zone moves on to the next member that
serves it. Every answer says which member produced each zone's values and why a
fallback happened. The planning signal (:mod:`lowcarb._signal`), the engine, the
services and the command line all reach providers through a chain.

Zone names are canonicalised here, once, where a caller enters the chain: ``de`` and
``DE`` are the same zone for every member.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Generic, TypeVar

import pandas as pd

from lowcarb._clock import Clock
from lowcarb._provider import Capabilities, CarbonProvider
from lowcarb._registry import get_provider_class
from lowcarb._series import IntensitySeries, align
from lowcarb._time import floor_time, format_duration
from lowcarb._zones import ZoneInfo, ZoneResolution
from lowcarb.exceptions import InvalidInputError, LowcarbError, ProviderError, UnknownZoneError

__all__ = ["DEFAULT_PROVIDER", "Fanout", "Part", "ProviderChain"]

log = logging.getLogger("lowcarb")

#: Registry name of the embedded offline provider, the chain's last resort.
DEFAULT_PROVIDER = "default"

T = TypeVar("T")


@dataclass(frozen=True)
class Part(Generic[T]):
    """What one member (or a stand-in) answered for some zones.

    Attributes:
        source: Name of the member that answered (or of the stand-in, e.g. ``cache``).
        position: The member's place in the chain (0 = primary; -1 for a stand-in).
        zones: The zones it answered for.
        value: Its answer.
    """

    source: str
    position: int
    zones: tuple[str, ...]
    value: T


@dataclass(frozen=True)
class Fanout(Generic[T]):
    """The outcome of asking the chain for some zones.

    Attributes:
        parts: The answers, in chain order.
        missing: Zones nobody answered for.
        notes: Members skipped or failed, in order.
        reasons: Per zone answered by anything but the primary: why.
        errors: The members' failures, in order.
    """

    parts: tuple[Part[T], ...]
    missing: tuple[str, ...]
    notes: tuple[str, ...] = ()
    reasons: dict[str, str] = field(default_factory=dict)
    errors: tuple[LowcarbError, ...] = ()

    @property
    def error(self) -> LowcarbError | None:
        """The last member failure, if any."""
        return self.errors[-1] if self.errors else None


class ProviderChain(CarbonProvider):
    """Providers tried in order, zone by zone; itself a :class:`CarbonProvider`.

    A member that does not serve a zone is skipped for it; a member that fails (any
    :class:`~lowcarb.LowcarbError`) passes its zones to the next member. Bad input
    (a naive datetime, a zone nobody serves) is refused by the chain itself, before any
    member is asked. The chain reports the primary's name and capabilities (with the
    farthest forecast any member gives).

    Args:
        members: The providers, primary first.
        clock: Time source (each member keeps its own); defaults to the primary's.

    Example:
        >>> from lowcarb import open_provider
        >>> chain = ProviderChain([open_provider("default")])
        >>> chain.canonical("de")
        'DE'
    """

    def __init__(self, members: Sequence[CarbonProvider], *, clock: Clock | None = None) -> None:
        members = list(members)
        if not members:
            raise InvalidInputError("a provider chain needs at least one provider")
        for member in members:
            if not isinstance(member, CarbonProvider):
                raise InvalidInputError(f"a chain member must be a CarbonProvider: {member!r}")
        super().__init__(clock=clock or members[0].clock)
        self.members: tuple[CarbonProvider, ...] = tuple(members)
        self.name = members[0].name  # type: ignore[misc]
        self._served: dict[int, dict[str, str]] = {}
        self._lock = threading.Lock()

    @classmethod
    def of(
        cls,
        provider: CarbonProvider,
        *,
        fallbacks: Sequence[CarbonProvider] = (),
        default_fallback: bool = True,
        clock: Clock | None = None,
    ) -> ProviderChain:
        """A chain around ``provider`` (kept as is when it already is a chain).

        Args:
            provider: The primary, or a whole chain.
            fallbacks: Providers tried after it, in order.
            default_fallback: End with the embedded offline ``default`` provider (unless
                a member already is it).
            clock: Time source of the default provider when it is added.
        """
        members = list(provider.members if isinstance(provider, ProviderChain) else [provider])
        members += list(fallbacks)
        if default_fallback and all(m.name != DEFAULT_PROVIDER for m in members):
            default = get_provider_class(DEFAULT_PROVIDER)
            members.append(default(clock=clock or members[0].clock))
        if isinstance(provider, ProviderChain) and len(members) == len(provider.members):
            return provider
        return cls(members, clock=clock or members[0].clock)

    # -- membership ------------------------------------------------------------------------

    def _table(self, position: int) -> dict[str, str]:
        """Member ``position``'s zones, upper-cased -> its own spelling; {} while it fails."""
        table = self._served.get(position)
        if table is None:
            try:
                zones = self.members[position].served_zones()
            except LowcarbError as exc:
                # Asked again next time: a provider's zone list may come back.
                log.debug("%s cannot list its zones: %s", self.members[position].name, exc)
                return {}
            table = {z.upper(): z for z in zones}
            with self._lock:
                self._served[position] = table
        return table

    def serves(self, position: int, zone: str) -> bool:
        """Whether member ``position`` serves ``zone`` (canonical spelling)."""
        return zone.upper() in self._table(position)

    def canonical(self, zone: str) -> str:
        """The chain's spelling of ``zone``: the first member's that serves it, else as given.

        A zone nobody serves keeps its (stripped) spelling, so that callers can apply
        their own rule to it.
        """
        key = zone.strip().upper()
        for position in range(len(self.members)):
            found = self._table(position).get(key)
            if found is not None:
                return found
        return zone.strip()

    @property
    def capabilities(self) -> Capabilities:
        """The primary's capabilities, with the farthest forecast any member gives."""
        reaches = [r for p in self.members if (r := p.capabilities.forecast_horizon) is not None]
        return replace(
            self.members[0].capabilities, forecast_horizon=max(reaches) if reaches else None
        )

    def served_zones(self) -> list[str]:
        """Every zone served by at least one member."""
        return list(
            dict.fromkeys(z for i in range(len(self.members)) for z in self._table(i).values())
        )

    def default_zones(self) -> list[str]:
        """The primary's zones: the others exist to back it up."""
        return self.members[0].default_zones()

    def zones(self) -> list[ZoneInfo]:
        """Each member's own description of its zones, primary first, each zone once."""
        seen: dict[str, ZoneInfo] = {}
        for position, member in enumerate(self.members):
            if not self._table(position):
                continue  # it cannot list its zones now
            for info in member.zones():
                seen.setdefault(info.zone.upper(), info)
        return list(seen.values())

    def resolve(self, location: str) -> ZoneResolution:
        """Resolve ``location`` with the first member that can.

        Raises:
            UnknownZoneError: If no member resolves it (the primary's error, with its
                suggestions).
            InvalidInputError: For a malformed location (e.g. latitude out of range).
        """
        first: LowcarbError | None = None
        for position, member in enumerate(self.members):
            # A zone id the member lists is answered from its list: every select names its
            # candidates' zones again, and asking the member (through a deadline thread in
            # the service) each time cost more than the decision.
            listed = self._table(position).get(location.strip().upper())
            if listed is not None:
                return ZoneResolution(location, self.canonical(listed), "zone")
            try:
                found = member.resolve(location)
            except UnknownZoneError as exc:
                first = first or exc
                continue
            except InvalidInputError:
                raise
            except LowcarbError as exc:
                log.warning("%s could not resolve %r: %s", member.name, location, exc)
                first = first or exc
                continue
            return replace(found, zone=self.canonical(found.zone))
        assert first is not None
        raise first

    # -- the fallback ----------------------------------------------------------------------

    def each(
        self,
        zones: Sequence[str],
        fetch: Callable[[CarbonProvider, list[str]], T],
        *,
        rescue: Callable[[list[str]], Part[T] | None] | None = None,
        reach: timedelta | None = None,
    ) -> Fanout[T]:
        """Ask each zone's first serving member, passing failed zones down the chain.

        Args:
            zones: Canonical zone ids.
            fetch: ``fetch(member, zones)`` returns the member's answer for those zones.
            rescue: Called with the zones the primary failed for, before the next members
                are asked; may return a stand-in answer (e.g. the last good signal).
            reach: Skip members whose forecasts do not reach this far ahead.
        """
        remaining = list(dict.fromkeys(zones))
        parts: list[Part[T]] = []
        notes: list[str] = []
        reasons: dict[str, str] = {}
        errors: list[LowcarbError] = []
        for position, member in enumerate(self.members):
            if not remaining:
                break
            mine = [z for z in remaining if self.serves(position, z)]
            lacking = [z for z in remaining if z not in mine]
            if lacking and position == 0:
                for zone in lacking:
                    reasons[zone] = f"{member.name} does not serve it"
            if not mine:
                continue
            horizon = member.capabilities.forecast_horizon
            if reach is not None and (horizon is None or horizon < reach):
                why = f"{member.name} does not forecast {format_duration(reach)} ahead"
                notes.append(f"{member.name} skipped: {why[len(member.name) + 1 :]}")
                for zone in mine:
                    reasons.setdefault(zone, why)
                continue
            try:
                value = fetch(member, mine)
            except LowcarbError as exc:
                # The caller's input was checked on entering the chain: what a member
                # raises now is that member's failure, and the next one may do better.
                errors.append(exc)
                later = range(position + 1, len(self.members))
                if any(self.serves(p, z) for p in later for z in mine):
                    log.warning("provider %s failed, trying the next one: %s", member.name, exc)
                notes.append(f"{member.name} failed: {exc}")
                for zone in mine:
                    reasons.setdefault(zone, f"{member.name} failed: {exc}")
                if position == 0 and rescue is not None:
                    standin = rescue(mine)
                    if standin is not None:
                        parts.append(standin)
                        remaining = [z for z in remaining if z not in standin.zones]
                continue
            parts.append(Part(member.name, position, tuple(mine), value))
            remaining = [z for z in remaining if z not in mine]
        return Fanout(tuple(parts), tuple(remaining), tuple(notes), reasons, tuple(errors))

    # -- the provider interface --------------------------------------------------------------

    def _series(self, fanout: Fanout[IntensitySeries], zones: list[str]) -> IntensitySeries:
        """One series from the members' answers, its notes saying who answered what."""
        if fanout.missing:
            detail = "; ".join(fanout.notes) or "no member serves it"
            error = fanout.error
            if len(fanout.errors) == 1 and error is not None:
                raise error  # one provider was asked: its own error says it best
            if isinstance(error, ProviderError):
                raise type(error)(
                    f"every provider in the chain failed for {', '.join(fanout.missing)}: "
                    + detail,
                    provider=self.name,
                ) from error
            raise InvalidInputError(
                f"no provider in the chain can answer for {', '.join(fanout.missing)}: {detail}"
            ) from error
        notes = list(fanout.notes)
        for part in fanout.parts:
            if part.position > 0:
                notes.append(
                    f"answered by fallback {part.source}"
                    + (f" for {', '.join(part.zones)}" if len(fanout.parts) > 1 else "")
                )
        series = [p.value for p in fanout.parts]
        if len(series) == 1:
            return replace(series[0], notes=(*notes, *series[0].notes))
        aligned = align(*series, how="outer")
        values = pd.concat([s.values for s in aligned], axis=1)[zones]
        estimated = pd.concat([s.estimated_mask() for s in aligned], axis=1)[zones]
        first = aligned[0]
        return replace(
            first,
            values=values,
            estimated=estimated,
            synthetic=any(s.synthetic for s in aligned),
            perfect_foresight=any(s.perfect_foresight for s in aligned),
            notes=tuple(dict.fromkeys([*notes, *(n for s in aligned for n in s.notes)])),
        )

    def _latest(self, zones: list[str]) -> IntensitySeries:
        return self._series(self.each(zones, lambda m, z: m.latest(z)), zones)

    def _history(self, zones: list[str], start: datetime, end: datetime) -> IntensitySeries:
        return self._series(self.each(zones, lambda m, z: m.history(z, start, end)), zones)

    def _forecast(self, zones: list[str], start: datetime, horizon: timedelta) -> IntensitySeries:
        # How far ahead of now the forecast reaches, measured as the base class does.
        reach = start + horizon - floor_time(self.clock.now(), self.capabilities.resolution)
        fanout = self.each(zones, lambda m, z: m.forecast(z, start, horizon), reach=reach)
        return self._series(fanout, zones)

    def close(self) -> None:
        """Close every member."""
        for member in self.members:
            member.close()

    def __repr__(self) -> str:
        return f"ProviderChain([{', '.join(m.name for m in self.members)}])"
