"""FileProvider against small invented files written to tmp_path."""

from __future__ import annotations

import logging
import math
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import lowcarb
from lowcarb import ManualClock
from lowcarb.backends._file import FileProvider
from lowcarb.exceptions import (
    ConfigurationError,
    DataValidationError,
    NoDataError,
    UnknownZoneError,
)

H = timedelta(hours=1)
T0 = datetime(2023, 6, 1, tzinfo=UTC)
PORTAL_HEADER = (
    "Datetime (UTC),Country,Zone Name,Zone Id,Carbon Intensity gCO₂eq/kWh (direct),"
    "Carbon Intensity gCO₂eq/kWh (LCA),Low Carbon Percentage,Renewable Percentage,"
    "Data Source,Data Estimated,Data Estimation Method"
)


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def value(i: int, j: int) -> float:
    """Invented intensity of zone number j at hour i."""
    return 100.0 + 10.0 * i + j


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def wide_csv(
    tmp_path: Path,
    zones: tuple[str, ...] = ("DE", "FR"),
    n: int = 24,
    name: str = "ci.csv",
    start: datetime = T0,
) -> Path:
    rows = ["datetime_utc," + ",".join(zones)]
    for i in range(n):
        cells = [f"{value(i, j):g}" for j in range(len(zones))]
        rows.append(",".join([iso(start + i * H), *cells]))
    return write(tmp_path / name, rows)


def portal_csv(
    path: Path, zone: str, start: datetime, n: int, estimated: set[int] = frozenset()
) -> Path:
    rows = [PORTAL_HEADER]
    for i in range(n):
        stamp = (start + i * H).strftime("%Y-%m-%d %H:%M:%S")
        flag = "true" if i in estimated else "false"
        method = "ESTIMATED_TEST" if i in estimated else ""
        rows.append(
            f"{stamp},Land,{zone} grid,{zone},{value(i, 0) - 40:g},{value(i, 0):g},"
            f"50.0,40.0,example.org,{flag},{method}"
        )
    return write(path, rows)


def history(p: FileProvider, zones: list[str], n: int = 24):
    return p.history(zones, T0, T0 + n * H)


def bad(tmp_path: Path, lines: list[str], **kwargs) -> pytest.ExceptionInfo:
    path = write(tmp_path / "bad.csv", lines)
    with pytest.raises(DataValidationError) as info:
        FileProvider(path, **kwargs).served_zones()
    assert str(path) in str(info.value)
    return info


# -- wide format --------------------------------------------------------------------------


def test_wide_csv_round_trip(tmp_path: Path) -> None:
    path = wide_csv(tmp_path)
    p = FileProvider(path)
    assert p.served_zones() == ["DE", "FR"]
    s = history(p, ["FR", "DE"])
    assert s.zones == ["FR", "DE"]
    assert len(s) == 24
    assert s.resolution == H
    assert str(s.values.index.tz) == "UTC"
    assert s.values.index[0] == pd.Timestamp(T0)
    assert s.values["DE"].tolist() == [value(i, 0) for i in range(24)]
    assert s.values["FR"].tolist() == [value(i, 1) for i in range(24)]
    assert not s.estimated_mask().to_numpy().any()
    assert (s.provider, s.signal, s.basis, s.is_forecast) == ("file", "average", "lifecycle", False)
    caps = p.capabilities
    assert caps.resolution == H
    assert caps.forecast_horizon == 24 * H
    assert caps.history is True
    assert caps.synthetic is False


def test_basis_and_signal_are_declared(tmp_path: Path) -> None:
    p = FileProvider(wide_csv(tmp_path), basis="direct", signal="marginal")
    s = history(p, ["DE"])
    assert (s.basis, s.signal) == ("direct", "marginal")
    assert (p.capabilities.basis, p.capabilities.signal) == ("direct", "marginal")


def test_timestamps_with_offsets_are_converted(tmp_path: Path) -> None:
    path = write(
        tmp_path / "ci.csv",
        [
            "datetime_utc,DE",
            "2023-06-01T02:00:00+02:00,100",
            "2023-06-01T01:00:00+00:00,110",
            "2023-06-01 02:00,120",  # no offset: UTC
            "2023-06-01T03:00:00Z,130",
        ],
    )
    s = FileProvider(path).history(["DE"], T0, T0 + 4 * H)
    assert list(s.values.index) == [pd.Timestamp(T0 + i * H) for i in range(4)]
    assert s.values["DE"].tolist() == [100, 110, 120, 130]


def test_utf8_bom_and_spaces_in_header(tmp_path: Path) -> None:
    path = tmp_path / "ci.csv"
    path.write_text(f"\ufeffdatetime_utc, DE\n{iso(T0)},100\n{iso(T0 + H)},101\n", "utf-8")
    assert FileProvider(path).served_zones() == ["DE"]


def test_parquet_round_trip(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "datetime_utc": [iso(T0 + i * H) for i in range(5)],
            "DE": [value(i, 0) for i in range(5)],
            "FR": [value(i, 1) for i in range(5)],
        }
    )
    path = tmp_path / "ci.parquet"
    frame.to_parquet(path)
    s = FileProvider(path).history(["DE", "FR"], T0, T0 + 5 * H)
    assert s.values["FR"].tolist() == frame["FR"].tolist()
    assert s.resolution == H
    assert str(s.values.index.tz) == "UTC"


def test_parquet_datetime_index(tmp_path: Path) -> None:
    index = pd.date_range("2023-06-01", periods=5, freq="h", name="datetime_utc")  # naive: UTC
    frame = pd.DataFrame({"DE": [float(v) for v in range(200, 205)]}, index=index)
    path = tmp_path / "ci.parquet"
    frame.to_parquet(path)
    s = FileProvider(path).history(["DE"], T0, T0 + 5 * H)
    assert s.values["DE"].tolist() == [200, 201, 202, 203, 204]
    assert s.values.index[0] == pd.Timestamp(T0)


def test_parquet_aware_datetime_column_is_converted(tmp_path: Path) -> None:
    stamps = pd.date_range("2023-06-01 02:00", periods=3, freq="h", tz="Europe/Berlin")
    frame = pd.DataFrame({"datetime_utc": stamps, "DE": [1.0, 2.0, 3.0]})
    path = tmp_path / "ci.parquet"
    frame.to_parquet(path)
    s = FileProvider(path).history(["DE"], T0, T0 + 3 * H)
    assert s.values["DE"].tolist() == [1.0, 2.0, 3.0]


def test_parquet_without_pyarrow_gives_install_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ci.parquet"
    pd.DataFrame({"datetime_utc": [iso(T0), iso(T0 + H)], "DE": [1.0, 2.0]}).to_parquet(path)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(ConfigurationError, match=r"pip install 'lowcarb\[parquet\]'"):
        FileProvider(path).served_zones()


# -- Electricity Maps portal exports --------------------------------------------------------


def test_portal_export(tmp_path: Path) -> None:
    path = portal_csv(tmp_path / "XX_2023_hourly.csv", "DE", T0, 24, estimated={3, 4})
    p = FileProvider(path)
    assert p.served_zones() == ["DE"]
    s = history(p, ["DE"])
    assert s.values["DE"].tolist() == [value(i, 0) for i in range(24)]
    mask = s.estimated_mask()["DE"]
    assert mask.dtype == bool
    assert [i for i in range(24) if mask.iloc[i]] == [3, 4]
    direct = history(FileProvider(path, basis="direct"), ["DE"])
    assert direct.values["DE"].tolist() == [value(i, 0) - 40 for i in range(24)]
    assert direct.basis == "direct"


def test_portal_export_ascii_header(tmp_path: Path) -> None:
    path = portal_csv(tmp_path / "gb.csv", "GB", T0, 3)
    path.write_text(path.read_text("utf-8").replace("gCO₂eq", "gCO2eq"), "utf-8")
    s = FileProvider(path).history(["GB"], T0, T0 + 3 * H)
    assert s.values["GB"].tolist() == [value(i, 0) for i in range(3)]


def test_portal_export_keeps_zone_id_na(tmp_path: Path) -> None:
    # "NA" (Namibia) must be read as a zone id, not as a missing value.
    path = portal_csv(tmp_path / "na.csv", "NA", T0, 3)
    assert FileProvider(path).served_zones() == ["NA"]


def test_portal_export_refuses_marginal(tmp_path: Path) -> None:
    path = portal_csv(tmp_path / "de.csv", "DE", T0, 3)
    with pytest.raises(DataValidationError, match="average"):
        FileProvider(path, signal="marginal").served_zones()


def test_portal_export_bad_flag(tmp_path: Path) -> None:
    path = portal_csv(tmp_path / "de.csv", "DE", T0, 3)
    path.write_text(path.read_text("utf-8").replace(",false,", ",maybe,", 1), "utf-8")
    with pytest.raises(DataValidationError, match=r"line 2.*'maybe'"):
        FileProvider(path).served_zones()


def test_portal_export_missing_value_column(tmp_path: Path) -> None:
    path = write(tmp_path / "de.csv", ["Datetime (UTC),Zone Id", "2023-06-01 00:00:00,DE"])
    with pytest.raises(DataValidationError, match=r"\(LCA\)"):
        FileProvider(path).served_zones()


# -- directories ------------------------------------------------------------------------------


def test_directory_merges_two_zones(tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    portal_csv(folder / "DE_2023.csv", "DE", T0, 24, estimated={0})
    portal_csv(folder / "AA_2023.csv", "GB", T0, 24)
    (folder / "README.md").write_text("not data", "utf-8")
    p = FileProvider(folder)
    assert sorted(p.served_zones()) == ["DE", "GB"]
    s = history(p, ["DE", "GB"])
    assert s.values.notna().all().all()
    assert s.values["GB"].tolist() == [value(i, 0) for i in range(24)]
    assert s.estimated_mask()["DE"].sum() == 1
    assert s.estimated_mask()["GB"].sum() == 0


def test_directory_merges_one_zone_over_two_years(tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    new_year = datetime(2023, 1, 1, tzinfo=UTC)
    portal_csv(folder / "DE_2022.csv", "DE", new_year - 5 * H, 5)
    portal_csv(folder / "DE_2023.csv", "DE", new_year, 5)
    p = FileProvider(folder)
    s = p.history(["DE"], new_year - 5 * H, new_year + 5 * H)
    assert len(s) == 10
    assert s.values["DE"].notna().all()
    assert s.values["DE"].iloc[5] == value(0, 0)
    assert p.served_zones() == ["DE"]


def test_directory_merges_wide_files(tmp_path: Path) -> None:
    folder = tmp_path / "wide"
    folder.mkdir()
    wide_csv(folder, ("DE",), n=4, name="a.csv")
    wide_csv(folder, ("FR",), n=4, name="b.csv")
    p = FileProvider(folder)
    assert p.served_zones() == ["DE", "FR"]
    assert history(p, ["FR"], 4).values["FR"].tolist() == [value(i, 0) for i in range(4)]


def test_directory_duplicate_across_files(tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    portal_csv(folder / "DE_a.csv", "DE", T0, 5)
    portal_csv(folder / "DE_b.csv", "DE", T0 + 4 * H, 5)
    with pytest.raises(DataValidationError) as info:
        FileProvider(folder).served_zones()
    message = str(info.value)
    assert "DE_a.csv" in message
    assert "DE_b.csv" in message
    assert iso(T0 + 4 * H) in message


def test_directory_mixed_resolutions(tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    wide_csv(folder, ("DE",), n=6, name="a.csv")
    rows = ["datetime_utc,FR"] + [f"{iso(T0 + i * 2 * H)},{value(i, 0):g}" for i in range(2)]
    write(folder / "b.csv", rows)
    with pytest.raises(DataValidationError, match=re.escape("b.csv")):
        FileProvider(folder).served_zones()


def test_empty_directory_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"no \.csv or \.parquet"):
        FileProvider(tmp_path)


# -- bad input ------------------------------------------------------------------------------


def test_duplicate_timestamps(tmp_path: Path) -> None:
    info = bad(
        tmp_path,
        ["datetime_utc,DE", f"{iso(T0)},1", f"{iso(T0 + H)},2", f"{iso(T0 + H)},3"],
    )
    assert iso(T0 + H) in str(info.value)
    assert "line 3" in str(info.value)
    assert "line 4" in str(info.value)


def test_negative_value(tmp_path: Path) -> None:
    info = bad(tmp_path, ["datetime_utc,DE,FR", f"{iso(T0)},1,2", f"{iso(T0 + H)},3,-4.5"])
    message = str(info.value)
    assert "zone FR" in message
    assert iso(T0 + H) in message
    assert "-4.5" in message
    assert "negative" in message


def test_implausibly_high_value(tmp_path: Path) -> None:
    info = bad(tmp_path, ["datetime_utc,DE", f"{iso(T0)},3000", f"{iso(T0 + H)},3000.5"])
    message = str(info.value)
    assert "zone DE" in message
    assert iso(T0 + H) in message
    assert "3000.5" in message
    assert "unit" in message


def test_non_numeric_value(tmp_path: Path) -> None:
    info = bad(tmp_path, ["datetime_utc,DE,FR", f"{iso(T0)},1,2", f"{iso(T0 + H)},3,high"])
    message = str(info.value)
    assert "zone FR" in message
    assert "line 3" in message
    assert "'high'" in message


def test_misnamed_time_column(tmp_path: Path) -> None:
    info = bad(tmp_path, ["timestamp,DE", f"{iso(T0)},1", f"{iso(T0 + H)},2"])
    assert "datetime_utc" in str(info.value)
    assert "'timestamp'" in str(info.value)


def test_time_column_not_first(tmp_path: Path) -> None:
    bad(tmp_path, ["DE,datetime_utc", f"1,{iso(T0)}", f"2,{iso(T0 + H)}"])


def test_empty_file(tmp_path: Path) -> None:
    info = bad(tmp_path, [])
    assert "empty" in str(info.value)


def test_header_only(tmp_path: Path) -> None:
    info = bad(tmp_path, ["datetime_utc,DE"])
    assert "no data rows" in str(info.value)


def test_no_zone_columns(tmp_path: Path) -> None:
    info = bad(tmp_path, ["datetime_utc", iso(T0), iso(T0 + H)])
    assert "zone" in str(info.value)


def test_duplicated_zone_column(tmp_path: Path) -> None:
    info = bad(tmp_path, ["datetime_utc,DE,DE", f"{iso(T0)},1,2", f"{iso(T0 + H)},3,4"])
    assert "'DE' appears twice" in str(info.value)


def test_unparseable_timestamp(tmp_path: Path) -> None:
    info = bad(tmp_path, ["datetime_utc,DE", f"{iso(T0)},1", "yesterday,2"])
    assert "line 3" in str(info.value)
    assert "'yesterday'" in str(info.value)


def test_ragged_row_is_unreadable(tmp_path: Path) -> None:
    bad(tmp_path, ["datetime_utc,DE", f"{iso(T0)},1", f"{iso(T0 + H)},2,3,4"])


def test_binary_file_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(b"\xff\xfe\x00\x81garbage\x00")
    with pytest.raises(DataValidationError, match=re.escape("bad.csv")):
        FileProvider(path).served_zones()


def test_single_row_cannot_give_a_resolution(tmp_path: Path) -> None:
    info = bad(tmp_path, ["datetime_utc,DE", f"{iso(T0)},1"])
    assert "resolution" in str(info.value)


def test_off_grid_timestamp(tmp_path: Path) -> None:
    rows = ["datetime_utc,DE"] + [f"{iso(T0 + i * H)},{i}" for i in range(5)]
    rows.append(f"{iso(T0 + 5 * H + timedelta(minutes=20))},9")
    info = bad(tmp_path, rows)
    assert iso(T0 + 5 * H + timedelta(minutes=20)) in str(info.value)
    assert "grid" in str(info.value)


def test_out_of_order_rows_are_sorted_with_a_note(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rows = ["datetime_utc,DE"] + [f"{iso(T0 + i * H)},{value(i, 0):g}" for i in (2, 0, 1, 3)]
    path = write(tmp_path / "ci.csv", rows)
    with caplog.at_level(logging.INFO, logger="lowcarb"):
        s = FileProvider(path).history(["DE"], T0, T0 + 4 * H)
    assert s.values["DE"].tolist() == [value(i, 0) for i in range(4)]
    assert any("sorted" in note for note in s.notes)
    assert any("sorted" in r.getMessage() and r.levelno == logging.INFO for r in caplog.records)


def _with_gap(tmp_path: Path, missing: set[int], n: int = 12, blank: set[int] = frozenset()):
    rows = ["datetime_utc,DE,FR"]
    for i in range(n):
        if i in missing:
            continue
        de = "" if i in blank else f"{value(i, 0):g}"
        rows.append(f"{iso(T0 + i * H)},{de},{value(i, 1):g}")
    return write(tmp_path / "gaps.csv", rows)


def test_gaps_are_interpolated_and_flagged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Hours 3 and 4 absent (rows missing), hour 8 of DE an empty cell.
    path = _with_gap(tmp_path, missing={3, 4}, blank={8})
    with caplog.at_level(logging.INFO, logger="lowcarb"):
        s = FileProvider(path).history(["DE", "FR"], T0, T0 + 12 * H)
    assert len(s) == 12
    # The invented values are linear in time, so interpolation recovers them exactly.
    np.testing.assert_allclose(s.values["DE"], [value(i, 0) for i in range(12)])
    np.testing.assert_allclose(s.values["FR"], [value(i, 1) for i in range(12)])
    mask = s.estimated_mask()
    assert [i for i in range(12) if mask["DE"].iloc[i]] == [3, 4, 8]
    assert [i for i in range(12) if mask["FR"].iloc[i]] == [3, 4]
    assert "DE: 2 gaps (3 intervals) interpolated linearly and flagged estimated" in s.notes
    assert "FR: 1 gap (2 intervals) interpolated linearly and flagged estimated" in s.notes
    assert any("2 timestamps absent" in note for note in s.notes)
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any("DE: 2 gaps" in m for m in logged)


def test_notes_only_for_the_zones_asked(tmp_path: Path) -> None:
    path = _with_gap(tmp_path, missing=set(), blank={5})
    s = FileProvider(path).history(["FR"], T0, T0 + 12 * H)
    assert not any(note.startswith("DE:") for note in s.notes)


def test_long_gap_is_an_error(tmp_path: Path) -> None:
    path = _with_gap(tmp_path, missing={2, 3, 4, 5}, n=12)
    with pytest.raises(DataValidationError) as info:
        FileProvider(path, max_gap_hours=3).served_zones()
    message = str(info.value)
    assert "zone DE" in message
    assert iso(T0 + 2 * H) in message
    assert iso(T0 + 5 * H) in message
    assert "gaps='keep'" in message
    # The same gap is within a larger limit.
    assert FileProvider(path, max_gap_hours=4).served_zones() == ["DE", "FR"]


def test_leading_gap_cannot_be_interpolated(tmp_path: Path) -> None:
    path = _with_gap(tmp_path, missing=set(), blank={0, 1})
    with pytest.raises(DataValidationError, match=r"zone DE.*starts.*gaps='keep'"):
        FileProvider(path).served_zones()


def test_trailing_gap_cannot_be_interpolated(tmp_path: Path) -> None:
    path = _with_gap(tmp_path, missing=set(), blank={11})
    with pytest.raises(DataValidationError, match=r"zone DE.*ends"):
        FileProvider(path).served_zones()


def test_gaps_keep(tmp_path: Path) -> None:
    path = _with_gap(tmp_path, missing={3}, blank={0, 8})
    s = FileProvider(path, gaps="keep").history(["DE", "FR"], T0, T0 + 12 * H)
    assert len(s) == 12
    assert [i for i in range(12) if math.isnan(s.values["DE"].iloc[i])] == [0, 3, 8]
    assert [i for i in range(12) if math.isnan(s.values["FR"].iloc[i])] == [3]
    assert not s.estimated_mask().to_numpy().any()
    assert "DE: 3 gaps (3 intervals) left as NaN (gaps='keep')" in s.notes


def test_gaps_error(tmp_path: Path) -> None:
    path = _with_gap(tmp_path, missing=set(), blank={6})
    with pytest.raises(DataValidationError) as info:
        FileProvider(path, gaps="error").served_zones()
    assert "zone DE" in str(info.value)
    assert iso(T0 + 6 * H) in str(info.value)


def test_missing_row_with_gaps_error(tmp_path: Path) -> None:
    path = _with_gap(tmp_path, missing={4})
    with pytest.raises(DataValidationError, match=iso(T0 + 4 * H)):
        FileProvider(path, gaps="error").served_zones()


# -- estimated flags file -------------------------------------------------------------------


def test_estimated_path_flags(tmp_path: Path) -> None:
    path = wide_csv(tmp_path, n=4)
    flags = write(
        tmp_path / "flags.csv",
        ["datetime_utc,FR,DE"] + [f"{iso(T0 + i * H)},{int(i == 2)},1" for i in range(5)],
    )
    s = FileProvider(path, estimated_path=flags).history(["DE", "FR"], T0, T0 + 4 * H)
    assert s.estimated_mask()["DE"].all()
    assert s.estimated_mask()["FR"].tolist() == [False, False, True, False]
    assert any("flags.csv" in note for note in s.notes)


def test_estimated_path_zone_mismatch(tmp_path: Path) -> None:
    path = wide_csv(tmp_path, n=4)
    flags = write(tmp_path / "flags.csv", ["datetime_utc,DE", f"{iso(T0)},0"])
    with pytest.raises(DataValidationError, match="FR"):
        FileProvider(path, estimated_path=flags).served_zones()


def test_estimated_path_bad_flag(tmp_path: Path) -> None:
    path = wide_csv(tmp_path, ("DE",), n=2)
    flags = write(tmp_path / "flags.csv", ["datetime_utc,DE", f"{iso(T0)},0", f"{iso(T0 + H)},2"])
    with pytest.raises(DataValidationError, match=r"flags.csv.*not 0 or 1"):
        FileProvider(path, estimated_path=flags).served_zones()


def test_estimated_path_missing_timestamp(tmp_path: Path) -> None:
    path = wide_csv(tmp_path, ("DE",), n=3)
    flags = write(tmp_path / "flags.csv", ["datetime_utc,DE", f"{iso(T0)},0", f"{iso(T0 + H)},1"])
    with pytest.raises(DataValidationError, match=iso(T0 + 2 * H)):
        FileProvider(path, estimated_path=flags).served_zones()


# -- provider interface -----------------------------------------------------------------------


def test_history_slices_intervals_starting_in_range(tmp_path: Path) -> None:
    p = FileProvider(wide_csv(tmp_path))
    s = p.history(["DE"], T0 + 2 * H + timedelta(minutes=30), T0 + 5 * H)
    assert list(s.values.index) == [pd.Timestamp(T0 + i * H) for i in (3, 4)]
    assert s.values.index.name == "start"


def test_history_outside_span(tmp_path: Path) -> None:
    p = FileProvider(wide_csv(tmp_path))
    with pytest.raises(NoDataError) as info:
        p.history(["DE"], T0 - H, T0 + 3 * H)
    assert info.value.provider == "file"
    assert iso(T0) in str(info.value)
    assert iso(T0 + 24 * H) in str(info.value)
    with pytest.raises(NoDataError):
        p.history(["DE"], T0 + 20 * H, T0 + 25 * H)


def test_latest_uses_the_clock(tmp_path: Path, clock: ManualClock) -> None:
    p = FileProvider(wide_csv(tmp_path), clock=clock)
    clock.advance(timedelta(minutes=30))  # 12:30: the interval that started at 12:00
    s = p.latest(["DE", "FR"])
    assert len(s) == 1
    assert s.values.index[0] == pd.Timestamp(T0 + 12 * H)
    assert s.values["FR"].iloc[0] == value(12, 1)


def test_latest_outside_span(tmp_path: Path) -> None:
    clock = ManualClock(T0 + 30 * H)
    p = FileProvider(wide_csv(tmp_path), clock=clock)
    with pytest.raises(NoDataError, match="--now") as info:
        p.latest(["DE"])
    assert iso(T0) in str(info.value)


def test_forecast_replays_with_perfect_foresight(tmp_path: Path, clock: ManualClock) -> None:
    p = FileProvider(wide_csv(tmp_path), clock=clock)
    s = p.forecast(["DE"], horizon=3 * H)
    assert s.is_forecast is True
    assert s.perfect_foresight is True
    assert s.issued_at == clock.now()
    assert s.provider == "file"
    assert list(s.values.index) == [pd.Timestamp(T0 + i * H) for i in (12, 13, 14)]
    assert s.values["DE"].tolist() == [value(i, 0) for i in (12, 13, 14)]
    assert any("replay" in note and "perfect foresight" in note for note in s.notes)


def test_forecast_floors_start(tmp_path: Path, clock: ManualClock) -> None:
    p = FileProvider(wide_csv(tmp_path), clock=clock)
    # [floor(start), floor(start) + horizon): whole intervals, horizon / resolution of them.
    s = p.forecast(["DE"], start=T0 + 2 * H + timedelta(minutes=40), horizon=2 * H)
    assert list(s.values.index) == [pd.Timestamp(T0 + i * H) for i in (2, 3)]


def test_forecast_outside_span(tmp_path: Path, clock: ManualClock) -> None:
    p = FileProvider(wide_csv(tmp_path), clock=clock)
    with pytest.raises(NoDataError, match=iso(T0 + 24 * H)):
        p.forecast(["DE"], horizon=24 * H)
    with pytest.raises(NoDataError):
        p.forecast(["DE"], start=T0 - H, horizon=2 * H)


def test_unknown_zone_has_suggestions(tmp_path: Path) -> None:
    p = FileProvider(wide_csv(tmp_path, ("DE", "DK-DK1", "FR")))
    with pytest.raises(UnknownZoneError) as info:
        history(p, ["DEU"])
    assert "DE" in info.value.suggestions


def test_zone_ids_are_case_insensitive(tmp_path: Path) -> None:
    p = FileProvider(wide_csv(tmp_path))
    assert history(p, ["de"]).zones == ["DE"]


# -- construction, options, caching -----------------------------------------------------------


def test_missing_path_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    with pytest.raises(ConfigurationError, match=re.escape("nope.csv")):
        FileProvider(missing)
    with pytest.raises(ConfigurationError, match=re.escape("flags.csv")):
        FileProvider(wide_csv(tmp_path), estimated_path=tmp_path / "flags.csv")


@pytest.mark.parametrize(
    ("option", "bad_value"),
    [("basis", "both"), ("signal", "mean"), ("gaps", "fill"), ("max_gap_hours", -1.0)],
)
def test_invalid_options(tmp_path: Path, option: str, bad_value: object) -> None:
    with pytest.raises(ConfigurationError, match=option):
        FileProvider(wide_csv(tmp_path), **{option: bad_value})


def test_reads_lazily_and_once(tmp_path: Path) -> None:
    path = write(tmp_path / "late.csv", ["not a valid file"])
    p = FileProvider(path)  # no error yet: nothing is read at construction
    path.unlink()
    wide_csv(tmp_path, name="late.csv")
    assert p.served_zones() == ["DE", "FR"]
    path.unlink()  # cached: the file is not read again
    assert len(history(p, ["DE"])) == 24


def test_failed_load_is_not_cached(tmp_path: Path) -> None:
    path = write(tmp_path / "ci.csv", ["datetime_utc,DE", f"{iso(T0)},-1", f"{iso(T0 + H)},1"])
    p = FileProvider(path)
    with pytest.raises(DataValidationError):
        p.served_zones()
    wide_csv(tmp_path, name="ci.csv")
    assert p.served_zones() == ["DE", "FR"]


def test_repr_shows_path_and_basis(tmp_path: Path) -> None:
    path = wide_csv(tmp_path)
    text = repr(FileProvider(path, basis="direct"))
    assert str(path) in text
    assert "direct" in text


def test_options_through_settings(tmp_path: Path, clock: ManualClock) -> None:
    path = wide_csv(tmp_path)
    settings = lowcarb.load_settings(
        {"provider": "file", "providers": {"file": {"path": str(path), "gaps": "keep"}}},
        environ={},
        cwd=tmp_path,
    )
    options = settings.provider_options("file")
    assert isinstance(options, FileProvider.Options)
    assert options.path == path
    assert options.gaps == "keep"
    provider = settings.open_provider("file", clock=clock)
    assert isinstance(provider, FileProvider)
    assert provider.latest(["FR"]).values["FR"].iloc[0] == value(12, 1)


def test_settings_from_environment_text(tmp_path: Path) -> None:
    path = wide_csv(tmp_path)
    settings = lowcarb.load_settings(
        environ={
            "LOWCARB_PROVIDER": "file",
            "LOWCARB_FILE_PATH": str(path),
            "LOWCARB_FILE_MAX_GAP_HOURS": "2.5",
            "LOWCARB_FILE_BASIS": "direct",
        },
        cwd=tmp_path,
    )
    options = settings.provider_options("file")
    assert options.max_gap_hours == 2.5
    assert options.basis == "direct"
    assert settings.open_provider().capabilities.basis == "direct"


def test_settings_reject_bad_option(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="max_gap_hours"):
        lowcarb.load_settings(
            {"provider": "file", "providers": {"file": {"path": "x", "max_gap_hours": -2}}},
            environ={},
            cwd=tmp_path,
        )


def test_async_wrapper(tmp_path: Path) -> None:
    import asyncio

    p = lowcarb.ThreadedAsyncProvider(FileProvider(wide_csv(tmp_path)))
    s = asyncio.run(p.history(["DE"], T0, T0 + 2 * H))
    assert s.values["DE"].tolist() == [value(0, 0), value(1, 0)]


def test_portal_parquet_and_hidden_files(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "Datetime (UTC)": pd.date_range("2023-06-01", periods=3, freq="h"),
            "Zone Id": ["DE"] * 3,
            "Carbon Intensity gCO₂eq/kWh (LCA)": [5.0, 6.0, 7.0],
            "Data Estimated": [False, True, False],
        }
    )
    frame.to_parquet(tmp_path / "de.parquet")
    (tmp_path / ".DS_junk.csv").write_text("not data", "utf-8")
    s = FileProvider(tmp_path).history(["DE"], T0, T0 + 3 * H)
    assert s.values["DE"].tolist() == [5.0, 6.0, 7.0]
    assert s.estimated_mask()["DE"].tolist() == [False, True, False]


def test_estimated_path_empty_directory(tmp_path: Path) -> None:
    empty = tmp_path / "flags"
    empty.mkdir()
    with pytest.raises(ConfigurationError, match="estimated_path"):
        FileProvider(wide_csv(tmp_path), estimated_path=empty)
