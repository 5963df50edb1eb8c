"""A run's carbon account as one JSON-friendly mapping: what every format and page shows.

The numbers come from :func:`lowcarb.summarize` and :meth:`lowcarb.RunSummary.sci`;
this module only arranges them, adds the context a reader needs (period, policy, signal,
data licences, equivalents) and writes the paragraph for a paper or a model card. The
Markdown, HTML and JSON reports and the dashboard all render this mapping, so the numbers
they show are the same.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from lowcarb import EmbodiedCarbon, InvalidInputError, RunSummary, __version__, summarize
from lowcarb.report._facts import EQUIVALENTS, data_source
from lowcarb.report._source import RunSnapshot

__all__ = ["COUNTERFACTUAL_METHOD", "FORMAT", "build_report", "fmt_g", "fmt_num", "fmt_pct"]

#: What answers for a zone without being a data source (see RunSummary.providers).
_NOT_SOURCES = ("cache", "stand-in")

#: The report's JSON format name and version.
FORMAT = {"name": "lowcarb-report", "version": 1}

COUNTERFACTUAL_METHOD = (
    "Each decision also records what K candidates drawn uniformly at random would emit in "
    "the same time slot: K times the mean emissions of the candidates available then, with "
    "the intensities the decision used, replaced by the actual intensities once every "
    "candidate zone's actual value is known. It is an expectation, not a random draw; it "
    "compares the choice of clients in each slot, not the choice of the slot itself."
)


def fmt_g(grams: float | None) -> str:
    """A mass of CO2eq for people: ``812 g``, ``3.46 kg``, ``1.20 t``."""
    if grams is None:
        return "n/a"
    size = abs(float(f"{grams:.3g}"))  # 999.7 g prints as 1.00 kg
    if size >= 1e6:
        return f"{_sig(grams / 1e6)} t"
    if size >= 1e3:
        return f"{_sig(grams / 1e3)} kg"
    return f"{_sig(grams)} g"


def _sig(value: float) -> str:
    """Three significant digits, trailing zeros kept (``1.00``, ``12.0``, ``100``)."""
    text = f"{value:#.3g}"
    return text[:-1] if text.endswith(".") else text


def fmt_num(value: float | None) -> str:
    """A number for people: three significant digits, whole numbers from 1,000 up."""
    if value is None:
        return "n/a"
    if abs(value) >= 1000 or float(value).is_integer():
        return f"{value:,.0f}"
    return _sig(value)


def fmt_pct(share: float | None, *, signed: bool = False) -> str:
    """A share for people: ``19.6 %``."""
    if share is None:
        return "n/a"
    value = round(share * 100, 1) + 0.0  # no "-0.0"
    return f"{value:+.1f} %" if signed else f"{value:.1f} %"


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.astimezone(UTC).isoformat()


def _signal(summary: RunSummary, snapshot: RunSnapshot) -> dict[str, Any]:
    notes: Counter[str] = Counter()
    synthetic = False
    for record in snapshot.records:
        synthetic |= bool(record.signal.get("synthetic"))
        notes.update(str(n) for n in record.signal.get("notes") or ())
    kinds = dict(summary.signal_kinds)
    total = sum(summary.providers.values())
    for name, why in (
        ("cache", "the last good signal kept when the provider failed"),
        ("stand-in", "the mean of the other zones, for zones no provider served"),
    ):
        if summary.providers.get(name):
            share = summary.providers[name] / total
            notes[f"{share * 100:.1f} % of client-rounds were costed with {why}"] += 1
    return {
        "kinds": kinds,
        "kind": max(kinds, key=kinds.__getitem__) if kinds else None,
        "providers": dict(summary.providers),
        "location_based": True,
        "synthetic": synthetic,
        "actual_share": summary.actual_share,
        "fallback_share": summary.fallback_share,
        "fallback_rounds": summary.fallbacks,
        "notes": [n for n, _ in notes.most_common(5)],
    }


def _zones(summary: RunSummary, snapshot: RunSnapshot) -> list[dict[str, Any]]:
    clients = Counter(snapshot.client_zones.values())
    rows: list[dict[str, Any]] = []
    for zone in sorted(set(summary.per_zone) | set(clients)):
        row = summary.per_zone.get(zone, {"rounds": 0, "energy_kwh": 0.0, "emissions_g": 0.0})
        rows.append(
            {
                "zone": zone,
                "clients": clients.get(zone, 0),
                "client_rounds": int(row["rounds"]),
                "energy_kwh": row["energy_kwh"],
                "emissions_g": row["emissions_g"],
                "mean_intensity_g_per_kwh": (
                    row["emissions_g"] / row["energy_kwh"] if row["energy_kwh"] > 0 else None
                ),
            }
        )
    rows.sort(key=lambda r: (-r["emissions_g"], r["zone"]))
    return rows


def _clients(summary: RunSummary, snapshot: RunSnapshot) -> list[dict[str, Any]]:
    ids = set(snapshot.population) | set(summary.per_client)
    empty = {"rounds": 0, "energy_kwh": 0.0, "emissions_g": 0.0}
    rows: list[dict[str, Any]] = [
        {
            "id": cid,
            "zone": snapshot.client_zones.get(cid),
            "rounds": int(summary.per_client.get(cid, empty)["rounds"]),
            "energy_kwh": summary.per_client.get(cid, empty)["energy_kwh"],
            "emissions_g": summary.per_client.get(cid, empty)["emissions_g"],
        }
        for cid in ids
    ]
    rows.sort(key=lambda r: (-r["rounds"], r["id"]))
    return rows


def _embodied(embodied: EmbodiedCarbon | None, summary: RunSummary) -> dict[str, Any]:
    if embodied is None:
        return {"included": False, "device_hours": summary.device_hours}
    return {
        "included": True,
        "device_kg": embodied.device_kg,
        "lifetime_years": embodied.lifetime.days / 365,
        "resource_share": embodied.resource_share,
        "g_per_device_hour": embodied.g_per_device_hour,
        "device_hours": summary.device_hours,
        "source": embodied.source,
    }


def build_report(
    snapshot: RunSnapshot, *, embodied: EmbodiedCarbon | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """The run's account, JSON-friendly (units: g CO2eq, kWh, gCO2eq/kWh, hours).

    Args:
        snapshot: The run, as read from its ledger.
        embodied: Embodied carbon of the client devices; None leaves M out (and says so).
        now: When the report is made (UTC); defaults to now.

    Raises:
        InvalidInputError: If the run has no rounds yet.
    """
    records = snapshot.records
    if not records:
        raise InvalidInputError(f"task {snapshot.task!r} has no rounds recorded yet")
    summary = summarize(records, run_id=snapshot.task, population=snapshot.population)
    sci = summary.sci(embodied)
    clients = _clients(summary, snapshot)
    start, end = records[0].start, records[-1].end
    energy = sci["energy_kwh"]
    random_g = summary.random_g
    report: dict[str, Any] = {
        "format": dict(FORMAT),
        "generated_at": _iso(now or datetime.now(UTC)),
        "lowcarb": __version__,
        "units": {"emissions": "gCO2eq", "energy": "kWh", "intensity": "gCO2eq/kWh"},
        "source": {"task": snapshot.task, "file": snapshot.origin},
        "run": {
            "task": snapshot.task,
            "policy": snapshot.config.get("policy") or records[-1].policy,
            "rounds": summary.rounds,
            "rounds_planned": snapshot.config.get("rounds"),
            "completed_rounds": sum(r.completed_at is not None for r in records),
            "start": _iso(start),
            "end": _iso(end),
            "hours": (end - start).total_seconds() / 3600,
            "clients": len(clients),
            "zones": len({c["zone"] for c in clients if c["zone"]}),
            "mean_clients_per_round": sci["client_rounds"] / summary.rounds,
            "pauses": len(snapshot.pauses),
        },
        "sci": {
            **sci,
            "energy_selected_kwh": summary.energy_kwh,
            "energy_excluded_kwh": summary.excluded_energy_kwh,
            "energy_measured_kwh": summary.measured_energy_kwh,
            "measured_share": summary.measured_energy_kwh / summary.energy_kwh
            if summary.energy_kwh > 0
            else 0.0,
            "embodied": _embodied(embodied, summary),
        },
        "signal": _signal(summary, snapshot),
        "counterfactual": {
            "random_g": summary.random_g,
            "selection_g": summary.emissions_g,
            "saving_g": None if random_g is None else random_g - summary.emissions_g,
            "saving_share": summary.saving_vs_random,
            "rounds_with_actual": sum(r.random_actual_g is not None for r in records),
            "method": COUNTERFACTUAL_METHOD,
        },
        "forecast": {
            "expected_g": summary.emissions_expected_g,
            "actual_g": summary.emissions_g,
            "actual_share": summary.actual_share,
            "difference_share": summary.emissions_g / summary.emissions_expected_g - 1.0
            if summary.emissions_expected_g > 0
            else None,
        },
        "participation": {
            **summary.participation,
            "clients": len(clients),
            "fair_share": sci["client_rounds"] / len(clients) if clients else None,
        },
        "zones": _zones(summary, snapshot),
        "clients": clients,
        "rounds": summary.per_round,
        "equivalents": [
            {
                "key": e.key,
                "label": e.label,
                "value": e.of(sci["total_g"], energy),
                "unit": e.unit,
                "of": "total_g" if e.per == "emissions_g" else "energy_kwh",
                "factor": e.factor,
                "factor_unit": e.factor_unit,
                "source": e.source,
            }
            for e in EQUIVALENTS
        ],
        "data_sources": [
            {"client_rounds": n, **vars(data_source(name))}
            for name, n in summary.providers.items()
            if name not in _NOT_SOURCES
        ],
    }
    report["paragraph"] = paragraph(report)
    return report


def _kg(grams: float) -> str:
    return f"{fmt_num(grams / 1000)} kg CO2eq"


def paragraph(report: Mapping[str, Any]) -> str:
    """A paragraph stating the run's footprint, for a paper's method section or a model card."""
    run, sci, signal = report["run"], report["sci"], report["signal"]
    cf, part = report["counterfactual"], report["participation"]
    day = "%Y-%m-%d %H:%M"
    start = datetime.fromisoformat(run["start"]).strftime(day)
    end = datetime.fromisoformat(run["end"]).strftime(day)
    kind = signal["kind"] or "unrecorded kind of"
    providers = (
        ", ".join(sorted(p for p in signal["providers"] if p not in _NOT_SOURCES))
        or "no recorded provider"
    )
    text = (
        f"The model was trained for {run['rounds']} federated rounds between {start} and "
        f"{end} UTC; each round lowcarb's {run['policy']!r} policy selected on average "
        f"{fmt_num(run['mean_clients_per_round'])} of {run['clients']} clients in {run['zones']} "
        f"grid zones. The clients' training used {fmt_num(sci['energy_kwh'])} kWh "
        f"({sci['measured_share'] * 100:.0f} % of the selected clients' energy measured, "
        f"the rest modelled) at a mean grid carbon intensity of "
        f"{sci['intensity_g_per_kwh'] or 0:.0f} gCO2eq/kWh (location-based {kind} intensities "
        f"from {providers}; {signal['actual_share'] * 100:.0f} % of client-rounds with the "
        f"actual intensity of their hour, {signal['fallback_share'] * 100:.0f} % from a "
        f"fallback source), which emitted {_kg(sci['operational_g'])}"
    )
    embodied = sci["embodied"]
    if embodied["included"]:
        text += (
            f"; with the client devices' embodied emissions (M = {_kg(sci['embodied_g'])}: "
            f"{fmt_num(embodied['device_kg'])} kg per device over "
            f"{fmt_num(embodied['lifetime_years'])} years, amortised over "
            f"{fmt_num(embodied['device_hours'])} device-hours) the "
            f"footprint is {_kg(sci['total_g'])}."
        )
    else:
        text += "; the devices' embodied emissions are not included."
    if cf["random_g"] is not None and cf["saving_share"] is not None:
        more = "less" if cf["saving_share"] >= 0 else "more"
        text += (
            f" Selecting as many clients at random in the same time slots would have "
            f"emitted an expected {_kg(cf['random_g'])}; the carbon-aware selection emitted "
            f"{abs(cf['saving_share']) * 100:.1f} % {more}."
        )
    text += (
        f" Participation was {'even' if part['jain'] >= 0.95 else 'uneven'}: Jain's index "
        f"{part['jain']:.3f} over rounds per client (from {part['min']:.0f} to "
        f"{part['max']:.0f}; {part['never']} clients never selected)."
    )
    units = f" In the SCI's terms that is {fmt_num(sci['per_round_g'])} gCO2eq per round"
    if sci["per_accuracy_point_g"] is not None:
        units += f" and {fmt_num(sci['per_accuracy_point_g'])} gCO2eq per point of accuracy gained"
    text += units + " (lowcarb " + str(report["lowcarb"]) + ")."
    return text
