"""Data commands: the zones a provider serves, and its latest, past and forecast values."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict
from datetime import timedelta
from typing import Annotated, Any

import typer
from rich.table import Table

from lowcarb import CarbonProvider, IntensitySeries, ZoneResolution
from lowcarb._time import format_duration
from lowcarb.cli._app import (
    MAX_TABLE_ROWS,
    JsonOpt,
    NowOpt,
    OptionOpt,
    ProviderOpt,
    ZoneOpt,
    app,
    cli_time,
    err,
    open_chain,
    out,
    print_json,
    print_table,
    state,
)
from lowcarb.exceptions import InvalidInputError

__all__: list[str] = []


def _resolve(p: CarbonProvider, zones: list[str] | None) -> tuple[list[str], list[ZoneResolution]]:
    if not zones:
        served = p.default_zones()
        return served, [ZoneResolution(z, z, "zone") for z in served]
    resolutions = [p.resolve(z) for z in zones]
    return list(dict.fromkeys(r.zone for r in resolutions)), resolutions


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
            err.print(f"resolved {r.describe()}")
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
        print_table(table)
        if mask.to_numpy().any():
            out.print("* estimated or repaired value")
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
        print_table(table)
    for note in series.notes:
        out.print(f"note: {note}")


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
    state.now = now or state.now
    with open_chain(provider, option) as p:
        chosen, resolutions = _resolve(p, zone)
        series = fetch(p, chosen)
        if as_json:
            print_json(_series_payload(series, resolutions))
        else:
            _print_series(title, series, resolutions)


# -- entry point --------------------------------------------------------------------------------


@app.command()
def zones(
    provider: ProviderOpt = None,
    option: OptionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the zones a provider serves."""
    with open_chain(provider, option) as p:
        infos = p.zones()
        caps = p.capabilities
        if as_json:
            print_json(
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
        print_table(table)


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
        stop = cli_time(end, "--end") if end else p.clock.now()
        first = cli_time(start, "--start") if start else stop - timedelta(hours=hours or 24)
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
    first = cli_time(start, "--start") if start else None
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
    with open_chain(provider, option) as p:
        results = [p.resolve(loc) for loc in location]
        if as_json:
            print_json([asdict(r) for r in results])
            return
        table = Table(title=f"Zone resolution ({p.name})", title_justify="left")
        for column in ("query", "zone", "method", "distance km"):
            table.add_column(column)
        for r in results:
            distance = "" if r.distance_km is None else f"{r.distance_km:.0f}"
            table.add_row(r.query, r.zone, r.method, distance)
        print_table(table)
