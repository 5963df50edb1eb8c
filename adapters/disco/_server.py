"""The bridge's WebSocket server: uvicorn's sans-I/O protocol, with write flow control.

uvicorn's ``websockets-sansio`` protocol writes every frame the application sends
straight into the transport and never waits for a client to read: a client that asks for
the model again and again without reading keeps the server's memory growing. This
subclass (the class ``uvicorn.Config(ws=...)`` takes) pauses the application's sends while
the transport's buffer is above its high-water mark, so that frames wait in the bridge's
bounded per-connection queue (see :class:`~._protocol.Link`), and aborts a connection
whose buffer does not drain within ``write_stall_s``: its memory is released at once.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import sys
from typing import TYPE_CHECKING, Any

import uvicorn
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from lowcarb.adapters.disco._app import BridgeLimits

__all__ = ["bridge_config", "map_large_buffers", "websocket_protocol_for"]

#: glibc's mallopt parameter M_MMAP_THRESHOLD.
_M_MMAP_THRESHOLD = -3


def map_large_buffers(threshold: int = 128 * 1024) -> bool:
    """Have glibc give every buffer of ``threshold`` bytes or more its own mapping.

    glibc raises its mmap threshold each time a mapped block is freed (up to 32 MiB), so
    after a few 16 MiB frames later ones come from the heap and their memory is not
    returned to the system when freed: the bridge's resident size would only grow. A fixed
    threshold keeps frames mapped, and unmapped once freed. No-op (False) without glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, threshold))
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
        return False


def websocket_protocol_for(limits: BridgeLimits) -> type[WebSocketsSansIOProtocol]:
    """The sans-I/O WebSocket protocol of uvicorn, with flow control and a stall limit."""
    stall = float(limits.write_stall_s)

    class BackpressuredWebSocket(WebSocketsSansIOProtocol):
        """One WebSocket connection whose writes wait for the client to read."""

        _stalled: asyncio.TimerHandle | None = None

        def pause_writing(self) -> None:
            # uvicorn's send() waits on this event; its sans-I/O protocol never clears it.
            self.writable.clear()
            if self._stalled is None:
                self._stalled = self.loop.call_later(stall, self._abort)

        def resume_writing(self) -> None:
            self._cancel_stall()
            self.writable.set()

        def _cancel_stall(self) -> None:
            if self._stalled is not None:
                self._stalled.cancel()
                self._stalled = None

        def _abort(self) -> None:
            self._stalled = None
            self.logger.warning(
                "closing a WebSocket whose client read nothing for %g s (%d bytes unsent)",
                stall,
                self.transport.get_write_buffer_size(),
            )
            self.transport.abort()

        def send_receive_event_to_app(self) -> None:
            super().send_receive_event_to_app()
            # The application now holds its own copy of the message: keeping this one for
            # the connection's life would double the memory every large frame costs.
            self.bytes = bytearray()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_stall()
            self.writable.set()  # a send still waiting fails now instead of hanging
            self.bytes = bytearray()
            super().connection_lost(exc)

    return BackpressuredWebSocket


def bridge_config(
    app: Starlette,
    limits: BridgeLimits,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    log_level: str = "info",
    **uvicorn_options: Any,
) -> uvicorn.Config:
    """The uvicorn configuration that serves the bridge under ``limits``.

    Args:
        app: The bridge (see :func:`~lowcarb.adapters.disco.create_app`).
        limits: Its limits (frame size, write stall).
        host: Address to bind.
        port: Port (0 picks a free one).
        log_level: uvicorn's log level.
        **uvicorn_options: Further ``uvicorn.Config`` options.
    """
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        ws=websocket_protocol_for(limits),
        # A frame is read whole (at most this large); uvicorn's sans-I/O protocol reads
        # the next one only once the bridge has taken this one.
        ws_max_size=limits.max_frame_bytes,
        log_level=log_level,
        # DISCO's WebSocket routes carry no Origin check of their own; loopback by default.
        proxy_headers=False,
        **uvicorn_options,
    )
