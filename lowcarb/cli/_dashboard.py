"""``lowcarb dashboard``: watch a training live, from its ledger or its server's state folder."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Annotated

import typer

from lowcarb._extras import missing_extra
from lowcarb.cli._app import app, err, is_loopback
from lowcarb.cli._serve import read_token
from lowcarb.exceptions import ConfigurationError, InvalidInputError

__all__ = ["dashboard_command"]


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket (port 0 picks a free one, so the address printed is the real one)."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise InvalidInputError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    return sock


@app.command("dashboard")
def dashboard_command(
    path: Annotated[
        Path,
        typer.Argument(
            metavar="LEDGER_OR_STATE_DIR",
            help="A ledger file, or the --state-dir of lowcarb serve or lowcarb disco serve.",
            show_default=False,
        ),
    ],
    host: Annotated[
        str, typer.Option("--host", metavar="ADDR", help="Address to bind (loopback by default).")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port (0 picks a free one).")
    ] = 8788,
    allow_remote: Annotated[
        bool,
        typer.Option("--allow-remote", help="Allow binding an address other than loopback."),
    ] = False,
    token_env: Annotated[
        str | None,
        typer.Option(
            "--token-env",
            metavar="VAR",
            help="Require 'Authorization: Bearer <token>' for the data, the token read from "
            "$VAR or the file named by $VAR_FILE (the page asks for it).",
        ),
    ] = None,
    poll_seconds: Annotated[
        float, typer.Option("--poll-seconds", min=0.2, max=3600, help="How often the page updates.")
    ] = 2.0,
) -> None:
    """Serve a live dashboard of every task: decisions, emissions against random, fairness."""
    if not is_loopback(host) and not allow_remote:
        raise ConfigurationError(
            f"--host {host} would accept connections from other machines; add --allow-remote "
            "(and --token-env) to do so on purpose"
        )
    try:
        import uvicorn
        from starlette.applications import Starlette  # noqa: F401
    except ImportError as exc:
        raise missing_extra("lowcarb dashboard", "disco", exc) from None
    from lowcarb.report import PathSource, dashboard_app

    source = PathSource(path)
    source.tasks()  # a file that is not a ledger stops here, with its reason
    token = read_token(token_env) if token_env else None
    app_ = dashboard_app(source, token=token, poll_seconds=poll_seconds)
    sock = _listen(host, port)
    address = sock.getsockname()
    shown = f"[{address[0]}]" if sock.family == socket.AF_INET6 else address[0]
    auth = "bearer token required" if token else "no authentication"
    err.print(
        f"lowcarb dashboard: http://{shown}:{address[1]}/ (reading {source.label}; {auth})",
        markup=False,
    )
    if not is_loopback(host) and token is None:
        err.print("warning: listening beyond loopback without a token", markup=False)
    server = uvicorn.Server(
        uvicorn.Config(app_, log_level="warning", server_header=False, proxy_headers=False)
    )
    server.run(sockets=[sock])
