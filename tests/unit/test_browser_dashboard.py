"""The live dashboard in a real headless Chromium, while a training writes its ledger.

``lowcarb dashboard`` and ``lowcarb serve`` run as users run them (the console script, a
token from the environment); a writer process trains one round each time the test says
so, and the page must follow: its numbers equal the ledger's after every round.
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _browser import browser, offline, screenshot
from _report_ledgers import TASK

from lowcarb import Ledger, summarize

pytestmark = pytest.mark.slow

LOWCARB = Path(sys.executable).with_name("lowcarb")
WRITER = Path(__file__).with_name("_report_ledgers.py")
TOKEN = "dashboard-token-for-tests-7f3a"
STATE = "dashboard/api/state"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOWCARB_")}
    return {**env, "NO_COLOR": "1", **extra}


class Training:
    """The writer process: one more round per :meth:`step`."""

    def __init__(self, ledger: Path, rounds: int, planned: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(WRITER), str(ledger), str(rounds), str(planned)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=_env(),
        )

    def step(self) -> int:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line.startswith("round "), line
        return int(line.split()[1])

    def stop(self) -> None:
        self.process.kill()
        self.process.communicate(timeout=10)


def _serve(*args: str, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    """Start a lowcarb server on a free port; returns it and its URL (read from its log)."""
    server = subprocess.Popen(
        [str(LOWCARB), *args], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env
    )
    assert server.stderr is not None
    deadline = time.monotonic() + 60
    seen = []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([server.stderr], [], [], 1.0)
        if not ready:
            continue
        line = server.stderr.readline()
        seen.append(line)
        found = re.search(r"http://[0-9.]+:[0-9]+", line)
        if found:
            return server, found.group(0) + "/"
        if not line:
            break
    server.kill()
    server.communicate(timeout=10)
    raise AssertionError("the server did not say where it listens:\n" + "".join(seen))


def _stop(server: subprocess.Popen[str]) -> None:
    server.terminate()
    server.communicate(timeout=20)


def _ledger_account(path: Path) -> dict[str, Any]:
    with Ledger.open_read_only(path) as raw, raw.snapshot():
        summary = summarize(raw.rounds(TASK), run_id=TASK, population=raw.participation(TASK))
    return {
        "account.emissions_g": summary.emissions_g,
        "account.random_g": summary.random_g,
        "account.saving_share": summary.saving_vs_random,
        "account.energy_kwh": summary.energy_kwh,
        "account.expected_g": summary.emissions_expected_g,
        "account.participation.jain": summary.participation["jain"],
        "rounds": summary.rounds,
    }


def _page_account(page: Any) -> dict[str, Any]:
    pairs = page.eval_on_selector_all(
        f'[data-task="{TASK}"] .card [data-key]',
        "els => els.map(e => [e.dataset.key, e.dataset.value])",
    )
    return {key: float(value) for key, value in pairs}


def _wait_for_round(page: Any, number: int) -> None:
    page.wait_for_function(
        "n => { const m = document.querySelector('[data-task] .meta');"
        " return m && m.textContent.startsWith('round ' + n + ' '); }",
        arg=number,
        timeout=20_000,
    )


@pytest.fixture
def training(tmp_path: Path) -> Iterator[tuple[Path, Training]]:
    state = tmp_path / "lowcarb-state"
    state.mkdir()
    ledger = state / f"{TASK}.ledger.sqlite"
    writer = Training(ledger, rounds=12, planned=24)
    try:
        yield ledger, writer
    finally:
        writer.stop()


def test_the_dashboard_follows_a_training_and_obeys_its_token(training: tuple[Path, Training]):
    ledger, writer = training
    assert writer.step() == 1
    server, url = _serve(
        "dashboard",
        str(ledger.parent),
        "--port",
        "0",
        "--poll-seconds",
        "0.3",
        "--token-env",
        "DASHBOARD_TOKEN",
        env=_env(DASHBOARD_TOKEN=TOKEN),
    )
    try:
        assert httpx.get(url + STATE).status_code == 401  # no token, no data
        with browser(viewport={"width": 1100, "height": 1000}) as session:
            page = session.new_page()
            refused = offline(page, url)
            page.goto(url)
            page.wait_for_selector("#auth:not([hidden])")
            assert page.locator("[data-task]").count() == 0
            screenshot(page, "dashboard-token.png")
            page.fill("#token", TOKEN)
            page.click("#token-form button")
            _wait_for_round(page, 1)
            expected = _ledger_account(ledger)
            assert _page_account(page) == {k: v for k, v in expected.items() if k != "rounds"}
            for number in (2, 3):
                # The training goes on; the page follows within a few polls.
                assert writer.step() == number
                _wait_for_round(page, number)
                expected = _ledger_account(ledger)
                assert expected["rounds"] == number
                shown = _page_account(page)
                assert shown == {k: v for k, v in expected.items() if k != "rounds"}
            waiting = page.locator(f'[data-task="{TASK}"] table.deferred tr').count() - 1
            assert waiting == 25
            while writer.step() < 10:  # half way through the training, for the picture
                pass
            _wait_for_round(page, 10)
            assert _page_account(page) == {
                k: v for k, v in _ledger_account(ledger).items() if k != "rounds"
            }
            assert TOKEN not in page.content() and refused == []
            screenshot(page, "dashboard.png", docs=True)
    finally:
        _stop(server)


def test_lowcarb_serve_shows_its_tasks_at_root(tmp_path: Path):
    server, url = _serve(
        "serve",
        "--port",
        "0",
        "--state-dir",
        str(tmp_path),
        "--token-env",
        "SERVICE_TOKEN",
        "--log-level",
        "info",  # uvicorn says where it listens
        env=_env(SERVICE_TOKEN=TOKEN),
    )
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        candidates = [{"id": f"site-{i}", "zone": z} for i, z in enumerate(["DE", "GB", "SG"])]
        body = {"task": "mnist", "k": 1, "candidates": candidates}
        assert httpx.post(url + "v1/select", json=body, headers=auth).status_code == 200
        with browser(viewport={"width": 390, "height": 844}, color_scheme="dark") as session:
            page = session.new_page()
            refused = offline(page, url)
            page.goto(url)
            page.wait_for_selector("#auth:not([hidden])")
            page.fill("#token", "a wrong token")
            page.click("#token-form button")
            page.wait_for_function(
                "() => document.getElementById('auth-text').textContent.includes('refused')"
            )
            page.fill("#token", TOKEN)
            page.click("#token-form button")
            page.wait_for_selector('[data-task="mnist"] .meta')
            assert "round 1" in page.inner_text('[data-task="mnist"] .meta')
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            assert refused == []
            screenshot(page, "dashboard-phone-dark.png", docs=True)
    finally:
        _stop(server)
