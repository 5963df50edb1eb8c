"""Figures of a simulation (matplotlib, the ``plot`` extra)."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path
from typing import Any

import numpy as np

from lowcarb._extras import missing_extra
from lowcarb.simulation._run import SimulationResult

__all__ = ["plot_simulation", "require_matplotlib", "simulation_figure"]


def require_matplotlib() -> Any:
    """Import matplotlib with the headless backend, or say how to install it."""
    try:
        import matplotlib
    except ImportError as exc:
        raise missing_extra("drawing plots", "plot", exc) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


#: Okabe & Ito's colour-blind-safe palette (https://jfly.uni-koeln.de/color/), without its
#: yellow, which is too light for lines on white.
OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#E69F00", "#CC79A7", "#56B4E9", "#000000")
#: Fixed colours for the built-in policies, so that a policy looks the same in every figure.
_POLICY_COLOURS = {
    "lowcarb": "#D55E00",
    "oracle": "#0072B2",
    "random": "#000000",
    "greedy": "#E69F00",
    "lowcarb-2022": "#009E73",
}
_LINE_STYLES = ("-", "--", "-.", ":", (0, (5, 1, 1, 1, 1, 1)))


def _policy_styles(names: list[str]) -> dict[str, tuple[str, Any]]:
    """A colour and a line style for each policy: fixed for the built-ins, distinct for all."""
    spare = [c for c in OKABE_ITO if c not in _POLICY_COLOURS.values()]
    styles: dict[str, tuple[str, Any]] = {}
    for i, name in enumerate(names):
        colour = _POLICY_COLOURS.get(name) or spare.pop(0) if spare else OKABE_ITO[i % 7]
        if colour in (c for c, _ in styles.values()):
            colour = OKABE_ITO[i % len(OKABE_ITO)]
        styles[name] = (colour, _LINE_STYLES[i % len(_LINE_STYLES)])
    return styles


def _source_note(result: SimulationResult) -> str:
    """Where the carbon data comes from, saying so plainly when it is synthetic."""
    s = result.scenario
    if s.data is None:
        source = (
            "SYNTHETIC carbon intensities from lowcarb's embedded default provider "
            f"(seed {s.provider_seed}), not measurements"
        )
    else:
        source = f"carbon intensities ({s.signal} signal) from {Path(s.data).name}"
    if s.score_data is not None:
        source += f"; emissions judged on {Path(s.score_data).name} ({s.judged_signal} signal)"
    return (
        f"Data: {source}. {s.clients} clients in {len(s.zones)} zones, {s.total_rounds} rounds "
        f"of {s.per_round} clients, {s.round_minutes}-minute rounds; forecast: {s.forecast}; "
        f"seed {s.seed}."
    )


def _time_axis(ax: Any, first: Any, *, small: bool = False) -> None:
    """Dates in UTC with the year: day and month on the ticks, the year in the label."""
    import matplotlib.dates

    mdates: Any = matplotlib.dates  # its constructors are untyped
    locator = mdates.AutoDateLocator(minticks=2 if small else 4, maxticks=4 if small else 8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%d %b" if small else "%d %b\n%H:%M", tz=UTC))
    if not small:
        ax.set_xlabel(f"time (UTC), {first:%Y}")


def plot_simulation(result: SimulationResult, path: str | Path, *, show: str | None = None) -> Path:
    """Draw zone intensities with selections, cumulative emissions and participation.

    The figure is :func:`simulation_figure`'s, written as a PNG.

    Args:
        result: A simulation's result.
        path: PNG file to write.
        show: The policy whose selections are overlaid (default: ``lowcarb`` if run,
            else the last policy).

    Returns:
        The path written.
    """
    plt = require_matplotlib()
    fig = simulation_figure(result, show=show)
    target = Path(path)
    fig.savefig(target, dpi=100)
    plt.close(fig)
    return target


def simulation_figure(result: SimulationResult, *, show: str | None = None) -> Any:
    """The figure of a simulation: zone intensities, cumulative emissions, participation.

    One small panel per zone (shared axes) shows its carbon intensity and the clients
    ``show`` selected there; below, every policy's cumulative emissions and how many
    rounds each client took. Colours are colour-blind safe (Okabe-Ito) and each policy
    also has its own line style; the footnote names the data, and says when it is
    synthetic.

    Args:
        result: A simulation's result.
        show: The policy whose selections are overlaid (default: ``lowcarb`` if run,
            else the last policy).

    Returns:
        A matplotlib ``Figure`` (close it with ``matplotlib.pyplot.close``).
    """
    plt = require_matplotlib()
    names = list(result.policies)
    focus = show or ("lowcarb" if "lowcarb" in names else names[-1])
    styles = _policy_styles(names)
    truth = result.truth
    zones = list(truth.columns)
    first = truth.index[0]

    nrows = -(-len(zones) // 7)
    ncols = -(-len(zones) // nrows)
    fig = plt.figure(figsize=(13, 5.6 + 1.6 * nrows), layout="constrained")
    upper, lower = fig.subfigures(2, 1, height_ratios=[1.6 * nrows + 0.4, 4.6], hspace=0.04)
    top = upper.add_gridspec(nrows, ncols)
    # Where the focus policy put its clients: (zone, round start) -> clients.
    picked: dict[tuple[str, Any], int] = {}
    chosen = result.policies[focus]
    for start, selected in zip(chosen.round_starts, chosen.selections, strict=True):
        for i in selected:
            key = (result.client_zones[i], start)
            picked[key] = picked.get(key, 0) + 1
    most = max(picked.values(), default=1)
    focus_colour = styles[focus][0]
    axes: list[Any] = []
    for k, zone in enumerate(zones):
        ax = upper.add_subplot(
            top[k // ncols, k % ncols],
            sharex=axes[0] if axes else None,
            sharey=axes[0] if axes else None,
        )
        axes.append(ax)
        ax.step(truth.index, truth[zone], where="post", color="#444444", lw=0.9)
        marks = [(t, n) for (z, t), n in picked.items() if z == zone]
        if marks:
            stamps = [t for t, _ in marks]
            at = [truth.index.asof(t) if t >= first else first for t in stamps]
            ax.scatter(
                stamps,
                [truth.at[a, zone] for a in at],
                s=[6 + 30 * n / most for _, n in marks],
                color=focus_colour,
                edgecolor="none",
                alpha=0.85,
                zorder=3,
            )
        clients = sum(n for _, n in marks)
        ax.set_title(f"{zone}: {clients} client-rounds", fontsize=8, loc="left", pad=2)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.25, lw=0.5)
        if k % ncols == 0:
            ax.set_ylabel("gCO2e/kWh", fontsize=8)
        else:
            ax.tick_params(labelleft=False)
        if k + ncols < len(zones):
            ax.tick_params(labelbottom=False)
        _time_axis(ax, first, small=True)
    axes[0].set_ylim(bottom=0)
    upper.suptitle(
        f"Carbon intensity by zone (gCO2e/kWh); dots: clients {focus} selected there in a "
        "round (larger = more clients)",
        fontsize=10,
    )

    ax_cum, ax_hist = lower.subplots(1, 2)
    for name in names:
        r = result.policies[name]
        colour, style = styles[name]
        ax_cum.plot(
            r.round_starts,
            r.cumulative_kg,
            color=colour,
            ls=style,
            lw=1.6,
            label=f"{name}: {r.emissions_kg:.2f} kg",
        )
    ax_cum.set_title("Cumulative emissions", fontsize=10)
    ax_cum.set_ylabel("kg CO2e")
    ax_cum.set_ylim(bottom=0)
    ax_cum.grid(alpha=0.25, lw=0.5)
    ax_cum.legend(fontsize=8, frameon=False, loc="upper left")
    _time_axis(ax_cum, first)

    _participation(ax_hist, result, names, styles)

    fig.suptitle(
        f"Client selection policies on {len(zones)} zones, {first:%Y-%m-%d %H:%M} UTC + "
        f"{result.scenario.window_hours:g} h"
        + (" (synthetic data)" if result.scenario.data is None else ""),
        fontsize=12,
    )
    synthetic = result.scenario.data is None
    fig.supxlabel(_source_note(result), fontsize=8, color="#B00000" if synthetic else "#333333")
    return fig


def _participation(
    ax: Any, result: SimulationResult, names: list[str], styles: dict[str, tuple[str, Any]]
) -> None:
    """Rounds taken per client, one dodged bar per policy; the tail in one last bin."""
    s = result.scenario
    fair = s.total_rounds * s.per_round / s.clients
    # The range that matters is around the fair share; a greedy policy's few clients that
    # take nearly every round are gathered in one last bin instead of stretching the axis.
    cap = max(int(np.ceil(2.5 * fair)), 4)
    width = 0.8 / len(names)
    for j, name in enumerate(names):
        counts = np.asarray(result.policies[name].counts)
        heights = np.bincount(np.minimum(counts, cap + 1), minlength=cap + 2)
        x = np.arange(cap + 2) - 0.4 + width * (j + 0.5)
        colour, _ = styles[name]
        ax.bar(x, heights, width=width, color=colour, label=name, lw=0)
    ax.axvline(fair, color="#777777", ls="--", lw=1)
    ax.annotate(
        f"fair share {fair:.3g}",
        (fair, 1),
        xycoords=("data", "axes fraction"),
        xytext=(3, -3),
        textcoords="offset points",
        fontsize=8,
        color="#555555",
        va="top",
    )
    step = max(1, (cap + 1) // 8)
    ticks = [t for t in range(0, cap, step) if t <= cap - step / 2]
    ax.set_xticks([*ticks, cap + 1], [*(str(t) for t in ticks), f">{cap}"])
    ax.set_xlim(-0.6, cap + 1.6)
    ax.set_title("Participation: rounds taken per client", fontsize=10)
    ax.set_xlabel("rounds taken (last bin: more)")
    ax.set_ylabel("clients")
    ax.grid(axis="y", alpha=0.25, lw=0.5)
    ax.legend(fontsize=8, frameon=False, loc="upper right")
