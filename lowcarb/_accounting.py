"""Energy and carbon accounting of a training run, in the spirit of the SCI.

The Green Software Foundation's Software Carbon Intensity is ``SCI = (E x I + M) per R``.
Here E is the energy of each client-round (modelled or measured), I the grid intensity
where and when it ran (actual once known, else the one the decision used), M the client
devices' embodied emissions amortised over the time they were reserved (only when an
:class:`EmbodiedCarbon` is given: lowcarb does not know the clients' hardware), and R
the whole run, one round, one client-round and one accuracy point.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from lowcarb._ledger import RoundRecord
from lowcarb.exceptions import InvalidInputError

__all__ = ["EmbodiedCarbon", "RunSummary", "jain_index", "summarize"]

#: Where :class:`EmbodiedCarbon`'s defaults come from.
EMBODIED_DEFAULT_SOURCE = (
    "Green Software Foundation, Software Carbon Intensity specification 1.1.0 "
    "(ISO/IEC 21031:2024), embodied-emissions example: a device of 1000 kgCO2eq "
    "embodied carbon with a four-year expected lifespan (about 28 g per hour reserved)"
)


@dataclass(frozen=True, kw_only=True)
class EmbodiedCarbon:
    """Embodied emissions of the client devices: the SCI's M, amortised over their life.

    A client-round reserves one device for the round's length, so its share is
    ``device_kg x 1000 x (round length / lifetime) x resource_share`` gCO2eq (the SCI's
    ``M = TE x (TiR / EL) x (RR / ToR)``). The defaults are the SCI specification's own
    example, an order of magnitude for a workstation; give your devices' life-cycle
    assessment when you know it.

    Attributes:
        device_kg: Embodied emissions of one device, manufacture to disposal (kgCO2eq).
        lifetime: Its expected lifespan.
        resource_share: Share of the device a round reserves (0 to 1; 1: all of it).
        source: Where the numbers come from (shown in reports).
    """

    device_kg: float = 1000.0
    lifetime: timedelta = timedelta(days=4 * 365)
    resource_share: float = 1.0
    source: str = EMBODIED_DEFAULT_SOURCE

    def __post_init__(self) -> None:
        if not isinstance(self.device_kg, int | float) or not math.isfinite(self.device_kg):
            raise InvalidInputError(f"device_kg must be a number, got {self.device_kg!r}")
        if self.device_kg < 0:
            raise InvalidInputError(f"device_kg must be >= 0 kgCO2eq, got {self.device_kg}")
        if not isinstance(self.lifetime, timedelta) or self.lifetime <= timedelta(0):
            raise InvalidInputError(f"lifetime must be a positive timedelta, got {self.lifetime!r}")
        share = self.resource_share
        if not isinstance(share, int | float) or not 0 < share <= 1:
            raise InvalidInputError(f"resource_share must be in (0, 1], got {share!r}")

    @property
    def g_per_device_hour(self) -> float:
        """gCO2eq one device-hour carries."""
        return self.device_kg * 1000.0 * self.resource_share / (self.lifetime / timedelta(hours=1))

    def grams(self, device_hours: float) -> float:
        """gCO2eq of ``device_hours`` hours of reserved devices."""
        return device_hours * self.g_per_device_hour


def jain_index(counts: Sequence[float] | np.ndarray) -> float:
    """Jain's fairness index of participation counts: 1 = perfectly even, 1/n = one client.

    Returns 1.0 for an empty or all-zero input (nothing is unfair yet).
    """
    x = np.asarray(counts, dtype=float)
    total = float((x * x).sum())
    return float(x.sum() ** 2 / (x.size * total)) if x.size and total > 0 else 1.0


@dataclass(frozen=True)
class RunSummary:
    """The account of one run.

    Attributes:
        run_id: The run.
        rounds: Rounds recorded.
        energy_kwh: Total energy (kWh).
        emissions_g: Total gCO2eq, with actual intensities where known.
        emissions_expected_g: Total gCO2eq with the intensities the decisions used.
        actual_share: Fraction of client-rounds whose actual intensity is known.
        random_g: The random-selection counterfactual (gCO2eq), actual where known.
        saving_vs_random: ``1 - emissions_g / random_g`` (None without a counterfactual).
        mean_intensity: Energy-weighted mean gCO2eq/kWh of the client-rounds.
        sci_g_per_round: gCO2eq per round (R = one round).
        accuracy_gain_per_kg: Accuracy points gained per kg CO2eq, when rounds report an
            ``accuracy`` metric (first to last reported value).
        participation: min, max, Jain's index and clients never selected.
        per_round: One dict per round.
        per_client: Rounds, kWh and gCO2eq per client.
        per_zone: Client-rounds, kWh and gCO2eq per zone.
        fallbacks: Rounds whose signal came from a fallback.
        excluded_energy_kwh: Energy of candidates left out that trained anyway (kWh):
            clients a framework cannot hold back (DISCO v2). Not in ``energy_kwh``.
        excluded_emissions_g: Their gCO2eq; the run's footprint is ``emissions_g`` plus
            this.
        measured_energy_kwh: The part of ``energy_kwh`` that was measured, not modelled.
        device_hours: Hours client devices were reserved: each selected and excluded
            client-round counts its round's length (the SCI's time reserved).
        fallback_share: Fraction of the selected client-rounds whose zone's intensity
            came from anything but the primary provider (fallback, cache, stand-in).
        signal_kinds: Client-rounds by what their intensity is (``average lifecycle``,
            ``marginal direct``, ...; ``not recorded`` for rounds whose ledger kept no
            kind).
        providers: Selected client-rounds by what gave their zone's intensity: a
            provider's registry name, ``cache`` (a last good signal kept when the
            provider failed) or ``stand-in`` (the mean of the other zones).
    """

    run_id: str
    rounds: int
    energy_kwh: float
    emissions_g: float
    emissions_expected_g: float
    actual_share: float
    random_g: float | None
    saving_vs_random: float | None
    mean_intensity: float | None
    sci_g_per_round: float | None
    accuracy_gain_per_kg: float | None
    participation: dict[str, float]
    per_round: list[dict[str, Any]] = field(repr=False)
    per_client: dict[str, dict[str, float]] = field(repr=False)
    per_zone: dict[str, dict[str, float]] = field(repr=False)
    fallbacks: int = 0
    excluded_energy_kwh: float = 0.0
    excluded_emissions_g: float = 0.0
    measured_energy_kwh: float = 0.0
    device_hours: float = 0.0
    fallback_share: float = 0.0
    signal_kinds: dict[str, int] = field(default_factory=dict)
    providers: dict[str, int] = field(default_factory=dict)
    _records: tuple[RoundRecord, ...] = field(default=(), repr=False, compare=False)

    def sci(self, embodied: EmbodiedCarbon | None = None) -> dict[str, Any]:
        """The run in the SCI's terms: ``SCI = (E x I + M) per R``.

        E and O cover every client-round that trained, the selected ones and those a
        framework could not hold back (``excluded_*``). M is None unless ``embodied`` is
        given.

        Returns:
            ``energy_kwh`` (E), ``intensity_g_per_kwh`` (I = O / E), ``operational_g``
            (O), ``embodied_g`` (M or None), ``total_g`` (O + M), and the SCI per
            functional unit R in gCO2eq: ``per_run_g``, ``per_round_g``,
            ``per_client_round_g`` and ``per_accuracy_point_g`` (None without an
            accuracy gain), with ``accuracy_points`` (first to last reported accuracy,
            in points) and ``client_rounds``.
        """
        energy = self.energy_kwh + self.excluded_energy_kwh
        operational = self.emissions_g + self.excluded_emissions_g
        embodied_g = None if embodied is None else embodied.grams(self.device_hours)
        total = operational + (embodied_g or 0.0)
        accuracies = [
            float(r["metrics"]["accuracy"]) for r in self.per_round if "accuracy" in r["metrics"]
        ]
        points = (accuracies[-1] - accuracies[0]) * 100.0 if len(accuracies) >= 2 else None
        client_rounds = sum(int(r["clients"]) for r in self.per_round)
        return {
            "energy_kwh": energy,
            "intensity_g_per_kwh": operational / energy if energy > 0 else None,
            "operational_g": operational,
            "embodied_g": embodied_g,
            "total_g": total,
            "per_run_g": total,
            "per_round_g": total / self.rounds if self.rounds else None,
            "per_client_round_g": total / client_rounds if client_rounds else None,
            "per_accuracy_point_g": total / points if points is not None and points > 0 else None,
            "accuracy_points": points,
            "client_rounds": client_rounds,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (without the client-round rows; see :meth:`to_csv`)."""
        out = {k: v for k, v in self.__dict__.items() if not k.startswith("_")}
        out["units"] = {"energy": "kWh", "emissions": "gCO2eq", "intensity": "gCO2eq/kWh"}
        return out

    def to_json(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` as JSON; returns the path."""
        target = Path(path)
        target.write_text(json.dumps(self.to_dict(), indent=2, default=str) + "\n")
        return target

    def to_csv(self, path: str | Path) -> Path:
        """Write one row per client-round (the raw account) as CSV; returns the path."""
        target = Path(path)
        with target.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(
                [
                    "run_id",
                    "round",
                    "start",
                    "end",
                    "client_id",
                    "zone",
                    "energy_kwh",
                    "energy_source",
                    "intensity_used_g_per_kwh",
                    "intensity_actual_g_per_kwh",
                    "emissions_g",
                    "selected",
                ]
            )
            for record in self._records:
                rows = [(c, 1) for c in record.clients] + [(c, 0) for c in record.excluded]
                for c, selected in rows:
                    writer.writerow(
                        [
                            self.run_id,
                            record.round,
                            record.start.isoformat(),
                            record.end.isoformat(),
                            c.client_id,
                            c.zone,
                            f"{c.energy_kwh:.6g}",
                            c.energy_source,
                            f"{c.intensity_used:.6g}",
                            "" if c.intensity_actual is None else f"{c.intensity_actual:.6g}",
                            f"{c.emissions_g:.6g}",
                            selected,
                        ]
                    )
        return target


def _add(table: dict[str, dict[str, float]], key: str, kwh: float, grams: float) -> None:
    row = table.setdefault(key, {"rounds": 0, "energy_kwh": 0.0, "emissions_g": 0.0})
    row["rounds"] += 1
    row["energy_kwh"] += kwh
    row["emissions_g"] += grams


def _fallback_zones(signal: Mapping[str, Any]) -> set[str]:
    """Zones of a round whose intensity did not come from the primary provider.

    The signal's ``sources`` name, per zone, the member that answered (``"<name>
    (fallback) ..."`` for one after the primary), ``cache (...)`` for a last good
    signal, or ``mean of other zones`` for a stand-in.
    """
    sources = signal.get("sources") or {}
    return {
        zone
        for zone, how in sources.items()
        if "(fallback)" in str(how) or str(how).startswith(("cache", "mean of other zones"))
    }


def _answered_by(signal: Mapping[str, Any], zone: str) -> str:
    """Who gave a zone's intensity in a round (see :func:`_fallback_zones`)."""
    how = str((signal.get("sources") or {}).get(zone) or signal.get("provider") or "unknown")
    if how.startswith("mean of other zones"):
        return "stand-in"
    return how.split(" ")[0]


def _kind(signal: Mapping[str, Any]) -> str:
    kind, basis = signal.get("kind"), signal.get("basis")
    return "not recorded" if kind is None else f"{kind} {basis}" if basis else str(kind)


def summarize(
    records: Sequence[RoundRecord], *, run_id: str = "", population: Mapping[str, int] | None = None
) -> RunSummary:
    """Account a run from its round records.

    Args:
        records: The ledger's rounds, in order.
        run_id: The run's id, for the report.
        population: Participation per known client (clients never selected count as 0).
    """
    per_round: list[dict[str, Any]] = []
    per_client: dict[str, dict[str, float]] = {}
    per_zone: dict[str, dict[str, float]] = {}
    energy = grams = expected = random_g = excluded_kwh = excluded_g = 0.0
    known = total = fallbacks = fallback_rounds = 0
    measured = hours = 0.0
    kinds: dict[str, int] = {}
    providers: dict[str, int] = {}
    random_complete = bool(records)
    accuracies: list[float] = []
    for record in records:
        round_g = 0.0
        length = (record.end - record.start) / timedelta(hours=1)
        hours += length * (len(record.clients) + len(record.excluded))
        stand_ins = _fallback_zones(record.signal)
        kind = _kind(record.signal)
        kinds[kind] = kinds.get(kind, 0) + len(record.clients)
        for c in record.clients:
            who = _answered_by(record.signal, c.zone)
            providers[who] = providers.get(who, 0) + 1
            fallback_rounds += c.zone in stand_ins
            if c.energy_source == "measured":
                measured += c.energy_kwh
            _add(per_client, c.client_id, c.energy_kwh, c.emissions_g)
            _add(per_zone, c.zone, c.energy_kwh, c.emissions_g)
            round_g += c.emissions_g
            expected += c.emissions_expected_g
            known += c.intensity_actual is not None
            total += 1
        energy += record.energy_kwh
        grams += round_g
        round_excluded_g = sum(c.emissions_g for c in record.excluded)
        excluded_kwh += sum(c.energy_kwh for c in record.excluded)
        excluded_g += round_excluded_g
        counterfactual = (
            record.random_actual_g
            if record.random_actual_g is not None
            else record.random_expected_g
        )
        if counterfactual is None:
            random_complete = False
        else:
            random_g += counterfactual
        fallbacks += bool(record.signal.get("fallback"))
        if "accuracy" in record.metrics:
            accuracies.append(float(record.metrics["accuracy"]))
        per_round.append(
            {
                "round": record.round,
                "start": record.start.isoformat(),
                "clients": len(record.clients),
                "energy_kwh": record.energy_kwh,
                "emissions_g": round_g,
                "random_g": counterfactual,
                "metrics": dict(record.metrics),
                "fallback": record.signal.get("fallback"),
                "excluded_g": round_excluded_g,
            }
        )
    counts = dict.fromkeys(population or {}, 0)
    counts.update({cid: int(row["rounds"]) for cid, row in per_client.items()})
    values = np.array(list(counts.values()), dtype=float)
    kg = grams / 1000.0
    gain = None
    if len(accuracies) >= 2 and kg > 0:
        gain = (accuracies[-1] - accuracies[0]) * 100.0 / kg
    return RunSummary(
        run_id=run_id,
        rounds=len(records),
        energy_kwh=energy,
        emissions_g=grams,
        emissions_expected_g=expected,
        actual_share=known / total if total else 0.0,
        random_g=random_g if random_complete else None,
        saving_vs_random=1.0 - grams / random_g if random_complete and random_g > 0 else None,
        mean_intensity=grams / energy if energy > 0 else None,
        sci_g_per_round=grams / len(records) if records else None,
        accuracy_gain_per_kg=gain,
        participation={
            "min": float(values.min()) if values.size else 0.0,
            "max": float(values.max()) if values.size else 0.0,
            "jain": jain_index(values),
            "never": int((values == 0).sum()),
        },
        per_round=per_round,
        per_client=per_client,
        per_zone=per_zone,
        fallbacks=fallbacks,
        excluded_energy_kwh=excluded_kwh,
        excluded_emissions_g=excluded_g,
        measured_energy_kwh=measured,
        device_hours=hours,
        fallback_share=fallback_rounds / total if total else 0.0,
        signal_kinds=kinds,
        providers=providers,
        _records=tuple(records),
    )
