"""lowcarb.report: the account equals the ledger's, in every format, and bad input says why."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import UTC, datetime

import pytest
from _report_ledgers import START, TASK, write_run

import lowcarb
from lowcarb import EmbodiedCarbon, InvalidInputError, Ledger, LedgerError
from lowcarb.report import (
    EQUIVALENTS,
    PathSource,
    build_report,
    make_report,
    pick_task,
    render_json,
    render_markdown,
)
from lowcarb.report._source import LEDGER_SUFFIX

NOW = datetime(2024, 6, 5, tzinfo=UTC)


@pytest.fixture(scope="module")
def ledger(tmp_path_factory):
    return write_run(tmp_path_factory.mktemp("report") / "run.ledger.sqlite", rounds=12)


@pytest.fixture(scope="module")
def expected(ledger):
    """The account as the core computes it from the ledger itself."""
    with Ledger(ledger) as raw:
        summary = lowcarb.summarize(
            raw.rounds(TASK), run_id=TASK, population=raw.participation(TASK)
        )
    return summary


def test_the_account_is_the_ledgers(ledger, expected):
    report = build_report(PathSource(ledger).snapshot(TASK), now=NOW)
    sci = expected.sci()
    assert report["sci"]["operational_g"] == sci["operational_g"] == expected.emissions_g
    assert report["sci"]["energy_kwh"] == expected.energy_kwh
    assert report["sci"]["energy_measured_kwh"] == expected.measured_energy_kwh > 0
    assert report["sci"]["per_round_g"] == sci["per_round_g"]
    assert report["sci"]["per_accuracy_point_g"] == sci["per_accuracy_point_g"]
    assert report["sci"]["embodied_g"] is None and not report["sci"]["embodied"]["included"]
    assert report["counterfactual"]["random_g"] == expected.random_g
    assert report["counterfactual"]["saving_share"] == expected.saving_vs_random
    assert report["forecast"]["expected_g"] == expected.emissions_expected_g
    assert report["participation"]["jain"] == expected.participation["jain"]
    assert report["run"]["rounds"] == 12 and report["run"]["clients"] == 30
    assert sum(z["emissions_g"] for z in report["zones"]) == pytest.approx(expected.emissions_g)
    assert {c["id"] for c in report["clients"]} == set(expected.per_client) | {
        c for c, n in lowcarb.Ledger(ledger).participation(TASK).items() if n == 0
    }
    assert report["signal"]["kind"] == "average lifecycle" and report["signal"]["synthetic"]
    assert [d["provider"] for d in report["data_sources"]] == ["default"]
    assert report["data_sources"][0]["attribution"] == "Contains data from Electricity Maps (ODbL)."
    car = next(e for e in report["equivalents"] if e["key"] == "car_km")
    assert car["value"] == pytest.approx(expected.emissions_g / 251.1, rel=1e-3)
    assert all(e.source for e in EQUIVALENTS)


def test_embodied_carbon_joins_the_total_and_the_paragraph(ledger, expected):
    device = EmbodiedCarbon(device_kg=300, source="a laptop's LCA")
    report = build_report(PathSource(ledger).snapshot(TASK), embodied=device)
    assert report["sci"]["embodied_g"] == pytest.approx(device.grams(expected.device_hours))
    assert report["sci"]["total_g"] == pytest.approx(
        expected.emissions_g + report["sci"]["embodied_g"]
    )
    assert "embodied emissions (M = " in report["paragraph"]
    assert "not included" in build_report(PathSource(ledger).snapshot(TASK))["paragraph"]


def test_formats_carry_the_same_numbers(ledger, expected):
    as_json = json.loads(make_report(ledger, fmt="json", now=NOW))
    assert as_json["format"] == {"name": "lowcarb-report", "version": 1}
    assert as_json["sci"]["operational_g"] == expected.emissions_g
    markdown = make_report(ledger, fmt="md", now=NOW)
    for heading in ("SCI = (E \N{MULTIPLICATION SIGN} I + M) per R", "Against random selection", "By zone",
                    "In everyday terms", "For a paper or a model card", "Data sources"):  # fmt: skip
        assert f"## {heading}" in markdown or f"### {heading}" in markdown
    block = markdown.split("```json\n", 1)[1].split("\n```", 1)[0]
    compact = json.loads(block)
    assert compact["sci"] == as_json["sci"] and "rounds" not in compact
    assert lowcarb.report.render_json(as_json) == render_json(as_json)


def test_the_paragraph_states_the_footprint(ledger, expected):
    text = build_report(PathSource(ledger).snapshot(TASK))["paragraph"]
    assert f"{expected.emissions_g / 1000:.3g} kg CO2eq" in text
    assert "12 federated rounds" in text and "Jain's index" in text
    assert f"{abs(expected.saving_vs_random) * 100:.1f} %" in text


def test_names_from_the_network_are_escaped(tmp_path):
    clock = lowcarb.ManualClock(START)
    path = tmp_path / "x.ledger.sqlite"
    with lowcarb.SelectionEngine("default", rounds=2, run_id="t", ledger=path, clock=clock) as e:
        clients = [lowcarb.Client("<script>alert(1)</script>|x", "DE"), lowcarb.Client("b", "GB")]
        decision = e.select(clients, k=2)
        clock.set(decision.end)
        e.complete(decision)
    snapshot = PathSource(path).snapshot("t")
    report = build_report(snapshot)
    markdown = render_markdown(report)
    assert "<script>" not in markdown and r"\<script\>alert(1)\</script\>\|x" in markdown
    from lowcarb.report._render import render_html

    page = render_html(report, {"zones": "", "cumulative": "", "participation": ""})
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;|x" in page
    assert "\\u003c/script\\u003e" in page  # the embedded JSON cannot close its element


def test_a_state_folder_lists_its_tasks(tmp_path):
    engines = lowcarb.TaskEngines(tmp_path, provider="default")
    with engines.session("mnist") as engine:
        engine.select([lowcarb.Client("a", "DE"), lowcarb.Client("b", "GB")], k=1)
    engines.close()
    assert (tmp_path / f"mnist{LEDGER_SUFFIX}").is_file()  # as TaskEngines names them
    (tmp_path / "notes.txt").write_text("not a task")
    source = PathSource(tmp_path)
    assert source.tasks() == ["mnist"]
    assert pick_task(source, None) == "mnist"
    assert source.snapshot("mnist").records[0].round == 1


def test_bad_input_answers_in_one_line(tmp_path, ledger):
    with pytest.raises(InvalidInputError, match="no ledger file or state folder"):
        PathSource(tmp_path / "missing")
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"definitely not sqlite" * 100)
    with pytest.raises(LedgerError, match=r"^junk\.sqlite is not a lowcarb ledger"):
        make_report(junk)
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(LedgerError, match="not a lowcarb ledger: it has no ledger tables"):
        make_report(other)
    with pytest.raises(
        InvalidInputError, match=r"no task 'nope' in run\.ledger\.sqlite \(tasks: xray\)"
    ):
        make_report(ledger, task="nope")
    with pytest.raises(InvalidInputError, match="unknown report format"):
        make_report(ledger, fmt="pdf")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InvalidInputError, match="holds no runs"):
        make_report(empty)


def test_several_tasks_need_one_named(tmp_path):
    path = tmp_path / "two.sqlite"
    with Ledger(path) as raw:
        raw.open_run("a", config={})
        raw.open_run("b", config={})
    with pytest.raises(InvalidInputError, match=r"holds 2 tasks \(a, b\): choose one with --task"):
        make_report(path)
    with pytest.raises(InvalidInputError, match="task 'a' has no rounds recorded yet"):
        make_report(path, task="a")


def test_a_newer_ledger_is_refused_with_its_schema(tmp_path):
    path = write_run(tmp_path / "new.ledger.sqlite", rounds=1)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value='9' WHERE key='schema'")
    with pytest.raises(LedgerError) as caught:
        make_report(path)
    message = str(caught.value)
    assert "schema 9" in message and "newer lowcarb" in message
    assert str(tmp_path) not in message  # pages show file names, never folders
    assert re.fullmatch(r"[^\n]+", message)


def test_a_simulation_records_every_policy_for_the_report(tmp_path):
    from lowcarb.simulation import Scenario, simulate

    scenario = Scenario(
        hours=6, clients=12, per_round=3, learning="none", policies=("random", "lowcarb")
    )
    path = tmp_path / "sim.sqlite"
    result = simulate(scenario, ledger=path)
    source = PathSource(path)
    assert source.tasks() == ["lowcarb", "random"]
    report = build_report(source.snapshot("lowcarb"))
    assert report["sci"]["operational_g"] == pytest.approx(
        result.policies["lowcarb"].emissions_kg * 1000
    )
    assert report["run"]["rounds"] == scenario.total_rounds
    with pytest.raises(InvalidInputError, match="already holds runs lowcarb, random"):
        simulate(scenario, ledger=path)


def test_clients_not_held_back_and_stand_in_zones_are_accounted(tmp_path):
    clock = lowcarb.ManualClock(START)
    path = tmp_path / "v2.ledger.sqlite"
    clients = [lowcarb.Client("a", "DE"), lowcarb.Client("b", "GB"), lowcarb.Client("x", "XX")]
    with lowcarb.SelectionEngine(
        "default", rounds=4, policy="random", run_id="v2", ledger=path, clock=clock
    ) as engine:
        for _ in range(2):
            decision = engine.select(clients, k=1)
            left_out = next(c for c in decision.deferred if c != "x")
            clock.set(decision.end)
            engine.complete(decision, excluded_energy_kwh={left_out: 0.02})
    snapshot = PathSource(path).snapshot("v2")
    report = build_report(snapshot)
    with Ledger.open_read_only(path) as raw:
        expected = lowcarb.summarize(raw.rounds("v2"), run_id="v2")
    assert report["sci"]["energy_excluded_kwh"] == pytest.approx(0.04)
    assert report["sci"]["operational_g"] == pytest.approx(
        expected.emissions_g + expected.excluded_emissions_g
    )
    assert all(c.next_turn is None for c in snapshot.latest.clients)  # random plans nothing
    assert [d["provider"] for d in report["data_sources"]] in (["default"], [])
    markdown = render_markdown(report)
    assert "of clients not held back" in markdown
