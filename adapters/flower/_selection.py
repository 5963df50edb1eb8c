"""What the Message-API wrapper and the legacy manager share: choosing, waiting, moving."""

from __future__ import annotations

import logging
from datetime import timedelta

from flwr.app import Message
from flwr.serverapp.strategy import Strategy

from lowcarb import Client, Decision, SelectionEngine
from lowcarb.exceptions import UnknownZoneError

__all__ = ["readdress", "sampling_strategy", "select_placed", "uniform", "wait_for_slot"]

# A child of Flower's logger, so that messages appear in Flower's console output.
_log = logging.getLogger("flwr.lowcarb")


def sampling_strategy(strategy: Strategy) -> Strategy:
    """The strategy whose sampling settings count (read, never changed).

    Wrappers such as Flower's differential-privacy strategies hold the strategy that
    samples in ``.strategy`` and have no ``fraction_train`` of their own.
    """
    while not hasattr(strategy, "fraction_train") and isinstance(
        getattr(strategy, "strategy", None), Strategy
    ):
        strategy = strategy.strategy  # type: ignore[attr-defined]
    return strategy


def select_placed(engine: SelectionEngine, candidates: list[Client], k: int) -> Decision:
    """``engine.select``, leaving out nodes an ``unknown_zone="error"`` engine rejects.

    The nodes left out are registered with the engine, so that the run's fairness
    summary counts them as never selected.
    """
    left_out: list[Client] = []
    while True:
        try:
            decision = engine.select(candidates, min(k, len(candidates)))
        except UnknownZoneError as exc:
            placed = [c for c in candidates if engine.provider.canonical(c.zone) != exc.zone]
            if not placed or len(placed) == len(candidates):
                raise
            # Leave the unplaced nodes out of this round rather than stopping the training.
            _log.warning("lowcarb: %s; leaving its nodes out", exc)
            left_out += [c for c in candidates if c not in placed]
            candidates = placed
            continue
        if left_out:
            engine.register(left_out)
        return decision


def wait_for_slot(engine: SelectionEngine, decision: Decision) -> None:
    """Wait until a paused decision's next slot, saying why.

    A ManualClock jumps; the system clock sleeps for real. The engine pauses only while
    its deadline leaves slack, so the deadline bounds every wait.
    """
    assert decision.wait_until is not None
    seconds = max(0.0, (decision.wait_until - engine.clock.now()).total_seconds())
    _log.info(
        "lowcarb: round %d waits %s until %s: %s",
        decision.round,
        timedelta(seconds=round(seconds)),
        f"{decision.wait_until:%Y-%m-%d %H:%M}Z",
        decision.reason,
    )
    engine.clock.sleep(seconds)


def uniform(messages: list[Message]) -> bool:
    """Whether every message carries the same content (built-in strategies share one)."""
    if not messages:
        return True
    first = messages[0].content
    return all(m.content is first or m.content == first for m in messages)


def readdress(messages: list[Message], nodes: list[int]) -> list[Message] | None:
    """The instructions in ``messages`` addressed to ``nodes`` instead.

    A message already addressed to one of ``nodes`` is kept as it is. None when the
    contents differ between nodes (a strategy that instructs each node differently),
    which cannot be moved.
    """
    if not messages:
        return []
    if not uniform(messages):
        return None
    first = messages[0]
    kept = {m.metadata.dst_node_id: m for m in messages if m.metadata.dst_node_id in set(nodes)}
    return [
        kept[node]
        if node in kept
        else Message(
            first.content,
            dst_node_id=node,
            message_type=first.metadata.message_type,
            ttl=first.metadata.ttl,
            group_id=first.metadata.group_id or None,
        )
        for node in nodes
    ]
