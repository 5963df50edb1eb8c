"""`lowcarb disco serve`: loopback by default, clear errors for bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from _disco_harness import EXAMPLES

from lowcarb.cli import main


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Replaces uvicorn's server: records what the bridge would serve, serves nothing."""
    seen: dict[str, Any] = {}

    def fake_run(server: uvicorn.Server, sockets: Any = None) -> None:
        config = server.config
        seen.update(
            app=config.app, host=config.host, port=config.port, ws_max_size=config.ws_max_size
        )
        server.started = True

    monkeypatch.setattr(uvicorn.Server, "run", fake_run)
    return seen


def test_binds_loopback_by_default_with_the_frame_limit(
    captured: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "disco",
            "serve",
            "--tasks",
            str(EXAMPLES / "tasks"),
            "--port",
            "0",
            "--max-frame-bytes",
            "65536",
            "--state-dir",
            str(tmp_path / "state"),
            "--provider",
            "default",
        ]
    )
    assert code == 0
    assert captured["host"] == "127.0.0.1"
    assert captured["ws_max_size"] == 65536
    assert (tmp_path / "state" / "lowcarb-tabular.ledger.sqlite").is_file()
    assert "warning" not in capsys.readouterr().err


def test_warns_when_binding_beyond_loopback(
    captured: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "disco",
            "serve",
            "--tasks",
            str(EXAMPLES / "tasks"),
            "--host",
            "0.0.0.0",
            "--provider",
            "default",
        ]
    )
    assert code == 0 and captured["host"] == "0.0.0.0"
    assert "no authentication" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--tasks", str(EXAMPLES / "tasks"), "--protocol", "v3"],
            "--protocol must be v2 or develop",
        ),
        (
            ["--tasks", str(EXAMPLES / "tasks"), "--protocol", "develop"],
            "serve it with --protocol v2",
        ),
        (["--tasks", "no/such/dir"], "is not a folder of DISCO tasks"),
        (
            ["--tasks", str(EXAMPLES / "tasks"), "--zones", "missing.json"],
            "the zone map missing.json cannot be read",
        ),
    ],
)
def test_bad_input_exits_non_zero_with_a_reason(
    captured: dict[str, Any], capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code = main(["disco", "serve", *args, "--provider", "default"])
    assert code == 1
    assert message in capsys.readouterr().err
    assert not captured  # nothing was served


@pytest.mark.slow
def test_the_bridge_stays_out_of_lowcarb_and_its_cli_until_used() -> None:
    code = (
        "import sys, lowcarb, lowcarb.cli, lowcarb.adapters.disco; "
        "print(sorted(m for m in ('starlette', 'uvicorn', 'msgpack') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
