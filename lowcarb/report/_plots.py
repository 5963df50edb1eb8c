"""The report's figures as inline SVG (matplotlib): no files, no network, any theme.

Text, axes and grid are drawn in a placeholder colour that becomes ``currentColor`` in the
SVG, so an inline figure takes the page's text colour: readable in a light and a dark
theme alike. Figures are deterministic (fixed hash salt, no date), so the same run draws
the same bytes.
"""

from __future__ import annotations

import importlib
import io
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from lowcarb._extras import missing_extra
from lowcarb.report._account import fmt_num
from lowcarb.report._source import RunSnapshot

__all__ = ["render_plots", "require_pyplot"]

#: A colour no figure uses for data; it becomes ``currentColor``.
_INK = "#010203"
#: Most zones drawn in the intensity figure (the ones with most client-rounds).
MAX_ZONES = 10


def require_pyplot() -> Any:
    """The pyplot of matplotlib on its headless backend, or how to install it."""
    try:
        import matplotlib
    except ImportError as exc:
        raise missing_extra(
            "drawing the charts of the HTML report and the dashboard", "plot", exc
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@contextmanager
def _style(plt: Any) -> Iterator[None]:
    ink = {key: _INK for key in ("text.color", "axes.labelcolor", "axes.edgecolor")}
    with plt.rc_context(
        {
            **ink,
            "xtick.color": _INK,
            "ytick.color": _INK,
            "grid.color": _INK,
            "grid.alpha": 0.15,
            "axes.grid": True,
            "axes.facecolor": "none",
            "figure.facecolor": "none",
            "axes.spines.top": False,
            "axes.spines.right": False,
            "legend.frameon": False,
            "font.size": 8,
            "svg.fonttype": "none",
            "svg.hashsalt": "lowcarb",
        }
    ):
        yield


def _svg(plt: Any, fig: Any, label: str) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    text = buffer.getvalue()
    text = text[text.index("<svg") :].replace(_INK, "currentColor")
    # The RDF metadata says only "matplotlib, an image": a page needs none of it.
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, count=1, flags=re.DOTALL)
    # Scale with the page: the viewBox keeps the proportions.
    text = re.sub(
        r'<svg([^>]*?) width="[^"]*" height="[^"]*"',
        rf'<svg\1 width="100%" role="img" aria-label="{_attr(label)}"',
        text,
        count=1,
    )
    return text


def _attr(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def _tex_safe(text: str) -> str:
    """A label matplotlib prints as it is (a ``$`` would start mathtext)."""
    return text.replace("$", r"\$")


def _dates(ax: Any) -> None:
    mdates: Any = importlib.import_module("matplotlib.dates")  # untyped calls
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _zones_figure(plt: Any, snapshot: RunSnapshot) -> str:
    starts = {r.round: r.start for r in snapshot.records}
    busy: Counter[str] = Counter()
    for record in snapshot.records:
        busy.update(c.zone for c in record.clients)
    plotted = [n for n, _ in snapshot.intensities]
    known = {z for _, zones in snapshot.intensities for z in zones}
    order = sorted(known, key=lambda z: (-busy[z], z))[:MAX_ZONES]
    colours = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(7.6, 3.4), layout="constrained")
    plotted_set = set(plotted)
    for i, zone in enumerate(order):
        colour = colours(i % 10)
        xs = [starts[n] for n, zones in snapshot.intensities if zone in zones and n in starts]
        ys = [zones[zone] for n, zones in snapshot.intensities if zone in zones and n in starts]
        if xs and xs[-1] == snapshot.records[-1].start:
            # The last round's value holds until the round's end, as the others do.
            xs.append(snapshot.records[-1].end)
            ys.append(ys[-1])
        ax.step(xs, ys, where="post", color=colour, lw=1.2, label=_tex_safe(zone))
        chosen_x: list[datetime] = []
        chosen_y: list[float] = []
        sizes: list[float] = []
        actual_x: list[datetime] = []
        actual_y: list[float] = []
        for record in snapshot.records:
            if record.round not in plotted_set:
                continue
            here = [c for c in record.clients if c.zone == zone]
            if here:
                chosen_x.append(record.start)
                chosen_y.append(here[0].intensity_used)
                sizes.append(14.0 * len(here))
            # The actual intensity is known for zones where a client trained.
            values = [
                c.intensity_actual
                for c in (*record.clients, *record.excluded)
                if c.zone == zone and c.intensity_actual is not None
            ]
            if values:
                actual_x.append(record.start)
                actual_y.append(values[0])
        ax.scatter(chosen_x, chosen_y, s=sizes, color=colour, edgecolors=_INK, lw=0.4, zorder=3)
        ax.scatter(actual_x, actual_y, s=18, facecolors="none", edgecolors=colour, lw=1.0)
    more = len(known) - len(order)
    title = "Intensity by zone: lines as decided, circles actual, dots selected (size: clients)"
    ax.set_title(title + (f"; {more} quieter zones not drawn" if more > 0 else ""), loc="left")
    ax.set_ylabel("gCO2eq/kWh")
    if order:
        fig.legend(loc="outside lower center", ncol=min(6, len(order)))
    _dates(ax)
    return _svg(plt, fig, "Carbon intensity by zone over the run, with the clients selected")


def _cumulative_figure(plt: Any, report: Mapping[str, Any]) -> str:
    rounds = report["rounds"]
    xs = [datetime.fromisoformat(r["start"]) for r in rounds]
    fig, ax = plt.subplots(figsize=(7.6, 3.0), layout="constrained")
    total = 0.0
    selection = []
    for r in rounds:
        total += r["emissions_g"]
        selection.append(total / 1000)
    policy = _tex_safe(str(report["run"]["policy"]))
    ax.plot(xs, selection, color="#2a9d8f", lw=1.8, label=f"selected clients ({policy})")
    running = 0.0
    random_x, random_y = [], []
    for x, r in zip(xs, rounds, strict=True):
        if r["random_g"] is None:
            break  # the counterfactual stops where a round has none
        running += r["random_g"]
        random_x.append(x)
        random_y.append(running / 1000)
    if random_x:
        ax.plot(random_x, random_y, color="#e76f51", lw=1.5, ls="--", label="random selection")
    if any(r["excluded_g"] for r in rounds):
        footprint, extra = [], 0.0
        for value, r in zip(selection, rounds, strict=True):
            extra += r["excluded_g"]
            footprint.append(value + extra / 1000)
        ax.plot(xs, footprint, color="#8d99ae", lw=1.2, label="with clients not held back")
    ax.set_title("Cumulative emissions against random selection", loc="left")
    ax.set_ylabel("kg CO2eq")
    ax.legend(loc="upper left")
    _dates(ax)
    return _svg(plt, fig, "Cumulative emissions of the run against random selection")


def _participation_figure(plt: Any, report: Mapping[str, Any]) -> str:
    counts = Counter(int(c["rounds"]) for c in report["clients"])
    fig, ax = plt.subplots(figsize=(7.6, 2.6), layout="constrained")
    xs = sorted(counts)
    ax.bar(xs, [counts[x] for x in xs], width=0.8, color="#457b9d")
    share = report["participation"]["fair_share"]
    if share is not None:
        ax.axvline(share, color=_INK, lw=1.0, ls=":", label=f"fair share {fmt_num(share)}")
        ax.legend(loc="upper left")
    ax.set_title("Participation: clients by rounds taken", loc="left")
    ax.set_xlabel("rounds taken")
    ax.set_ylabel("clients")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(min(xs, default=0) - 1, max(xs, default=0) + 1)
    return _svg(plt, fig, "How many clients took each number of rounds")


def render_plots(snapshot: RunSnapshot, report: Mapping[str, Any]) -> dict[str, str]:
    """The report's three figures as inline SVG: ``zones``, ``cumulative``, ``participation``.

    Raises:
        ConfigurationError: Without matplotlib (the ``plot`` extra).
    """
    plt = require_pyplot()
    with _style(plt):
        return {
            "zones": _zones_figure(plt, snapshot),
            "cumulative": _cumulative_figure(plt, report),
            "participation": _participation_figure(plt, report),
        }
