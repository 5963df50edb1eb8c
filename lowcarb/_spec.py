"""The engine spec: a frozen, validated description of one training.

Every integration (the Python API, ``lowcarb simulate``, ``lowcarb serve``, the DISCO
bridge, the Flower strategy) builds its engines from an :class:`EngineSpec`: built from
settings in one place (:meth:`EngineSpec.from_settings`), copied with
:meth:`EngineSpec.replace`, validated when it is made, so a bad option fails before any
engine exists.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from lowcarb._chain import DEFAULT_PROVIDER, ProviderChain
from lowcarb._clock import Clock
from lowcarb._config import Settings, load_settings
from lowcarb._energy import DEFAULT_ROUND_TIME, EnergyModel
from lowcarb._forecast import Forecaster, get_forecaster
from lowcarb._policies import Policy, get_policy
from lowcarb._provider import CarbonProvider
from lowcarb._signal import UNKNOWN_ZONE_RULES
from lowcarb._time import ensure_utc
from lowcarb.exceptions import InvalidInputError

__all__ = ["EngineSpec"]


def _positive_delta(name: str, value: Any) -> None:
    if not isinstance(value, timedelta) or value <= timedelta(0):
        raise InvalidInputError(f"{name} must be a positive timedelta, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class EngineSpec:
    """What one training is: its signal, policy, fairness, rounds, timing and ledger.

    Attributes:
        provider: Registry name of the primary provider; None: the configured one
            (``lowcarb.toml``, ``LOWCARB_PROVIDER``), else ``default``.
        fallback: Providers tried after it, in order; None: the configured ones.
        default_fallback: End the chain with the embedded offline ``default`` provider.
        policy: ``lowcarb``, ``random``, ``greedy``, ``lowcarb-2022``, ``oracle`` (needs
            an oracle forecaster) or a :class:`~lowcarb.Policy`.
        forecaster: Forecaster for the horizon beyond a provider's own forecast: a name
            (``best``, ``profile``, ``persistence``, ``weekly``) or an instance. None is
            the best one on top of each provider's forecast; naming one replaces the
            providers' forecasts too.
        rounds: Rounds of the whole training (fair shares, planning). None: fair shares
            are kept over a rolling day of rounds.
        round_interval: Time between round starts (one planning slot); default
            :data:`~lowcarb.DEFAULT_ROUND_TIME` (one hour), the energy model's round.
        horizon: Longest planning horizon.
        deadline: Latest end of the training: a time (UTC), or a duration counted from
            the run's start; lets the planner pause rounds or start later.
        fairness: 1.0 = every client within one round of its fair share; 0 = greedy.
        utility_price: gCO2eq that one unit of client utility is worth (0 ignores it).
        energy: The energy model of a client-round (default: 70 W for one hour plus
            20 MB of traffic, 0.0702 kWh).
        unknown_zone: Zones without a signal: ``mean`` of the others, or ``error``.
        ledger: SQLite file of the participation ledger; None keeps it in memory.
        run_id: Names the run inside the ledger; reuse it to resume after a restart.
        seed: Seeds all randomness (ties, sampling).
        settings: Where provider options and credentials come from (None: defaults
            only, no environment read).

    Example:
        >>> spec = EngineSpec(provider="default", rounds=24)
        >>> spec.replace(fairness=0.5).fairness
        0.5
    """

    provider: str | None = None
    fallback: tuple[str, ...] | None = None
    default_fallback: bool = True
    policy: str | Policy = "lowcarb"
    forecaster: str | Forecaster | None = None
    rounds: int | None = None
    round_interval: timedelta = DEFAULT_ROUND_TIME
    horizon: timedelta = timedelta(days=7)
    deadline: datetime | timedelta | None = None
    fairness: float = 1.0
    utility_price: float = 0.0
    energy: EnergyModel = field(default_factory=EnergyModel)
    unknown_zone: str = "mean"
    ledger: Path | None = None
    run_id: str = "default"
    seed: int = 0
    settings: Settings | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.rounds is not None and (
            isinstance(self.rounds, bool) or not isinstance(self.rounds, int) or self.rounds < 1
        ):
            raise InvalidInputError(f"rounds must be a positive integer, got {self.rounds!r}")
        _positive_delta("round_interval", self.round_interval)
        _positive_delta("horizon", self.horizon)
        if isinstance(self.deadline, timedelta):
            _positive_delta("deadline", self.deadline)
        elif isinstance(self.deadline, datetime):
            object.__setattr__(self, "deadline", ensure_utc(self.deadline, "deadline"))
        elif self.deadline is not None:
            raise InvalidInputError("deadline must be a datetime or a timedelta")
        for name in ("fairness", "utility_price"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidInputError(f"{name} must be a number, got {value!r}")
            if not math.isfinite(value) or value < 0 or (name == "fairness" and value > 1):
                bound = "between 0 and 1" if name == "fairness" else ">= 0"
                raise InvalidInputError(f"{name} must be {bound}, got {value!r}")
        if self.unknown_zone not in UNKNOWN_ZONE_RULES:
            raise InvalidInputError(f"unknown_zone={self.unknown_zone!r}: use 'mean' or 'error'")
        if not isinstance(self.energy, EnergyModel):
            raise InvalidInputError(f"energy must be an EnergyModel, got {self.energy!r}")
        if not isinstance(self.run_id, str) or not self.run_id:
            raise InvalidInputError(f"run_id must be a non-empty string, got {self.run_id!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            # numpy's generators take non-negative seeds only.
            raise InvalidInputError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.ledger is not None:
            object.__setattr__(self, "ledger", Path(self.ledger))
        if self.fallback is not None:
            object.__setattr__(self, "fallback", tuple(self.fallback))
        # Building them is cheap and raises the errors users should see now.
        self.build_policy()
        if self.policy_name == "oracle" and self.build_forecaster().name != "oracle":
            raise InvalidInputError("the oracle policy needs an OracleForecaster over the truth")

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **fields: Any) -> EngineSpec:
        """A spec whose provider chain and ledger come from the configuration.

        Args:
            settings: Loaded settings; None reads them (project file, ``LOWCARB_*``).
            **fields: Any other field, overriding the configuration.
        """
        settings = settings or load_settings()
        base: dict[str, Any] = {
            "provider": settings.provider,
            "fallback": settings.fallback,
            "default_fallback": settings.default_fallback,
            "ledger": settings.ledger,
        }
        return cls(settings=settings, **{**base, **fields})

    @classmethod
    def resolve(
        cls,
        provider: CarbonProvider | str | None = None,
        spec: EngineSpec | None = None,
        *,
        settings: Settings | None = None,
        **fields: Any,
    ) -> EngineSpec:
        """The spec of an engine (or a registry of them) given how it was called.

        Args:
            provider: A provider instance (nothing is read from the environment), a
                registry name (that provider alone, options from the configuration), or
                None (the configured chain).
            spec: A spec to start from; ``fields`` override it.
            settings: Loaded settings to use instead of reading the configuration.
            **fields: Spec fields.
        """
        if isinstance(provider, str):
            fields = {"provider": provider, "fallback": (), **fields}
        if spec is not None:
            return spec.replace(**fields) if fields else spec
        if isinstance(provider, CarbonProvider):
            return cls(settings=settings, **fields)
        return cls.from_settings(settings or load_settings(), **fields)

    def replace(self, **changes: Any) -> EngineSpec:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    # -- what the engine builds from it -----------------------------------------------------

    @property
    def policy_name(self) -> str:
        """The policy's name."""
        return self.policy if isinstance(self.policy, str) else self.policy.name

    def build_policy(self) -> Policy:
        """The policy (a new instance for a name)."""
        if isinstance(self.policy, str):
            return get_policy(self.policy, fairness=self.fairness)
        if not isinstance(self.policy, Policy):
            raise InvalidInputError(f"policy must be a name or a Policy, got {self.policy!r}")
        return self.policy

    def build_forecaster(self) -> Forecaster:
        """The forecaster (a new instance for a name)."""
        if self.forecaster is None or isinstance(self.forecaster, str):
            return get_forecaster(self.forecaster or "best")
        if not isinstance(self.forecaster, Forecaster):
            raise InvalidInputError(
                f"forecaster must be a name or a Forecaster, got {self.forecaster!r}"
            )
        return self.forecaster

    @property
    def chain_names(self) -> tuple[str, ...]:
        """Registry names of the provider chain, primary first, the default last if on."""
        settings = self.settings or Settings()
        primary = self.provider or settings.provider
        names = (primary, *(settings.fallback if self.fallback is None else self.fallback))
        if self.default_fallback:
            names += (DEFAULT_PROVIDER,)
        return tuple(dict.fromkeys(n.lower() for n in names))

    def open_chain(
        self, *, clock: Clock | None = None, fallbacks: tuple[CarbonProvider, ...] = ()
    ) -> ProviderChain:
        """Open the provider chain by registry name, with the spec's settings.

        Args:
            clock: Time source of every member.
            fallbacks: Provider instances tried after the named fallbacks, before the
                embedded default.

        Raises:
            MissingCredentialError: If a member needs a credential that is not set.
        """
        settings = self.settings or Settings()
        members = [settings.open_provider(n, clock=clock) for n in self.chain_names]
        last_resort = self.default_fallback and len(members) > 1
        # Instances given at run time go after the named members, before the last resort.
        at = len(members) - (last_resort and members[-1].name == DEFAULT_PROVIDER)
        members[at:at] = fallbacks
        return ProviderChain(members, clock=clock)
