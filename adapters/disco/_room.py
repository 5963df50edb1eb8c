"""One task's federated rounds: who takes part, what is averaged, what is recorded.

The room is the part every protocol generation shares. Each round it asks the task's
:class:`~lowcarb.SelectionEngine` (through :class:`~lowcarb.TaskEngines`) which of the
connected clients train, accepts updates only from those, averages them (federated
averaging with equal weights, as DISCO's server does) once every selected client still
connected has sent one, and records the round in the ledger: the aggregate itself (in
the round's details) and the energy that clients left out spent anyway, which the core
prices. Updates from clients that were not selected never enter an aggregate. Only the
global model is kept beside the ledger (``<task>.model.npz``).

What a run does:

- It ends after the task's ``rounds`` aggregates (when given): later updates enter no
  aggregate; they are answered with the final model and counted in the last round's
  ``after_end_updates``, since DISCO clients train as many local rounds as their task
  says whatever the server does.
- Candidates are handed to the engine in the order of their ids, so that a run's
  selections do not depend on which client connected first.
- A selected client that sends nothing is taken out of its round (it keeps its fair
  share), so that every client that stays is selected its fair share.

Clients that can be held (the ``develop`` generation) are held *between* their local
rounds: a client that sent an update waits for the server's answer, and a client the
round does not select gets no answer but a pause (``WaitingForMoreParticipants``), and
only when a decision selects it a resume and the current model. So a deferred client
never trains while held. The first local round of a client that was not selected (it
trains on connecting, before any decision can include it) is the only update it can
spend in vain. A client is paused at most once before it is resumed.

Clients that cannot be held (``v2``) always train; the room lets their generation pace
them (:meth:`TaskRoom.wait_past`) so that each sends one update per round.

A selected client that sends nothing before the round times out is *idle*: the round
closes without it, and it is no candidate (nor counted for the quorum) until it sends an
update, so that clients that connect and never train cannot hold training back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import anyio.to_thread
import numpy as np

from lowcarb import Client, Decision, TaskEngines
from lowcarb.adapters.disco._protocol import Identity, Peer, ProtocolViolation
from lowcarb.adapters.disco._taskdir import BridgeTask
from lowcarb.exceptions import DataValidationError, LowcarbError, UnknownZoneError

__all__ = ["Aggregate", "Member", "Outcome", "TaskRoom"]

log = logging.getLogger("lowcarb.disco")

#: Seconds before a failed decision (provider trouble) is tried again.
_RETRY_DECISION_S = 5.0
#: Where a round's aggregate is kept in the ledger's round details.
_DETAILS_KEY = "disco"
#: Where the last round's details name the clients that sent updates after the end.
_AFTER_END_KEY = "disco_after_end"


class Outcome(Enum):
    """What became of one update."""

    ACCEPTED = "accepted"  # buffered for this round's aggregate
    EXCLUDED = "excluded"  # the client was not selected this round
    STALE = "stale"  # for a round already closed
    PENDING = "pending"  # no round is decided yet; judged when one is
    LATE = "late"  # the run has ended (its rounds are done)


@dataclass(eq=False)
class Member:
    """A connected client.

    Attributes:
        id: Unique among the task's connected clients (a stable name when given).
        zone: Its grid zone (as declared or defaulted).
        peer: Callbacks to reach it.
        can_pause: Whether it can be held.
        paused: Whether it is held now (told to wait, not yet released).
        waiting: Whether it sent an update and waits for the server's answer (clients
            that can be held only: the others pull).
        idle: Whether it let a round it was selected for time out without an update
            (cleared by its next update).
        updates: Updates it has sent (one per local round).
    """

    id: str
    zone: str
    peer: Peer
    can_pause: bool
    paused: bool = False
    waiting: bool = False
    idle: bool = False
    updates: int = 0


@dataclass(frozen=True)
class Aggregate:
    """One closed round, as the bridge logs it.

    Attributes:
        round: The DISCO round the aggregate starts (server round after it).
        engine_round: The engine's (ledger's) round number.
        selected: Clients the engine selected.
        contributors: Clients whose update is in the aggregate.
        excluded: Clients not selected whose updates were left out (late ones too), with
            counts.
        missing: Selected clients that sent nothing (left, or timed out).
        stale: Updates for older rounds, answered with the current model.
        closed_by: ``complete``, ``timeout`` or ``departures``.
        duration_s: Seconds from decision to aggregate.
    """

    round: int
    engine_round: int
    selected: tuple[str, ...]
    contributors: tuple[str, ...]
    excluded: dict[str, int]
    missing: tuple[str, ...]
    stale: int
    closed_by: str
    duration_s: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        out = asdict(self)
        for key in ("selected", "contributors", "missing"):
            out[key] = list(out[key])
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Aggregate:
        """Rebuild an aggregate from its :meth:`to_dict` form (as the ledger keeps it).

        Raises:
            DataValidationError: If ``data`` is not an aggregate.
        """
        try:
            fields = dict(data)
            for key in ("selected", "contributors", "missing"):
                fields[key] = tuple(fields[key])
            return cls(**fields)
        except (KeyError, TypeError) as exc:
            raise DataValidationError(f"not a recorded aggregate: {exc}") from None


@dataclass
class _Open:
    """The round in progress."""

    decision: Decision
    selected: frozenset[str]
    opened: float
    buffer: dict[str, list[np.ndarray]] = field(default_factory=dict)
    excluded: Counter[str] = field(default_factory=Counter)
    stale: int = 0
    timer: asyncio.Task[None] | None = None
    # The bounded wait for left-out clients' updates, once the selected ones are in.
    laggard_timer: asyncio.Task[None] | None = None


class TaskRoom:
    """Selection, aggregation and accounting of one task.

    Args:
        task: The task.
        engines: The per-task engines (the task's ledger lives there).
        round_timeout: Seconds a round waits for its selected clients before it is closed
            with the updates it has.
        laggard_s: Once the selected clients' updates are in, seconds the round waits for
            the update of each left-out client that is training (one that cannot be
            held, or a held one in its first local round): its energy is then booked in
            the round it was spent for, whichever client was quicker. A client that
            sends nothing in that time is idle.
        state_dir: Where ``<task>.model.npz`` (the global model and its round) is kept;
            a restarted bridge resumes it, and the aggregates from the ledger.
        zone_map: Client name or id -> zone, for every task (a mapping file).
    """

    def __init__(
        self,
        task: BridgeTask,
        engines: TaskEngines,
        *,
        round_timeout: float = 300.0,
        laggard_s: float = 6.0,
        state_dir: Path | None = None,
        zone_map: Mapping[str, str] | None = None,
    ) -> None:
        self.task = task
        self.laggard_s = laggard_s
        self.zone_map = dict(zone_map or {})
        self.engines = engines
        # Held here: reaching it through the engine would wait for a decision in progress.
        self._provider = engines.provider
        self.round_timeout = round_timeout
        self.shapes = task.artifacts.shapes
        self.weights: list[np.ndarray] = task.artifacts.weights()
        self.round = 0
        self.members: dict[str, Member] = {}
        self.history: list[Aggregate] = []
        self._open: _Open | None = None
        self._pending: dict[str, list[np.ndarray]] = {}
        # Updates for an old round sent while no round was open, by client: energy spent
        # outside any selection, booked with the next round.
        self._unplaced: Counter[str] = Counter()
        # Updates sent after the run's last round, by client (see after_end).
        self._after_end: Counter[str] = Counter()
        self._after_end_booked: dict[str, int] = {}
        self._advanced = asyncio.Event()
        self._lock = asyncio.Lock()
        self._retry: asyncio.Task[None] | None = None
        self._model = None if state_dir is None else state_dir / f"{task.id}.model.npz"
        self._restore()

    def _restore(self) -> None:
        """Continue from the saved global model and the aggregates the ledger holds."""
        if self._model is None or not self._model.is_file():
            return
        try:
            with np.load(self._model, allow_pickle=False) as saved:
                round_ = int(saved["round"])
                weights = [saved[f"w{i}"].astype(np.float32) for i in range(len(self.shapes))]
        except (OSError, KeyError, ValueError) as exc:
            raise DataValidationError(
                f"cannot read the saved model: {exc}", str(self._model)
            ) from exc
        if [w.shape for w in weights] != list(self.shapes):
            raise DataValidationError(
                "the saved model does not fit the task's model (was the task changed?)",
                str(self._model),
            )
        self.round, self.weights = round_, weights
        with self.engines.session(self.task.id) as engine:
            records = engine.records()
        for record in records:
            entry = record.details.get(_DETAILS_KEY)
            if not isinstance(entry, dict) or not entry.get("contributors"):
                continue
            aggregate = Aggregate.from_dict(entry)
            if aggregate.round <= round_:
                self.history.append(aggregate)
            after = record.details.get(_AFTER_END_KEY)
            if isinstance(after, dict):
                counts = {str(k): int(v) for k, v in after.items()}
                self._after_end = Counter(counts)
                self._after_end_booked = counts
        log.info("task %s: resumed at round %d", self.task.id, self.round)

    def _save(self) -> None:
        if self._model is None:
            return
        # Write then rename: a crash leaves the previous model or this one, never half.
        tmp = self._model.with_name(self._model.name + ".tmp.npz")
        arrays: dict[str, np.ndarray] = {f"w{i}": w for i, w in enumerate(self.weights)}
        arrays["round"] = np.array(self.round)
        np.savez(tmp, allow_pickle=False, **arrays)
        os.replace(tmp, self._model)

    def __repr__(self) -> str:
        return f"TaskRoom({self.task.id!r}, round={self.round}, members={len(self.members)})"

    # -- read-only views (no lock: the event loop is single-threaded) ------------------------

    @property
    def selected(self) -> frozenset[str]:
        """Clients selected for the round in progress (empty between rounds)."""
        return self._open.selected if self._open else frozenset()

    @property
    def finished(self) -> bool:
        """Whether the run's rounds are done (the task's ``rounds`` aggregates)."""
        cap = self.task.settings.rounds
        return cap is not None and self.round >= cap

    @property
    def after_end(self) -> dict[str, int]:
        """Updates sent after the run's last round, by client (in no aggregate)."""
        return dict(sorted(self._after_end.items()))

    def artifacts(self) -> Any:
        """The task's model artifacts carrying the current global weights."""
        return self.task.artifacts.with_weights(self.weights)

    def statistics(self) -> dict[str, float]:
        """DISCO's federated statistics: round and participants per aggregate."""
        total = sum(len(a.contributors) for a in self.history)
        return {
            "round": self.round,
            "currentNumberOfParticipants": len(self.history[-1].contributors)
            if self.history
            else 0,
            "totalNumberOfParticipants": total,
            "averageNumberOfParticipants": total / self.round if self.round else 0,
        }

    @property
    def participants(self) -> int:
        """Contributors of the last aggregate (DISCO's ``nbOfParticipants``), at least 1."""
        return max(1, len(self.history[-1].contributors)) if self.history else 1

    def status(self) -> dict[str, Any]:
        """A JSON summary of the room, for the bridge's status and account routes."""
        return {
            "round": self.round,
            "rounds": self.task.settings.rounds,
            "finished": self.finished,
            "connected": len(self.members),
            "paused": sorted(m.id for m in self.members.values() if m.paused),
            "idle": sorted(m.id for m in self.members.values() if m.idle),
            "selected": sorted(self.selected),
            "engine_round": self._open.decision.round if self._open else None,
            "after_end_updates": sum(self._after_end.values()),
            "statistics": self.statistics(),
        }

    def zone_for(self, identity: Identity, protocol_id: str) -> str:
        """A client's zone: declared, else mapped by name or id, else the task's default.

        Coordinates and cloud regions are resolved to the provider's zone. A zone the
        provider does not serve, or a client with none of these (``unknown``), is left to
        the engine's ``unknown_zone`` rule (by default the mean intensity of the other
        zones, noted in the decision).
        """
        settings = self.task.settings
        name = identity.name or ""
        for candidate in (
            identity.zone,
            settings.zones.get(name),
            settings.zones.get(protocol_id),
            self.zone_map.get(name),
            self.zone_map.get(protocol_id),
            settings.zone,
        ):
            if candidate:
                try:  # "de", "52.52,13.40" or "aws:eu-central-1" -> the provider's zone id
                    return self._provider.resolve(candidate).zone
                except UnknownZoneError:
                    return candidate
        return "unknown"

    async def locate(self, identity: Identity, protocol_id: str) -> str:
        """The client's zone (see :meth:`zone_for`), found off the event loop.

        A provider may look a location up over HTTP, which would stall every connection.
        """
        return await anyio.to_thread.run_sync(self.zone_for, identity, protocol_id)

    async def wait_past(self, round: int, timeout: float) -> bool:
        """Wait until the server is past ``round`` (or the run is over), ``timeout`` s at most.

        A generation that cannot hold its clients answers them after this, so that each
        client trains once per round instead of racing ahead (and running out of local
        rounds before its turns come). Returns whether the server got past ``round``.
        """
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while self.round <= round and not self.finished:
            left = end - loop.time()
            if left <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._advanced.wait(), left)
        return True

    # -- membership ---------------------------------------------------------------------------

    async def join(self, member: Member) -> None:
        """Add a client (it trains its first local round at once: no decision can hold it).

        Raises:
            ProtocolViolation: If a client with the same id is connected.
        """
        async with self._lock:
            if member.id in self.members:
                raise ProtocolViolation(f"client {member.id!r} is already connected")
            self.members[member.id] = member
            log.info("task %s: %s joined (zone %s)", self.task.id, member.id, member.zone)
            if self._open is None:
                await self._decide()

    async def leave(self, member_id: str) -> None:
        """Remove a client (its buffered update stays in the round; nothing else does)."""
        async with self._lock:
            if self.members.pop(member_id, None) is None:
                return
            self._pending.pop(member_id, None)
            log.info("task %s: %s left", self.task.id, member_id)
            if self._open is not None:
                await self._close_if_done()
            else:
                await self._decide()
            if not self.members:
                await self._book_after_end()

    def _set_paused(self, member: Member, paused: bool) -> None:
        # The one place pause state changes: a second pause before a resume (or a resume
        # of a running client) would break a DISCO client, so equal states send nothing.
        if not member.can_pause or member.paused == paused:
            return
        member.paused = paused
        if paused:
            member.peer.on_pause()
        else:
            member.peer.on_resume()

    def _place(self, member: Member) -> None:
        """Answer a client that waits for the server, or hold it (clients that can be held).

        A waiting client is answered (the current model, after a resume) when the round in
        progress selects it and holds no update of it, or when the run is over; it waits
        on, held, otherwise. Its update in the round in progress is answered when the
        round closes.

        A client is resumed only together with an answer: DISCO's client forgets a pause
        only at the end of its next local round, and a second pause before that makes it
        throw, so a resumed client must train a round before it can be held again.
        """
        if not member.waiting:
            return
        opened = self._open
        if self.finished or (
            opened is not None and member.id in opened.selected and member.id not in opened.buffer
        ):
            self._set_paused(member, False)
            member.waiting = False
            member.peer.on_reply(self.round, self.participants)
        elif opened is None or member.id not in opened.selected:
            self._set_paused(member, True)

    def _place_all(self) -> None:
        for member in self.members.values():
            self._place(member)

    # -- updates ------------------------------------------------------------------------------

    async def submit(self, member_id: str, round: int, weights: list[np.ndarray]) -> Outcome:
        """Judge one update for ``round``.

        Raises:
            ProtocolViolation: For a round ahead of the server's (no client can be there).
        """
        if isinstance(round, bool) or not isinstance(round, int) or round < 0:
            raise ProtocolViolation(f"round must be a non-negative integer, got {round!r}")
        async with self._lock:
            member = self.members.get(member_id)
            if member is None:
                return Outcome.STALE
            if round > self.round:
                raise ProtocolViolation(
                    f"update for round {round}, but the server is at round {self.round}"
                )
            revived, member.idle = member.idle, False
            member.updates += 1
            member.waiting = member.can_pause
            opened = self._open
            if self.finished:
                self._after_end[member_id] += 1
                outcome = Outcome.LATE
            elif round < self.round:
                if opened is None:
                    self._unplaced[member_id] += 1
                else:
                    opened.stale += 1
                    if member_id not in opened.selected:
                        # Trained while left out: its energy was spent outside the
                        # selection, like any excluded update.
                        opened.excluded[member_id] += 1
                outcome = Outcome.STALE
            elif opened is None:
                self._pending[member_id] = weights
                outcome = Outcome.PENDING
            elif member_id not in opened.selected:
                opened.excluded[member_id] += 1
                outcome = Outcome.EXCLUDED
                self._place(member)
                await self._close_if_done()  # perhaps the last left-out update awaited
                return outcome
            else:
                # One update per client and round: a newer one replaces the older (as
                # DISCO's buffer does).
                opened.buffer[member_id] = weights
                outcome = Outcome.ACCEPTED
            self._place(member)
            if outcome is Outcome.ACCEPTED:
                await self._close_if_done()
            elif revived and self._open is None:
                await self._decide()  # a candidate again: perhaps a round can start
            return outcome

    # -- rounds -------------------------------------------------------------------------------

    async def _decide(self) -> None:
        """Open a round if none is open and enough clients are connected (lock held).

        Whatever it decides, every client waiting for the server is then answered or held.
        """
        try:
            await self._open_round()
        finally:
            self._place_all()

    async def _open_round(self) -> None:
        if self._open is not None or self.finished:
            return
        if self._retry is not None and not self._retry.done():
            return
        members = sorted((m for m in self.members.values() if not m.idle), key=lambda m: m.id)
        settings = self.task.settings
        # The quorum gates the start only: clients that are deferred finish their local
        # rounds later than the others, and once those leave, the last ones must still be
        # able to finish (a develop client held for ever never returns).
        needed = settings.quorum if self.round == 0 else 1
        if len(members) < needed:
            return
        k = min(settings.clients_per_round, len(members))
        # In the order of their ids: which client connected first changes nothing.
        candidates = [Client(m.id, m.zone) for m in members]
        try:
            selection = await anyio.to_thread.run_sync(
                self.engines.select, self.task.id, candidates, k
            )
        except LowcarbError as exc:
            log.error(
                "task %s: no decision (%s); retrying in %g s", self.task.id, exc, _RETRY_DECISION_S
            )
            self._retry = asyncio.create_task(self._later(_RETRY_DECISION_S))
            return
        decision = selection.decision
        if not decision.run_now and decision.wait_until is not None:
            # The engine pauses the whole training (a deadline with slack): everyone who
            # waits for the server is held until then.
            delay = (decision.wait_until - decision.decided_at).total_seconds()
            log.info("task %s: %s", self.task.id, decision.reason)
            self._retry = asyncio.create_task(self._later(max(1.0, delay)))
            return
        selected = frozenset(decision.selected)
        opened = self._open = _Open(decision, selected, time.monotonic())
        log.info(
            "task %s: round %d selects %s (%s)",
            self.task.id,
            self.round,
            ", ".join(sorted(selected)),
            decision.reason,
        )
        opened.excluded.update(self._unplaced)
        self._unplaced.clear()
        pending, self._pending = self._pending, {}
        for cid, weights in pending.items():
            if cid in selected:
                opened.buffer[cid] = weights
            else:
                opened.excluded[cid] += 1
        opened.timer = asyncio.create_task(self._timeout(opened))
        await self._close_if_done()

    async def _later(self, delay: float) -> None:
        await asyncio.sleep(delay)
        async with self._lock:
            self._retry = None
            await self._decide()

    async def _timeout(self, opened: _Open) -> None:
        await asyncio.sleep(self.round_timeout)
        async with self._lock:
            if self._open is opened:
                for cid in sorted(opened.selected - set(opened.buffer)):
                    member = self.members.get(cid)
                    if member is not None and not member.idle:
                        member.idle = True
                        log.info("task %s: %s sent nothing this round: idle", self.task.id, cid)
                await self._close("timeout")

    def _laggards(self, opened: _Open) -> list[Member]:
        """Left-out candidates training now that have sent no update this round.

        Clients that cannot be held train every round; a held client trains only its
        first local round (on connecting) outside any selection.
        """
        out = []
        for client in opened.decision.clients:
            member = self.members.get(client.id)
            if (
                member is not None
                and not (member.can_pause and member.waiting)
                and not member.idle
                and client.id not in opened.selected
                and client.id not in opened.excluded
            ):
                out.append(member)
        return out

    async def _close_if_done(self) -> None:
        opened = self._open
        if opened is None:
            return
        waiting = {cid for cid in opened.selected if cid in self.members} - set(opened.buffer)
        if waiting:
            return
        if self._laggards(opened):
            # Left-out clients train this round anyway: wait (a little) for their updates,
            # so that their energy is booked in this round, not lost in the next.
            if opened.laggard_timer is None:
                opened.laggard_timer = asyncio.create_task(self._lag(opened))
            return
        await self._close("complete" if opened.buffer.keys() >= opened.selected else "departures")

    async def _lag(self, opened: _Open) -> None:
        await asyncio.sleep(self.laggard_s)
        async with self._lock:
            if self._open is opened:
                for member in self._laggards(opened):
                    member.idle = True
                    log.info("task %s: %s sent nothing this round: idle", self.task.id, member.id)
                await self._close_if_done()

    async def _close(self, closed_by: str) -> None:
        """Aggregate the round's buffer (or abandon an empty round) and open the next."""
        opened = self._open
        assert opened is not None
        self._open = None
        for timer in (opened.timer, opened.laggard_timer):
            if timer is not None and timer is not asyncio.current_task():
                timer.cancel()
        contributors = tuple(sorted(opened.buffer))
        if contributors:
            stacked = [np.stack(tensors) for tensors in zip(*opened.buffer.values(), strict=True)]
            self.weights = [s.astype(np.float64).mean(axis=0).astype(np.float32) for s in stacked]
            self.round += 1
        record = Aggregate(
            round=self.round,
            engine_round=opened.decision.round,
            selected=tuple(sorted(opened.selected)),
            contributors=contributors,
            excluded=dict(sorted(opened.excluded.items())),
            missing=tuple(sorted(opened.selected - set(contributors))),
            stale=opened.stale,
            closed_by=closed_by if contributors else "abandoned",
            duration_s=round(time.monotonic() - opened.opened, 3),
        )
        if contributors:
            # Round, weights and history change together, before any await: a pull or a
            # statistics request in between would otherwise see half a round.
            self.history.append(record)
            self._save()
            self._advanced.set()
            self._advanced = asyncio.Event()
            if self.finished:
                log.info("task %s: the run's %d rounds are done", self.task.id, self.round)
        await self._account(opened.decision, record)
        # The next round is decided before anyone is answered: a contributor it does not
        # select is held instead of training a round that would be left out.
        await self._decide()

    async def _account(self, decision: Decision, record: Aggregate) -> None:
        """Complete the engine's round with the aggregate and the energy spent outside it."""
        by_id = {c.id: c for c in decision.clients}
        energy_model = self.engines.spec_of(self.task.id).energy
        # Energy is the adapter's to estimate (updates x one round's energy); its carbon
        # is the core's to price. Clients that joined after the decision bring their zone.
        spent: dict[str, float] = {}
        zones: dict[str, str] = {}
        for cid, updates in record.excluded.items():
            known = by_id.get(cid)
            spent[cid] = updates * (known.energy_kwh if known else energy_model.energy_kwh())
            if known is None:
                member = self.members.get(cid)
                zones[cid] = member.zone if member else "unknown"
        metrics = {
            "disco_round": float(record.round),
            "contributors": float(len(record.contributors)),
            "missing": float(len(record.missing)),
            "stale_updates": float(record.stale),
            "excluded_updates": float(sum(record.excluded.values())),
        }

        def complete() -> None:
            with self.engines.session(self.task.id) as engine:
                # Selected clients that sent nothing (left, timed out) did not train:
                # no energy is booked for them, and they keep their fair share.
                engine.complete(
                    decision,
                    metrics=metrics,
                    excluded_energy_kwh=spent,
                    excluded_zones=zones,
                    details={_DETAILS_KEY: record.to_dict()},
                    trained=record.contributors,
                )

        try:
            await anyio.to_thread.run_sync(complete)
        except LowcarbError as exc:
            log.error("task %s: could not complete round %d: %s", self.task.id, decision.round, exc)

    async def _book_after_end(self) -> None:
        """Record the updates sent after the run's last round in that round (lock held).

        They enter no aggregate, yet the clients spent their energy: the last round's
        metrics count them (``after_end_updates``, ``after_end_energy_kwh``, the model's
        estimate) and its details name who sent them.
        """
        counts = self.after_end
        if not counts or counts == self._after_end_booked or not self.history:
            return
        engine_round = self.history[-1].engine_round
        per_update = self.engines.spec_of(self.task.id).energy.energy_kwh()
        metrics = {
            "after_end_updates": float(sum(counts.values())),
            "after_end_energy_kwh": per_update * sum(counts.values()),
        }

        def book() -> None:
            with self.engines.session(self.task.id) as engine:
                engine.complete(engine_round, metrics=metrics, details={_AFTER_END_KEY: counts})

        try:
            await anyio.to_thread.run_sync(book)
        except LowcarbError as exc:
            log.error("task %s: could not record updates after the end: %s", self.task.id, exc)
            return
        self._after_end_booked = counts
        log.info(
            "task %s: %d updates came after the run's last round (%s)",
            self.task.id,
            sum(counts.values()),
            ", ".join(f"{c} {n}" for c, n in counts.items()),
        )

    async def close(self) -> None:
        """Stop the timers and record what came after the end (the engines' owner closes them)."""
        async with self._lock:
            timers = (self._open.timer, self._open.laggard_timer) if self._open else ()
            for task in (self._retry, *timers):
                if task is not None:
                    task.cancel()
            await self._book_after_end()
