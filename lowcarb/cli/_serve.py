"""``lowcarb serve``: the selection service over HTTP/JSON (Starlette + uvicorn)."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from lowcarb import DEFAULT_ROUND_TIME, read_text_file
from lowcarb._extras import missing_extra
from lowcarb._files import MAX_SECRET_BYTES
from lowcarb.cli._app import OptionOpt, ProviderOpt, app, err, is_loopback, load_settings_for, state
from lowcarb.exceptions import ConfigurationError, InvalidInputError

__all__ = ["read_token"]

#: The levels uvicorn's ``--log-level`` knows.
_LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


def read_token(var: str, environ: dict[str, str] | None = None) -> str:
    """Read the service token from ``$VAR``, or from the file named by ``$VAR_FILE``.

    Raises:
        ConfigurationError: If neither is set, the file is unreadable or empty, or
            ``VAR`` is in the ``LOWCARB_`` namespace (reserved for settings).
    """
    env = dict(os.environ if environ is None else environ)
    if var.upper().startswith("LOWCARB_"):
        raise ConfigurationError(
            f"--token-env {var}: LOWCARB_* variables are settings; name another variable, "
            "e.g. --token-env SERVICE_TOKEN"
        )
    if env.get(var, "").strip():
        return env[var].strip()
    path = env.get(var + "_FILE", "").strip()
    if not path:
        raise ConfigurationError(f"--token-env {var}: set {var} or {var}_FILE (a file holding it)")
    token = read_text_file(
        Path(path).expanduser(), what=f"{var}_FILE: the file", max_bytes=MAX_SECRET_BYTES
    ).strip()
    if not token:
        raise ConfigurationError(f"{var}_FILE names {path}, which is empty")
    return token


@app.command("serve")
def serve_command(
    host: Annotated[
        str, typer.Option("--host", metavar="ADDR", help="Address to bind (loopback by default).")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port (0 picks a free one).")
    ] = 8787,
    state_dir: Annotated[
        Path | None,
        typer.Option(
            "--state-dir",
            metavar="DIR",
            help="Keep each task's ledger here, so a restart continues every task "
            "(default: in memory, lost on exit).",
        ),
    ] = None,
    token_env: Annotated[
        str | None,
        typer.Option(
            "--token-env",
            metavar="VAR",
            help="Require 'Authorization: Bearer <token>', the token read from $VAR or "
            "the file named by $VAR_FILE.",
        ),
    ] = None,
    allow_remote: Annotated[
        bool,
        typer.Option("--allow-remote", help="Allow binding an address other than loopback."),
    ] = False,
    provider: ProviderOpt = None,
    option: OptionOpt = None,
    policy: Annotated[str, typer.Option("--policy", help="Selection policy.")] = "lowcarb",
    rounds: Annotated[
        int | None,
        typer.Option("--rounds", min=1, metavar="R", help="Rounds of each training (fair shares)."),
    ] = None,
    fairness: Annotated[
        float, typer.Option("--fairness", metavar="F", help="1 = fair shares within 1; 0 = greedy.")
    ] = 1.0,
    round_minutes: Annotated[
        int,
        typer.Option(
            "--round-minutes",
            min=1,
            metavar="M",
            help="Time between rounds, and how long a client trains in one (energy model).",
        ),
    ] = int(DEFAULT_ROUND_TIME / timedelta(minutes=1)),
    unknown_zone: Annotated[
        str,
        typer.Option(
            "--unknown-zone", help="Zones without a signal: 'mean' of the others, or 'error'."
        ),
    ] = "mean",
    max_body_bytes: Annotated[
        int, typer.Option("--max-body-bytes", min=1, metavar="N", help="Largest request body.")
    ] = 1 << 20,
    max_candidates: Annotated[
        int, typer.Option("--max-candidates", min=1, metavar="N", help="Most candidates a request.")
    ] = 10_000,
    max_connections: Annotated[
        int,
        typer.Option(
            "--max-connections",
            min=1,
            metavar="N",
            help="Open connections; one more displaces the longest-waiting connection "
            "without a whole request, or gets 503 when all have requests in progress.",
        ),
    ] = 200,
    request_timeout: Annotated[
        float,
        typer.Option(
            "--request-timeout",
            min=0.1,
            max=3600,
            metavar="S",
            help="Seconds a client has to send a whole request (else 408).",
        ),
    ] = 10.0,
    max_header_bytes: Annotated[
        int,
        typer.Option(
            "--max-header-bytes", min=1024, metavar="N", help="Largest request head (else 431)."
        ),
    ] = 16 * 1024,
    max_tasks: Annotated[
        int,
        typer.Option(
            "--max-tasks", min=1, metavar="N", help="Most tasks; a new one past it gets 403."
        ),
    ] = 10_000,
    provider_timeout: Annotated[
        float,
        typer.Option(
            "--provider-timeout",
            min=0.1,
            max=3600,
            metavar="S",
            help="Seconds a provider call may take before the next provider answers.",
        ),
    ] = 10.0,
    log_level: Annotated[
        str, typer.Option("--log-level", help="uvicorn log level (info shows each request).")
    ] = "info",
) -> None:
    """Serve the selection engine over HTTP/JSON (see docs/service.md)."""
    if not is_loopback(host) and not allow_remote:
        raise ConfigurationError(
            f"--host {host} would accept connections from other machines; add --allow-remote "
            "(and --token-env) to do so on purpose"
        )
    if log_level.lower() not in _LOG_LEVELS:
        raise InvalidInputError(f"--log-level {log_level!r}: use {', '.join(_LOG_LEVELS)}")
    try:
        from lowcarb.adapters.service import ServiceConfig, create_app, serve
    except ImportError as exc:
        raise missing_extra("lowcarb serve", "disco", exc) from None
    from lowcarb import EnergyModel, EngineSpec, TaskEngines

    token = read_token(token_env) if token_env else None
    config = ServiceConfig(
        token=token,
        max_body_bytes=max_body_bytes,
        max_candidates=max_candidates,
        max_connections=max_connections,
        request_timeout_s=request_timeout,
        max_header_bytes=max_header_bytes,
    )
    # The spec is validated here, so a bad policy or fairness stops the command at once
    # instead of failing every request later.
    spec = EngineSpec.from_settings(
        load_settings_for(provider, option),
        policy=policy,
        rounds=rounds,
        fairness=fairness,
        round_interval=timedelta(minutes=round_minutes),
        # A client trains through its round, as in `lowcarb simulate`.
        energy=EnergyModel(round_time=timedelta(minutes=round_minutes)),
        unknown_zone=unknown_zone,
    )
    clock = state.clock()
    # Locks the state directory: a second server on it stops here, naming the first.
    engines = TaskEngines(
        state_dir,
        spec=spec,
        clock=clock,
        max_tasks=max_tasks,
        provider_timeout_s=provider_timeout,
    )
    try:
        where = f"task state in {state_dir}" if state_dir else "task state in memory (lost on exit)"
        auth = "bearer token required" if token else "no authentication"
        err.print(f"lowcarb serve: provider {engines.provider.name}; {where}; {auth}", markup=False)
        if not is_loopback(host) and token is None:
            err.print("warning: listening beyond loopback without a token", markup=False)
        serve(create_app(engines, config), config, host=host, port=port, log_level=log_level)
    finally:
        engines.close()  # idempotent: the app's shutdown has usually closed them
