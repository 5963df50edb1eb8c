"""Protocol generation ``develop``: DISCO's federated protocol as of October 2024.

Frames are msgpack (``@msgpack/msgpack`` on the client) on ``/federated/{taskID}``; the
server assigns each client's id. ``Encoded`` weights are msgpack *bin* holding msgpack of
``[{shape, data}]`` with ``data`` as extension 0x17 (raw little-endian float32); the
model is served as raw msgpack ``[0, ModelArtifacts]`` with ``weightData`` as extension
0x1A.

The client waits for the server: after each local round it sends ``SendPayload`` and
waits, without a deadline, for ``ReceiveServerPayload``; it trains its next local round
only once answered. The bridge answers a client only when a round selects it (see
:class:`~lowcarb.adapters.disco._room.TaskRoom`); until then it is told to wait
(``WaitingForMoreParticipants``: the client reports "not enough participants") and, when
selected, released (``EnoughParticipants``) and answered with the current model. The
welcome never asks a client to wait: DISCO's client trains its first local round on
connecting whatever the welcome says, and is held once it has sent it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import msgpack  # type: ignore[import-untyped]  # no stubs or py.typed
import numpy as np

from lowcarb.adapters.disco._protocol import (
    INVALID_PAYLOAD,
    Generation,
    Identity,
    Link,
    ProtocolViolation,
    new_id,
    off_loop,
)
from lowcarb.adapters.disco._room import Member
from lowcarb.adapters.disco._wire import decode_message, decode_weight_blob

if TYPE_CHECKING:
    from lowcarb.adapters.disco._artifacts import ModelArtifacts
    from lowcarb.adapters.disco._room import TaskRoom

__all__ = ["Develop"]

CLIENT_CONNECTED = 0
NEW_FEDERATED_NODE_INFO = 7
WAITING_FOR_MORE_PARTICIPANTS = 8
ENOUGH_PARTICIPANTS = 9
SEND_PAYLOAD = 10
RECEIVE_SERVER_PAYLOAD = 11
#: Extension types of DISCO's coder (taken from msgpack-lite's table).
EXT_FLOAT32_ARRAY = 0x17
EXT_ARRAY_BUFFER = 0x1A
#: The model type tag of a TF.js model in ``[type, artifacts]``.
MODEL_TFJS = 0


class Develop(Generation):
    """The develop (October 2024) federated protocol, with pause and resume."""

    name = "develop"
    ws_path = "/federated/{task_id}"
    can_pause = True

    def decode_frame(self, frame: bytes) -> dict[str, Any]:
        """Decode a client frame: ClientConnected or SendPayload."""
        message, _ = decode_message(frame)
        kind = message.get("type")
        if isinstance(kind, bool) or kind not in (CLIENT_CONNECTED, SEND_PAYLOAD):
            raise ProtocolViolation(f"message type {kind!r} is not one a federated client sends")
        if kind == SEND_PAYLOAD:
            rnd = message.get("round")
            if not isinstance(message.get("payload"), bytes):
                raise ProtocolViolation("SendPayload needs a binary payload")
            if isinstance(rnd, bool) or not isinstance(rnd, int):
                raise ProtocolViolation("SendPayload needs an integer round")
        return message

    def encode_frame(self, message: Mapping[str, Any]) -> bytes:
        """Encode a server message."""
        return bytes(msgpack.packb(message, use_bin_type=True))

    def encode_weights(self, weights: Sequence[np.ndarray]) -> bytes:
        """``Encoded``: msgpack of ``[{shape, data: Float32Array}]``."""
        inner = [
            {
                "shape": list(w.shape),
                "data": msgpack.ExtType(EXT_FLOAT32_ARRAY, np.asarray(w, dtype="<f4").tobytes()),
            }
            for w in weights
        ]
        return bytes(msgpack.packb(inner, use_bin_type=True))

    def decode_weights(
        self, encoded: Any, expected: Sequence[tuple[int, ...]] | None = None
    ) -> list[np.ndarray]:
        """Weights from a client's payload bytes."""
        if not isinstance(encoded, bytes):
            raise ProtocolViolation("weights must be binary", INVALID_PAYLOAD)
        return decode_weight_blob(encoded, expected, ext_code=EXT_FLOAT32_ARRAY)

    def model_body(self, artifacts: ModelArtifacts) -> tuple[bytes, str]:
        """Raw msgpack ``[0, ModelArtifacts]``."""
        body = msgpack.packb(
            [MODEL_TFJS, artifacts.to_dict(msgpack.ExtType(EXT_ARRAY_BUFFER, artifacts.data))],
            use_bin_type=True,
        )
        return bytes(body), "application/octet-stream"

    def reply(self, room: TaskRoom, round: int, participants: int) -> dict[str, Any]:
        """``ReceiveServerPayload`` with the current global model."""
        return {
            "type": RECEIVE_SERVER_PAYLOAD,
            "payload": self.encode_weights(room.weights),
            "round": round,
            "nbOfParticipants": participants,
        }

    async def session(
        self, link: Link, room: TaskRoom, identity: Identity, path_id: str | None
    ) -> None:
        """Welcome the client, then hand each payload to the room, which answers or holds it."""
        first = await link.hello()
        if first is None:
            return
        if first["type"] != CLIENT_CONNECTED:
            raise ProtocolViolation("the first message must be ClientConnected (0)")
        client_id = new_id()
        member = Member(
            id=identity.name or client_id,
            zone=await room.locate(identity, client_id),
            peer=_Pushing(self, link, room),
            can_pause=True,
        )
        await room.join(member)
        try:
            # Sent before any pause or answer can be queued (no await since join).
            link.send(
                {
                    "type": NEW_FEDERATED_NODE_INFO,
                    "id": member.id,
                    "waitForMoreParticipants": False,
                    "payload": self.encode_weights(room.weights),
                    "round": room.round,
                    "nbOfParticipants": max(1, len(room.members)),
                }
            )
            while (message := await link.receive()) is not None:
                if message["type"] == CLIENT_CONNECTED:
                    raise ProtocolViolation("ClientConnected sent twice")
                payload = message["payload"]
                weights = await off_loop(
                    link.decoders, len(payload), self.decode_weights, payload, room.shapes
                )
                # The room answers (now, or once a round selects the client) or holds it.
                await room.submit(member.id, message["round"], weights)
        finally:
            await room.leave(member.id)


class _Pushing:
    """Reaches a develop client: pause, resume and the aggregate it waits for."""

    def __init__(self, generation: Develop, link: Link, room: TaskRoom) -> None:
        self.generation, self.link, self.room = generation, link, room

    def on_pause(self) -> None:
        """WaitingForMoreParticipants."""
        self.link.send({"type": WAITING_FOR_MORE_PARTICIPANTS})

    def on_resume(self) -> None:
        """EnoughParticipants."""
        self.link.send({"type": ENOUGH_PARTICIPANTS})

    def on_reply(self, round: int, participants: int) -> None:
        """ReceiveServerPayload with the model of ``round``."""
        self.link.send(self.generation.reply(self.room, round, participants))
