"""lowcarb: carbon-aware, fair client selection for federated learning.

The core is framework-agnostic: the selection engine (:class:`SelectionEngine`) with its
policies, planner, forecasters, energy and carbon accounting and participation ledger;
carbon signals (:class:`IntensitySeries`); the provider interface
(:class:`CarbonProvider`) and registry; configuration, clocks, errors and the simulator.
Providers live in :mod:`lowcarb.backends`, framework integrations in
:mod:`lowcarb.adapters`.

Example:
    >>> import lowcarb
    >>> engine = lowcarb.SelectionEngine("default", rounds=100)
    >>> clients = [lowcarb.Client("hospital-1", "DE"), lowcarb.Client("hospital-2", "GB")]
    >>> decision = engine.select(clients, k=1)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any as _Any

from lowcarb._accounting import EmbodiedCarbon, RunSummary, jain_index, summarize
from lowcarb._bounds import (
    MAX_CLIENT_ROUND_KWH,
    MAX_METRIC,
    MAX_PLAUSIBLE_G_PER_KWH,
    MAX_POWER_W,
    MAX_ROUND,
    MAX_UTILITY,
    check_quantity,
    check_text,
)
from lowcarb._chain import ProviderChain
from lowcarb._clock import Clock, ManualClock, SystemClock
from lowcarb._config import Settings, load_settings, open_provider
from lowcarb._energy import (
    DEFAULT_DEVICE_POWER_W,
    DEFAULT_NETWORK_KWH_PER_GB,
    DEFAULT_ROUND_TIME,
    Client,
    EnergyModel,
)
from lowcarb._engine import FAIRNESS_WINDOW, ClientDecision, Decision, SelectionEngine
from lowcarb._files import check_regular_file, read_text_file
from lowcarb._forecast import (
    FORECASTERS,
    Forecaster,
    NoisyForecaster,
    OracleForecaster,
    PersistenceForecaster,
    ProfileForecaster,
    WeeklyForecaster,
    default_forecaster,
    get_forecaster,
)
from lowcarb._ledger import ClientRound, Ledger, RoundRecord
from lowcarb._planner import Plan, PlanningProblem, solve_plan
from lowcarb._policies import (
    POLICIES,
    Choice,
    GreedyPolicy,
    Lowcarb2022Policy,
    LowcarbPolicy,
    Policy,
    RandomPolicy,
    RoundView,
    fair_share_bounds,
    get_policy,
)
from lowcarb._provider import (
    AsyncCarbonProvider,
    Capabilities,
    CarbonProvider,
    Credential,
    ThreadedAsyncProvider,
)
from lowcarb._public import expose
from lowcarb._registry import available_providers, get_provider_class, register_provider
from lowcarb._series import (
    EmissionBasis,
    IntensitySeries,
    Signal,
    align,
    convert_intensity,
    lbs_per_mwh_to_g_per_kwh,
)
from lowcarb._signal import PlanningSignal, SignalSource, slot_means
from lowcarb._spec import EngineSpec
from lowcarb._tasks import (
    TASK_ID_PATTERN,
    RoundConflictError,
    Selection,
    TaskEngines,
    TaskLimitError,
    check_task_id,
)
from lowcarb._time import ensure_utc, floor_time, parse_time
from lowcarb._zones import ZONE_CATALOG, ZoneInfo, ZoneResolution, resolve_zone
from lowcarb.exceptions import (
    AuthenticationError,
    ConfigurationError,
    DataValidationError,
    InvalidInputError,
    LedgerError,
    LowcarbError,
    MissingCredentialError,
    NoDataError,
    ProviderError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RateLimitedError,
    ResponseParseError,
    UnknownProviderError,
    UnknownZoneError,
)

__version__ = "0.1.0"

# The simulator sits on top of the core (lowcarb.simulation); its main names are
# reachable from here too, imported on first use so that `import lowcarb` stays light.
_SIMULATION = ("PolicyResult", "Scenario", "SimulationResult", "simulate")


def __getattr__(name: str) -> _Any:
    if name in _SIMULATION:
        import lowcarb.simulation

        return getattr(lowcarb.simulation, name)
    raise AttributeError(f"module 'lowcarb' has no attribute {name!r}")


__all__ = [
    "DEFAULT_DEVICE_POWER_W",
    "DEFAULT_NETWORK_KWH_PER_GB",
    "DEFAULT_ROUND_TIME",
    "FAIRNESS_WINDOW",
    "FORECASTERS",
    "MAX_CLIENT_ROUND_KWH",
    "MAX_METRIC",
    "MAX_PLAUSIBLE_G_PER_KWH",
    "MAX_POWER_W",
    "MAX_ROUND",
    "MAX_UTILITY",
    "POLICIES",
    "TASK_ID_PATTERN",
    "ZONE_CATALOG",
    "AsyncCarbonProvider",
    "AuthenticationError",
    "Capabilities",
    "CarbonProvider",
    "Choice",
    "Client",
    "ClientDecision",
    "ClientRound",
    "Clock",
    "ConfigurationError",
    "Credential",
    "DataValidationError",
    "Decision",
    "EmbodiedCarbon",
    "EmissionBasis",
    "EnergyModel",
    "EngineSpec",
    "Forecaster",
    "GreedyPolicy",
    "IntensitySeries",
    "InvalidInputError",
    "Ledger",
    "LedgerError",
    "Lowcarb2022Policy",
    "LowcarbError",
    "LowcarbPolicy",
    "ManualClock",
    "MissingCredentialError",
    "NoDataError",
    "NoisyForecaster",
    "OracleForecaster",
    "PersistenceForecaster",
    "Plan",
    "PlanningProblem",
    "PlanningSignal",
    "Policy",
    "PolicyResult",
    "ProfileForecaster",
    "ProviderChain",
    "ProviderError",
    "ProviderTimeoutError",
    "ProviderUnavailableError",
    "RandomPolicy",
    "RateLimitedError",
    "ResponseParseError",
    "RoundConflictError",
    "RoundRecord",
    "RoundView",
    "RunSummary",
    "Scenario",
    "Selection",
    "SelectionEngine",
    "Settings",
    "Signal",
    "SignalSource",
    "SimulationResult",
    "SystemClock",
    "TaskEngines",
    "TaskLimitError",
    "ThreadedAsyncProvider",
    "UnknownProviderError",
    "UnknownZoneError",
    "WeeklyForecaster",
    "ZoneInfo",
    "ZoneResolution",
    "align",
    "available_providers",
    "check_quantity",
    "check_regular_file",
    "check_task_id",
    "check_text",
    "convert_intensity",
    "default_forecaster",
    "ensure_utc",
    "fair_share_bounds",
    "floor_time",
    "get_forecaster",
    "get_policy",
    "get_provider_class",
    "jain_index",
    "lbs_per_mwh_to_g_per_kwh",
    "load_settings",
    "open_provider",
    "parse_time",
    "read_text_file",
    "register_provider",
    "resolve_zone",
    "simulate",
    "slot_means",
    "solve_plan",
    "summarize",
]


expose(globals(), __all__, __name__)
