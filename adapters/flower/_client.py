"""Client-side helpers: answer the server's zone query, report measured energy."""

from __future__ import annotations

import math
from collections.abc import Callable

from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp

from lowcarb.exceptions import InvalidInputError

__all__ = [
    "ENERGY_METRIC",
    "ZONES_KEY",
    "ZONE_ACTION",
    "ZONE_RECORD",
    "answer_zone_query",
    "energy_from_tracker",
    "zone_from_config",
]

#: The query action the strategy sends (``message_type="query.lowcarb_zone"``).
ZONE_ACTION = "lowcarb_zone"
#: Name of the ConfigRecord holding the answer (key ``zone``).
ZONE_RECORD = "lowcarb"
#: Key of the optional measured energy of a client's round (kWh) in its train reply's
#: MetricRecord; when present it replaces the engine's energy model for that client.
ENERGY_METRIC = "energy-kwh"
#: Run-config key (``[tool.flwr.app.config]``) listing zones for simulated nodes, comma
#: separated: node ``partition-id`` i gets zone i modulo the list's length.
ZONES_KEY = "lowcarb.zones"

ZoneSource = str | Callable[[Context], str | None] | None


def zone_from_config(context: Context, key: str = "zone") -> str | None:
    """A node's zone from Flower's configuration, or None when it has none.

    ``node_config[key]`` first (a SuperNode's ``--node-config 'zone="DE"'``); else, for a
    node with a ``partition-id`` (every simulated node), the run config's
    :data:`ZONES_KEY` list indexed by it.
    """
    if key in context.node_config:
        return str(context.node_config[key])
    zones = [z.strip() for z in str(context.run_config.get(ZONES_KEY, "")).split(",")]
    zones = [z for z in zones if z]
    partition = context.node_config.get("partition-id")
    if not zones or isinstance(partition, bool) or not isinstance(partition, int | float):
        return None
    return zones[int(partition) % len(zones)]


def answer_zone_query(app: ClientApp, zone: ZoneSource = None, *, key: str = "zone") -> None:
    """Let ``app`` tell the server its grid zone (one line in a ClientApp).

    Args:
        app: The ClientApp to extend.
        zone: A zone id, ``LAT,LON`` or cloud region; a function of the node's Context
            returning one (or None when unknown); or None for :func:`zone_from_config`:
            ``--node-config 'zone="DE"'`` in a deployment, the run config's
            ``lowcarb.zones`` by partition id in a simulation.
        key: The node_config key read when ``zone`` is None.

    Example:
        >>> app = ClientApp()
        >>> answer_zone_query(app)  # zone from node_config or the run config
    """

    def reply(msg: Message, context: Context) -> Message:
        value: object
        if callable(zone):
            value = zone(context)
        elif zone is None:
            value = zone_from_config(context, key)
        else:
            value = zone
        # An empty record means "unknown": the server then applies the engine's
        # unknown-zone rule instead of failing the node.
        text = "" if value is None else str(value).strip()
        record = ConfigRecord({"zone": text} if text else {})
        return Message(RecordDict({ZONE_RECORD: record}), reply_to=msg)

    app.query(ZONE_ACTION)(reply)


def energy_from_tracker(tracker: object) -> float:
    """Energy (kWh) a stopped energy tracker measured, for the ``ENERGY_METRIC`` key.

    Works with CodeCarbon's ``EmissionsTracker`` (an optional extra lowcarb does not
    depend on) and with anything else exposing ``final_emissions_data.energy_consumed``
    in kWh.

    Raises:
        InvalidInputError: If the tracker has no such value (not stopped yet?) or it is
            not a finite number >= 0.
    """
    data = getattr(tracker, "final_emissions_data", None)
    value = getattr(data, "energy_consumed", None)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInputError(
            f"{type(tracker).__name__} has no final_emissions_data.energy_consumed; "
            "stop the tracker before reading its energy"
        )
    if not math.isfinite(value) or value < 0:
        raise InvalidInputError(f"measured energy must be a finite number >= 0 kWh, got {value!r}")
    return float(value)
