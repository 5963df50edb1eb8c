"""The command line, driven through main() exactly as the console script runs it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lowcarb.cli import main

NOW = "2024-06-01T12:00Z"


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def test_forecast_json_prints_24_hourly_values(capsys):
    code, out, _ = run(capsys, "forecast", "--zone", "DE", "--hours", "24", "--json", "--now", NOW)
    assert code == 0
    payload = json.loads(out)
    values = payload["data"]["DE"]
    assert len(values) == 24
    assert values[0]["start"] == "2024-06-01T12:00:00Z"
    assert all(isinstance(v["value"], float) and v["value"] > 0 for v in values)
    assert payload["synthetic"] is True and payload["is_forecast"] is True
    assert payload["provider"] == "default" and payload["unit"] == "gCO2eq/kWh"


def test_forecast_table_is_labelled_synthetic(capsys):
    code, out, _ = run(capsys, "forecast", "-z", "GB", "--hours", "3", "--now", NOW)
    assert code == 0
    assert "SYNTHETIC" in out and "GB" in out and "2024-06-01 14:00" in out


def test_latest_resolves_locations_and_reports_how(capsys):
    code, out, err = run(
        capsys, "latest", "-z", "aws:eu-central-1", "-z", "52.5,13.4", "--json", "--now", NOW
    )
    assert code == 0
    payload = json.loads(out)
    assert list(payload["data"]) == ["DE"]
    methods = {r["method"] for r in payload["resolved"]}
    assert methods == {"cloud-region", "nearest-zone"}
    code, out, err = run(capsys, "latest", "-z", "gcp:europe-west2", "--now", NOW)
    assert "gcp:europe-west2 -> GB (cloud-region table)" in err


def test_history_summary_and_json(capsys):
    code, out, _ = run(capsys, "history", "-z", "DE", "--hours", "200", "--now", NOW)
    assert code == 0 and "summary" in out
    code, out, _ = run(
        capsys,
        "--now",
        NOW,
        "history",
        "-z",
        "DE",
        "--start",
        "2024-05-31",
        "--end",
        "2024-06-01",
        "--json",
    )
    assert len(json.loads(out)["data"]["DE"]) == 24


def test_zones_and_resolve(capsys):
    code, out, _ = run(capsys, "zones", "--json")
    zones = {z["zone"] for z in json.loads(out)["zones"]}
    assert code == 0 and len(zones) == 16
    code, out, _ = run(capsys, "zones")
    assert "synthetic" in out and "US-CAL-CISO" in out
    code, out, _ = run(capsys, "resolve", "Germany", "azure:westus", "--json")
    assert [r["zone"] for r in json.loads(out)] == ["DE", "US-CAL-CISO"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("latest", "-z", "DEU"), 1, "unknown zone 'DEU'"),
        (("forecast", "-z", "DE", "--hours", "1000"), 1, "beyond what 'default' forecasts"),
        (
            ("history", "-z", "DE", "--start", "2024-06-02", "--end", "2024-06-01"),
            1,
            "must be before",
        ),
        (("history", "-z", "DE", "--start", "last week"), 1, "is not an ISO 8601"),
        (("latest", "--provider", "nope"), 2, "unknown provider 'nope'"),
        (("latest", "-o", "seed"), 2, "must look like KEY=VALUE"),
        (("latest", "-o", "seed=lots"), 2, "must be an integer"),
        (("forecast", "--hours", "0"), 2, ""),
    ],
)
def test_user_errors_are_one_line_without_traceback(capsys, args, code, message):
    got, out, err = (
        run(capsys, *args, "--now", NOW)
        if args[0] != "latest" or "-o" not in args
        else run(capsys, *args)
    )
    assert got == code
    assert "Traceback" not in err + out
    if message:
        assert message in err
        assert err.count("\n") == 1 or err.startswith("error:")


def test_debug_shows_the_traceback():
    from lowcarb import UnknownZoneError

    with pytest.raises(UnknownZoneError):
        main(["--debug", "latest", "-z", "XX"])


def test_config_show_reports_sources(capsys, tmp_path, monkeypatch):
    (tmp_path / "lowcarb.toml").write_text("[providers.default]\nseed = 2\n")
    monkeypatch.setenv("LOWCARB_DEFAULT_BASIS", "direct")
    code, out, _ = run(capsys, "config", "show", "--json")
    rows = {r["key"]: r for r in json.loads(out)["settings"]}
    assert rows["providers.default.seed"] == {
        "key": "providers.default.seed",
        "value": "2",
        "source": "lowcarb.toml",
    }
    assert rows["providers.default.basis"]["source"] == "environment"
    code, out, _ = run(capsys, "config", "show")
    assert code == 0 and "lowcarb.toml" in out


def test_config_show_reports_a_missing_credential_instead_of_failing(capsys, monkeypatch):
    monkeypatch.setenv("LOWCARB_PROVIDER", "watttime")
    monkeypatch.delenv("LOWCARB_WATTTIME_USERNAME", raising=False)
    monkeypatch.setenv("LOWCARB_WATTTIME_PASSWORD", "hunter2-secret")
    code, out, _ = run(capsys, "config", "show", "--json")
    rows = {r["key"]: r for r in json.loads(out)["settings"]}
    assert code == 0
    assert rows["providers.watttime.username"]["source"].startswith("missing")
    assert rows["providers.watttime.password"]["value"] == "<redacted>"
    assert "hunter2-secret" not in out
    # Every other command still fails at once, naming the variable.
    code, _, err = run(capsys, "latest")
    assert code != 0 and "LOWCARB_WATTTIME_USERNAME" in err


def test_bad_config_file_exits_2(capsys, tmp_path):
    (tmp_path / "lowcarb.toml").write_text('provider = "electricitymap"\n')
    code, _, err = run(capsys, "latest")
    assert code == 2 and "unknown provider 'electricitymap'" in err


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("lowcarb ")


@pytest.mark.slow
def test_console_script_on_a_fresh_install():
    """The installed `lowcarb` entry point runs in a subprocess, as a user would."""
    exe = Path(sys.executable).with_name("lowcarb")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "lowcarb"]
    done = subprocess.run(
        [*cmd, "forecast", "--zone", "DE", "--hours", "24", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["data"]["DE"]) == 24


def test_option_flag_is_labelled_command_line(capsys):
    code, out, _ = run(capsys, "config", "show", "-o", "seed=4", "--json")
    rows = {r["key"]: r for r in json.loads(out)["settings"]}
    assert code == 0
    assert rows["providers.default.seed"] == {
        "key": "providers.default.seed",
        "value": "4",
        "source": "command line",
    }
