"""Bad input on the command line: one clear line on stderr and a non-zero exit, never a
traceback, for times outside what lowcarb works with, negative seeds and data paths that
are not regular files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import lowcarb.backends._file as file_provider
from lowcarb.cli import main
from lowcarb.exceptions import ConfigurationError, DataValidationError


def _refused(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    assert main(args) != 0
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize(
    "when", ["9999-12-31T23:59Z", "0001-01-01T00:00Z", "2200-01-01", "1969-12-31T23:00Z"]
)
def test_times_outside_the_supported_range_are_refused(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    outside = "is outside the times lowcarb works with (1970-01-01 to 2199-12-31, UTC)"
    _refused(capsys, ["--now", when, "latest", "-z", "DE"], outside)
    _refused(capsys, ["history", "-z", "DE", "--start", when], outside)
    _refused(capsys, ["forecast", "-z", "DE", "--start", when], outside)
    _refused(capsys, ["simulate", "--start", when, "--learning", "none"], outside)
    monkeypatch.setenv("LOWCARB_NOW", when)
    _refused(capsys, ["latest", "-z", "DE"], "--now=")


def test_the_edges_of_the_range_work(capsys: pytest.CaptureFixture[str]) -> None:
    for when in ("1970-01-01T00:00Z", "2199-12-31T00:00Z"):
        assert main(["--now", when, "latest", "-z", "DE", "--json"]) == 0
        assert '"DE"' in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["simulate", "--seed", "-1"], "--seed=-1: use an integer from 0 to"),
        (["simulate", "--seed", str(2**64)], "use an integer from 0 to"),
        (["disco", "serve", "--tasks", ".", "--seed", "-7"], "--seed=-7"),
        (["latest", "-z", "DE", "-o", "seed=-1"], "seed=-1: must be a non-negative integer"),
        (["latest", "-z", "DE", "-o", "seed=1.5"], "must be an integer"),
    ],
)
def test_negative_seeds_are_refused(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    _refused(capsys, args, message)


def test_data_paths_that_are_not_regular_files_are_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    for path in ("/dev/zero", str(fifo)):
        _refused(
            capsys,
            ["latest", "-p", "file", "-z", "DE", "-o", f"path={path}"],
            f"providers.file.path: {path} is not a regular file",
        )
    # A folder's FIFOs and devices are not data files: a folder of only those holds none.
    (tmp_path / "zero.csv").symlink_to("/dev/zero")
    _refused(
        capsys,
        ["latest", "-p", "file", "-z", "DE", "-o", f"path={tmp_path}"],
        "holds no .csv or .parquet file",
    )
    big = tmp_path / "big"
    big.mkdir()
    (big / "data.csv").write_text("datetime_utc,DE\n" + "2024-01-01T00:00Z,100\n" * 50)
    monkeypatch.setattr(file_provider, "MAX_DATA_FILE_BYTES", 100)
    _refused(
        capsys,
        ["latest", "-p", "file", "-z", "DE", "-o", f"path={big / 'data.csv'}"],
        "larger than the limit of 0.0977 KiB",
    )
    with pytest.raises(DataValidationError, match="larger than the limit"):
        file_provider.FileProvider(path=big).served_zones()  # checked when read
    with pytest.raises(ConfigurationError, match="is not a regular file"):
        file_provider.FileProvider(path="/dev/zero")
