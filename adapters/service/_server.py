"""The HTTP server of ``lowcarb serve``: uvicorn, with the limits a network face needs.

uvicorn bounds a request head's size (h11's ``max_incomplete_event_size``) and an idle
keep-alive connection's life, but not how long a client may take to send a request, and
its ``limit_concurrency`` answers 503 from the ``limit``-th connection on, counting the
one it refuses. :func:`protocol_for` subclasses uvicorn's h11 protocol (the class
``uvicorn.run(http=...)`` takes) with three additions:

* a request deadline: a whole request (head and body) must arrive within
  ``request_timeout_s`` of the connection opening or of its previous response; a client
  that sends half a request and waits is answered 408 and closed;
* a connection cap of exactly ``max_connections``: a connection beyond it displaces the
  connection that has waited longest without delivering a whole request (an idle
  keep-alive or a half-sent request), so that clients holding connections open cannot
  lock out others (health checks included); when every connection has a request in
  progress, the newcomer is answered 503 and closed;
* a head larger than ``max_header_bytes`` is answered 431 (uvicorn's h11 limit binds
  only heads that arrive in pieces, and answers a generic 400).
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from lowcarb.adapters.service._app import ServiceConfig

__all__ = ["protocol_for", "serve", "server_config"]


def _raw_response(status: int, reason: str, message: str, **headers: str) -> bytes:
    """A complete HTTP/1.1 response that closes the connection, as bytes."""
    body = json.dumps({"error": message, "field": None}).encode()
    lines = [
        f"HTTP/1.1 {status} {reason}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
        *(f"{k.replace('_', '-')}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def protocol_for(config: ServiceConfig) -> type[H11Protocol]:
    """The h11 protocol class of uvicorn with ``config``'s deadline and connection cap."""
    timeout = float(config.request_timeout_s)
    cap = config.max_connections
    head_limit = config.max_header_bytes

    class GuardedH11Protocol(H11Protocol):
        """One connection, guarded (see the module docstring)."""

        _since: float = 0.0
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()
            if len(self.connections) > cap and not self._displace():
                self.transport.write(
                    _raw_response(
                        503,
                        "Service Unavailable",
                        f"the server holds its maximum of {cap} connections, each with a "
                        "request in progress; retry later",
                        retry_after="1",
                    )
                )
                self._drop()

        def _arm(self) -> None:
            """Start the request deadline (a connection opened, or a response sent)."""
            self._disarm()
            self._since = self.loop.time()
            self._deadline = self.loop.call_later(timeout, self._late)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        @property
        def _waiting(self) -> bool:
            """Whether no whole request has arrived since the deadline was armed."""
            return self.conn.their_state in (h11.IDLE, h11.SEND_BODY)

        def _displace(self) -> bool:
            """Close the longest-waiting connection without a whole request, if any."""
            waiting = [
                c
                for c in self.connections
                if c is not self and isinstance(c, GuardedH11Protocol) and c._waiting
            ]
            if not waiting:
                return False
            oldest = min(waiting, key=lambda c: c._since)
            self.logger.warning(
                "connection limit (%d) reached: closing a connection that sent no whole "
                "request for %.1f s",
                cap,
                self.loop.time() - oldest._since,
            )
            oldest._drop()
            return True

        def _drop(self) -> None:
            self._disarm()
            if not self.transport.is_closing():
                self.transport.close()

        def _late(self) -> None:
            self._deadline = None
            if self.transport.is_closing() or not self._waiting:
                return
            if self.conn.their_state is h11.IDLE and self.conn.trailing_data[0]:
                # Half a request head: say why before closing.
                self.transport.write(
                    _raw_response(
                        408,
                        "Request Timeout",
                        f"the request was not received within {timeout:g} s",
                    )
                )
            # Idle keep-alives are simply closed; a request whose body stalls is closed
            # too, and its handler sees the client gone.
            self._drop()

        def data_received(self, data: bytes) -> None:
            if self.conn.their_state is h11.IDLE:
                # The head must end within head_limit bytes. h11's own limit only binds a
                # head that arrives in pieces, so a large one read at once is caught here.
                pending = self.conn.trailing_data[0] + data
                if len(pending) > head_limit and pending.find(b"\r\n\r\n", 0, head_limit) < 0:
                    self._refuse_head()
                    return
            super().data_received(data)

        def _refuse_head(self) -> None:
            self.transport.write(
                _raw_response(
                    431,
                    "Request Header Fields Too Large",
                    f"the request head is larger than {head_limit} bytes",
                )
            )
            self._drop()

        def handle_events(self) -> None:
            super().handle_events()
            if self._deadline is not None and not self._waiting:
                self._disarm()  # the whole request is in: the handler has its own pace

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def send_400_response(self, msg: str) -> None:
            if len(self.conn.trailing_data[0]) > head_limit:
                self._refuse_head()  # h11 refused a head past its max_incomplete_event_size
                return
            super().send_400_response(msg)

    return GuardedH11Protocol


def server_config(
    app: Starlette,
    config: ServiceConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 8787,
    log_level: str = "info",
    **uvicorn_options: Any,
) -> uvicorn.Config:
    """The uvicorn configuration that runs ``app`` under ``config``'s limits.

    Args:
        app: The service (see :func:`~lowcarb.adapters.service.create_app`).
        config: Its limits (connections, request deadline, head size, keep-alive).
        host: Address to bind.
        port: Port (0 picks a free one).
        log_level: uvicorn's log level.
        **uvicorn_options: Further ``uvicorn.Config`` options (e.g. ``ssl_certfile``).
    """
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        http=protocol_for(config),
        ws="none",  # the service has no WebSocket route
        h11_max_incomplete_event_size=config.max_header_bytes,
        timeout_keep_alive=config.keep_alive_s,
        server_header=False,
        proxy_headers=False,
        **uvicorn_options,
    )


def serve(
    app: Starlette,
    config: ServiceConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 8787,
    log_level: str = "info",
    **uvicorn_options: Any,
) -> None:
    """Run ``app`` with uvicorn until interrupted, under ``config``'s limits.

    Takes the arguments of :func:`server_config`.

    Example:
        >>> from lowcarb import TaskEngines
        >>> from lowcarb.adapters.service import ServiceConfig, create_app, serve
        >>> config = ServiceConfig(max_connections=100)
        >>> serve(create_app(TaskEngines("state"), config), config)  # doctest: +SKIP
    """
    server = uvicorn.Server(
        server_config(app, config, host=host, port=port, log_level=log_level, **uvicorn_options)
    )
    server.run()
    if not server.started:
        # As uvicorn.run does: the address could not be bound (uvicorn logged why).
        raise SystemExit(3)
