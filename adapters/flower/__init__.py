"""Carbon-aware node selection for Flower (flwr >= 1.41).

Message API (``flwr run``, ``run_simulation``): wrap any strategy in
:class:`CarbonAwareStrategy` with an engine from :func:`engine_for_run`; let clients
tell their zone with :func:`answer_zone_query`. Legacy API
(``start_simulation``/``start_server``): :class:`CarbonAwareClientManager`. See
docs/flower.md.
"""

from __future__ import annotations

from lowcarb._public import expose
from lowcarb.adapters.flower._client import (
    ENERGY_METRIC,
    ZONE_ACTION,
    ZONE_RECORD,
    ZONES_KEY,
    answer_zone_query,
    energy_from_tracker,
    zone_from_config,
)
from lowcarb.adapters.flower._legacy import CarbonAwareClientManager
from lowcarb.adapters.flower._run import RUN_CONFIG_PREFIX, engine_for_run
from lowcarb.adapters.flower._strategy import CarbonAwareStrategy, EvaluationMode
from lowcarb.adapters.flower._zones import UNKNOWN_ZONE, ZoneDirectory

__all__ = [
    "ENERGY_METRIC",
    "RUN_CONFIG_PREFIX",
    "UNKNOWN_ZONE",
    "ZONES_KEY",
    "ZONE_ACTION",
    "ZONE_RECORD",
    "CarbonAwareClientManager",
    "CarbonAwareStrategy",
    "EvaluationMode",
    "ZoneDirectory",
    "answer_zone_query",
    "energy_from_tracker",
    "engine_for_run",
    "zone_from_config",
]

expose(globals(), __all__, __name__)
