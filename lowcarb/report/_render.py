"""The account in three formats: Markdown (papers, READMEs), HTML (one offline file), JSON.

HTML comes from a Jinja2 template with autoescaping (task, zone and client names come
from the network), the stylesheet and the figures inline, and the account's JSON in a
``<script type="application/json">`` block. Markdown escapes what would break its
tables.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any

from lowcarb.report._account import fmt_g, fmt_num, fmt_pct

__all__ = ["CLIENT_ROWS", "render_html", "render_json", "render_markdown", "stylesheet"]

#: Clients listed in the Markdown and HTML tables (all of them are in the JSON).
CLIENT_ROWS = 50


def render_json(report: Mapping[str, Any]) -> str:
    """The account as JSON (strict: no NaN), with a final newline."""
    return json.dumps(report, indent=2, allow_nan=False) + "\n"


@cache
def stylesheet() -> str:
    """The CSS the report and the dashboard share."""
    return resources.files("lowcarb.report").joinpath("static/lowcarb.css").read_text("utf-8")


def _kwh(value: float | None) -> str:
    return "n/a" if value is None else f"{fmt_num(value)} kWh"


def _round0(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def _saving(share: float | None) -> str:
    if share is None:
        return "n/a"
    return f"{abs(share) * 100:.1f} % {'less' if share >= 0 else 'more'}"


def _when(text: str | None) -> str:
    return "n/a" if text is None else datetime.fromisoformat(text).strftime("%Y-%m-%d %H:%M")


@cache
def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("lowcarb.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=False,
    )
    env.filters.update(
        mass=fmt_g,
        kwh=_kwh,
        pct=fmt_pct,
        signed=lambda v: fmt_pct(v, signed=True),
        saving=_saving,
        round0=_round0,
        n3=fmt_num,
        when=_when,
    )
    return env


def render_html(report: Mapping[str, Any], plots: Mapping[str, str]) -> str:
    """One self-contained HTML page: no script runs, nothing is fetched."""
    # Written \u003c, no "<" in the JSON can end its script element or open a comment.
    data = json.dumps(report, allow_nan=False).replace("<", "\\u003c").replace(">", "\\u003e")
    template = _environment().get_template("report.html.j2")
    return str(
        template.render(r=report, plots=plots, css=stylesheet(), data=data, client_rows=CLIENT_ROWS)
    )


# What Markdown reads as markup anywhere in a line (a table cell or a paragraph).
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~])")


def _md(text: object) -> str:
    """Text as Markdown prints it literally (and table cells stay cells)."""
    return _MD_SPECIAL.sub(r"\\\1", str(text)).replace("\n", " ")


def _table(header: list[str], rows: list[list[str]], right: set[int] | None = None) -> str:
    right = right or set()
    rule = ["---:" if i in right else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(report: Mapping[str, Any]) -> str:
    """The account as Markdown (every section of the HTML report but the figures)."""
    r = report
    run, sci, sig = r["run"], r["sci"], r["signal"]
    cf, fc, part = r["counterfactual"], r["forecast"], r["participation"]
    emb = sci["embodied"]
    out: list[str] = [
        f"# Carbon account of task {_md(run['task'])}",
        "",
        f"{run['rounds']} rounds from {_when(run['start'])} to {_when(run['end'])} UTC · "
        f"policy {_md(run['policy'])} · {run['clients']} clients in {run['zones']} zones · "
        f"read from {_md(r['source']['file'])} · lowcarb {r['lowcarb']} · "
        f"made {_when(r['generated_at'])} UTC",
        "",
        "## In short",
        "",
        _table(
            ["", ""],
            [
                [
                    "emissions" + (" (O + M)" if emb["included"] else ""),
                    f"{fmt_g(sci['total_g'])} CO2eq",
                ],
                [
                    "against random selection",
                    f"{_saving(cf['saving_share'])} ({fmt_g(cf['saving_g'])})",
                ],
                ["energy", _kwh(sci["energy_kwh"])],
                ["mean intensity", f"{_round0(sci['intensity_g_per_kwh'])} gCO2eq/kWh"],
                ["per round", f"{fmt_g(sci['per_round_g'])} CO2eq"],
                ["Jain's index", f"{part['jain']:.3f} ({part['never']} clients never selected)"],
            ],
        ),
        "",
        "## SCI = (E \N{MULTIPLICATION SIGN} I + M) per R",
        "",
    ]
    kinds = ", ".join(f"{_md(k)} ({n} client-rounds)" for k, n in sig["kinds"].items())
    embodied_row = (
        [
            "M, embodied",
            fmt_g(sci["embodied_g"]),
            f"{fmt_num(emb['device_kg'])} kg per device over "
            f"{fmt_num(emb['lifetime_years'])} years, "
            f"{fmt_num(emb['device_hours'])} device-hours ({_md(emb['source'])})",
        ]
        if emb["included"]
        else [
            "M, embodied",
            "not included",
            "the client devices' manufacture is left out: lowcarb does not know their "
            f"hardware ({fmt_num(emb['device_hours'])} device-hours; `--embodied` adds it)",
        ]
    )
    accuracy = (
        f"R = one point of accuracy gained ({fmt_num(sci['accuracy_points'])} points)"
        if sci["accuracy_points"] is not None
        else "no accuracy was reported with the rounds"
    )
    out += [
        _table(
            ["term", "value", "what it is"],
            [
                [
                    "E, energy",
                    _kwh(sci["energy_kwh"]),
                    f"{_kwh(sci['energy_selected_kwh'])} selected "
                    f"({fmt_pct(sci['measured_share'])} measured)"
                    + (
                        f", {_kwh(sci['energy_excluded_kwh'])} of clients not held back"
                        if sci["energy_excluded_kwh"]
                        else ""
                    ),
                ],
                [
                    "I, intensity",
                    f"{_round0(sci['intensity_g_per_kwh'])} g/kWh",
                    f"location-based; {kinds}; actual for {fmt_pct(sig['actual_share'])} of "
                    f"client-rounds, {fmt_pct(sig['fallback_share'])} from a fallback"
                    + ("; synthetic data, not measurements" if sig["synthetic"] else ""),
                ],
                [
                    "O = E \N{MULTIPLICATION SIGN} I",
                    fmt_g(sci["operational_g"]),
                    "operational emissions (CO2eq)",
                ],
                embodied_row,
                ["SCI per run", fmt_g(sci["per_run_g"]), "R = the whole training"],
                ["SCI per round", fmt_g(sci["per_round_g"]), f"R = one round ({run['rounds']})"],
                [
                    "SCI per client-round",
                    fmt_g(sci["per_client_round_g"]),
                    f"R = one client training one round ({sci['client_rounds']})",
                ],
                ["SCI per accuracy point", fmt_g(sci["per_accuracy_point_g"]), accuracy],
            ],
            right={1},
        ),
        "",
        "## Against random selection",
        "",
        _table(
            ["", ""],
            [
                ["random selection, expected", fmt_g(cf["random_g"])],
                ["this run's selection", fmt_g(cf["selection_g"])],
                ["saving", f"{fmt_g(cf['saving_g'])} ({_saving(cf['saving_share'])})"],
            ],
            right={1},
        ),
        "",
        f"How it is computed: {cf['method']} {cf['rounds_with_actual']} of {run['rounds']} "
        "rounds have the counterfactual at actual intensities.",
        "",
        "## Forecast and actual",
        "",
        f"With the intensities the decisions used the run would emit "
        f"{fmt_g(fc['expected_g'])}; with the actual intensities, where known "
        f"({fmt_pct(fc['actual_share'])} of client-rounds), it emitted "
        f"{fmt_g(fc['actual_g'])} ({fmt_pct(fc['difference_share'], signed=True)} against "
        "the forecast).",
        "",
        "## Participation and fairness",
        "",
        f"Jain's index over rounds per client: {part['jain']:.3f}. Rounds per client from "
        f"{part['min']:.0f} to {part['max']:.0f}; fair share {fmt_num(part['fair_share'])}; "
        f"{part['never']} of {part['clients']} clients never selected.",
        "",
        "### By zone",
        "",
        _table(
            ["zone", "clients", "client-rounds", "energy", "emissions", "g/kWh"],
            [
                [
                    _md(z["zone"]),
                    str(z["clients"]),
                    str(z["client_rounds"]),
                    _kwh(z["energy_kwh"]),
                    fmt_g(z["emissions_g"]),
                    _round0(z["mean_intensity_g_per_kwh"]),
                ]
                for z in r["zones"]
            ],
            right={1, 2, 3, 4, 5},
        ),
        "",
        "### By client",
        "",
        _table(
            ["client", "zone", "rounds", "energy", "emissions"],
            [
                [
                    _md(c["id"]),
                    _md(c["zone"] or ""),
                    str(c["rounds"]),
                    _kwh(c["energy_kwh"]),
                    fmt_g(c["emissions_g"]),
                ]
                for c in r["clients"][:CLIENT_ROWS]
            ],
            right={2, 3, 4},
        ),
    ]
    if len(r["clients"]) > CLIENT_ROWS:
        more = len(r["clients"]) - CLIENT_ROWS
        out += ["", f"{more} more clients in the JSON report (`--format json`)."]
    out += [
        "",
        "## In everyday terms",
        "",
        _table(
            ["as much as", "value", "factor and source"],
            [
                [
                    _md(e["label"]),
                    f"{fmt_num(e['value'])} {e['unit']}",
                    f"{e['factor']:.4g} {e['factor_unit']} of the run's "
                    f"{'emissions' if e['of'] == 'total_g' else 'energy'}: {_md(e['source'])}",
                ]
                for e in r["equivalents"]
            ],
            right={1},
        ),
        "",
        "## For a paper or a model card",
        "",
        "> " + _md(r["paragraph"]),
        "",
        "## Data sources and licences",
        "",
        _table(
            ["provider", "client-rounds", "data", "terms", "attribution"],
            [
                [
                    _md(d["provider"]),
                    str(d["client_rounds"]),
                    _md(d["name"]),
                    _md(d["terms"]),
                    _md(d["attribution"] or ""),
                ]
                for d in r["data_sources"]
            ],
            right={1},
        ),
    ]
    if sig["notes"]:
        out += ["", "Notes on the signal:", ""] + [f"- {_md(n)}" for n in sig["notes"]]
    compact = {k: v for k, v in r.items() if k not in ("rounds", "clients")}
    out += [
        "",
        "## Machine-readable",
        "",
        "The account without its per-round and per-client rows "
        "(`lowcarb report --format json` has them):",
        "",
        "```json",
        json.dumps(compact, indent=2, allow_nan=False),
        "```",
        "",
    ]
    return "\n".join(out)
