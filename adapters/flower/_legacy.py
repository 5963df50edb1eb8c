"""The legacy API (``start_simulation``/``start_server``): a carbon-aware ClientManager."""

from __future__ import annotations

import logging
import math
import sys
from types import FrameType

from flwr.common import (
    Code,
    DisconnectRes,
    EvaluateIns,
    EvaluateRes,
    FitIns,
    FitRes,
    GetParametersIns,
    GetParametersRes,
    GetPropertiesIns,
    GetPropertiesRes,
    ReconnectIns,
)
from flwr.server import SimpleClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.criterion import Criterion

from lowcarb import Client, Decision, ManualClock, SelectionEngine
from lowcarb.adapters.flower._selection import select_placed, wait_for_slot
from lowcarb.adapters.flower._strategy import NO_ZONE_HINT
from lowcarb.adapters.flower._zones import place
from lowcarb.exceptions import InvalidInputError, UnknownZoneError

__all__ = ["CarbonAwareClientManager"]

_log = logging.getLogger("flwr.lowcarb")
# See _strategy._MAX_PAUSES: this many pauses in one round means the clock stands still.
_MAX_PAUSES = 10_000


class CarbonAwareClientManager(SimpleClientManager):
    """A ``SimpleClientManager`` whose ``sample`` asks the lowcarb engine.

    Clients tell their zone from ``get_properties`` (key ``zone``: a zone id, ``LAT,LON``
    or cloud region), asked once per client. A ``sample`` call from a strategy's
    ``configure_fit`` is one engine round; the other calls (the server's request for
    initial parameters, ``configure_evaluate``) sample at random, as Flower's
    ``SimpleClientManager`` does, and are not rounds. The previous round is recorded in
    the ledger when the next one is sampled, or by :meth:`close_round`, with the clients
    whose ``fit`` succeeded: a client that failed or was never asked keeps its share.

    Args:
        engine: The selection engine.
        property_key: The ``get_properties`` key holding the zone.
        timeout: Longest wait for a client's properties (s).
        simulated_time: Advance the engine's ManualClock by the round interval per round
            (default: when the engine runs on a ManualClock).
    """

    def __init__(
        self,
        engine: SelectionEngine,
        *,
        property_key: str = "zone",
        timeout: float = 60.0,
        simulated_time: bool | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(engine, SelectionEngine):
            raise InvalidInputError(f"engine must be a SelectionEngine, got {engine!r}")
        if not math.isfinite(timeout) or timeout <= 0:
            raise InvalidInputError(f"timeout must be > 0 s, got {timeout!r}")
        if simulated_time and not isinstance(engine.clock, ManualClock):
            raise InvalidInputError(
                "simulated_time=True needs an engine on a ManualClock; "
                f"this engine runs on {engine.clock!r}"
            )
        self.engine = engine
        self.property_key = property_key
        self.timeout = float(timeout)
        self.simulated_time = (
            isinstance(engine.clock, ManualClock) if simulated_time is None else simulated_time
        )
        self.zones: dict[str, str] = {}
        self.decisions: list[Decision] = []
        self._open: Decision | None = None
        self._fitted: dict[str, bool] = {}

    def _zone(self, proxy: ClientProxy) -> str:
        if proxy.cid not in self.zones:
            text: str | None = None
            try:
                ins = GetPropertiesIns({})
                res = proxy.get_properties(ins, timeout=self.timeout, group_id=None)
                value = res.properties.get(self.property_key)
                text = None if value is None else str(value)
            except Exception as exc:
                _log.warning("client %s: get_properties failed: %s", proxy.cid, exc)
            self.zones[proxy.cid] = place(
                lambda t: self.engine.provider.resolve(t).zone, proxy.cid, text
            )
        return self.zones[proxy.cid]

    def close_round(self) -> None:
        """Record the open round in the ledger: the clients whose fit succeeded."""
        decision, self._open = self._open, None
        if decision is None:
            return
        trained = [cid for cid in decision.selected if self._fitted.get(cid)]
        if len(trained) < len(decision.selected):
            _log.info(
                "lowcarb: round %d: %d of %d sampled clients trained; the others keep their share",
                decision.round,
                len(trained),
                len(decision.selected),
            )
        clock = self.engine.clock
        if self.simulated_time and isinstance(clock, ManualClock):
            clock.set(max(clock.now(), decision.end))
        self.engine.complete(decision, trained=trained)
        if self.simulated_time and isinstance(clock, ManualClock):
            clock.set(max(clock.now(), decision.start + self.engine.round_interval))

    def sample(
        self,
        num_clients: int,
        min_num_clients: int | None = None,
        criterion: Criterion | None = None,
    ) -> list[ClientProxy]:
        """Pick ``num_clients`` clients through the engine (waits for the minimum first).

        Only training samples go through the engine (see the class docstring). Clients
        whose zone an ``unknown_zone="error"`` engine rejects are left out of the round,
        which may then have fewer clients.
        """
        if not _called_from_configure_fit():
            return super().sample(num_clients, min_num_clients, criterion)
        self.wait_for(num_clients if min_num_clients is None else min_num_clients)
        if num_clients < 1:
            return []
        self.close_round()
        for _ in range(_MAX_PAUSES):
            # A snapshot: Flower's runtime registers clients from another thread.
            proxies = [
                p for p in list(self.clients.values()) if criterion is None or criterion.select(p)
            ]
            if num_clients > len(proxies):
                _log.info(
                    "lowcarb: cannot sample %d of %d available clients", num_clients, len(proxies)
                )
                return []
            candidates = [Client(p.cid, self._zone(p)) for p in proxies]
            try:
                decision = select_placed(self.engine, candidates, num_clients)
            except UnknownZoneError as exc:
                # No client can be costed: sample as Flower would rather than stop.
                _log.warning("lowcarb: %s; sampling at random, unrecorded; %s", exc, NO_ZONE_HINT)
                return super().sample(num_clients, min_num_clients, criterion)
            if decision.run_now:
                break
            # Clients may come or go during the wait: the next pass looks again.
            wait_for_slot(self.engine, decision)
        else:
            raise InvalidInputError("the engine keeps pausing but its clock does not move")
        self.decisions.append(decision)
        self._open, self._fitted = decision, {}
        _log.info("lowcarb: round %d: %s", decision.round, decision.reason)
        by_id = {p.cid: p for p in proxies}
        return [_Tracked(by_id[cid], self._fitted) for cid in decision.selected]


def _called_from_configure_fit(depth: int = 8) -> bool:
    """Whether the running ``sample`` serves a strategy's ``configure_fit``.

    The legacy ``Server`` asks the same ``sample`` for training, evaluation and the
    initial parameters and says nothing of which; only the caller tells them apart.
    """
    frame: FrameType | None = sys._getframe(2)  # the caller of sample()
    for _ in range(depth):
        if frame is None:
            return False
        name = frame.f_code.co_name
        if name == "configure_fit":
            return True
        if name in ("configure_evaluate", "_get_initial_parameters", "initialize_parameters"):
            return False
        frame = frame.f_back
    return False


class _Tracked(ClientProxy):
    """A sampled client that notes whether its ``fit`` succeeded; delegates everything."""

    def __init__(self, proxy: ClientProxy, fitted: dict[str, bool]) -> None:
        super().__init__(proxy.cid)
        self.proxy, self._fitted = proxy, fitted
        self.properties = proxy.properties
        if hasattr(proxy, "node_id"):
            self.node_id = proxy.node_id

    def get_properties(
        self, ins: GetPropertiesIns, timeout: float | None, group_id: int | None
    ) -> GetPropertiesRes:
        return self.proxy.get_properties(ins, timeout, group_id)

    def get_parameters(
        self, ins: GetParametersIns, timeout: float | None, group_id: int | None
    ) -> GetParametersRes:
        return self.proxy.get_parameters(ins, timeout, group_id)

    def fit(self, ins: FitIns, timeout: float | None, group_id: int | None) -> FitRes:
        self._fitted[self.cid] = False  # until it returns a good result
        result = self.proxy.fit(ins, timeout, group_id)
        self._fitted[self.cid] = result.status.code == Code.OK
        return result

    def evaluate(
        self, ins: EvaluateIns, timeout: float | None, group_id: int | None
    ) -> EvaluateRes:
        return self.proxy.evaluate(ins, timeout, group_id)

    def reconnect(
        self, ins: ReconnectIns, timeout: float | None, group_id: int | None
    ) -> DisconnectRes:
        return self.proxy.reconnect(ins, timeout, group_id)
