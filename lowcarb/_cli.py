"""The ``lowcarb`` command line: carbon signals, zones and configuration.

User errors print one line on stderr and exit non-zero (2 for configuration and usage,
1 for everything else); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from lowcarb._clock import Clock, ManualClock, SystemClock
from lowcarb._config import Settings, load_settings
from lowcarb._provider import CarbonProvider
from lowcarb._series import IntensitySeries
from lowcarb._time import format_duration, parse_time
from lowcarb._zones import ZoneResolution
from lowcarb.exceptions import ConfigurationError, InvalidInputError, LowcarbError

__all__ = ["app", "main"]

app = typer.Typer(
    name="lowcarb",
    help="Carbon-aware, fair client selection for federated learning.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
config_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")

#: Tables longer than this print a per-zone summary instead (use --json for every value).
MAX_TABLE_ROWS = 72


@dataclass
class _State:
    config: str | None = None
    now: str | None = None
    debug: bool = False

    def clock(self) -> Clock:
        if self.now:
            return ManualClock(parse_time(self.now, "--now"))
        return SystemClock()


_state = _State()
_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)


def _version(value: bool) -> None:
    if value:
        from lowcarb import __version__

        typer.echo(f"lowcarb {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    config: Annotated[
        str | None,
        typer.Option("--config", metavar="PATH", help="Project file to read instead of searching."),
    ] = None,
    now: Annotated[
        str | None,
        typer.Option(
            "--now",
            metavar="ISO",
            help="Pretend the current time is this (ISO 8601, UTC if no offset); for replays.",
            envvar="LOWCARB_NOW",
        ),
    ] = None,
    debug: Annotated[
        bool,
        typer.Option("--debug", help="Show tracebacks and debug logs.", envvar="LOWCARB_DEBUG"),
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Carbon-aware, fair client selection for federated learning."""
    _state.config, _state.now, _state.debug = config, now, debug
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


# -- shared options -------------------------------------------------------------------------

ProviderOpt = Annotated[
    str | None,
    typer.Option(
        "--provider",
        "-p",
        metavar="NAME",
        help="Provider to use (default: from config, else 'default').",
    ),
]
OptionOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--option",
        "-o",
        metavar="KEY=VALUE",
        help="Provider option KEY=VALUE (repeatable), e.g. -o path=ci.csv.",
    ),
]
ZoneOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--zone",
        "-z",
        metavar="ZONE",
        help="Zone id, LAT,LON or cloud region like aws:eu-central-1 "
        "(repeatable; default: the provider's zones).",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for machines.")]
NowOpt = Annotated[
    str | None,
    typer.Option(
        "--now",
        metavar="ISO",
        help="Pretend the current time is this (ISO 8601, UTC if no offset).",
    ),
]


def _settings(
    provider: str | None, options: list[str] | None, *, check_credentials: bool = True
) -> Settings:
    overrides: dict[str, Any] = {}
    if provider:
        overrides["provider"] = provider
        overrides["fallback"] = []
    parsed: dict[str, str] = {}
    for item in options or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigurationError(f"--option {item!r} must look like KEY=VALUE")
        parsed[key.strip()] = value
    return load_settings(
        overrides,
        primary_options=parsed,
        config_file=_state.config,
        origin="command line",
        check_credentials=check_credentials,
    )


def _open(provider: str | None, options: list[str] | None) -> CarbonProvider:
    return _settings(provider, options).open_provider(clock=_state.clock())


def _resolve(p: CarbonProvider, zones: list[str] | None) -> tuple[list[str], list[ZoneResolution]]:
    if not zones:
        served = p.default_zones()
        return served, [ZoneResolution(z, z, "zone") for z in served]
    resolutions = [p.resolve(z) for z in zones]
    return list(dict.fromkeys(r.zone for r in resolutions)), resolutions


def _print_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, allow_nan=False) + "\n")


def _series_payload(series: IntensitySeries, resolutions: list[ZoneResolution]) -> dict[str, Any]:
    data: dict[str, list[dict[str, Any]]] = {z: [] for z in series.zones}
    for record in series.to_records():
        zone = record.pop("zone")
        data[zone].append(record)
    return {
        **series.metadata(),
        "resolved": [asdict(r) for r in resolutions],
        "data": data,
    }


def _label(series: IntensitySeries) -> str:
    parts = [
        f"provider {series.provider}",
        f"{series.signal} signal",
        f"{series.basis} basis",
        "gCO2eq/kWh",
    ]
    if series.is_forecast:
        issued = f"{series.issued_at:%Y-%m-%d %H:%MZ}" if series.issued_at else "?"
        parts.append(f"forecast issued {issued}")
    if series.perfect_foresight:
        parts.append("PERFECT FORESIGHT (replayed from file)")
    if series.synthetic:
        parts.append("SYNTHETIC data")
    return ", ".join(parts)


def _fmt(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


def _print_series(title: str, series: IntensitySeries, resolutions: list[ZoneResolution]) -> None:
    for r in resolutions:
        if r.method != "zone":
            _err.print(f"resolved {r.describe()}")
    frame = series.values
    mask = series.estimated_mask()
    if len(frame) <= MAX_TABLE_ROWS:
        table = Table(title=title, caption=_label(series), title_justify="left")
        stamps = list(frame.index)
        numbers, flags = frame.to_numpy(dtype=float), mask.to_numpy(dtype=bool)
        cell = {
            (t, z): _fmt(numbers[i, j]) + ("*" if flags[i, j] else "")
            for i, t in enumerate(stamps)
            for j, z in enumerate(series.zones)
        }
        if len(series.zones) > len(stamps):
            # Many zones, few times (e.g. `latest` for all zones): one row per zone fits
            # a terminal where one column per zone would not.
            table.add_column("zone")
            for t in stamps:
                table.add_column(f"{t:%Y-%m-%d %H:%M} UTC", justify="right")
            for z in series.zones:
                table.add_row(z, *(cell[t, z] for t in stamps))
        else:
            table.add_column("start (UTC)")
            for z in series.zones:
                table.add_column(z, justify="right")
            for t in stamps:
                table.add_row(f"{t:%Y-%m-%d %H:%M}", *(cell[t, z] for z in series.zones))
        _out.print(table)
        if mask.to_numpy().any():
            _out.print("* estimated or repaired value")
    else:
        table = Table(
            title=f"{title}: {len(frame)} intervals of {format_duration(series.resolution)}, "
            f"{series.start:%Y-%m-%d %H:%M} .. {series.end:%Y-%m-%d %H:%M} UTC "
            "(summary; --json for all)",
            caption=_label(series),
            title_justify="left",
        )
        for column in ("zone", "min", "mean", "max", "missing", "estimated"):
            table.add_column(column, justify="left" if column == "zone" else "right")
        for zone in series.zones:
            col = frame[zone]
            table.add_row(
                zone,
                _fmt(col.min()),
                _fmt(col.mean()),
                _fmt(col.max()),
                str(int(col.isna().sum())),
                str(int(mask[zone].sum())),
            )
        _out.print(table)
    for note in series.notes:
        _out.print(f"note: {note}")


def _show_series(
    title: str,
    provider: str | None,
    option: list[str] | None,
    now: str | None,
    zone: list[str] | None,
    as_json: bool,
    fetch: Callable[[CarbonProvider, list[str]], IntensitySeries],
) -> None:
    """Open the provider, resolve the zones, fetch, and print a table or JSON."""
    _state.now = now or _state.now
    with _open(provider, option) as p:
        chosen, resolutions = _resolve(p, zone)
        series = fetch(p, chosen)
        if as_json:
            _print_json(_series_payload(series, resolutions))
        else:
            _print_series(title, series, resolutions)


# -- commands ---------------------------------------------------------------------------------


@app.command()
def zones(
    provider: ProviderOpt = None,
    option: OptionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the zones a provider serves."""
    with _open(provider, option) as p:
        infos = p.zones()
        caps = p.capabilities
        if as_json:
            _print_json(
                {
                    "provider": p.name,
                    "synthetic": caps.synthetic,
                    "zones": [
                        {k: v for k, v in asdict(z).items() if k not in ("lat", "lon")}
                        for z in infos
                    ],
                }
            )
            return
        title = f"Zones served by {p.name}" + (" (synthetic data)" if caps.synthetic else "")
        table = Table(title=title, title_justify="left")
        for column in ("zone", "name", "country", "continent"):
            table.add_column(column)
        for z in infos:
            table.add_row(z.zone, z.name, z.country, z.continent)
        _out.print(table)


@app.command()
def latest(
    zone: ZoneOpt = None,
    provider: ProviderOpt = None,
    option: OptionOpt = None,
    now: NowOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the most recent carbon intensity."""
    _show_series(
        "Latest carbon intensity", provider, option, now, zone, as_json, lambda p, z: p.latest(z)
    )


@app.command()
def history(
    zone: ZoneOpt = None,
    start: Annotated[
        str | None, typer.Option(metavar="ISO", help="First interval (ISO 8601, UTC if no offset).")
    ] = None,
    end: Annotated[
        str | None, typer.Option(metavar="ISO", help="End, exclusive (ISO 8601); default: now.")
    ] = None,
    hours: Annotated[
        int | None,
        typer.Option(
            min=1, metavar="N", help="Instead of --start: this many hours before the end."
        ),
    ] = None,
    provider: ProviderOpt = None,
    option: OptionOpt = None,
    now: NowOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show past carbon intensity."""
    if start and hours:
        raise InvalidInputError("give either --start or --hours, not both")

    def fetch(p: CarbonProvider, zones: list[str]) -> IntensitySeries:
        stop = parse_time(end, "--end") if end else p.clock.now()
        first = parse_time(start, "--start") if start else stop - timedelta(hours=hours or 24)
        return p.history(zones, first, stop)

    _show_series("Carbon intensity history", provider, option, now, zone, as_json, fetch)


@app.command()
def forecast(
    zone: ZoneOpt = None,
    hours: Annotated[int, typer.Option(min=1, metavar="N", help="Forecast horizon in hours.")] = 24,
    start: Annotated[
        str | None, typer.Option(metavar="ISO", help="First interval (ISO 8601); default: now.")
    ] = None,
    provider: ProviderOpt = None,
    option: OptionOpt = None,
    now: NowOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show forecast carbon intensity."""
    first = parse_time(start, "--start") if start else None
    _show_series(
        f"Carbon intensity forecast, next {hours} h",
        provider,
        option,
        now,
        zone,
        as_json,
        lambda p, z: p.forecast(z, first, timedelta(hours=hours)),
    )


@app.command()
def resolve(
    location: Annotated[
        list[str], typer.Argument(metavar="LOCATION", help="Zone ids, LAT,LON or cloud:region.")
    ],
    provider: ProviderOpt = None,
    option: OptionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show which zone each location resolves to, and how."""
    with _open(provider, option) as p:
        results = [p.resolve(loc) for loc in location]
        if as_json:
            _print_json([asdict(r) for r in results])
            return
        table = Table(title=f"Zone resolution ({p.name})", title_justify="left")
        for column in ("query", "zone", "method", "distance km"):
            table.add_column(column)
        for r in results:
            distance = "" if r.distance_km is None else f"{r.distance_km:.0f}"
            table.add_row(r.query, r.zone, r.method, distance)
        _out.print(table)


@config_app.command("show")
def config_show(
    provider: ProviderOpt = None,
    option: OptionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the effective configuration and where each value comes from (secrets redacted)."""
    settings = _settings(provider, option, check_credentials=False)
    rows = settings.display()
    if as_json:
        _print_json(
            {
                "config_file": str(settings.config_file) if settings.config_file else None,
                "settings": rows,
            }
        )
        return
    source = settings.config_file or "none found (defaults and environment only)"
    table = Table(title=f"lowcarb configuration (project file: {source})", title_justify="left")
    for column in ("key", "value", "source"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["key"], row["value"], row["source"])
    _out.print(table)


# Commands defined in their own modules register themselves on ``app``.
import lowcarb._cli_disco  # noqa: E402
import lowcarb._cli_serve  # noqa: E402
import lowcarb._cli_simulate  # noqa: E402, F401

# -- entry point --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (also used by the ``lowcarb`` console script)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--debug" in args:
        # A flag without a value: accept it anywhere, as users type it after the command.
        args = ["--debug", *(a for a in args if a != "--debug")]
    debug = "--debug" in args or os.environ.get("LOWCARB_DEBUG", "").lower() in (
        "1",
        "true",
        "yes",
    )
    try:
        # Standalone mode: typer reports its own usage errors (exit 2) and raises
        # SystemExit; our errors propagate to here.
        app(args=args, prog_name="lowcarb")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except LowcarbError as exc:
        if debug:
            raise
        code = 2 if isinstance(exc, ConfigurationError) else 1
        _err.print(f"error: {exc}", markup=False)
        return code
    except KeyboardInterrupt:
        _err.print("interrupted")
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
