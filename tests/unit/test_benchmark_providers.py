"""Smoke test of ``benchmarks/providers.py``: tiny sizes, no latency, loopback only."""

from __future__ import annotations

import importlib.util
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from lowcarb import ManualClock

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "providers.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    sys.path.insert(0, str(SCRIPT.parent))  # as when run as a script: its sibling _docs
    spec = importlib.util.spec_from_file_location("benchmark_providers", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)
        sys.path.remove(str(SCRIPT.parent))


TINY = [
    "--zones", "4", "--concurrency", "2", "--repeat", "1", "--clients", "6",
    "--training-zones", "3", "--rounds", "3", "--latency-ms", "0", "--cache-ttl", "7200,0",
]  # fmt: skip


def test_the_harness_runs_end_to_end_and_reports_json(bench, capsys):
    assert bench.main([*TINY, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)

    fetch = report["fetch"]
    assert set(fetch) == {"sequential", "threads 2", "concurrent 2"}
    assert 1 <= fetch["concurrent 2"]["peak_in_flight"] <= 2
    cached, uncached = report["training"]["cache 7200 s"], report["training"]["no cache"]
    # The engine asks each zone's forecast once a round. Rounds are an hour apart and a
    # forecast reaches from the API's current hour, so even a 2-hour cache cannot serve
    # the next round's forecast (it would lack that round's last hour).
    assert uncached["by_endpoint"]["forecast"] == 3 * 3
    assert cached["by_endpoint"]["forecast"] == uncached["by_endpoint"]["forecast"]
    assert cached["requests"] == sum(cached["by_endpoint"].values()) <= uncached["requests"]


@pytest.mark.slow
def test_write_docs_replaces_only_its_own_section(bench, monkeypatch, tmp_path, capsys):
    doc = tmp_path / "benchmarks.md"
    doc.write_text(
        f"# Benchmarks\n\nkept above\n\n{bench.BEGIN}\nSTALE-SECTION\n{bench.END}\n\nkept below\n"
    )
    monkeypatch.setattr(bench, "DOC", doc)
    for _ in range(2):
        assert bench.main([*TINY, "--write-docs"]) == 0
    text = doc.read_text()
    assert text.count(bench.BEGIN) == 1 and text.count(bench.END) == 1
    assert "STALE-SECTION" not in text and "kept above" in text and "kept below" in text
    assert "| sync, `max_concurrency=1` |" in text and "--write-docs" in text
    assert capsys.readouterr().out.strip().startswith(bench.BEGIN)


def test_the_fake_api_answers_in_the_documented_shapes(bench):
    clock = ManualClock(datetime(2024, 6, 3, 12, 30, tzinfo=UTC))
    api = bench.FakeElectricityMaps(("DE", "FR"), clock.now, 0.0)
    with bench.serve(api) as base_url, httpx.Client(base_url=base_url) as http:
        check_api(bench, api, http)


def check_api(bench: ModuleType, api, http: httpx.Client) -> None:
    key = {"auth-token": bench.TOKEN}

    assert http.get("/zones").status_code == 401
    assert set(http.get("/zones", headers=key).json()) == {"DE", "FR"}
    latest = http.get("/carbon-intensity/latest", params={"zone": "DE"}, headers=key).json()
    assert latest["datetime"] == "2024-06-03T12:00:00.000Z" and latest["zone"] == "DE"
    forecast = http.get(
        "/carbon-intensity/forecast", params={"zone": "FR", "horizonHours": "48"}, headers=key
    ).json()
    assert len(forecast["forecast"]) == 48
    assert forecast["forecast"][0]["datetime"] == "2024-06-03T12:00:00.000Z"
    history = http.get("/carbon-intensity/history", params={"zone": "DE"}, headers=key).json()
    assert history["history"][-1]["datetime"] == "2024-06-03T12:00:00.000Z"
    window = {"zone": "DE", "start": "2024-05-01T00:00:00Z", "end": "2024-05-12T00:00:00Z"}
    too_long = http.get("/carbon-intensity/past-range", params=window, headers=key)
    assert too_long.status_code == 400 and too_long.json()["status"] == "error"
    unknown = http.get("/carbon-intensity/latest", params={"zone": "XX"}, headers=key)
    assert unknown.status_code == 400
    assert api.counts["zones"] == 2 and api.counts["past-range"] == 1


@pytest.mark.parametrize(
    "bad",
    [["--concurrency", "0"], ["--concurrency", "x"], ["--cache-ttl", "-1"], ["--rounds", "0"]],
)
def test_bad_arguments_exit_with_a_usage_error(bench, bad, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.parse_args(bad)
    assert exit_info.value.code == 2
    assert bad[0] in capsys.readouterr().err


def test_a_saved_report_renders_without_measuring_again(bench, tmp_path, capsys):
    assert bench.main([*TINY, "--json"]) == 0
    saved = tmp_path / "report.json"
    saved.write_text(capsys.readouterr().out)
    report = json.loads(saved.read_text())

    assert bench.main(["--report", str(saved), "--note", "Shared machine."]) == 0
    text = capsys.readouterr().out
    uncached = report["training"]["no cache"]
    assert f"| none (`cache_ttl_s = 0`) | {uncached['requests']:,} |" in text
    assert "Shared machine." in text and report["command"] in text
    assert "--json" not in report["command"]
