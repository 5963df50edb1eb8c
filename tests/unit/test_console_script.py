"""The installed ``lowcarb`` console script and the selection benchmark, run as users run them.

Each runs in a fresh interpreter, so what a library prints on its first use (HiGHS's banner
on file descriptor 1, from C++) reaches the output as it would for a user. Machine output
must parse with nothing before it; help must render without markup escapes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow  # fresh interpreters, as users start them

REPO = Path(__file__).resolve().parents[2]
LOWCARB = Path(sys.executable).with_name("lowcarb")
BENCHMARK = REPO / "benchmarks" / "selection.py"

# Small enough to take about a second each, large enough that the lowcarb policy plans with
# HiGHS. Mostly interpreter start-up, so they all start at once.
RUNS = {
    "simulate": [
        str(LOWCARB), "simulate", "--learning", "none", "--policies", "random,lowcarb",
        "--hours", "6", "--clients", "20", "--per-round", "2", "--json", "-",
    ],
    "forecast": [str(LOWCARB), "forecast", "-z", "DE", "--json"],
    "help": [str(LOWCARB), "--help"],
    "simulate help": [str(LOWCARB), "simulate", "--help"],
    "benchmark": [
        sys.executable, str(BENCHMARK),
        "--clients", "50", "--zones", "3", "--horizon", "6", "--repeat", "2", "--json",
    ],
}  # fmt: skip


@pytest.fixture(scope="module")
def stdout(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Each run's stdout at 80 columns, without colour or LOWCARB_* settings; all succeed."""
    assert LOWCARB.is_file(), f"no console script at {LOWCARB}: pip install -e . first"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOWCARB_")}
    for key in ("FORCE_COLOR", "PY_COLORS", "CLICOLOR_FORCE"):
        env.pop(key, None)
    env.update(COLUMNS="80", NO_COLOR="1")
    cwd = tmp_path_factory.mktemp("console")  # no lowcarb.toml or pyproject.toml above
    started = {
        name: subprocess.Popen(
            args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for name, args in RUNS.items()
    }
    outputs = {}
    for name, process in started.items():
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, f"{name}: exit {process.returncode}\n{out}{err}"
        outputs[name] = out
    return outputs


def _only_json(out: str) -> Any:
    """The one JSON document that is the whole output (json.loads rejects any text around)."""
    assert out.lstrip().startswith(("{", "[")), f"text before the JSON: {out[:200]!r}"
    return json.loads(out)


def test_simulate_json_to_stdout_is_only_json(stdout):
    payload = _only_json(stdout["simulate"])
    assert payload["scenario"]["clients"] == 20
    text = json.dumps(payload)
    assert "random" in text and "lowcarb" in text


def test_forecast_json_is_only_json(stdout):
    payload = _only_json(stdout["forecast"])
    assert payload["data"]["DE"] and payload["is_forecast"] is True


@pytest.mark.parametrize(
    ("run", "shown"),
    [
        ("help", [r"--now", r"\[env\s+var:\s+LOWCARB_NOW\]", r"simulate", r"forecast"]),
        ("simulate help", [r"--hours", r"\[default:\s+96\]", r"--clients", r"--json"]),
    ],
    ids=["lowcarb", "simulate"],
)
def test_help_renders_without_markup_escapes(stdout, run, shown):
    out = stdout[run]
    assert "\\[" not in out, out
    for pattern in shown:
        assert re.search(pattern, out), f"{pattern!r} not in:\n{out}"


def test_selection_benchmark_json_is_only_json(stdout):
    payload = _only_json(stdout["benchmark"])
    assert set(payload["results"]) >= {"lowcarb", "random"}
    assert payload["results"]["lowcarb"]["p50_ms"] > 0
