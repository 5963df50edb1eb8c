"""``lowcarb disco serve``: the DISCO-compatible bridge on the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lowcarb import EngineSpec
from lowcarb._extras import missing_extra
from lowcarb.cli._app import (
    OptionOpt,
    ProviderOpt,
    SeedOpt,
    app,
    err,
    is_loopback,
    load_settings_for,
    state,
)
from lowcarb.exceptions import InvalidInputError

__all__ = ["disco_app"]

disco_app = typer.Typer(
    help="Serve DISCO tasks to unmodified DISCO clients, with carbon-aware rounds.",
    no_args_is_help=True,
)
app.add_typer(disco_app, name="disco")


@disco_app.command("serve")
def serve(
    tasks: Annotated[
        Path,
        typer.Option(
            "--tasks",
            metavar="DIR",
            help="Folder of task folders (task.json, model.json, weights, lowcarb.json).",
        ),
    ],
    host: Annotated[
        str, typer.Option(metavar="ADDR", help="Address to bind; loopback unless you choose.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, metavar="N", help="TCP port.")] = 8080,
    protocol: Annotated[
        str,
        typer.Option(
            metavar="GEN",
            help="DISCO protocol generation: v2 (npm @epfml/discojs-node 2.1.1) or develop.",
        ),
    ] = "v2",
    state_dir: Annotated[
        Path | None,
        typer.Option(
            "--state-dir",
            metavar="DIR",
            help="Keep each task's ledger and round log here (default: in memory).",
        ),
    ] = None,
    zones: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="JSON object mapping client names to zones."),
    ] = None,
    policy: Annotated[str, typer.Option(metavar="NAME", help="Selection policy.")] = "lowcarb",
    max_frame_bytes: Annotated[
        int, typer.Option(min=1024, metavar="BYTES", help="Largest WebSocket frame accepted.")
    ] = 16 * 2**20,
    max_connections: Annotated[
        int, typer.Option(min=1, metavar="N", help="Open WebSocket connections allowed.")
    ] = 256,
    round_timeout: Annotated[
        float,
        typer.Option(min=0.1, metavar="S", help="Seconds a round waits for its selected clients."),
    ] = 300.0,
    seed: SeedOpt = 0,
    provider_timeout: Annotated[
        float,
        typer.Option(
            min=0.1,
            max=3600,
            metavar="S",
            help="Seconds a provider call may take before the next provider answers "
            "(keep it under DISCO v2's 10 s reply deadline).",
        ),
    ] = 5.0,
    provider: ProviderOpt = None,
    option: OptionOpt = None,
) -> None:
    """Serve the DISCO tasks of a folder; lowcarb selects each round's clients."""
    try:
        from lowcarb.adapters.disco import BridgeLimits, load_zone_map
        from lowcarb.adapters.disco import serve as run_bridge
    except ImportError as exc:
        raise missing_extra("lowcarb disco serve", "disco", exc) from None
    if protocol not in ("v2", "develop"):
        raise InvalidInputError(f"--protocol must be v2 or develop, got {protocol!r}")
    if not is_loopback(host):
        err.print(
            f"warning: binding {host}: the bridge has no authentication; anyone who reaches "
            "this address can join a task and read its model."
        )
    limits = BridgeLimits(
        max_frame_bytes=max_frame_bytes,
        max_connections=max_connections,
        round_timeout=round_timeout,
    )
    zone_map = load_zone_map(zones) if zones is not None else None
    spec = EngineSpec.from_settings(load_settings_for(provider, option), policy=policy, seed=seed)
    clock = state.clock()
    with spec.open_chain(clock=clock) as carbon:
        run_bridge(
            tasks,
            carbon,
            host=host,
            port=port,
            protocol=protocol,
            state_dir=state_dir,
            limits=limits,
            zone_map=zone_map,
            spec=spec,
            log_level="debug" if state.debug else "info",
            provider_timeout_s=provider_timeout,
            clock=clock,
            announce=lambda line: err.print(line, markup=False),
        )
