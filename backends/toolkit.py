"""The provider toolkit: what every carbon-intensity provider builds on, in one public place.

Built-in and third-party providers import from here, never from lowcarb's private
modules::

    from lowcarb.backends.toolkit import Capabilities, CarbonProvider, IntensitySeries

What it holds:

* the provider interface: :class:`CarbonProvider`, :class:`AsyncCarbonProvider`,
  :class:`ThreadedAsyncProvider`, :class:`Capabilities`, :class:`Credential`, :class:`Clock`;
* the series type and units: :class:`IntensitySeries`, ``Signal``, ``EmissionBasis``,
  :data:`MAX_PLAUSIBLE_G_PER_KWH`, :func:`convert_intensity`,
  :func:`lbs_per_mwh_to_g_per_kwh`;
* files users name: :func:`check_regular_file` (no devices, FIFOs or oversized files)
  and :data:`MAX_DATA_FILE_BYTES`; :func:`install_hint`, how to install a missing extra;
* time: :func:`ensure_utc`, :func:`floor_time`, :func:`ceil_time`, :func:`check_range`,
  :func:`format_duration`, :data:`MAX_SPAN`;
* zones: :data:`ZONE_CATALOG`, :data:`CLOUD_REGIONS`, :class:`ZoneInfo`,
  :class:`ZoneResolution`, :func:`resolve_zone`, :func:`suggest_zones`,
  :func:`parse_location`;
* from parsed values to a clean grid, with the one repair policy: :class:`Point`,
  :func:`assemble`, ``GapPolicy``, :func:`fill_gaps`, :class:`GapRun`, and the JSON
  field checks :func:`intensity_value` and :func:`timestamp`;
* HTTP providers: :class:`HttpProvider` and its options :class:`HttpOptions`, the async
  face :class:`AsyncHttpProvider`, :class:`Call` and ``Flow`` for writing operations
  once, :func:`json_body`, :func:`error_detail`, the status table
  :data:`STATUS_ERRORS`, :class:`RetryPolicy`, :class:`ResponseCache`,
  :class:`DiskCache` and the drivers :class:`SyncDriver` and :class:`AsyncDriver`.

The HTTP names load httpx and tenacity, so they are imported on first access: a provider
that does not use them (a file reader, a model) keeps ``import lowcarb`` free of HTTP.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lowcarb._clock import Clock
from lowcarb._extras import install_hint
from lowcarb._files import MAX_DATA_FILE_BYTES, check_regular_file
from lowcarb._provider import (
    AsyncCarbonProvider,
    Capabilities,
    CarbonProvider,
    Credential,
    ThreadedAsyncProvider,
)
from lowcarb._series import (
    MAX_PLAUSIBLE_G_PER_KWH,
    EmissionBasis,
    IntensitySeries,
    Signal,
    convert_intensity,
    lbs_per_mwh_to_g_per_kwh,
)
from lowcarb._time import MAX_SPAN, ceil_time, check_range, ensure_utc, floor_time, format_duration
from lowcarb._zones import (
    CLOUD_REGIONS,
    ZONE_CATALOG,
    ZoneInfo,
    ZoneResolution,
    parse_location,
    resolve_zone,
    suggest_zones,
)
from lowcarb.backends._points import (
    GapPolicy,
    GapRun,
    Point,
    assemble,
    fill_gaps,
    intensity_value,
    timestamp,
)

if TYPE_CHECKING:
    from lowcarb.backends._http_cache import DiskCache, ResponseCache
    from lowcarb.backends._http_calls import Call, Flow, error_detail, json_body
    from lowcarb.backends._http_core import STATUS_ERRORS
    from lowcarb.backends._http_drivers import AsyncDriver, SyncDriver
    from lowcarb.backends._http_provider import AsyncHttpProvider, HttpOptions, HttpProvider
    from lowcarb.backends._http_retry import RetryPolicy

__all__ = [
    "CLOUD_REGIONS",
    "MAX_DATA_FILE_BYTES",
    "MAX_PLAUSIBLE_G_PER_KWH",
    "MAX_SPAN",
    "STATUS_ERRORS",
    "ZONE_CATALOG",
    "AsyncCarbonProvider",
    "AsyncDriver",
    "AsyncHttpProvider",
    "Call",
    "Capabilities",
    "CarbonProvider",
    "Clock",
    "Credential",
    "DiskCache",
    "EmissionBasis",
    "Flow",
    "GapPolicy",
    "GapRun",
    "HttpOptions",
    "HttpProvider",
    "IntensitySeries",
    "Point",
    "ResponseCache",
    "RetryPolicy",
    "Signal",
    "SyncDriver",
    "ThreadedAsyncProvider",
    "ZoneInfo",
    "ZoneResolution",
    "assemble",
    "ceil_time",
    "check_range",
    "check_regular_file",
    "convert_intensity",
    "ensure_utc",
    "error_detail",
    "fill_gaps",
    "floor_time",
    "format_duration",
    "install_hint",
    "intensity_value",
    "json_body",
    "lbs_per_mwh_to_g_per_kwh",
    "parse_location",
    "resolve_zone",
    "suggest_zones",
    "timestamp",
]

# Name -> the module that defines it, for the names that need httpx (and tenacity).
_HTTP_NAMES = {
    "AsyncDriver": "_http_drivers",
    "AsyncHttpProvider": "_http_provider",
    "Call": "_http_calls",
    "DiskCache": "_http_cache",
    "Flow": "_http_calls",
    "HttpOptions": "_http_provider",
    "HttpProvider": "_http_provider",
    "ResponseCache": "_http_cache",
    "RetryPolicy": "_http_retry",
    "STATUS_ERRORS": "_http_core",
    "SyncDriver": "_http_drivers",
    "error_detail": "_http_calls",
    "json_body": "_http_calls",
}


def __getattr__(name: str) -> Any:
    module = _HTTP_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"lowcarb.backends.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
