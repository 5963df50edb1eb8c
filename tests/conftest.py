"""Shared fixtures: a clean environment, a manual clock, and the optional ../shared/data."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lowcarb import ManualClock

REPO = Path(__file__).resolve().parents[1]
#: The mark expression of the default run (pyproject's addopts).
DEFAULT_STAGE = "not integration and not interop and not slow"


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """Spread only the default run over workers; a chosen stage runs in this process.

    The integration, interop and slow stages start servers, subprocesses and Ray: run
    side by side they would compete for the two cores they each expect.
    """
    if config.option.markexpr != DEFAULT_STAGE:
        if getattr(config.option, "numprocesses", None):
            config.option.numprocesses = None
    elif getattr(config.option, "timeout", None) is None:
        # Nothing in the default run takes minutes: a hang fails fast there (the other
        # stages keep pyproject's longer bound, fixtures that build DISCO included).
        config.option.timeout = 180


def _shared_data_dir() -> Path:
    # ../shared/data sits beside the repository on developer machines and in CI; a user's
    # clone has none, and the tests that need it skip.
    override = os.environ.get("LOWCARB_TEST_SHARED_DATA")
    return Path(override) if override else REPO.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No LOWCARB_* variable from the developer's shell leaks into a test."""
    for key in list(os.environ):
        if key.startswith("LOWCARB_") and key != "LOWCARB_TEST_SHARED_DATA":
            monkeypatch.delenv(key, raising=False)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2023, 6, 1, 12, tzinfo=UTC))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ../shared/data; skips the test when it is absent."""
    path = _shared_data_dir()
    if not (path / "electricitymaps-16zones-2021-2023").is_dir():
        pytest.skip(f"shared carbon data not found at {path}")
    return path


@pytest.fixture(autouse=True)
def _restore_registry():
    """Providers registered by a test do not leak into the next one."""
    import lowcarb._registry as registry

    saved, loaded = dict(registry._registry), registry._entry_points_loaded
    yield
    registry._registry.clear()
    registry._registry.update(saved)
    registry._entry_points_loaded = loaded
