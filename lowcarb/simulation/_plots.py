"""Figures of a simulation (matplotlib, the ``plot`` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lowcarb import ConfigurationError
from lowcarb.simulation._run import SimulationResult

__all__ = ["plot_simulation", "require_matplotlib"]


def require_matplotlib() -> Any:
    """Import matplotlib with the headless backend, or say how to install it."""
    try:
        import matplotlib
    except ImportError:
        raise ConfigurationError("plots need matplotlib: pip install 'lowcarb[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_simulation(result: SimulationResult, path: str | Path, *, show: str | None = None) -> Path:
    """Draw zone intensities with selections, cumulative emissions and participation.

    Args:
        result: A simulation's result.
        path: PNG file to write.
        show: The policy whose selections are overlaid (default: ``lowcarb`` if run,
            else the last policy).

    Returns:
        The path written.
    """
    plt = require_matplotlib()
    names = list(result.policies)
    focus = show or ("lowcarb" if "lowcarb" in names else names[-1])
    fig = plt.figure(figsize=(13, 9), layout="constrained")
    grid = fig.add_gridspec(2, 2, height_ratios=[1.2, 1])
    ax_trace = fig.add_subplot(grid[0, :])
    ax_cum = fig.add_subplot(grid[1, 0])
    ax_hist = fig.add_subplot(grid[1, 1])

    truth = result.truth
    zones = list(truth.columns)
    colours = plt.get_cmap("tab20")(np.linspace(0, 1, max(len(zones), 2)))
    for colour, zone in zip(colours, zones, strict=False):
        ax_trace.step(truth.index, truth[zone], where="post", color=colour, lw=1.0, label=zone)
    chosen = result.policies[focus]
    client_zones = result.client_zones
    for start, picked in zip(chosen.round_starts, chosen.selections, strict=True):
        counts: dict[str, int] = {}
        for i in picked:
            counts[client_zones[i]] = counts.get(client_zones[i], 0) + 1
        for zone, n in counts.items():
            stamp = truth.index.asof(start) if start >= truth.index[0] else truth.index[0]
            colour = colours[zones.index(zone)]
            ax_trace.scatter(
                start,
                truth.at[stamp, zone],
                s=12 * n,
                color=colour,
                edgecolor="k",
                lw=0.4,
                zorder=3,
            )
    ax_trace.set_title(
        f"Carbon intensity by zone; dots: clients selected by {focus} (size = clients)"
    )
    ax_trace.set_ylabel("gCO2eq/kWh")
    ax_trace.legend(ncol=7, fontsize=7, loc="upper left", frameon=False)

    for name in names:
        r = result.policies[name]
        ax_cum.plot(r.round_starts, r.cumulative_kg, label=f"{name} ({r.emissions_kg:.2f} kg)")
    ax_cum.set_title("Cumulative emissions")
    ax_cum.set_ylabel("kg CO2eq")
    ax_cum.legend(fontsize=8, frameon=False)
    ax_cum.tick_params(axis="x", labelrotation=30)

    top = max(max(r.counts) for r in result.policies.values())
    bins = np.arange(0, top + 2) - 0.5
    for name in names:
        ax_hist.hist(result.policies[name].counts, bins=bins, histtype="step", lw=1.5, label=name)
    ax_hist.set_title("Participation: rounds per client")
    ax_hist.set_xlabel("rounds taken")
    ax_hist.set_ylabel("clients")
    ax_hist.legend(fontsize=8, frameon=False)

    target = Path(path)
    fig.savefig(target, dpi=110)
    plt.close(fig)
    return target
