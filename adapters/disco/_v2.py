"""Protocol generation ``v2``: what ``@epfml/discojs-node@2.1.1`` (npm) speaks.

Frames are msgpack (msgpack-lite on the client) binary WebSocket messages on
``/feai/{taskID}/{clientID}``; the message ``type`` enum has 14 values, of which the
federated client uses clientConnected (0), postWeightsToServer (8),
latestServerRound (11) and pullServerStatistics (13). ``Encoded`` weights are a *list of
byte values* holding msgpack of ``[{shape, data: number[]}]``; the model is served as a
JSON array of the bytes of msgpack(``ModelArtifacts``), with ``weightData`` as msgpack
extension 26.

The client never waits for the server: it posts its weights, then pulls statistics and
the latest round, and each reply must come within 10 s or its training aborts. It has no
message to pause, so a client the engine did not select keeps training; its updates are
left out of the aggregate (and their energy is accounted).

The bridge paces the clients instead: the statistics a client pulls after posting for
the round in progress are answered once that round has closed (within ``pace_s``, under
the client's 10 s), so that every client trains one local round per server round and
adopts each new global model at once. Without it, a client trains as fast as it can:
which updates count then depends on which process started first, and clients left out
early run out of local rounds before their turns come.
"""

from __future__ import annotations

import json
import re
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
    off_loop,
)
from lowcarb.adapters.disco._room import Member, Outcome
from lowcarb.adapters.disco._wire import decode_byte_list, decode_message, decode_weight_blob

if TYPE_CHECKING:
    from lowcarb.adapters.disco._artifacts import ModelArtifacts
    from lowcarb.adapters.disco._room import TaskRoom

__all__ = ["V2"]

CLIENT_CONNECTED = 0
POST_WEIGHTS = 8
POST_METADATA = 9
GET_METADATA_MAP = 10
LATEST_SERVER_ROUND = 11
PULL_SERVER_STATISTICS = 13
_NAMES = {
    0: "clientConnected",
    8: "postWeightsToServer",
    9: "postMetadata",
    10: "getMetadataMap",
    11: "latestServerRound",
    13: "pullServerStatistics",
}
#: msgpack-lite's extension type for ArrayBuffer (ModelArtifacts.weightData).
EXT_ARRAY_BUFFER = 26
_INT32 = (-(2**31), 2**31 - 1)
#: Fields located in a frame but not decoded: weights are decoded on their own, and
#: metadata is never used by training.
_RAW = frozenset({"weights", "metadata", "metadataMap"})
#: Fields of getMetadataMap that the answer repeats.
_ECHOED = ("taskId", "clientId", "round", "metadataId")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", re.I)


def js_numbers(values: np.ndarray) -> list[int | float]:
    """Float32 values as msgpack-lite writes JS numbers: int32-valued ones as integers.

    msgpack-lite encodes a number ``v`` as an integer when ``v === (v | 0)``, else as a
    float64; matching that makes the bridge's blobs byte-identical to DISCO's.
    """
    doubles = values.astype(np.float64).ravel()
    out: list[int | float] = doubles.tolist()
    integral = (doubles == np.trunc(doubles)) & (doubles >= _INT32[0]) & (doubles <= _INT32[1])
    for i in np.flatnonzero(integral).tolist():
        out[i] = int(doubles[i])
    return out


#: First bytes of a msgpack array (fixarray, array 16, array 32).
_ARRAY_HEADS = frozenset([*range(0x90, 0xA0), 0xDC, 0xDD])


class V2(Generation):
    """The v2.1.1 federated protocol (npm ``@epfml/discojs-node@2.1.1``)."""

    name = "v2"
    ws_path = "/feai/{task_id}/{client_id}"
    can_pause = False

    def __init__(self, pace_s: float = 6.0) -> None:
        self.pace_s = pace_s
        self._latest: dict[tuple[str, int], bytes] = {}

    # -- codecs ---------------------------------------------------------------------------

    def decode_frame(self, frame: bytes) -> dict[str, Any]:
        """Decode a client frame; checks the fields of each message type it may send.

        The weights of postWeightsToServer come back as the bytes their list of byte
        values holds (the encoded weights), decoded without a Python object per byte.
        """
        message, raw = decode_message(frame, raw=_RAW)
        kind = message.get("type")
        if isinstance(kind, bool) or kind not in _NAMES:
            raise ProtocolViolation(f"message type {kind!r} is not a federated v2 message")
        if kind == POST_WEIGHTS:
            span, rnd = raw.get("weights"), message.get("round")
            if span is None or span[0] not in _ARRAY_HEADS:
                raise ProtocolViolation("postWeightsToServer needs weights: number[]")
            if isinstance(rnd, bool) or not isinstance(rnd, int):
                raise ProtocolViolation("postWeightsToServer needs an integer round")
            message["weights"] = decode_byte_list(span)
        return message

    def encode_frame(self, message: Mapping[str, Any]) -> bytes:
        """Encode a server message (msgpack-lite reads it)."""
        return bytes(msgpack.packb(message, use_bin_type=True))

    def encode_weights(self, weights: Sequence[np.ndarray]) -> list[int]:
        """``Encoded``: the bytes of msgpack(``[{shape, data}]``) as a list of integers."""
        inner = [{"shape": list(w.shape), "data": js_numbers(np.asarray(w))} for w in weights]
        return list(msgpack.packb(inner, use_bin_type=True))

    def decode_weights(
        self, encoded: Any, expected: Sequence[tuple[int, ...]] | None = None
    ) -> list[np.ndarray]:
        """Weights from a client's encoded weights (bytes, or the list of byte values)."""
        if not isinstance(encoded, bytes):
            try:
                encoded = bytes(encoded)
            except (TypeError, ValueError):
                raise ProtocolViolation(
                    "weights must be a list of byte values", INVALID_PAYLOAD
                ) from None
        return decode_weight_blob(encoded, expected)

    def model_body(self, artifacts: ModelArtifacts) -> tuple[bytes, str]:
        """A JSON array of the bytes of msgpack(ModelArtifacts), as DISCO v2 serves it."""
        packed = msgpack.packb(
            artifacts.to_dict(msgpack.ExtType(EXT_ARRAY_BUFFER, artifacts.data)),
            use_bin_type=True,
        )
        return json.dumps(list(packed), separators=(",", ":")).encode(), "application/json"

    def _latest_frame(self, room: TaskRoom) -> bytes:
        # Every client pulls the same global model after each of its local rounds: encode
        # it once per task and round.
        key = (room.task.id, room.round)
        frame = self._latest.get(key)
        if frame is None:
            self._latest = {k: v for k, v in self._latest.items() if k[0] != key[0]}
            frame = self.encode_frame(
                {
                    "type": LATEST_SERVER_ROUND,
                    "round": room.round,
                    "weights": self.encode_weights(room.weights),
                }
            )
            self._latest[key] = frame
        return frame

    # -- dialogue -------------------------------------------------------------------------

    async def session(
        self, link: Link, room: TaskRoom, identity: Identity, path_id: str | None
    ) -> None:
        """Connect, then answer pulls at once and hand posted weights to the room."""
        if path_id is None or not _UUID.fullmatch(path_id):
            raise ProtocolViolation("the client id in the URL must be a UUID v4")
        first = await link.hello()
        if first is None:
            return
        if first["type"] != CLIENT_CONNECTED:
            raise ProtocolViolation("the first message must be clientConnected (0)")
        member = Member(
            id=identity.name or path_id,
            zone=await room.locate(identity, path_id),
            peer=_Silent(),
            can_pause=False,
        )
        await room.join(member)
        posted: int | None = None  # the round of its last update, while that round is open
        try:
            link.send({"type": CLIENT_CONNECTED})
            while (message := await link.receive()) is not None:
                kind = message["type"]
                if kind == POST_WEIGHTS:
                    blob = message["weights"]
                    weights = await off_loop(
                        link.decoders, len(blob), self.decode_weights, blob, room.shapes
                    )
                    outcome = await room.submit(member.id, message["round"], weights)
                    paced = (Outcome.ACCEPTED, Outcome.EXCLUDED, Outcome.PENDING)
                    posted = message["round"] if outcome in paced else None
                elif kind == PULL_SERVER_STATISTICS:
                    if posted is not None:
                        # The client pulls statistics right after posting: answered once
                        # the round closes, it then adopts the new model and round.
                        await room.wait_past(posted, self.pace_s)
                        posted = None
                    link.send({"type": PULL_SERVER_STATISTICS, "statistics": room.statistics()})
                elif kind == LATEST_SERVER_ROUND:
                    link.send_frame(self._latest_frame(room))
                elif kind == GET_METADATA_MAP:
                    # Metadata is never used by training: an empty map, and of the request
                    # only its short identifying fields (never an echo of what it carried).
                    echoed = {
                        k: message[k]
                        for k in _ECHOED
                        if isinstance(message.get(k), int | str) and len(str(message[k])) <= 256
                    }
                    link.send({"type": GET_METADATA_MAP, **echoed, "metadataMap": []})
                elif kind == CLIENT_CONNECTED:
                    raise ProtocolViolation("clientConnected sent twice")
                # postMetadata: accepted and ignored, as training never reads it back.
        finally:
            await room.leave(member.id)


class _Silent:
    """v2 clients cannot be paused or pushed to: they pull."""

    def on_pause(self) -> None:
        """Nothing to send."""

    def on_resume(self) -> None:
        """Nothing to send."""

    def on_reply(self, round: int, participants: int) -> None:
        """Nothing to send."""
