"""Energy of a client-round: compute plus communication, and the clients that spend it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from lowcarb._bounds import MAX_CLIENT_ROUND_KWH, MAX_POWER_W, MAX_UTILITY, check_text
from lowcarb._time import ensure_utc
from lowcarb.exceptions import InvalidInputError

__all__ = [
    "DEFAULT_DEVICE_POWER_W",
    "DEFAULT_NETWORK_KWH_PER_GB",
    "DEFAULT_ROUND_TIME",
    "Client",
    "EnergyModel",
]

#: How long a client trains in a round unless told otherwise, and the default time
#: between round starts (``EngineSpec.round_interval``, ``lowcarb simulate`` and
#: ``lowcarb serve --round-minutes``): hourly rounds, as in the seed scenario, so a round
#: fills its planning slot and the carbon signal's hourly resolution. The one default of
#: every integration; with the others a client-round is 0.0702 kWh.
DEFAULT_ROUND_TIME = timedelta(hours=1)

#: Average power of a client's device while training (W), unless told otherwise: a
#: desktop-class CPU under load.
DEFAULT_DEVICE_POWER_W = 70.0

#: Network energy per GB moved (kWh/GB). About 260 TWh of networks for ~23 ZB of traffic
#: in 2022 (IEA figures) gives ~0.01 kWh/GB; Aslan et al. (2018) measured 0.06 kWh/GB for
#: 2015, halving about every two years, which lands at the same order today. Per-GB
#: factors are attributional: see docs/accounting.md.
DEFAULT_NETWORK_KWH_PER_GB = 0.01

_GB = 1e9


def _check_number(
    name: str, value: float, *, positive: bool = False, most: float = math.inf
) -> float:
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        number = math.inf
    if not math.isfinite(number) or number < 0 or (positive and number == 0):
        kind = "a positive" if positive else "a non-negative"
        raise InvalidInputError(f"{name} must be {kind} finite number, got {value!r}")
    if number > most:  # the plausibility bounds of lowcarb._bounds
        raise InvalidInputError(f"{name} must be at most {most:g}, got {value!r}")
    return number


@dataclass(frozen=True, kw_only=True)
class EnergyModel:
    """Expected energy of one client taking part in one round.

    ``energy = device_power_w x round_time + (bytes_up + bytes_down) x network_kwh_per_gb``

    With the defaults (70 W for one hour, 20 MB at 0.01 kWh/GB) a client-round is
    0.07 + 0.0002 = 0.0702 kWh.

    Attributes:
        device_power_w: Average power of the client's device while training (W).
        round_time: Time a client trains per round (default :data:`DEFAULT_ROUND_TIME`,
            one hour).
        bytes_up: Bytes a client uploads per round (its model update).
        bytes_down: Bytes a client downloads per round (the global model).
        network_kwh_per_gb: Network energy per GB transferred (kWh/GB).
    """

    device_power_w: float = DEFAULT_DEVICE_POWER_W
    round_time: timedelta = DEFAULT_ROUND_TIME
    bytes_up: float = 10e6
    bytes_down: float = 10e6
    network_kwh_per_gb: float = DEFAULT_NETWORK_KWH_PER_GB

    def __post_init__(self) -> None:
        for name in ("device_power_w", "bytes_up", "bytes_down", "network_kwh_per_gb"):
            _check_number(name, getattr(self, name))
        if not isinstance(self.round_time, timedelta) or self.round_time <= timedelta(0):
            raise InvalidInputError(f"round_time must be a positive timedelta: {self.round_time!r}")

    def compute_kwh(self, device_power_w: float | None = None) -> float:
        """Device energy of one round (kWh), optionally for another device power (W)."""
        power = self.device_power_w if device_power_w is None else device_power_w
        return power * self.round_time.total_seconds() / 3.6e6

    @property
    def network_kwh(self) -> float:
        """Communication energy of one round (kWh)."""
        return (self.bytes_up + self.bytes_down) / _GB * self.network_kwh_per_gb

    def energy_kwh(self, device_power_w: float | None = None) -> float:
        """Total energy of one client-round (kWh).

        Rounded to 1e-12 kWh (a few millijoules), so that the defaults' 0.07 + 0.0002 reads
        0.0702 in every answer, ledger and export rather than 0.07020000000000001.
        """
        return round(self.compute_kwh(device_power_w) + self.network_kwh, 12)


@dataclass(frozen=True)
class Client:
    """A candidate for a round.

    Attributes:
        id: Unique id within the training run.
        zone: Grid zone id (Electricity Maps key), already resolved.
        energy_kwh: Energy of one round for this client (kWh), measured or estimated; None
            uses the engine's :class:`EnergyModel` (with ``power_w`` when given).
        power_w: This client's device power (W) for the energy model.
        utility: Value of this client's data (any non-negative unit, e.g. samples or
            loss); traded against carbon at the engine's ``utility_price``.
        availability: ``(start, end)`` windows (UTC) in which the client can train; empty
            means always.
    """

    id: str
    zone: str
    energy_kwh: float | None = None
    power_w: float | None = None
    utility: float = 0.0
    availability: Sequence[tuple[datetime, datetime]] = field(default=())

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise InvalidInputError(f"client id must be a non-empty string, got {self.id!r}")
        if not isinstance(self.zone, str) or not self.zone:
            raise InvalidInputError(f"client {self.id!r}: zone must be a non-empty string")
        check_text("client id", self.id)
        check_text(f"client {self.id!r}: zone", self.zone)
        if self.energy_kwh is not None:
            _check_number(
                f"client {self.id!r}: energy_kwh", self.energy_kwh, most=MAX_CLIENT_ROUND_KWH
            )
        if self.power_w is not None:
            _check_number(f"client {self.id!r}: power_w", self.power_w, most=MAX_POWER_W)
        _check_number(f"client {self.id!r}: utility", self.utility, most=MAX_UTILITY)
        windows = []
        for window in self.availability:
            start = ensure_utc(window[0], f"client {self.id!r}: availability start")
            end = ensure_utc(window[1], f"client {self.id!r}: availability end")
            if end <= start:
                raise InvalidInputError(
                    f"client {self.id!r}: availability window ends before start"
                )
            windows.append((start, end))
        object.__setattr__(self, "availability", tuple(windows))

    def available_at(self, start: datetime, end: datetime) -> bool:
        """Whether the client can train through ``[start, end)``."""
        if not self.availability:
            return True
        return any(a <= start and end <= b for a, b in self.availability)
