"""Cassette tests: providers replay recorded HTTP (pytest-vcr); the network is never used.

Conventions:

* Every test here carries the ``vcr`` marker, so ``pytest -m vcr`` runs exactly them,
  and names its cassette: ``@pytest.mark.vcr("latest_national")`` replays
  ``cassettes/<CASSETTES>/latest_national.yaml``, where ``CASSETTES`` is a constant of
  the test module (the provider's registry name).
* Replay uses record mode ``none``: a request that is not in the cassette raises
  ``vcr.errors.CannotOverwriteExistingCassetteException`` and nothing is sent.
* A cassette holds one test's HTTP; never use ``httpx.MockTransport`` in a cassette test
  (vcrpy patches MockTransport too, so the two would mix).
* Tests marked ``handmade`` replay faults that a live API cannot be made to produce on
  demand (429 then 200, a truncated body); they are skipped when recording.

Re-recording against the live APIs (needs the network and each provider's credentials
in the environment, e.g. ``LOWCARB_ELECTRICITYMAPS_TOKEN``), one command::

    .venv/bin/pytest tests/cassette -m vcr --vcr-record=all -p no:cacheprovider

``--vcr-record=all`` rewrites every cassette its test uses; ``--vcr-record=once`` records
only the cassettes that do not exist yet (a new provider's). Recorded cassettes get a
header comment saying when and how they were recorded. Secrets are filtered before
anything is written: credential headers and query parameters become ``REDACTED``,
credential fields of request bodies too, and response bodies are scrubbed of tokens
(:func:`scrub_text`). ``test_cassette_hygiene.py`` then scans every cassette.
"""

from __future__ import annotations

from typing import Any

import pytest
from _vcr_setup import (
    CASSETTE_ROOT,
    SECRET_FIELDS,
    SECRET_HEADERS,
    SECRET_PARAMETERS,
    RecordingPersister,
    scrub_request,
    scrub_response,
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "handmade: the cassette scripts a fault the live API cannot be made to produce; "
        "skipped when re-recording",
    )


@pytest.fixture(scope="module")
def vcr_config() -> dict[str, Any]:
    """Replay only, and filter every secret should a cassette ever be recorded."""
    return {
        "record_mode": "none",
        "filter_headers": [(name, "REDACTED") for name in SECRET_HEADERS],
        "filter_query_parameters": [(name, "REDACTED") for name in SECRET_PARAMETERS],
        "filter_post_data_parameters": [(name, "REDACTED") for name in SECRET_FIELDS],
        "before_record_request": scrub_request,
        "before_record_response": scrub_response,
        "decode_compressed_response": True,
        # A live re-recording that fails half-way must not replace a good cassette.
        "record_on_exception": False,
    }


@pytest.fixture(scope="module")
def vcr_cassette_dir(request: pytest.FixtureRequest) -> str:
    """``cassettes/<CASSETTES>`` for the test module's ``CASSETTES`` constant."""
    folder = getattr(request.module, "CASSETTES", None)
    if not folder:
        raise pytest.UsageError(
            f"{request.module.__name__} must set CASSETTES = '<provider>' (its cassette folder)"
        )
    return str(CASSETTE_ROOT / folder)


@pytest.fixture
def vcr_cassette_name(request: pytest.FixtureRequest) -> str:
    """The name given to the test's ``vcr`` marker, else the test's name."""
    marker = request.node.get_closest_marker("vcr")
    if marker is not None and marker.args:
        return str(marker.args[0])
    return str(request.node.name)


@pytest.fixture(scope="module")
def vcr(vcr: Any) -> Any:
    """pytest-vcr's VCR, writing recorded cassettes with a provenance header."""
    vcr.register_persister(RecordingPersister)
    return vcr


@pytest.fixture(autouse=True)
def _skip_handmade_when_recording(request: pytest.FixtureRequest) -> None:
    mode = request.config.getoption("--vcr-record")
    if mode not in (None, "none") and request.node.get_closest_marker("handmade"):
        pytest.skip("hand-written fault cassette: a live API cannot reproduce it")
