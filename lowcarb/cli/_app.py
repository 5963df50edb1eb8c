"""The ``lowcarb`` application: the root command, options every command shares, output.

Commands live in their own modules and register on :data:`app`; this module imports
none of them. User errors print one line on stderr and exit non-zero (2 for
configuration and usage, 1 for everything else); ``--debug`` shows the traceback.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from lowcarb import (
    CarbonProvider,
    Clock,
    ManualClock,
    Settings,
    SystemClock,
    load_settings,
    parse_time,
)
from lowcarb.exceptions import ConfigurationError, InvalidInputError, LowcarbError

__all__ = [
    "app",
    "cli_time",
    "config_app",
    "is_loopback",
    "main",
    "output_path",
    "print_table",
]

app = typer.Typer(
    name="lowcarb",
    help="Carbon-aware, fair client selection for federated learning.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click help; but typer 0.13-0.20 (flwr pins <0.21) escape the "[default: ...]"
    # they add for rich markup even then, and print "\[default: ...]": with them, the
    # rich help, which reads that markup, renders it cleanly.
    rich_markup_mode=(
        "rich"
        if (0, 13) <= tuple(int(n) for n in typer.__version__.split(".")[:2]) < (0, 21)
        else None
    ),
)
config_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")

#: Tables longer than this print a per-zone summary instead (use --json for every value).
MAX_TABLE_ROWS = 72
#: Times the command line accepts (UTC, end excluded): the signals, planning horizons and
#: histories reach weeks around a time, and pandas represents 1677 to 2262 only.
TIME_RANGE = (datetime(1970, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC))


def cli_time(text: str, name: str) -> datetime:
    """Parse a time given on the command line (ISO 8601, UTC if no offset).

    Raises:
        InvalidInputError: If it is not ISO 8601 or lies outside :data:`TIME_RANGE`.
    """
    when = parse_time(text, name)
    first, end = TIME_RANGE
    if not first <= when < end:
        raise InvalidInputError(
            f"{name}={text.strip()!r} is outside the times lowcarb works with "
            f"({first:%Y-%m-%d} to {end.year - 1}-12-31, UTC)"
        )
    return when


@dataclass
class _State:
    config: str | None = None
    now: str | None = None
    debug: bool = False

    def clock(self) -> Clock:
        if self.now:
            return ManualClock(cli_time(self.now, "--now"))
        return SystemClock()


state = _State()
# No markup and no emoji codes: what the consoles print (error messages, file contents quoted
# in them, zone names, paths) is the user's text, and "[x]" or ":x:" in it must stay as written.
out = Console(highlight=False, soft_wrap=True, markup=False, emoji=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False, emoji=False)


def _words(text: str) -> tuple[int, int]:
    """A cell's width on one line, and the width of its longest word (cells wrap at spaces)."""
    widths = [Text(word).cell_len for word in text.split()] or [0]
    return Text(text).cell_len, max(widths)


def _cell_text(cell: object) -> str:
    return cell.plain if isinstance(cell, Text) else str(cell)


def print_table(table: Table, console: Console | None = None) -> None:
    """Print ``table`` within the console's width without cutting a value or a header word.

    Every table of the command line is printed here. Columns get their natural widths when
    they fit; otherwise cells wrap at spaces only (a header "kg CO2e" over two lines), each
    column at least as wide as its longest word, so no number, key or word is ever cut or
    replaced by an ellipsis. When even that is wider than the console, each row prints as a
    block of ``header: value`` lines instead.
    """
    console = console or out
    columns = table.columns
    cells = [[_cell_text(c) for c in column.cells] for column in columns]
    header = [_words(_cell_text(column.header)) for column in columns]
    natural = [max([header[i][0], *(_words(c)[0] for c in cells[i])]) for i in range(len(columns))]
    narrow = [max([header[i][1], *(_words(c)[1] for c in cells[i])]) for i in range(len(columns))]
    for column, width in zip(columns, natural, strict=True):
        column.width, column.min_width, column.max_width = width, None, None
        column.no_wrap, column.overflow = False, "fold"
    # Borders and padding: the whole table's width beyond its columns'.
    wide = console.options.update_width(sum(natural) + 1000)
    extra = Measurement.get(console, wide, table).maximum - sum(natural)
    room = console.width - extra
    if sum(natural) <= room:
        console.print(table)
        return
    if sum(narrow) <= room:
        # Widen the narrowest-needing columns first, so most columns stay on one line.
        widths = list(narrow)
        spare = room - sum(widths)
        for i in sorted(range(len(columns)), key=lambda i: natural[i] - narrow[i]):
            grow = min(natural[i] - widths[i], spare)
            widths[i] += grow
            spare -= grow
        for column, width in zip(columns, widths, strict=True):
            column.width = width
        console.print(table)
        return
    _print_records(table, cells, console)


def _print_records(table: Table, cells: list[list[str]], console: Console) -> None:
    """One block per row: its first cell, then ``header: value`` for the others."""
    if table.title:
        console.print(_cell_text(table.title))
    headers = [_cell_text(column.header) for column in table.columns]
    pad = max((len(h) for h in headers[1:]), default=0)
    for row in range(table.row_count):
        console.print()
        console.print(cells[0][row] if cells else "")
        for header, column in zip(headers[1:], cells[1:], strict=True):
            console.print(f"  {header + ':':<{pad + 1}} {column[row]}")
    if table.caption:
        console.print()
        console.print(_cell_text(table.caption))


def output_path(param: typer.CallbackParam, value: Any) -> Any:
    """Check an option's output file before any work is done (a typer callback).

    ``-`` (stdout) and None pass. A path passes when its folder exists and is writable and
    the path is not a folder; anything else stops the command at once, with exit code 2.

    Raises:
        ConfigurationError: Naming the option's value and what is wrong with it.
    """
    if value is None or str(value) == "-":
        return value
    path = Path(value).expanduser()
    folder = path.parent
    problem = None
    if path.is_dir():
        problem = "is a folder; give a file name"
    elif not folder.is_dir():
        problem = f"the folder {folder} does not exist"
    elif not os.access(folder, os.W_OK | os.X_OK):
        problem = f"the folder {folder} is not writable"
    elif path.exists() and not os.access(path, os.W_OK):
        problem = "exists and is not writable"
    if problem:
        option = param.opts[0] if param.opts else "output"
        raise ConfigurationError(f"{option} {value}: cannot write it: {problem}")
    return value


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
    state.config, state.now, state.debug = config, now, debug
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


def _seed(value: int) -> int:
    # Raised as lowcarb's own error, so that it prints one line like every other.
    if not 0 <= value < 2**63:  # numpy's generators take non-negative seeds only
        raise InvalidInputError(f"--seed={value}: use an integer from 0 to {2**63 - 1}")
    return value


SeedOpt = Annotated[
    int, typer.Option("--seed", metavar="N", callback=_seed, help="Seeds everything random.")
]
NowOpt = Annotated[
    str | None,
    typer.Option(
        "--now",
        metavar="ISO",
        help="Pretend the current time is this (ISO 8601, UTC if no offset).",
    ),
]


def load_settings_for(
    provider: str | None, options: list[str] | None, *, check_credentials: bool = True
) -> Settings:
    """The settings in force for a command: configuration plus ``--provider``/``-o``."""
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
        config_file=state.config,
        origin="command line",
        check_credentials=check_credentials,
    )


def open_chain(provider: str | None, options: list[str] | None) -> CarbonProvider:
    """The configured provider chain for a data command (no default appended)."""
    return load_settings_for(provider, options).open_provider(clock=state.clock())


def print_json(payload: Any) -> None:
    """Write ``payload`` as JSON on stdout (strict: no NaN)."""
    sys.stdout.write(json.dumps(payload, indent=2, allow_nan=False) + "\n")


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


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
        err.print(f"error: {exc}", markup=False)
        return code
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
