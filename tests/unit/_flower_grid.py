"""An in-process Flower Grid (no Ray, no network) and a tiny ClientApp for the adapter tests."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, Context, Error, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid

# Instruction messages read the run/task identity the runtime normally sets; this is the
# one internal import the tests need (flwr/simulation/run_simulation.py does the same).
from flwr.supercore.task_identity import TaskIdentity

TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 1, 1

DIM = 3


def initial_arrays() -> ArrayRecord:
    return ArrayRecord({"w": Array(np.zeros(DIM))})


def make_client_app(
    *,
    zone_helper: bool = True,
    energy: float | None = None,
    fail: frozenset[int] = frozenset(),
    **kw: Any,
) -> ClientApp:
    """A ClientApp that records which node trained/evaluated in ``app.log``.

    Nodes in ``fail`` raise in training (the runtime turns that into an error reply).
    """
    from lowcarb.adapters.flower import answer_zone_query

    app = ClientApp()
    log: list[tuple[str, int, dict[str, Any]]] = []

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        config = dict(msg.content["config"])
        log.append(("train", context.node_id, config))
        if context.node_id in fail:
            raise RuntimeError("out of memory")
        w = msg.content["arrays"]["w"].numpy() + 1.0
        metrics: dict[str, float | int] = {"num-examples": 10, "loss": 1.0}
        if energy is not None:
            metrics["energy-kwh"] = energy
        return Message(
            RecordDict({"arrays": ArrayRecord({"w": Array(w)}), "metrics": MetricRecord(metrics)}),
            reply_to=msg,
        )

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        log.append(("evaluate", context.node_id, {}))
        return Message(
            RecordDict({"metrics": MetricRecord({"num-examples": 10, "accuracy": 0.5})}),
            reply_to=msg,
        )

    if zone_helper:
        answer_zone_query(app, **kw)
    app.log = log  # type: ignore[attr-defined]
    return app


class LocalGrid(Grid):
    """Runs every message through ``app`` in this process.

    Args:
        app: The ClientApp every node runs.
        node_configs: One node_config per node; node ids are 1000, 1001, ...
        grow: Nodes connect over time: ``get_node_ids`` shows ``grow[i]`` nodes on its
            i-th call (then all).
    """

    def __init__(
        self,
        app: ClientApp,
        node_configs: list[dict[str, Any]],
        *,
        grow: list[int] | None = None,
        locations: dict[int, str] | None = None,
        run_config: dict[str, Any] | None = None,
    ) -> None:
        self.app = app
        self.contexts = {
            1000 + i: Context(
                run_id=1,
                node_id=1000 + i,
                node_config=cfg,
                state=RecordDict(),
                run_config=dict(run_config or {}),
            )
            for i, cfg in enumerate(node_configs)
        }
        self.grow = list(grow or [])
        self.locations = locations or {}
        self.sent: list[Message] = []
        self._replies: dict[str, Message] = {}
        self._n = 0

    def add_node(self, node_config: dict[str, Any]) -> int:
        node = 1000 + len(self.contexts)
        self.contexts[node] = Context(
            run_id=1, node_id=node, node_config=node_config, state=RecordDict(), run_config={}
        )
        return node

    def set_run(self, run: Any) -> None:
        self._run = run

    @property
    def run(self) -> Any:
        return self._run

    def create_message(self, content, message_type, dst_node_id, group_id, ttl=None):  # type: ignore[no-untyped-def]
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> list[int]:
        nodes = list(self.contexts)
        if self.grow:
            return nodes[: self.grow.pop(0)]
        return nodes

    def get_nodes(self) -> Iterable[Any]:
        from flwr.proto.node_pb2 import NodeInfo

        out = []
        for node in self.contexts:
            info = NodeInfo(node_id=node)
            if node in self.locations:
                info.location = self.locations[node]
            out.append(info)
        return out

    def push_messages(self, messages: Iterable[Message]) -> list[str]:
        ids = []
        for m in messages:
            self.sent.append(m)
            self._n += 1
            mid = f"m{self._n}"
            m.metadata.__dict__["_message_id"] = mid  # what InMemoryGrid does
            try:
                reply = self.app(m, self.contexts[m.metadata.dst_node_id])
            except Exception as exc:  # the runtime turns a ClientApp exception into an error reply
                reply = Message(Error(code=0, reason=str(exc)), reply_to=m)
            self._replies[mid] = reply
            ids.append(mid)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> list[Message]:
        return [self._replies.pop(i) for i in message_ids if i in self._replies]

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> list[Message]:
        return self.pull_messages(self.push_messages(messages))

    def sent_to(self, message_type: str) -> list[int]:
        return [
            m.metadata.dst_node_id for m in self.sent if m.metadata.message_type == message_type
        ]
