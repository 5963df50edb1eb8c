"""lowcarb: carbon-aware, fair client selection for federated learning.

The core is framework-agnostic: carbon signals (:class:`IntensitySeries`), the provider
interface (:class:`CarbonProvider`) and registry, configuration, clocks and errors.
Providers live in :mod:`lowcarb.backends`, framework integrations in
:mod:`lowcarb.adapters`.

Example:
    >>> import lowcarb
    >>> provider = lowcarb.open_provider("default")
    >>> series = provider.forecast(["DE"], horizon=timedelta(hours=24))  # doctest: +SKIP
"""

from __future__ import annotations

from lowcarb._clock import Clock, ManualClock, SystemClock
from lowcarb._config import Settings, load_settings, open_provider
from lowcarb._provider import (
    AsyncCarbonProvider,
    Capabilities,
    CarbonProvider,
    Credential,
    ThreadedAsyncProvider,
)
from lowcarb._registry import available_providers, get_provider_class, register_provider
from lowcarb._series import (
    EmissionBasis,
    IntensitySeries,
    Signal,
    align,
    convert_intensity,
    lbs_per_mwh_to_g_per_kwh,
)
from lowcarb._time import ensure_utc, parse_time
from lowcarb._zones import ZONE_CATALOG, ZoneInfo, ZoneResolution, resolve_zone
from lowcarb.exceptions import (
    AuthenticationError,
    ConfigurationError,
    DataValidationError,
    InvalidInputError,
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

__all__ = [
    "ZONE_CATALOG",
    "AsyncCarbonProvider",
    "AuthenticationError",
    "Capabilities",
    "CarbonProvider",
    "Clock",
    "ConfigurationError",
    "Credential",
    "DataValidationError",
    "EmissionBasis",
    "IntensitySeries",
    "InvalidInputError",
    "LowcarbError",
    "ManualClock",
    "MissingCredentialError",
    "NoDataError",
    "ProviderError",
    "ProviderTimeoutError",
    "ProviderUnavailableError",
    "RateLimitedError",
    "ResponseParseError",
    "Settings",
    "Signal",
    "SystemClock",
    "ThreadedAsyncProvider",
    "UnknownProviderError",
    "UnknownZoneError",
    "ZoneInfo",
    "ZoneResolution",
    "align",
    "available_providers",
    "convert_intensity",
    "ensure_utc",
    "get_provider_class",
    "lbs_per_mwh_to_g_per_kwh",
    "load_settings",
    "open_provider",
    "parse_time",
    "register_provider",
    "resolve_zone",
]
