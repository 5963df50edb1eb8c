"""Carbon-aware node selection for Flower (flwr >= 1.41).

Message API (``flwr run``, ``run_simulation``): wrap any strategy in
:class:`CarbonAwareStrategy`; let clients tell their zone with
:func:`answer_zone_query`. Legacy API (``start_simulation``/``start_server``):
:class:`CarbonAwareClientManager`. See docs/flower.md.
"""

from __future__ import annotations

from lowcarb._public import expose
from lowcarb.adapters.flower._client import (
    ENERGY_METRIC,
    ZONE_ACTION,
    ZONE_RECORD,
    answer_zone_query,
    energy_from_tracker,
)
from lowcarb.adapters.flower._grid import SelectedGrid
from lowcarb.adapters.flower._legacy import CarbonAwareClientManager
from lowcarb.adapters.flower._strategy import CarbonAwareStrategy, EvaluationMode
from lowcarb.adapters.flower._zones import UNKNOWN_ZONE, ZoneDirectory

__all__ = [
    "ENERGY_METRIC",
    "UNKNOWN_ZONE",
    "ZONE_ACTION",
    "ZONE_RECORD",
    "CarbonAwareClientManager",
    "CarbonAwareStrategy",
    "EvaluationMode",
    "SelectedGrid",
    "ZoneDirectory",
    "answer_zone_query",
    "energy_from_tracker",
]

expose(globals(), __all__, __name__)
