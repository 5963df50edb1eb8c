"""`lowcarb simulate`: the scenario, the scores, the JSON contract, plots and bad input."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lowcarb.cli import main
from lowcarb.exceptions import ConfigurationError, InvalidInputError, NoDataError, UnknownZoneError
from lowcarb.simulation import DEFAULT_ZONES, Scenario, simulate

SMALL = {
    "zones": ("DE", "GB", "SG", "US-CAL-CISO", "AU-NSW", "BR-CS"),
    "hours": 24,
    "clients": 24,
    "per_round": 4,
    "learning": "none",
}
POLICY_KEYS = {
    "emissions_kg",
    "energy_kwh",
    "mean_intensity",
    "saving_vs_random",
    "participation",
    "accuracy",
    "rounds",
    "duration_hours",
    "decision_ms",
}


@pytest.fixture(scope="module")
def small():
    return simulate(Scenario(**SMALL))


def test_the_seed_scenario_is_the_default() -> None:
    scenario = Scenario()
    assert scenario.clients == 100 and scenario.per_round == 10
    assert scenario.total_rounds == 96 and scenario.hours == 96
    assert len(scenario.zones) == 14 == len(DEFAULT_ZONES)
    assert scenario.policies == ("random", "lowcarb-2022", "greedy", "lowcarb", "oracle")
    assert scenario.forecast == "best" and scenario.fairness == 1.0


@pytest.mark.slow
def test_policies_are_scored_on_the_truth(small) -> None:
    p = small.policies
    assert set(p) == {"random", "lowcarb-2022", "greedy", "lowcarb", "oracle"}
    for result in p.values():
        assert result.rounds == 24
        assert result.energy_kwh == pytest.approx(24 * 4 * result.energy_kwh / 96)
        assert result.mean_intensity == pytest.approx(
            1000 * result.emissions_kg / result.energy_kwh
        )
        assert sum(result.counts) == 96
    # The planner with perfect foresight is a lower bound for the same planner.
    assert p["oracle"].emissions_kg <= p["lowcarb"].emissions_kg + 1e-9
    assert p["greedy"].emissions_kg <= p["oracle"].emissions_kg
    assert p["lowcarb"].saving_vs_random > 0
    assert p["lowcarb"].participation["jain"] >= 0.99
    assert p["lowcarb"].participation["max"] - p["lowcarb"].participation["min"] <= 1
    assert p["greedy"].participation["never"] > 0
    # Random selection is scored against its own expectation: a small deviation only.
    assert abs(p["random"].saving_vs_random) < 0.1


def test_json_contract(small) -> None:
    doc = json.loads(json.dumps(small.to_dict()))
    assert set(doc) == {"scenario", "policies"}
    for key in ("zones", "start", "hours", "clients", "per_round", "round_minutes", "rounds"):
        assert key in doc["scenario"]
    assert doc["scenario"]["forecast"] == "best"
    for result in doc["policies"].values():
        assert set(result) == POLICY_KEYS
        assert set(result["participation"]) == {"min", "max", "jain", "never"}
        assert set(result["decision_ms"]) == {"p50", "p99"}


@pytest.mark.slow
def test_same_seed_same_result() -> None:
    scenario = Scenario(**{**SMALL, "policies": ("random", "lowcarb")})
    first, second = simulate(scenario), simulate(scenario)
    for name in ("random", "lowcarb"):
        assert first.policies[name].selections == second.policies[name].selections


@pytest.mark.slow
def test_real_learning_shows_accuracy() -> None:
    result = simulate(
        Scenario(**{**SMALL, "learning": "digits", "policies": ("random", "lowcarb")})
    )
    for r in result.policies.values():
        assert r.accuracy is not None and 0.5 < r.accuracy <= 1.0


def test_deadline_lets_the_planner_shift_rounds_in_time() -> None:
    base = {**SMALL, "rounds": 12, "hours": 12, "policies": ("random", "oracle")}
    tight = simulate(Scenario(**base))
    slack = simulate(Scenario(**{**base, "deadline_hours": 24}))
    assert slack.policies["oracle"].rounds == 12
    assert slack.policies["oracle"].duration_hours <= 24
    assert slack.policies["random"].duration_hours == 12  # random never waits
    assert slack.policies["oracle"].emissions_kg <= tight.policies["oracle"].emissions_kg + 1e-9


def test_mixed_energy_and_random_assignment() -> None:
    result = simulate(
        Scenario(**{**SMALL, "energy": "mixed", "assignment": "random", "policies": ("lowcarb",)})
    )
    assert len(set(result.client_zones)) > 1
    assert result.policies["lowcarb"].energy_kwh > 0


@pytest.mark.slow
def test_noisy_and_persistence_forecasts() -> None:
    for forecast in ("noisy:0.1", "persistence"):
        result = simulate(Scenario(**{**SMALL, "forecast": forecast, "policies": ("lowcarb",)}))
        assert result.policies["lowcarb"].participation["jain"] >= 0.99


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"zones": ("DE", "XX-NOWHERE")}, UnknownZoneError, "XX-NOWHERE"),
        ({"per_round": 30}, InvalidInputError, "more than the 24 clients"),
        ({"rounds": 30}, InvalidInputError, "30 rounds of 60 min need 30 h"),
        ({"forecast": "crystal-ball"}, InvalidInputError, "--forecast"),
        ({"forecast": "noisy:lots"}, InvalidInputError, "noisy:SIGMA"),
        ({"policies": ("random", "fastest")}, InvalidInputError, "unknown policy"),
        ({"fairness": 1.5}, InvalidInputError, "--fairness"),
        ({"zones": ("DE", "DE")}, InvalidInputError, "twice"),
        ({"deadline_hours": -1.0}, InvalidInputError, "deadline"),
    ],
)
def test_bad_scenarios_are_refused(changes, error, match) -> None:
    with pytest.raises(error, match=match):
        simulate(Scenario(**{**SMALL, **changes}))


@pytest.mark.slow
def test_a_window_outside_the_data_is_refused(tmp_path: Path) -> None:
    csv = tmp_path / "ci.csv"
    rows = ["datetime_utc,DE,GB"] + [
        f"2024-01-{1 + h // 24:02d}T{h % 24:02d}:00:00Z,{300 + h % 24},{200 + h % 7}"
        for h in range(24 * 20)
    ]
    csv.write_text("\n".join(rows) + "\n")
    ok = simulate(
        Scenario(
            **{
                **SMALL,
                "zones": ("DE", "GB"),
                "data": csv,
                "start": datetime(2024, 1, 16, tzinfo=UTC),
            }
        )
    )
    assert ok.policies["lowcarb"].rounds == 24
    with pytest.raises(NoDataError, match="not inside the data"):
        simulate(
            Scenario(
                **{
                    **SMALL,
                    "zones": ("DE", "GB"),
                    "data": csv,
                    "start": datetime(2024, 1, 3, tzinfo=UTC),
                }
            )
        )
    with pytest.raises(UnknownZoneError, match="SG"):
        simulate(Scenario(**{**SMALL, "zones": ("DE", "SG"), "data": csv}))
    with pytest.raises(ConfigurationError, match="does not exist"):
        simulate(Scenario(**{**SMALL, "data": tmp_path / "missing.csv"}))


# A small scenario on the command line.
CLI_SMALL = [
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
]


def test_cli_json_to_stdout(capsys) -> None:
    assert main([*CLI_SMALL, "--policies", "random,lowcarb", "--json", "-"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc["policies"]) == {"random", "lowcarb"}
    assert doc["scenario"]["zones"] == ["DE", "GB", "SG"]


@pytest.mark.slow
def test_cli_table_json_file_and_plot(tmp_path: Path, capsys) -> None:
    out, png = tmp_path / "r.json", tmp_path / "r.png"
    args = ["--policies", "random,greedy,lowcarb", "--json", str(out), "--plot", str(png)]
    assert main([*CLI_SMALL, *args]) == 0
    text = capsys.readouterr().out
    assert "lowcarb" in text and "Jain" in text
    assert json.loads(out.read_text())["scenario"]["clients"] == 9
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("args", "code", "match"),
    [
        (["--per-round", "200"], 1, "more than the 100 clients"),
        (["--zones", "DE,XX"], 1, "unknown zone 'XX'"),
        (["--start", "yesterday-ish"], 1, "--start"),
        (["--data", "/nonexistent/ci.csv"], 2, "does not exist"),
        (["--hours", "10", "--rounds", "20"], 1, "20 rounds"),
        (["--plot", "out.jpg", "--hours", "2", "--learning", "none"], 1, ".png"),
        (["--fairness", "abc"], 2, "fairness"),
    ],
)
def test_cli_bad_input_is_one_line_and_non_zero(args, code, match, capsys) -> None:
    assert main(["simulate", *args]) == code
    err = capsys.readouterr().err
    assert match in err
    assert "Traceback" not in err


@pytest.mark.shared_data
@pytest.mark.slow
def test_simulate_on_real_data(shared_data: Path) -> None:
    data = (
        shared_data
        / "electricitymaps-16zones-2021-2023"
        / "carbon_intensity_lca_2021_2023_hourly.csv"
    )
    result = simulate(
        Scenario(**{**SMALL, "data": data, "start": datetime(2022, 4, 4, tzinfo=UTC), "hours": 48})
    )
    p = result.policies
    assert "file" in result.provider
    assert p["oracle"].emissions_kg <= p["lowcarb"].emissions_kg + 1e-9 < p["random"].emissions_kg
