"""The figure ``lowcarb simulate --plot`` draws: every policy visible, a readable scale,
colour-blind-safe colours, units, UTC and year on the time axis, and the data's source."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import matplotlib
import pytest
from matplotlib.colors import to_hex

from lowcarb.simulation import Scenario, simulate
from lowcarb.simulation._plots import OKABE_ITO, plot_simulation, simulation_figure

matplotlib.use("Agg")
import matplotlib.pyplot as plt

pytestmark = pytest.mark.slow

POLICIES = ("random", "greedy", "lowcarb", "oracle")


@pytest.fixture(scope="module")
def synthetic():
    # Greedy gives a few clients nearly every round: the tail that used to stretch the axis.
    return simulate(
        Scenario(
            zones=("DE", "GB", "SG", "ZA", "BR-CS"),
            hours=24,
            clients=20,
            per_round=4,
            learning="none",
            policies=POLICIES,
        )
    )


@pytest.fixture(scope="module")
def from_file(tmp_path_factory):
    csv = tmp_path_factory.mktemp("data") / "my-intensities.csv"
    rows = ["datetime_utc,DE,GB"] + [
        f"2024-01-{1 + h // 24:02d}T{h % 24:02d}:00:00Z,{300 + h % 24},{200 + h % 7}"
        for h in range(24 * 20)
    ]
    csv.write_text("\n".join(rows) + "\n")
    return simulate(
        Scenario(
            zones=("DE", "GB"),
            hours=12,
            clients=6,
            per_round=2,
            learning="none",
            policies=("random", "lowcarb"),
            data=csv,
            start=datetime(2024, 1, 16, tzinfo=UTC),
        )
    )


def _texts(fig) -> str:
    parts = [t.get_text() for t in fig.findobj(matplotlib.text.Text)]
    return "\n".join(parts)


def _participation_axes(fig):
    return next(ax for ax in fig.axes if "Participation" in ax.get_title())


def _emissions_axes(fig):
    return next(ax for ax in fig.axes if "Cumulative emissions" in ax.get_title())


def test_every_policy_has_its_own_visible_bars_on_a_scale_around_the_fair_share(synthetic):
    fig = simulation_figure(synthetic)
    try:
        ax = _participation_axes(fig)
        bars = {}
        for container, name in zip(ax.containers, POLICIES, strict=True):
            bars[name] = {round(p.get_x(), 6) for p in container.patches if p.get_height() > 0}
            assert bars[name], name
        # Dodged: no two policies draw a bar at the same place, so none hides another.
        for a in POLICIES:
            for b in POLICIES:
                if a < b:
                    assert not bars[a] & bars[b], (a, b)
        s = synthetic.scenario
        fair = s.total_rounds * s.per_round / s.clients
        most = max(max(r.counts) for r in synthetic.policies.values())
        assert most > 3 * fair  # greedy's tail is there...
        assert ax.get_xlim()[1] < 3 * fair + 3  # ...and does not stretch the axis
        assert any(label.get_text().startswith(">") for label in ax.get_xticklabels())
    finally:
        plt.close(fig)


def test_policies_have_distinct_colour_blind_safe_colours_and_line_styles(synthetic):
    fig = simulation_figure(synthetic)
    try:
        lines = _emissions_axes(fig).get_lines()
        colours = [to_hex(line.get_color()).upper() for line in lines]
        assert len(set(colours)) == len(POLICIES)
        assert set(colours) <= {c.upper() for c in OKABE_ITO}
        assert len({str(line.get_linestyle()) for line in lines}) == len(POLICIES)
        # One panel per zone: no zone line shares a colour-coded legend.
        zone_titles = [ax.get_title(loc="left") for ax in fig.axes]
        for zone in synthetic.scenario.zones:
            assert any(t.startswith(f"{zone}:") for t in zone_titles), zone
    finally:
        plt.close(fig)


def test_units_utc_year_and_synthetic_source_are_stated(synthetic):
    fig = simulation_figure(synthetic)
    try:
        text = _texts(fig)
        assert "gCO2e/kWh" in text and "kg CO2e" in text
        assert "SYNTHETIC" in text and "default provider" in text
        label = _emissions_axes(fig).get_xlabel()
        assert "UTC" in label and str(synthetic.scenario.start.year) in label
    finally:
        plt.close(fig)


def test_a_file_names_its_source_and_is_not_called_synthetic(from_file, tmp_path):
    fig = simulation_figure(from_file)
    try:
        text = _texts(fig)
        assert "my-intensities.csv" in text
        assert "synthetic" not in text.lower()
        assert "2024" in _emissions_axes(fig).get_xlabel()
    finally:
        plt.close(fig)
    png = plot_simulation(from_file, tmp_path / "x.png")
    assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
