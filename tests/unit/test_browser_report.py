"""The HTML report in a real headless Chromium: the ledger's numbers, offline, any screen."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from _browser import browser, offline, screenshot
from _report_ledgers import TASK, write_run

from lowcarb import EmbodiedCarbon, Ledger, summarize
from lowcarb.report import make_report
from lowcarb.report._account import fmt_g

pytestmark = pytest.mark.slow

NOW = datetime(2024, 6, 5, 12, tzinfo=UTC)
#: What the page's data-key elements must hold: the core's account of the same ledger.
KEYS = {
    "sci.operational_g": lambda s, sci: s.emissions_g,
    "sci.energy_kwh": lambda s, sci: s.energy_kwh,
    "sci.per_round_g": lambda s, sci: sci["per_round_g"],
    "sci.per_accuracy_point_g": lambda s, sci: sci["per_accuracy_point_g"],
    "sci.embodied_g": lambda s, sci: sci["embodied_g"],
    "sci.total_g": lambda s, sci: sci["total_g"],
    "counterfactual.random_g": lambda s, sci: s.random_g,
    "counterfactual.saving_share": lambda s, sci: s.saving_vs_random,
    "forecast.expected_g": lambda s, sci: s.emissions_expected_g,
    "participation.jain": lambda s, sci: s.participation["jain"],
    "participation.never": lambda s, sci: s.participation["never"],
}


@pytest.fixture(scope="module")
def account(tmp_path_factory):
    folder = tmp_path_factory.mktemp("browser-report")
    ledger = write_run(folder / "run.ledger.sqlite", rounds=36, planned=48)
    embodied = EmbodiedCarbon()
    page = folder / "account.html"
    page.write_text(make_report(ledger, fmt="html", embodied=embodied, now=NOW))
    with Ledger.open_read_only(ledger) as raw:
        summary = summarize(raw.rounds(TASK), run_id=TASK, population=raw.participation(TASK))
    return page, summary, summary.sci(embodied)


def _shown(page) -> dict[str, list[tuple[str, str]]]:
    pairs = page.eval_on_selector_all(
        "[data-key]", "els => els.map(e => [e.dataset.key, e.dataset.value, e.textContent])"
    )
    shown: dict[str, list[tuple[str, str]]] = {}
    for key, value, text in pairs:
        shown.setdefault(key, []).append((value, text))
    return shown


def test_the_page_shows_the_ledgers_numbers_and_fetches_nothing(account):
    path, summary, sci = account
    with browser(viewport={"width": 1100, "height": 900}) as session:
        page = session.new_page()
        refused = offline(page, "file://")
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(path.as_uri())
        shown = _shown(page)
        for key, expected in KEYS.items():
            assert key in shown, key
            for value, _ in shown[key]:
                assert float(value) == expected(summary, sci), key
        (total_text,) = {text for _, text in shown["sci.total_g"]}
        assert total_text == fmt_g(sci["total_g"])
        assert page.locator("figure svg").count() == 3
        embedded = json.loads(page.inner_text("#lowcarb-report"))
        assert embedded["sci"]["operational_g"] == summary.emissions_g
        assert refused == [] and errors == []
        screenshot(page, "report.png", docs=True)


def test_readable_in_a_dark_theme_and_on_a_phone(account):
    path, _, _ = account
    with browser(viewport={"width": 390, "height": 844}, color_scheme="dark") as session:
        page = session.new_page()
        page.goto(path.as_uri())
        body = page.evaluate("getComputedStyle(document.body).color")
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert body != background and _luminance(background) < _luminance(body)
        # Figures draw in the page's text colour (currentColor), so they stay readable.
        ink = page.evaluate("getComputedStyle(document.querySelector('figure svg text')).fill")
        assert ink == body
        # Nothing but the figures and wide tables scrolls sideways.
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390
        screenshot(page, "report-phone-dark.png", full_page=False)


def _luminance(css: str) -> float:
    red, green, blue = (int(v) for v in css[css.index("(") + 1 : css.index(")")].split(",")[:3])
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue
