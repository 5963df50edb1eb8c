"""What every protocol generation implements, and what they share.

A :class:`Generation` owns the wire: the WebSocket route, the frame codec, the weight and
model encodings and the message sequence of one DISCO protocol generation. It talks to
the shared :class:`~lowcarb.adapters.disco._room.TaskRoom` (selection, aggregation,
accounting) through a :class:`Link` (one connection) and the :class:`Peer` callbacks the
room uses to pause, resume or answer a client.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import msgpack  # type: ignore[import-untyped]  # no stubs or py.typed
import numpy as np

if TYPE_CHECKING:
    from starlette.websockets import WebSocket

    from lowcarb.adapters.disco._artifacts import ModelArtifacts
    from lowcarb.adapters.disco._room import TaskRoom

__all__ = [
    "Generation",
    "Identity",
    "Link",
    "Peer",
    "ProtocolViolation",
    "check_name",
    "decode_tensors",
    "new_id",
]

#: WebSocket close codes (RFC 6455) the bridge uses.
POLICY_VIOLATION = 1008
UNSUPPORTED_DATA = 1003
INVALID_PAYLOAD = 1007
TOO_BIG = 1009
TRY_AGAIN_LATER = 1013

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}")
# Zone ids, cloud regions (aws:eu-central-1) and coordinates (52.52,13.40).
_ZONE = re.compile(r"[A-Za-z0-9+-][A-Za-z0-9._:,+-]{0,63}")


class ProtocolViolation(Exception):
    """A client broke the protocol: its connection is closed with ``code`` and ``reason``.

    Attributes:
        code: The WebSocket close code.
        reason: Why, short enough for a close frame (123 bytes).
    """

    def __init__(self, reason: str, code: int = POLICY_VIOLATION) -> None:
        self.code = code
        self.reason = reason.encode("utf-8")[:123].decode("utf-8", "ignore")
        super().__init__(self.reason)


def unpack(data: bytes, what: str = "msgpack") -> Any:
    """Decode msgpack from a client; ``what`` names it in the error.

    Raises:
        ProtocolViolation: For malformed msgpack.
    """
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types on bad input
        raise ProtocolViolation(f"malformed {what}: {exc}", INVALID_PAYLOAD) from None


def unpack_map(frame: bytes) -> dict[str, Any]:
    """Decode one msgpack frame that must hold a map (every DISCO message is one).

    Raises:
        ProtocolViolation: For malformed msgpack or anything but a map.
    """
    message = unpack(frame)
    if not isinstance(message, dict):
        raise ProtocolViolation("a message must be a map", INVALID_PAYLOAD)
    return message


def check_name(value: str, what: str) -> str:
    """Return a client name or zone string if it is short and plain, else raise."""
    if what == "zone":
        if not _ZONE.fullmatch(value):
            raise ProtocolViolation(
                f"zone {value[:40]!r} is invalid: a zone id, cloud:region or LAT,LON"
            )
    elif not _NAME.fullmatch(value):
        raise ProtocolViolation(
            f"{what} {value[:40]!r} is invalid: 1-64 letters, digits or . _ : @ -"
        )
    return value


@dataclass(frozen=True)
class Identity:
    """Who a connection says it is, from its URL and headers.

    Attributes:
        name: A stable client name (``?client=`` or ``X-Lowcarb-Client``), or None.
        zone: The zone it declares (``?zone=`` or ``X-Lowcarb-Zone``), or None.
    """

    name: str | None = None
    zone: str | None = None


class Peer(Protocol):
    """How the room reaches one connected client (no-ops for generations that cannot)."""

    def on_pause(self) -> None:
        """Hold the client before its next update."""

    def on_resume(self) -> None:
        """Release a held client."""

    def on_reply(self, round: int, participants: int) -> None:
        """Send the global model of ``round`` to a client waiting for it."""


def decode_tensors(
    items: Any, data_of: Any, expected: Sequence[tuple[int, ...]] | None = None
) -> list[np.ndarray]:
    """Turn ``[{shape, data}, ...]`` into float32 arrays, checking every field.

    Args:
        items: The decoded list.
        data_of: Converts one ``data`` field into a float32 vector (generation-specific).
        expected: Shapes the tensors must have, when known.

    Raises:
        ProtocolViolation: For a wrong structure, size, shape or non-finite value.
    """
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ProtocolViolation("weights must be a list of {shape, data}", INVALID_PAYLOAD)
    if expected is not None and len(items) != len(expected):
        raise ProtocolViolation(
            f"weights hold {len(items)} tensors, the model has {len(expected)}", INVALID_PAYLOAD
        )
    out = []
    for i, item in enumerate(items):
        shape = item.get("shape")
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**31 for d in shape
        ):
            raise ProtocolViolation(f"tensor {i}: bad shape", INVALID_PAYLOAD)
        vector = data_of(item.get("data"), i)
        if vector.size != int(np.prod(shape, dtype=np.int64)):
            raise ProtocolViolation(
                f"tensor {i}: {vector.size} values for shape {shape}", INVALID_PAYLOAD
            )
        if expected is not None and tuple(shape) != tuple(expected[i]):
            raise ProtocolViolation(
                f"tensor {i} has shape {shape}, the model's is {list(expected[i])}",
                INVALID_PAYLOAD,
            )
        if not np.isfinite(vector).all():
            raise ProtocolViolation(f"tensor {i} holds NaN or infinity", INVALID_PAYLOAD)
        out.append(vector.reshape(shape))
    return out


def new_id() -> str:
    """A fresh client id (UUID v4), as DISCO servers assign."""
    return str(uuid.uuid4())


class Link:
    """One client connection: bounded binary frames in, an ordered queue of frames out.

    Args:
        websocket: The accepted Starlette WebSocket.
        generation: Decodes the frames.
        max_frame: Largest frame accepted (bytes).
        hello_timeout: Seconds a new connection has to send its first message.
    """

    def __init__(
        self,
        websocket: WebSocket,
        generation: Generation,
        *,
        max_frame: int,
        hello_timeout: float,
    ) -> None:
        self.websocket = websocket
        self.generation = generation
        self.max_frame = max_frame
        self.hello_timeout = hello_timeout
        self._out: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None

    async def receive(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next decoded message, or None once the client has gone.

        Raises:
            ProtocolViolation: For a text frame, an oversized frame, malformed msgpack, a
                message the generation does not accept, or no message within ``timeout``.
        """
        try:
            async with asyncio.timeout(timeout):
                message = await self.websocket.receive()
        except TimeoutError:
            raise ProtocolViolation(f"no message within {timeout:g} s") from None
        if message["type"] == "websocket.disconnect":
            return None
        frame = message.get("bytes")
        if frame is None:
            raise ProtocolViolation("DISCO frames are binary msgpack, not text", UNSUPPORTED_DATA)
        if len(frame) > self.max_frame:
            raise ProtocolViolation(
                f"frame of {len(frame)} bytes exceeds the limit of {self.max_frame}", TOO_BIG
            )
        return self.generation.decode_frame(frame)

    async def hello(self) -> dict[str, Any] | None:
        """The first message, which must come within ``hello_timeout`` seconds."""
        return await self.receive(timeout=self.hello_timeout)

    def send(self, message: Mapping[str, Any]) -> None:
        """Queue a message (sent in order by the writer; never blocks the room)."""
        self.send_frame(self.generation.encode_frame(message))

    def send_frame(self, frame: bytes) -> None:
        """Queue an already encoded frame."""
        self._out.put_nowait(frame)

    async def _write(self) -> None:
        while (frame := await self._out.get()) is not None:
            await self.websocket.send_bytes(frame)

    def start(self) -> None:
        """Start the writer."""
        self._writer = asyncio.create_task(self._write())

    async def stop(self) -> None:
        """Flush the queued frames (best effort), then stop the writer."""
        if self._writer is None:
            return
        self._out.put_nowait(None)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._writer, timeout=5.0)
        self._writer.cancel()


class Generation(ABC):
    """One DISCO protocol generation: routes, codecs and the per-connection dialogue."""

    #: Name used on the command line (``--protocol``).
    name: ClassVar[str]
    #: The WebSocket route (Starlette path syntax).
    ws_path: ClassVar[str]
    #: Whether a client can be held between rounds.
    can_pause: ClassVar[bool]

    @abstractmethod
    def decode_frame(self, frame: bytes) -> dict[str, Any]:
        """Decode and validate one client frame.

        Raises:
            ProtocolViolation: For malformed msgpack or a message this server does not take.
        """

    @abstractmethod
    def encode_frame(self, message: Mapping[str, Any]) -> bytes:
        """Encode one server message."""

    @abstractmethod
    def encode_weights(self, weights: Sequence[np.ndarray]) -> Any:
        """Weights as the generation's ``Encoded`` value inside a message."""

    @abstractmethod
    def decode_weights(
        self, encoded: Any, expected: Sequence[tuple[int, ...]] | None = None
    ) -> list[np.ndarray]:
        """Weights from a client's ``Encoded`` value.

        Raises:
            ProtocolViolation: If they cannot be decoded or do not fit the model.
        """

    @abstractmethod
    def model_body(self, artifacts: ModelArtifacts) -> tuple[bytes, str]:
        """The body and media type of ``GET /tasks/{id}/model.json``."""

    @abstractmethod
    async def session(
        self, link: Link, room: TaskRoom, identity: Identity, path_id: str | None
    ) -> None:
        """Run one client's dialogue until it leaves.

        Raises:
            ProtocolViolation: To close the connection with a reason.
        """
