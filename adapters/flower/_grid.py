"""A view of a Grid that shows only the nodes lowcarb selected."""

from __future__ import annotations

from collections.abc import Iterable

from flwr.app import Message, RecordDict
from flwr.proto.node_pb2 import NodeInfo
from flwr.serverapp import Grid
from flwr.supercore.run import Run

__all__ = ["SelectedGrid"]


class SelectedGrid(Grid):
    """Delegates to ``base`` but lists only ``nodes``.

    Handed to the inner strategy, whose own sampling then can only pick the selected
    nodes; messages still travel through the real grid.

    Args:
        base: The runtime's grid.
        nodes: Node ids the inner strategy may see.
    """

    def __init__(self, base: Grid, nodes: Iterable[int]) -> None:
        self._base = base
        self._nodes = list(nodes)

    def set_run(self, run: Run) -> None:
        self._base.set_run(run)

    @property
    def run(self) -> Run:
        return self._base.run

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        return self._base.create_message(content, message_type, dst_node_id, group_id, ttl)

    def get_node_ids(self) -> list[int]:
        return list(self._nodes)

    def get_nodes(self) -> Iterable[NodeInfo]:
        allowed = set(self._nodes)
        return [n for n in self._base.get_nodes() if n.node_id in allowed]

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self._base.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self._base.pull_messages(message_ids)

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        return self._base.send_and_receive(messages, timeout=timeout)
