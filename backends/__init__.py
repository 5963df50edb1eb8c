"""Carbon-intensity providers, installed as ``lowcarb.backends``.

Each provider turns a query (zones, time range) into an
:class:`~lowcarb.IntensitySeries` and knows nothing of client selection. Look them up
by name with :func:`lowcarb.get_provider_class`; the classes are also importable here.

Built-in providers:

* ``default`` (:class:`DefaultProvider`): the embedded offline default, synthetic hourly
  series generated from per-zone statistics (contains data from Electricity Maps (ODbL)).
* ``file`` (:class:`FileProvider`): wide CSV/Parquet files and Electricity Maps data-portal
  exports.
* ``ukcarbon`` (:class:`UKCarbonIntensityProvider`): the GB Carbon Intensity API of NESO,
  national and regional, no key. Its async face is ``provider.to_async()``.
* ``electricitymaps`` (:class:`ElectricityMapsProvider`): the Electricity Maps API v3.
* ``watttime`` (:class:`WattTimeProvider`): WattTime API v3, marginal by default.
* ``carbon-aware-sdk`` (:class:`CarbonAwareSDKProvider`): a self-hosted GSF Carbon Aware SDK.
* ``entsoe`` (:class:`EntsoeProvider`): ENTSO-E generation mix through entsoe-py, converted
  to an intensity with IPCC 2014 factors.

Each network provider's async face is ``provider.to_async()``.

Every provider, built-in or third-party, is written with the public provider toolkit,
:mod:`lowcarb.backends.toolkit`: the provider interface, the series type, time and zone
helpers, the repair policy for gaps, and one HTTP layer for network providers (timeouts,
retries of transient failures, a response cache, redaction of secrets). The HTTP layer is
imported only when such a provider is used, so ``import lowcarb`` loads no HTTP library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "CarbonAwareSDKProvider",
    "DefaultProvider",
    "ElectricityMapsProvider",
    "EntsoeProvider",
    "FileProvider",
    "UKCarbonIntensityProvider",
    "WattTimeProvider",
]

if TYPE_CHECKING:
    from lowcarb.backends._carbonaware import CarbonAwareSDKProvider
    from lowcarb.backends._default import DefaultProvider
    from lowcarb.backends._electricitymaps import ElectricityMapsProvider
    from lowcarb.backends._entsoe import EntsoeProvider
    from lowcarb.backends._file import FileProvider
    from lowcarb.backends._ukcarbon import UKCarbonIntensityProvider
    from lowcarb.backends._watttime import WattTimeProvider


def __getattr__(name: str) -> Any:
    # Import a built-in provider class on first access, found through the public registry
    # (name -> "module:Class"), so that `import lowcarb.backends` stays cheap and the
    # built-ins are listed in one place.
    import importlib

    from lowcarb import available_providers

    if name in __all__:
        for target in available_providers().values():
            module, _, attr = target.partition(":")
            if attr == name and module.startswith(f"{__name__}."):
                return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
