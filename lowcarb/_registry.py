"""Provider registry: name -> provider class, open to third parties via entry points.

Built-in providers are known by dotted path and imported only when first used. Other
packages add providers by declaring, in their own ``pyproject.toml``::

    [project.entry-points."lowcarb.backends"]
    mygrid = "mypackage.provider:MyGridProvider"

Entry points are read lazily, on the first lookup, never at import time.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Mapping
from importlib.metadata import entry_points
from types import MappingProxyType

from lowcarb._extras import install_hint
from lowcarb._provider import CarbonProvider
from lowcarb._zones import suggest_zones
from lowcarb.exceptions import ConfigurationError, UnknownProviderError

__all__ = [
    "ENTRY_POINT_GROUP",
    "available_providers",
    "get_provider_class",
    "register_provider",
]

log = logging.getLogger("lowcarb")

ENTRY_POINT_GROUP = "lowcarb.backends"

# Built-ins, by dotted path so that importing lowcarb imports no provider.
_BUILTIN: dict[str, str] = {
    "default": "lowcarb.backends._default:DefaultProvider",
    "file": "lowcarb.backends._file:FileProvider",
    "ukcarbon": "lowcarb.backends._ukcarbon:UKCarbonIntensityProvider",
    "electricitymaps": "lowcarb.backends._electricitymaps:ElectricityMapsProvider",
    "watttime": "lowcarb.backends._watttime:WattTimeProvider",
    "carbon-aware-sdk": "lowcarb.backends._carbonaware:CarbonAwareSDKProvider",
    "entsoe": "lowcarb.backends._entsoe:EntsoeProvider",
}

#: Built-ins whose third-party package comes with an extra of lowcarb.
_EXTRAS = {"entsoe": "entsoe"}

_registry: dict[str, str | type[CarbonProvider]] = dict(_BUILTIN)
_entry_points_loaded = False
_lock = threading.Lock()


def _load_entry_points() -> None:
    global _entry_points_loaded
    with _lock:
        if _entry_points_loaded:
            return
        _entry_points_loaded = True
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            name = ep.name.lower()
            if name in _registry:
                if _registry[name] != ep.value:
                    log.warning(
                        "provider %r from entry point %r ignored: the name is taken by %r",
                        name,
                        ep.value,
                        _registry[name],
                    )
                continue
            _registry[name] = ep.value


def available_providers() -> Mapping[str, str]:
    """Return a read-only, sorted view ``{name: "module:Class"}`` of registered providers."""
    _load_entry_points()
    view = {
        name: target if isinstance(target, str) else f"{target.__module__}:{target.__qualname__}"
        for name, target in sorted(_registry.items())
    }
    return MappingProxyType(view)


def register_provider(
    name: str, provider: str | type[CarbonProvider], *, replace: bool = False
) -> None:
    """Register a provider under ``name``.

    Args:
        name: Registry name; stored lowercase.
        provider: The class, or its dotted path ``"module:Class"`` (imported on first use).
        replace: Allow replacing an existing registration.

    Raises:
        ConfigurationError: If the name is taken and ``replace`` is False.
    """
    _load_entry_points()
    key = name.strip().lower()
    if not key:
        raise ConfigurationError("a provider name cannot be empty")
    with _lock:
        if key in _registry and not replace:
            raise ConfigurationError(
                f"provider {key!r} is already registered; pass replace=True to override it"
            )
        _registry[key] = provider


def get_provider_class(name: str) -> type[CarbonProvider]:
    """Return the provider class registered as ``name`` (case-insensitive).

    Raises:
        UnknownProviderError: If no provider has that name (lists the available ones).
        ConfigurationError: If the provider's module cannot be imported (with an install hint).
    """
    _load_entry_points()
    key = name.strip().lower()
    target = _registry.get(key)
    if target is None:
        names = sorted(_registry)
        close = suggest_zones(key, names)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UnknownProviderError(
            f"unknown provider {name!r}.{hint} Available: {', '.join(names)}. "
            f"Third-party providers register under the entry-point group {ENTRY_POINT_GROUP!r}."
        )
    if isinstance(target, str):
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            missing = exc.name or module_name
            if missing == module_name or missing.startswith("lowcarb"):
                raise ConfigurationError(
                    f"provider {key!r} points to {target!r}, which cannot be imported: {exc}"
                ) from exc
            extra = _EXTRAS.get(key)
            hint = install_hint(extra, package=missing)
            raise ConfigurationError(
                f"provider {key!r} needs the package {missing!r}, which is not installed; "
                f"try: {hint}"
            ) from exc
        cls = getattr(module, attr, None)
        if not (isinstance(cls, type) and issubclass(cls, CarbonProvider)):
            raise ConfigurationError(
                f"provider {key!r} points to {target!r}, which is not a CarbonProvider subclass"
            )
        with _lock:
            _registry[key] = cls
        return cls
    return target
