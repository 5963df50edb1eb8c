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
import gc
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

import anyio
import anyio.to_thread
import numpy as np

if TYPE_CHECKING:
    from starlette.websockets import WebSocket

    from lowcarb.adapters.disco._artifacts import ModelArtifacts
    from lowcarb.adapters.disco._room import TaskRoom

__all__ = [
    "OFFLOAD_BYTES",
    "Generation",
    "Identity",
    "Janitor",
    "Link",
    "Peer",
    "ProtocolViolation",
    "check_name",
    "forget",
    "new_id",
    "off_loop",
]

T = TypeVar("T")

#: Frames (or weights) larger than this are decoded in a worker thread (bytes).
OFFLOAD_BYTES = 64 * 1024

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


def new_id() -> str:
    """A fresh client id (UUID v4), as DISCO servers assign."""
    return str(uuid.uuid4())


def forget(exc: BaseException) -> BaseException:
    """``exc`` without the tracebacks of its chain, returned for raising again.

    An error raised while decoding a frame keeps, through its traceback's frames, the
    frame's bytes alive; and an error passed through a future (a worker thread) sits in a
    reference cycle that only the garbage collector breaks, which large buffers do not
    prompt. Clearing the tracebacks frees a refused 16 MiB frame at once.
    """
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        link.__traceback__ = None
        link = link.__cause__ or link.__context__
    return exc


class Janitor:
    """Reclaims the memory of closed connections that carried large frames, promptly.

    A closed connection's objects (uvicorn's protocol and its transport, the WebSocket
    parser holding the last frame) form reference cycles, which only Python's cyclic
    garbage collector frees, and it counts objects, not bytes: a few closed 16 MiB frames
    would otherwise stay in memory for as long as nothing else prompts a collection. After
    such a connection closes, one full collection runs within ``delay_s`` seconds (tens of
    milliseconds; several closings share one).

    Args:
        delay_s: Seconds to gather closings before collecting.
    """

    def __init__(self, delay_s: float = 1.0) -> None:
        self.delay_s = delay_s
        self._pending: asyncio.TimerHandle | None = None

    def closed(self, link: Link) -> None:
        """Note a closed connection; collect soon if it carried a large frame."""
        if link.large_frames and self._pending is None:
            self._pending = asyncio.get_running_loop().call_later(self.delay_s, self._collect)

    def _collect(self) -> None:
        self._pending = None
        gc.collect()


async def off_loop(
    limiter: anyio.CapacityLimiter, size: int, work: Callable[..., T], *args: Any
) -> T:
    """Run ``work(*args)`` at once, or in a worker thread when the input is large.

    Args:
        limiter: Bounds the worker threads decoding at once (one per bridge).
        size: Bytes to decode; above :data:`OFFLOAD_BYTES` the work leaves the event loop.
        work: The decoder.
        *args: Its arguments.
    """
    if size <= OFFLOAD_BYTES:
        return work(*args)
    return await anyio.to_thread.run_sync(work, *args, limiter=limiter)


class Link:
    """One client connection: bounded frames in, a bounded queue of frames out.

    Args:
        websocket: The accepted Starlette WebSocket.
        generation: Decodes the frames.
        max_frame: Largest frame accepted (bytes).
        hello_timeout: Seconds a new connection has to send its first message.
        max_queued: Bytes that may wait to be sent; a client that lets more pile up
            (it sends requests and does not read the answers) is disconnected.
        decoders: Bounds the worker threads that decode large frames (one per bridge).
    """

    def __init__(
        self,
        websocket: WebSocket,
        generation: Generation,
        *,
        max_frame: int,
        hello_timeout: float,
        max_queued: int = 64 * 2**20,
        decoders: anyio.CapacityLimiter | None = None,
    ) -> None:
        self.websocket = websocket
        self.generation = generation
        self.max_frame = max_frame
        self.hello_timeout = hello_timeout
        self.max_queued = max_queued
        self.decoders = decoders or anyio.CapacityLimiter(1)
        self._out: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._queued = 0  # bytes in _out
        self._overrun = False
        self._waiting: asyncio.Timeout | None = None  # the receive in progress, if any
        self._writer: asyncio.Task[None] | None = None
        #: Frames of more than OFFLOAD_BYTES received (see :class:`Janitor`).
        self.large_frames = 0

    def _check_overrun(self) -> None:
        if self._overrun:
            raise ProtocolViolation(
                f"the client does not read its answers ({self._queued} bytes wait to be "
                f"sent, the limit is {self.max_queued})",
                TRY_AGAIN_LATER,
            )

    async def receive(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next decoded message, or None once the client has gone.

        Large frames are decoded in a worker thread.

        Raises:
            ProtocolViolation: For a text frame, an oversized frame, malformed msgpack, a
                message the generation does not accept, no message within ``timeout``,
                or a client that lets its answers pile up unread.
        """
        self._check_overrun()
        try:
            async with asyncio.timeout(timeout) as waiting:
                self._waiting = waiting
                try:
                    message = await self.websocket.receive()
                finally:
                    self._waiting = None
        except TimeoutError:
            self._check_overrun()  # send_frame ends the wait early on an overrun
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
        self.large_frames += len(frame) > OFFLOAD_BYTES
        try:
            return await off_loop(self.decoders, len(frame), self.generation.decode_frame, frame)
        except ProtocolViolation as exc:
            raise forget(exc) from None

    async def hello(self) -> dict[str, Any] | None:
        """The first message, which must come within ``hello_timeout`` seconds."""
        return await self.receive(timeout=self.hello_timeout)

    def send(self, message: Mapping[str, Any]) -> None:
        """Queue a message (sent in order by the writer; never blocks the room)."""
        self.send_frame(self.generation.encode_frame(message))

    def send_frame(self, frame: bytes) -> None:
        """Queue an already encoded frame, or mark the client overrun past ``max_queued``."""
        if self._overrun:
            return
        if self._queued + len(frame) > self.max_queued:
            self._overrun = True
            if self._waiting is not None:
                # Wake the session's receive now, so that it closes the connection.
                self._waiting.reschedule(asyncio.get_running_loop().time())
            return
        self._queued += len(frame)
        self._out.put_nowait(frame)

    async def _write(self) -> None:
        while (frame := await self._out.get()) is not None:
            # Waits while the transport's buffer is full (see BackpressuredWebSocket).
            await self.websocket.send_bytes(frame)
            self._queued -= len(frame)

    def start(self) -> None:
        """Start the writer."""
        self._writer = asyncio.create_task(self._write())

    async def stop(self) -> None:
        """Flush the queued frames (best effort, 5 s at most), then stop the writer."""
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
