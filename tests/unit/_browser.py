"""A real headless Chromium for the report and dashboard tests.

The browser is Debian's ``chromium`` package (``.ci/run`` installs it), driven by
Playwright through ``executable_path``: Playwright never downloads a browser here. The
machine's network is closed, so the browser starts with a fresh profile and everything
that would phone home switched off. Without Chromium the tests skip with the reason, unless
``LOWCARB_REQUIRE_BROWSER`` is set (CI), where they fail.

Screenshots go to ``build/test-artifacts`` (``LOWCARB_TEST_ARTIFACTS``); with
``LOWCARB_DOCS_SCREENSHOTS=1`` the ones the documentation shows are also written, small,
to ``docs/img``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
# Read when the tests are collected: the suite's autouse fixture clears LOWCARB_* before
# each test runs.
SETTINGS = {
    name: os.environ.get(name, "")
    for name in (
        "LOWCARB_CHROMIUM",
        "LOWCARB_REQUIRE_BROWSER",
        "LOWCARB_TEST_ARTIFACTS",
        "LOWCARB_DOCS_SCREENSHOTS",
    )
}
ARTIFACTS = Path(SETTINGS["LOWCARB_TEST_ARTIFACTS"] or REPO / "build" / "test-artifacts")
DOCS_IMAGES = REPO / "docs" / "img"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium() -> str:
    """The Chromium to drive, or skip (fail in CI) saying how to get one."""
    found = SETTINGS["LOWCARB_CHROMIUM"] or shutil.which("chromium")
    problem = None
    if found and not os.access(found, os.X_OK):
        problem = f"LOWCARB_CHROMIUM names {found}, which is not an executable"
    elif not found:
        problem = "no Chromium: install Debian's chromium package (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "Playwright for Python is missing: pip install -e '.[dev]'"
    if problem:
        if SETTINGS["LOWCARB_REQUIRE_BROWSER"]:
            pytest.fail(problem)
        pytest.skip(problem)
    assert found is not None
    return found


@contextmanager
def browser(**context: Any) -> Iterator[Any]:
    """A fresh headless browser context (options as Playwright's ``new_context``)."""
    from playwright.sync_api import sync_playwright

    executable = chromium()
    profile = tempfile.mkdtemp(prefix="lowcarb-chromium-")
    try:
        with sync_playwright() as driver:
            # A persistent context is the only way to give Chromium a profile folder of
            # our own (--user-data-dir); a fresh one each time.
            session = driver.chromium.launch_persistent_context(
                profile, executable_path=executable, headless=True, args=FLAGS, **context
            )
            try:
                yield session
            finally:
                session.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def offline(page: Any, allowed: str) -> list[str]:
    """Refuse every request that does not start with ``allowed``; returns the refused."""
    refused: list[str] = []

    def check(route: Any) -> None:
        url = route.request.url
        if url.startswith(allowed) or url.startswith("data:"):
            route.continue_()
        else:
            refused.append(url)
            route.abort()

    page.route("**/*", check)
    return refused


def screenshot(page: Any, name: str, *, docs: bool = False, full_page: bool = False) -> Path:
    """Save a screenshot as a test artifact (and, when asked, small, for the docs)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=full_page)
    if docs and SETTINGS["LOWCARB_DOCS_SCREENSHOTS"]:
        from PIL import Image

        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        # 128 colours are plenty for a page of text and flat figures, at a fraction of
        # the size.
        with Image.open(path) as image:
            small = image.convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT)
            small.save(DOCS_IMAGES / name, optimize=True)
    return path
