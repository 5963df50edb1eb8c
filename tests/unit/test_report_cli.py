"""``lowcarb report`` and ``lowcarb dashboard`` through the installed console script.

Each runs in a fresh interpreter as a user runs it: output on stdout, one line on stderr and
a non-zero exit for bad input, and a ledger being written while it is read.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _report_ledgers import TASK, write_run

from lowcarb import Ledger, summarize

pytestmark = pytest.mark.slow

LOWCARB = Path(sys.executable).with_name("lowcarb")
WRITER = Path(__file__).with_name("_ledger_writer.py")


def run(*args: str, **kw) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOWCARB_")}
    env.update(NO_COLOR="1", COLUMNS="100", **kw.pop("env", {}))
    return subprocess.run(
        [str(LOWCARB), *args], capture_output=True, text=True, timeout=120, env=env, **kw
    )


@pytest.fixture(scope="module")
def ledger(tmp_path_factory):
    return write_run(tmp_path_factory.mktemp("cli") / "run.ledger.sqlite", rounds=12)


def test_report_in_each_format(ledger, tmp_path):
    with Ledger.open_read_only(ledger) as raw:
        expected = summarize(raw.rounds(TASK), run_id=TASK, population=raw.participation(TASK))
    markdown = run("report", str(ledger))
    assert markdown.returncode == 0, markdown.stderr
    assert markdown.stdout.startswith(f"# Carbon account of task {TASK}")
    assert markdown.stderr == ""
    as_json = run("--now", "2024-06-05T00:00:00Z", "report", str(ledger), "--json")
    data = json.loads(as_json.stdout)
    assert data["sci"]["operational_g"] == expected.emissions_g
    assert data["generated_at"].startswith("2024-06-05T00:00")
    target = tmp_path / "account.html"
    html = run("report", str(ledger), "-o", str(target), "--embodied")
    assert html.returncode == 0, html.stderr
    assert html.stdout == "" and html.stderr.startswith(f"wrote {target} (html, ")
    page = target.read_text()
    assert page.startswith("<!doctype html>") and page.count("<svg") == 3
    assert "http://" not in page.replace("http://www.w3.org", "")  # nothing to fetch
    assert "embodied emissions (M = " in page


@pytest.mark.parametrize(
    ("make", "args", "message", "code"),
    [
        (None, ["report", "{missing}"], "no ledger file or state folder at", 1),
        ("junk", ["report", "{path}"], "is not a lowcarb ledger", 1),
        ("newer", ["report", "{path}"], "schema 9; this lowcarb reads 2", 1),
        ("ledger", ["report", "{path}", "--task", "nope"], "no task 'nope'", 1),
        ("empty", ["report", "{path}"], "has no rounds recorded yet", 1),
        ("two", ["report", "{path}"], "choose one with --task", 1),
        ("ledger", ["report", "{path}", "--format", "pdf"], "--format 'pdf'", 1),
        ("ledger", ["report", "{path}", "--embodied-kg", "-3"], "device_kg must be >= 0", 1),
        ("junk", ["dashboard", "{path}"], "is not a lowcarb ledger", 1),
        ("ledger", ["dashboard", "{path}", "--host", "0.0.0.0"], "--allow-remote", 2),
    ],
)
def test_bad_input_is_one_line_and_a_non_zero_exit(tmp_path, make, args, message, code):
    path = tmp_path / "x.ledger.sqlite"
    if make == "junk":
        path.write_bytes(b"not sqlite at all" * 64)
    elif make in ("ledger", "newer"):
        write_run(path, rounds=1)
        if make == "newer":
            with sqlite3.connect(path) as db:
                db.execute("UPDATE meta SET value='9' WHERE key='schema'")
    elif make in ("empty", "two"):
        with Ledger(path) as raw:
            raw.open_run(TASK, config={})
            if make == "two":
                raw.open_run("other", config={})
    done = run(*(a.format(path=path, missing=tmp_path / "missing") for a in args))
    assert done.returncode == code, done.stdout + done.stderr
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def test_reading_a_ledger_being_written(tmp_path):
    """Every report sees whole rounds, and the writer never waits for the reader."""
    path = tmp_path / "busy.ledger.sqlite"
    writer = subprocess.Popen(
        [sys.executable, str(WRITER), str(path), "busy"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdin is not None and writer.stdout is not None
        writer.stdin.write("go\n")
        writer.stdin.flush()
        assert writer.stdout.readline().startswith("committed")
        seen = []
        for _ in range(4):
            done = run("report", str(path), "--json")
            assert done.returncode == 0, done.stderr
            data = json.loads(done.stdout)
            rounds = data["rounds"]
            assert [r["round"] for r in rounds] == list(range(1, len(rounds) + 1))
            for r in rounds:
                # The writer's round n: 5.5 kWh at 100 + n g/kWh, 200 + n once completed.
                assert r["clients"] == 10
                n = r["round"]
                assert r["emissions_g"] in (
                    pytest.approx(5.5 * (100 + n)),
                    pytest.approx(5.5 * (200 + n)),
                )
            assert data["sci"]["operational_g"] == pytest.approx(
                sum(r["emissions_g"] for r in rounds)
            )
            seen.append(len(rounds))
            time.sleep(0.2)
        assert seen == sorted(seen) and seen[-1] > seen[0], seen  # it kept writing
    finally:
        writer.kill()
        writer.communicate(timeout=10)  # reaps it and closes the pipes
