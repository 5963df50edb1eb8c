"""``lowcarb report``: a training's carbon account for a paper, a model card or a README."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from lowcarb import EmbodiedCarbon, InvalidInputError
from lowcarb.cli._app import app, err, output_path, state

__all__ = ["report_command"]

_SUFFIXES = {".md": "md", ".markdown": "md", ".html": "html", ".htm": "html", ".json": "json"}


def _embodied(on: bool, device_kg: float | None, years: float | None) -> EmbodiedCarbon | None:
    if not (on or device_kg is not None or years is not None):
        return None
    options: dict[str, object] = {}
    if device_kg is not None:
        options["device_kg"] = device_kg
        options["source"] = "given with --embodied-kg"
    if years is not None:
        if not 0 < years <= 100:
            raise InvalidInputError(f"--device-lifetime-years must be from 0 to 100, got {years}")
        options["lifetime"] = timedelta(days=365 * years)
    return EmbodiedCarbon(**options)  # type: ignore[arg-type]


@app.command("report")
def report_command(
    path: Annotated[
        Path,
        typer.Argument(
            metavar="LEDGER_OR_STATE_DIR",
            help="A ledger file, or the --state-dir of lowcarb serve or lowcarb disco serve.",
            show_default=False,
        ),
    ],
    task: Annotated[
        str | None,
        typer.Option(
            "--task",
            "-t",
            metavar="T",
            help="The task (run) to report; needed when there are several.",
        ),
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            metavar="md|html|json",
            help="Output format (default: from the -o suffix, else md).",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            callback=output_path,
            help="Write here instead of stdout.",
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
    embodied: Annotated[
        bool,
        typer.Option(
            "--embodied",
            help="Include the client devices' embodied emissions (M): 1000 kgCO2eq per device "
            "over 4 years unless given (the SCI specification's example).",
        ),
    ] = False,
    embodied_kg: Annotated[
        float | None,
        typer.Option(
            "--embodied-kg",
            metavar="KG",
            help="Embodied kgCO2eq of one client device (implies --embodied).",
        ),
    ] = None,
    lifetime_years: Annotated[
        float | None,
        typer.Option(
            "--device-lifetime-years",
            metavar="Y",
            help="A device's expected lifespan in years (implies --embodied).",
        ),
    ] = None,
) -> None:
    """Write a task's carbon account: SCI terms, saving against random, fairness, sources."""
    from lowcarb.report import FORMATS, make_report

    chosen = "json" if json_out else fmt
    if json_out and fmt not in (None, "json"):
        raise InvalidInputError(f"--json and --format {fmt} disagree")
    if chosen is None:
        chosen = _SUFFIXES.get(output.suffix.lower(), "md") if output is not None else "md"
    if chosen not in FORMATS:
        raise InvalidInputError(f"--format {chosen!r}: use {', '.join(FORMATS)}")
    text = make_report(
        path,
        task=task,
        fmt=chosen,
        embodied=_embodied(embodied, embodied_kg, lifetime_years),
        now=state.clock().now(),
    )
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(f"cannot write {output}: {exc.strerror}") from None
    err.print(f"wrote {output} ({chosen}, {len(text.encode()) / 1024:.0f} kB)", markup=False)
