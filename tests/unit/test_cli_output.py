"""What the installed ``lowcarb`` script prints, as a user sees it at 80 columns.

Tables never cut a value, output files are checked before any work, error texts are printed
as written (no rich markup or emoji codes), hints speak of the data given, and a missing
extra fails the same way in every command. Each test runs the console script in a fresh
interpreter, without network access.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

LOWCARB = Path(sys.executable).with_name("lowcarb")
SMALL = ["--learning", "none", "--hours", "6", "--clients", "20", "--per-round", "2"]


def run(
    *args: str, cwd: Path, columns: int = 80, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``lowcarb *args`` at ``columns`` columns, without colour or LOWCARB_* settings."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LOWCARB_")}
    for key in ("FORCE_COLOR", "PY_COLORS", "CLICOLOR_FORCE"):
        environ.pop(key, None)
    extra = dict(env or {})
    if "PYTHONPATH" in extra and environ.get("PYTHONPATH"):
        extra["PYTHONPATH"] += os.pathsep + environ["PYTHONPATH"]
    environ.update(COLUMNS=str(columns), NO_COLOR="1", **extra)
    return subprocess.run(
        [str(LOWCARB), *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    """The single ``error: ...`` line a failed command printed (and nothing on stdout)."""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "Traceback" not in done.stderr
    return lines[0]


# -- tables fit the terminal ---------------------------------------------------------------------


def test_simulate_table_with_hours_column_cuts_no_value_at_80_columns(tmp_path):
    out = tmp_path / "out.json"
    done = run(
        "simulate", *SMALL, "--rounds", "6", "--deadline-hours", "12",
        "--policies", "random,lowcarb-2022,greedy,lowcarb", "--json", str(out), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert "…" not in text and "..." not in text, text
    assert " hours" in text or "hours\n" in text or "hours " in text, text
    table = [line for line in text.splitlines() if not line.startswith(("data:", "results "))]
    assert max(len(line) for line in table) <= 80, text
    results = json.loads(out.read_text())["policies"]
    rows = {line.split()[0]: line for line in text.splitlines() if line.strip()}
    for name, r in results.items():
        p = r["participation"]
        row = rows[name]  # the policy's name is whole, first on its line
        for value in (
            f"{r['emissions_kg']:.3f}",
            f"{p['jain']:.3f}",
            f"{int(p['min'])}-{int(p['max'])}",
            f"{r['duration_hours']:g}",
        ):
            assert value in row.split(), f"{value} not whole in {row!r}"


@pytest.mark.parametrize("columns", [80, 100])
def test_config_show_prints_every_key_whole(tmp_path, columns):
    keys = [
        row["key"]
        for row in json.loads(
            run("config", "show", "-p", "electricitymaps", "--json", cwd=tmp_path).stdout
        )["settings"]
    ]
    assert any(k.startswith("providers.electricitymaps.") for k in keys)
    done = run("config", "show", "-p", "electricitymaps", cwd=tmp_path, columns=columns)
    assert done.returncode == 0, done.stderr
    assert "…" not in done.stdout, done.stdout
    assert max(len(line) for line in done.stdout.splitlines()) <= columns
    words = set(done.stdout.replace("│", " ").replace("┃", " ").split())
    for key in keys:
        assert key in words, f"{key} not whole in:\n{done.stdout}"


# -- output paths are checked first --------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["simulate", "--json", "{bad}/out.json"],
        ["simulate", "--plot", "{bad}/x.png"],
        ["simulate", "--ledger", "{bad}/ledger.sqlite"],
        ["simulate", "--windows", "2", "--results", "{bad}/rows.jsonl"],
        ["report", "ledger.sqlite", "-o", "{bad}/report.md"],
        ["simulate", "--json", "."],
    ],
    ids=["json", "plot", "ledger", "results", "report", "folder"],
)
def test_an_unwritable_output_stops_the_command_at_once_with_exit_2(tmp_path, args):
    # A folder under a regular file cannot be made even by root (CI runs as root, where
    # /nonexistent/dir would simply be created).
    (tmp_path / "a-file").write_text("")
    args = [arg.format(bad=tmp_path / "a-file") for arg in args]
    done = run(*args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    line = one_line_error(done)
    assert args[-1] in line and "cannot write" in line, line
    assert done.stdout == ""  # no table: nothing was simulated


# -- error texts are text ------------------------------------------------------------------------


def test_errors_print_user_text_as_written_without_markup_or_emoji(tmp_path):
    bad = tmp_path / "passwd"
    bad.write_text("root:x:0:0:[bold]root[/bold]:/root:/bin/bash\n")
    done = run("zones", "-p", "file", "-o", f"path={bad}", cwd=tmp_path)
    assert done.returncode != 0
    line = one_line_error(done)
    assert "root:x:0:0:[bold]root[/bold]:/root" in line, line
    assert "❌" not in done.stderr


def test_simulate_with_an_empty_zone_list_is_an_error(tmp_path):
    done = run("simulate", *SMALL, "--zones", "", cwd=tmp_path)
    assert done.returncode != 0
    assert "--zones" in one_line_error(done)


# -- missing extras ------------------------------------------------------------------------------


@pytest.fixture
def without_starlette(tmp_path) -> dict[str, str]:
    """An environment in which ``import starlette`` fails as if it were not installed."""
    fake = tmp_path / "hide" / "starlette"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'starlette'\", name='starlette')\n"
    )
    return {"PYTHONPATH": str(tmp_path / "hide")}


@pytest.mark.parametrize(
    "args",
    [["serve"], ["disco", "serve", "--tasks", "."], ["dashboard", "ledger.sqlite"]],
    ids=["serve", "disco serve", "dashboard"],
)
def test_a_missing_extra_is_one_error_with_one_hint_in_both_install_forms(
    tmp_path, without_starlette, args
):
    done = run(*args, cwd=tmp_path, env=without_starlette)
    assert done.returncode == 2, done.stderr
    line = one_line_error(done)
    assert f"lowcarb {' '.join(args[:2] if args[0] == 'disco' else args[:1])} needs" in line
    assert "starlette" in line
    assert line.count("pip install 'lowcarb[disco]'") == 1, line
    assert line.count("pip install -e '.[disco]'") == 1, line
