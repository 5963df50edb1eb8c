"""Sweeps: one row per scenario, the same numbers on processes and on Ray, resumable."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lowcarb.cli import main
from lowcarb.exceptions import InvalidInputError
from lowcarb.simulation import (
    Scenario,
    read_results,
    scenario_key,
    simulate,
    summarize_sweep,
    sweep,
)

BASE = Scenario(
    zones=("DE", "GB", "SG"),
    hours=12,
    clients=9,
    per_round=3,
    learning="none",
    policies=("random", "lowcarb", "oracle"),
)


def _windows(count: int) -> list[Scenario]:
    return [replace(BASE, start=BASE.start + timedelta(hours=12 * i)) for i in range(count)]


def _numbers(rows: list[dict]) -> list[dict]:
    """Rows without the measured decision times (the only part that varies)."""
    out = []
    for row in rows:
        row = json.loads(json.dumps(row))
        for policy in row["policies"].values():
            policy.pop("decision_ms")
        out.append(row)
    return out


def test_a_row_is_the_simulation_of_its_scenario() -> None:
    scenario = _windows(1)[0]
    (row,) = sweep([scenario], workers=1)
    expected = simulate(scenario).to_dict()
    assert row["key"] == scenario_key(scenario)
    assert _numbers([row]) == _numbers([{"key": row["key"], **expected}])


@pytest.mark.slow
def test_same_numbers_in_this_process_and_in_a_process_pool() -> None:
    scenarios = _windows(3)
    inline = sweep(scenarios, workers=1)
    pooled = sweep(scenarios, workers=2)
    assert _numbers(inline) == _numbers(pooled)
    assert [r["scenario"]["start"] for r in pooled] == [s.start.isoformat() for s in scenarios]


@pytest.mark.slow
def test_same_numbers_on_ray_and_in_a_process_pool() -> None:
    pytest.importorskip("ray")
    # Ray runs in its own interpreter: its helper processes outlive a test's checks.
    script = (
        "import json, sys; from dataclasses import replace; from datetime import timedelta;"
        "from lowcarb.simulation import Scenario, sweep;"
        f"base = Scenario(zones={BASE.zones!r}, hours=12, clients=9, per_round=3, "
        "learning='none', policies=('random', 'lowcarb', 'oracle'));"
        "scenarios = [replace(base, start=base.start + timedelta(hours=12 * i)) "
        "for i in range(3)];"
        "json.dump(sweep(scenarios, workers=2, ray=True), sys.stdout)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True
    )
    on_ray = json.loads(done.stdout)
    assert _numbers(on_ray) == _numbers(sweep(_windows(3), workers=2))


def test_a_sweep_resumes_from_its_results_file(tmp_path: Path, monkeypatch) -> None:
    results = tmp_path / "rows.jsonl"
    first = sweep(_windows(2), results=results, workers=1)
    assert len(results.read_text().splitlines()) == 2
    # An interrupted append leaves a torn line: it is cut, and only new windows run.
    with results.open("a") as handle:
        handle.write('{"key": "torn')
    ran: list[Scenario] = []
    import lowcarb.simulation._sweep as module

    real = module._simulate_row
    monkeypatch.setattr(module, "_simulate_row", lambda s: ran.append(s) or real(s))
    seen: list[tuple[int, int]] = []
    rows = sweep(_windows(3), results=results, workers=1, progress=lambda d, t: seen.append((d, t)))
    assert [s.start for s in ran] == [_windows(3)[2].start]
    assert rows[:2] == first
    assert seen == [(2, 3), (3, 3)]
    assert list(read_results(results)) == [scenario_key(s) for s in _windows(3)]


def test_a_scenario_listed_twice_runs_once() -> None:
    scenario = _windows(1)[0]
    rows = sweep([scenario, scenario], workers=1)
    assert rows[0] is rows[1]


def test_bad_results_and_workers_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "rows.jsonl"
    bad.write_text("not json\n")
    with pytest.raises(InvalidInputError, match="rows.jsonl:1"):
        sweep(_windows(1), results=bad)
    with pytest.raises(InvalidInputError, match="workers"):
        sweep(_windows(1), workers=0)


def test_summary_gives_shares_of_the_oracle_and_fairness() -> None:
    rows = sweep(_windows(2), workers=1)
    summary = summarize_sweep(rows)
    assert set(summary) == {"random", "lowcarb", "oracle"}
    assert summary["oracle"]["oracle_share"]["median"] == pytest.approx(1.0)
    lowcarb = summary["lowcarb"]
    shares = [
        r["policies"]["lowcarb"]["saving_vs_random"] / r["policies"]["oracle"]["saving_vs_random"]
        for r in rows
    ]
    assert lowcarb["oracle_share"]["min"] == pytest.approx(min(shares))
    assert lowcarb["windows"] == 2 and lowcarb["accuracy_mean"] is None
    with pytest.raises(InvalidInputError, match="no rows"):
        summarize_sweep([])


def test_cli_sweep_table_json_and_resume(tmp_path: Path, capsys) -> None:
    results = tmp_path / "rows.jsonl"
    args = [
        "simulate",
        "--zones",
        "DE,GB,SG",
        "--hours",
        "12",
        "--clients",
        "9",
        "--per-round",
        "3",
        "--learning",
        "none",
        "--policies",
        "random,lowcarb,oracle",
        "--windows",
        "2",
        "--every-days",
        "0.5",
        "--workers",
        "1",
        "--results",
        str(results),
    ]
    assert main(args) == 0
    table = capsys.readouterr().out
    assert "2 windows from 2025-03-03 00:00 to 2025-03-03 12:00 UTC" in table
    assert "of oracle" in table
    assert main([*args, "--json", "-"]) == 0  # every row from the file: nothing runs
    doc = json.loads(capsys.readouterr().out)
    assert doc["windows"] == ["2025-03-03T00:00:00+00:00", "2025-03-03T12:00:00+00:00"]
    assert doc["summary"]["oracle"]["oracle_share"]["median"] == pytest.approx(1.0)
    assert len(doc["rows"]) == 2 == len(results.read_text().splitlines())
    assert main([*args, "--plot", str(tmp_path / "x.png")]) == 1
    assert "leave them out of a sweep" in capsys.readouterr().err


def _plan_and_judge_data(tmp_path: Path) -> tuple[Path, Path]:
    """An average and a marginal trace of two zones with different daily shapes."""
    hours = 24 * 20
    stamps = [datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=h) for h in range(hours)]
    average = ["datetime_utc,DE,GB"] + [
        f"{t:%Y-%m-%dT%H:%M:%SZ},{300 + 40 * (t.hour < 6)},{200 + 30 * (t.hour >= 18)}"
        for t in stamps
    ]
    marginal = ["datetime_utc,DE,GB"] + [
        f"{t:%Y-%m-%dT%H:%M:%SZ},{700 - 200 * (t.hour < 6)},{500 + 300 * (t.hour % 3 == 0)}"
        for t in stamps
    ]
    a, m = tmp_path / "avg.csv", tmp_path / "mef.csv"
    a.write_text("\n".join(average) + "\n")
    m.write_text("\n".join(marginal) + "\n")
    return a, m


@pytest.mark.slow
def test_plan_on_one_signal_and_judge_on_another(tmp_path: Path) -> None:
    average, marginal = _plan_and_judge_data(tmp_path)
    base = Scenario(
        zones=("DE", "GB"),
        hours=24,
        clients=8,
        per_round=2,
        learning="none",
        start=datetime(2024, 1, 16, tzinfo=UTC),
        policies=("random", "lowcarb", "oracle"),
        data=average,
    )
    judged = simulate(replace(base, score_data=marginal, score_signal="marginal"))
    on_marginal = simulate(replace(base, data=marginal, signal="marginal"))
    # Judged on the marginal trace, the bound is the planner that knows that trace.
    assert judged.policies["oracle"].emissions_kg == pytest.approx(
        on_marginal.policies["oracle"].emissions_kg
    )
    assert judged.random_baseline_kg == pytest.approx(on_marginal.random_baseline_kg)
    doc = judged.to_dict()["scenario"]
    assert (doc["signal"], doc["score_signal"]) == ("average", "marginal")
    assert "average signal; judged on file" in doc["source"]
    assert doc["source"].endswith("marginal signal")


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"signal": "moer"}, "--signal must be"),
        ({"signal": "marginal"}, "needs --data"),
        ({"score_signal": "marginal"}, "needs --score-data"),
    ],
)
def test_bad_signal_options_are_refused(changes: dict, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        Scenario(**changes)


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--windows", "0", "--results", "x.jsonl"], "--windows must be a positive integer"),
        (["--windows", "2", "--every-days", "0"], "--every-days must be a positive number"),
        (["--windows", "2", "--workers", "0"], "workers must be a positive integer"),
        (["--signal", "marginal"], "needs --data"),
    ],
)
def test_cli_bad_sweep_options_are_one_line(extra: list[str], match: str, capsys) -> None:
    args = ["simulate", "--zones", "DE,GB", "--hours", "6", "--clients", "4", "--per-round", "2"]
    assert main([*args, "--learning", "none", *extra]) == 1
    assert match in capsys.readouterr().err
