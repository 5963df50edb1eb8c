"""``lowcarb simulate``: the policies on a carbon trace, with real learning."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from lowcarb import DEFAULT_ROUND_TIME
from lowcarb.cli._app import SeedOpt, app, cli_time, err, out, output_path, print_table
from lowcarb.exceptions import InvalidInputError, LowcarbError
from lowcarb.simulation import (
    DEFAULT_POLICIES,
    DEFAULT_ZONES,
    Scenario,
    SimulationResult,
    simulate,
    summarize_sweep,
    sweep,
)

__all__ = ["render_sweep_table", "render_table"]


def _split(text: str, option: str) -> tuple[str, ...]:
    items = tuple(part.strip() for part in text.split(",") if part.strip())
    if not items:
        raise InvalidInputError(f"{option} needs a comma-separated list")
    return items


def _pct(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{100 * value:+.1f}%"


def render_table(result: SimulationResult) -> Table:
    """One row per policy: carbon, fairness, accuracy and cost of deciding."""
    s = result.scenario
    table = Table(
        title=(
            f"{s.clients} clients in {len(s.zones)} zones, {s.total_rounds} rounds of "
            f"{s.per_round}, from {s.start:%Y-%m-%d %H:%M} UTC"
            + (f", deadline {s.deadline_hours:g} h" if s.deadline_hours else "")
        ),
        caption=(
            f"data: {result.provider}; forecast: {s.forecast}; fairness {s.fairness:g}; "
            f"saving against expected random selection ({result.random_baseline_kg:.3f} kg)"
        ),
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    timed = s.deadline_hours is not None
    for column in (
        "policy",
        "kg CO2e",
        "saving",
        "g/kWh",
        "rounds",
        "Jain",
        "never",
        "acc.",
        *(["hours"] if timed else []),
        "ms p50/p99",
    ):
        table.add_column(column, justify="left" if column == "policy" else "right", no_wrap=True)
    for name, r in result.policies.items():
        p = r.participation
        table.add_row(
            name,
            f"{r.emissions_kg:.3f}",
            _pct(r.saving_vs_random),
            f"{r.mean_intensity:.0f}",
            f"{int(p['min'])}-{int(p['max'])}",
            f"{p['jain']:.3f}",
            str(int(p["never"])),
            "-" if r.accuracy is None else f"{100 * r.accuracy:.1f}%",
            *([f"{r.duration_hours:g}"] if timed else []),
            f"{r.decision_ms['p50']:.0f}/{r.decision_ms['p99']:.0f}",
        )
    return table


@app.command("simulate")
def simulate_command(
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            metavar="PATH",
            help="Wide CSV/Parquet or Electricity Maps data-portal exports "
            "(default: the embedded synthetic provider).",
        ),
    ] = None,
    zones: Annotated[
        str | None,
        typer.Option("--zones", metavar="Z1,Z2,...", help="Zones (default: 14 on six continents)."),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option("--start", metavar="ISO", help="First round (default 2025-03-03T00:00Z)."),
    ] = None,
    hours: Annotated[int, typer.Option("--hours", metavar="N", help="Window length.")] = 96,
    clients: Annotated[int, typer.Option("--clients", metavar="N", help="Clients.")] = 100,
    per_round: Annotated[
        int, typer.Option("--per-round", metavar="K", help="Clients per round.")
    ] = 10,
    round_minutes: Annotated[
        int,
        typer.Option("--round-minutes", metavar="M", help="Length of a round (energy model's)."),
    ] = int(DEFAULT_ROUND_TIME / timedelta(minutes=1)),
    rounds: Annotated[
        int | None,
        typer.Option("--rounds", metavar="R", help="Rounds (default: one per round slot)."),
    ] = None,
    deadline_hours: Annotated[
        float | None,
        typer.Option(
            "--deadline-hours",
            metavar="D",
            help="The rounds must finish within D hours; planners may pause in the slack.",
        ),
    ] = None,
    assignment: Annotated[
        str, typer.Option("--assignment", help="round-robin (client i in zone i mod Z) or random.")
    ] = "round-robin",
    energy: Annotated[
        str, typer.Option("--energy", help="uniform (70 W) or mixed (70/300/700 W classes).")
    ] = "uniform",
    policies: Annotated[
        str,
        typer.Option("--policies", metavar="P1,P2,...", help="Policies to compare."),
    ] = ",".join(DEFAULT_POLICIES),
    forecast: Annotated[
        str,
        typer.Option(
            "--forecast",
            help="best (no future information), persistence, weekly, oracle or noisy:SIGMA.",
        ),
    ] = "best",
    fairness: Annotated[
        float, typer.Option("--fairness", metavar="F", help="1 = fair shares within 1; 0 = greedy.")
    ] = 1.0,
    learning: Annotated[
        str, typer.Option("--learning", help="digits (real FedAvg, scikit-learn data) or none.")
    ] = "digits",
    seed: SeedOpt = 0,
    json_path: Annotated[
        str | None,
        typer.Option(
            "--json",
            metavar="FILE",
            callback=output_path,
            help="Write results as JSON ('-' for stdout).",
        ),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", metavar="FILE.png", callback=output_path, help="Draw the results."),
    ] = None,
    ledger: Annotated[
        Path | None,
        typer.Option(
            "--ledger",
            metavar="FILE",
            callback=output_path,
            help="Record every policy's rounds in this new ledger file, one run per policy "
            "(for lowcarb report and lowcarb dashboard).",
        ),
    ] = None,
    signal: Annotated[
        str,
        typer.Option(
            "--signal", help="What --data holds, and policies plan on: average or marginal."
        ),
    ] = "average",
    score_data: Annotated[
        Path | None,
        typer.Option(
            "--score-data",
            metavar="PATH",
            help="Judge emissions on this data instead (same zones), e.g. the marginal signal.",
        ),
    ] = None,
    score_signal: Annotated[
        str | None,
        typer.Option("--score-signal", help="What --score-data holds (default: --signal)."),
    ] = None,
    windows: Annotated[
        int,
        typer.Option(
            "--windows",
            metavar="N",
            help="Sweep: N windows from --start, --every-days apart, one result row each.",
        ),
    ] = 1,
    every_days: Annotated[
        float | None,
        typer.Option(
            "--every-days",
            metavar="D",
            help="Days between the windows' starts (default: the window's length).",
        ),
    ] = None,
    results: Annotated[
        Path | None,
        typer.Option(
            "--results",
            metavar="FILE.jsonl",
            callback=output_path,
            help="Sweep rows, appended as they finish; windows already in it are not run again.",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", metavar="N", help="Parallel simulations (default: cores)."),
    ] = None,
    ray: Annotated[
        bool, typer.Option("--ray", help="Run the sweep's simulations on Ray (local).")
    ] = False,
    ray_address: Annotated[
        str | None,
        typer.Option("--ray-address", metavar="ADDR", help="Run the sweep on this Ray cluster."),
    ] = None,
) -> None:
    """Compare selection policies on a carbon trace, with real federated learning."""
    scenario = Scenario(
        zones=_split(zones, "--zones") if zones is not None else DEFAULT_ZONES,
        start=cli_time(start, "--start") if start else Scenario().start,
        hours=hours,
        clients=clients,
        per_round=per_round,
        round_minutes=round_minutes,
        rounds=rounds,
        deadline_hours=deadline_hours,
        assignment=assignment,
        energy=energy,
        policies=_split(policies, "--policies"),
        forecast=forecast,
        fairness=fairness,
        learning=learning,
        seed=seed,
        data=data,
        signal=signal,
        score_data=score_data,
        score_signal=score_signal,
    )
    if windows > 1 or results is not None or ray or ray_address:
        if plot is not None or ledger is not None:
            raise InvalidInputError(
                "--plot and --ledger draw one window: leave them out of a sweep"
            )
        _sweep_command(
            scenario,
            windows=windows,
            every_days=every_days,
            results=results,
            workers=workers,
            ray=ray,
            ray_address=ray_address,
            json_path=json_path,
        )
        return
    if windows < 1:
        raise InvalidInputError("--windows must be a positive integer")
    if plot is not None:
        from lowcarb.simulation import require_matplotlib

        require_matplotlib()
        if plot.suffix.lower() != ".png":
            raise InvalidInputError(f"--plot {plot}: give a .png file name")
    quiet = json_path == "-"
    total = scenario.total_rounds * len(scenario.policies)
    with Progress(
        TextColumn("{task.description:<14}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=quiet,
    ) as bar:
        task = bar.add_task("simulating", total=total)

        def step(policy: str, n: int) -> None:
            bar.update(task, advance=n, description=policy)

        result = simulate(scenario, progress=step, ledger=ledger)
    if json_path is not None:
        text = json.dumps(result.to_dict(), indent=2) + "\n"
        if json_path == "-":
            sys.stdout.write(text)
        else:
            Path(json_path).write_text(text)
    if not quiet:
        print_table(render_table(result))
        if json_path:
            out.print(f"results written to {json_path}")
    if plot is not None:
        from lowcarb.simulation import plot_simulation

        plot_simulation(result, plot)
        if not quiet:
            out.print(f"plot written to {plot}")
    if ledger is not None and not quiet:
        runs = ", ".join(scenario.policies)
        out.print(f"rounds recorded in {ledger}, one run per policy ({runs})", markup=False)
        one = "lowcarb" if "lowcarb" in scenario.policies else scenario.policies[-1]
        out.print(f"the account of one: lowcarb report {ledger} --task {one}", markup=False)


def _sweep_command(
    base: Scenario,
    *,
    windows: int,
    every_days: float | None,
    results: Path | None,
    workers: int | None,
    ray: bool,
    ray_address: str | None,
    json_path: str | None,
) -> None:
    """Run the windows of a sweep and print one summary table."""
    if windows < 1:
        raise InvalidInputError("--windows must be a positive integer")
    if every_days is not None and not (math.isfinite(every_days) and every_days > 0):
        raise InvalidInputError("--every-days must be a positive number")
    step = timedelta(days=every_days) if every_days is not None else base.end - base.start
    scenarios = [replace(base, start=base.start + i * step) for i in range(windows)]
    quiet = json_path == "-"
    with Progress(
        TextColumn("{task.description:<14}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=quiet,
    ) as bar:
        task = bar.add_task("windows", total=len(scenarios))

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        try:
            rows = sweep(
                scenarios,
                results=results,
                workers=workers,
                ray=ray,
                ray_address=ray_address,
                progress=advance,
            )
        except LowcarbError as exc:
            for note in getattr(exc, "__notes__", ()):
                err.print(note, markup=False)  # which window failed
            raise
    summary = summarize_sweep(rows)
    if json_path is not None:
        document = {
            "scenario": base.to_dict(),
            "windows": [s.start.isoformat() for s in scenarios],
            "summary": summary,
            "rows": rows,
        }
        text = json.dumps(document, indent=2) + "\n"
        if quiet:
            sys.stdout.write(text)
        else:
            Path(json_path).write_text(text)
    if not quiet:
        print_table(render_sweep_table(base, scenarios, summary))
        if results is not None:
            out.print(f"rows in {results}", markup=False)


def _span(values: list[float]) -> str:
    low, mid, high = values
    return f"{100 * mid:+.1f}% ({100 * low:+.1f} to {100 * high:+.1f})"


def render_sweep_table(
    base: Scenario, scenarios: list[Scenario], summary: dict[str, dict[str, Any]]
) -> Table:
    """One row per policy over a sweep's windows: saving, share of the oracle, fairness."""
    first, last = scenarios[0].start, scenarios[-1].start
    table = Table(
        title=(
            f"{len(scenarios)} windows from {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC: "
            f"{base.clients} clients in {len(base.zones)} zones, {base.total_rounds} rounds of "
            f"{base.per_round}"
        ),
        caption=(
            f"forecast: {base.forecast}; fairness {base.fairness:g}; planned on the "
            f"{base.signal} signal, judged on the {base.judged_signal} one; saving against "
            "expected random selection: median (25th to 75th percentile)"
        ),
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    for column in ("policy", "saving", "of oracle", "worst", "Jain", "never", "acc.", "ms p50"):
        table.add_column(column, justify="left" if column == "policy" else "right", no_wrap=True)
    for name, s in summary.items():
        share = s["oracle_share"]
        table.add_row(
            name,
            _span(s["saving"]),
            "-" if share is None else f"{100 * share['median']:.1f}%",
            "-" if share is None else f"{100 * share['min']:.1f}%",
            f"{s['jain']['median']:.3f}",
            str(s["never_max"]),
            "-" if s["accuracy_mean"] is None else f"{100 * s['accuracy_mean']:.1f}%",
            f"{s['decision_ms_p50']:.0f}",
        )
    return table
