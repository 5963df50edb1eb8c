"""Where each Flower node is: its grid zone, found once per node and cached."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping

from flwr.app import ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid

from lowcarb.adapters.flower._client import ZONE_ACTION, ZONE_RECORD
from lowcarb.exceptions import InvalidInputError, LowcarbError

__all__ = ["UNKNOWN_ZONE", "ZoneDirectory", "place"]

# A child of Flower's logger, so that messages appear in Flower's console output.
_log = logging.getLogger("flwr.lowcarb")

#: Zone given to nodes nobody could place. No provider serves it, so the engine's
#: unknown-zone rule applies (by default: the mean of the known zones, noted in the
#: decision's signal).
UNKNOWN_ZONE = "unknown"

ZoneMap = Mapping[int, str] | Callable[[int], str | None]


def place(resolve: Callable[[str], str], node: object, text: str | None) -> str:
    """The zone of ``node`` from what it reported; never raises.

    Unresolvable text is kept as given (no provider serves it, so the engine's
    unknown-zone rule applies), and so is text the provider could not look up (e.g.
    its zone list is unreachable); nothing at all gives :data:`UNKNOWN_ZONE`.
    """
    if text is None or not text.strip():
        _log.warning("node %s: zone unknown; the engine's unknown-zone rule applies", node)
        return UNKNOWN_ZONE
    try:
        return resolve(text)
    except LowcarbError as exc:
        _log.warning("node %s: cannot resolve zone %r (%s)", node, text, exc)
        return text.strip()


class ZoneDirectory:
    """Finds and caches the zone of every node.

    Sources, in order, for each node not seen before: the server-side ``zones`` mapping
    (or function of the node id); the SuperNode's registered ``lat,lon`` location; a
    query message answered by :func:`answer_zone_query` on the client. Whatever is found
    is resolved through ``resolve`` (the provider's zone lookup: ids, ``LAT,LON``, cloud
    regions); nodes that stay unplaced get :data:`UNKNOWN_ZONE`.

    Args:
        resolve: Turns a location text into a zone id; raises UnknownZoneError or
            InvalidInputError when it cannot.
        zones: Server-side ``node_id -> zone`` mapping or function.
        query: Whether to ask nodes with a query message.
        use_location: Whether to read the SuperNodes' registered locations.
        timeout: Longest wait for the query replies (s).
    """

    def __init__(
        self,
        resolve: Callable[[str], str],
        *,
        zones: ZoneMap | None = None,
        query: bool = True,
        use_location: bool = True,
        timeout: float = 60.0,
    ) -> None:
        if zones is not None and not (callable(zones) or isinstance(zones, Mapping)):
            raise InvalidInputError("zones must be a mapping node_id -> zone or a function")
        if not math.isfinite(timeout) or timeout <= 0:
            raise InvalidInputError(f"the zone query timeout must be > 0 s, got {timeout!r}")
        self._resolve = resolve
        self._given = zones
        self._query = query
        self._use_location = use_location
        self._timeout = float(timeout)
        self._zones: dict[int, str] = {}
        self.queried: list[int] = []

    @property
    def known(self) -> dict[int, str]:
        """Zones found so far, by node id."""
        return dict(self._zones)

    def lookup(self, grid: Grid, node_ids: Iterable[int]) -> dict[int, str]:
        """The zone of every node in ``node_ids``; only nodes never seen are looked up."""
        ids = list(node_ids)
        new = [n for n in ids if n not in self._zones]
        if new:
            found = self._from_mapping(new)
            if self._use_location:
                found.update(self._from_location(grid, [n for n in new if n not in found]))
            if self._query:
                found.update(self._from_query(grid, [n for n in new if n not in found]))
            for node in new:
                self._zones[node] = place(self._resolve, node, found.get(node))
        return {n: self._zones[n] for n in ids}

    def _from_mapping(self, nodes: list[int]) -> dict[int, str]:
        if self._given is None:
            return {}
        out: dict[int, str] = {}
        for node in nodes:
            zone = self._given(node) if callable(self._given) else self._given.get(node)
            if zone is not None:
                out[node] = str(zone)
        return out

    def _from_location(self, grid: Grid, nodes: list[int]) -> dict[int, str]:
        if not nodes:
            return {}
        wanted = set(nodes)
        out: dict[int, str] = {}
        try:
            infos = list(grid.get_nodes())
        except Exception as exc:
            _log.debug("grid.get_nodes() failed: %s", exc)
            return {}
        for info in infos:
            if info.node_id in wanted and info.HasField("location") and info.location:
                out[info.node_id] = info.location
        return out

    def _from_query(self, grid: Grid, nodes: list[int]) -> dict[int, str]:
        if not nodes:
            return {}
        self.queried.extend(nodes)
        messages = [
            Message(
                RecordDict({ZONE_RECORD: ConfigRecord({})}),
                dst_node_id=node,
                message_type=f"{MessageType.QUERY}.{ZONE_ACTION}",
            )
            for node in nodes
        ]
        out: dict[int, str] = {}
        for reply in grid.send_and_receive(messages, timeout=self._timeout):
            node = reply.metadata.src_node_id
            if reply.has_error():
                _log.warning("node %s did not answer the zone query: %s", node, reply.error.reason)
                continue
            record = reply.content.config_records.get(ZONE_RECORD)
            zone = None if record is None else record.get("zone")
            if isinstance(zone, str):
                out[node] = zone
        return out
