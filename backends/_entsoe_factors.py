"""Emission factors per ENTSO-E production type, for intensities computed from the mix.

ENTSO-E publishes generation in MW per production type (``psrType``), not carbon. lowcarb
turns a mix into an average, generation-based intensity::

    I_t = sum_i P_i,t * EF_i / sum_i P_i,t        (gCO2eq/kWh; the MW cancel out)

with ``EF_i`` from the table below, in one of two boundaries:

* ``lifecycle``: construction, fuel supply chain and operation; the IPCC 2014 (AR5 WG3
  Annex III, Table A.III.2) medians where IPCC gives one.
* ``direct``: combustion at the plant only (the GHG Protocol Scope 2 boundary); IPCC 2014
  direct values for coal and gas, 0 for plants that burn nothing.

The grouping of ENTSO-E types into fuels follows Electricity Maps (``ENTSOE_PARAMETER_GROUPS``
in electricitymaps-contrib ``parsers/ENTSOE.py``) and so do the factors of the types IPCC
does not cover (``config/defaults.yaml``), so that the numbers stay comparable with EM's.
Sources, by key of :data:`SOURCES`:

* ``ipcc2014``: IPCC 2014, Climate Change 2014: Mitigation, WG3 Annex III, Table A.III.2
  (life-cycle medians; direct emissions).
* ``post2014``: UK Parliamentary Office of Science and Technology, POSTnote 383 (2014
  update), oil-fired generation life cycle.
* ``eia-beis``: a blend of EIA 2020 and BEIS 2021 combustion factors for oil (EM's default).
* ``beis2021``: BEIS 2021 conversion factors, which count biogenic CO2 as zero at the stack.
* ``em-unknown``: EM's assumption for unspecified plants: a thermal mix.

Storage (``B10`` Hydro Pumped Storage, ``B25`` Energy storage) is left out of the mix: what
it discharges was generated earlier by the same grid, so counting it at the mix's own
intensity (EM counts it at a mean grid intensity) leaves the average unchanged; its
pumping (``Actual Consumption``) is not generation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["FACTORS", "SOURCES", "STORAGE", "EmissionFactor", "factor_for"]

FactorType = Literal["lifecycle", "direct"]


@dataclass(frozen=True)
class EmissionFactor:
    """Emission factors of one ENTSO-E production type, in gCO2eq/kWh.

    Attributes:
        psr: The ENTSO-E ``psrType`` code (``B04``).
        name: entsoe-py's column name for it (``Fossil Gas``).
        fuel: The fuel group (Electricity Maps' mode).
        lifecycle: Life-cycle factor.
        direct: Combustion-only factor.
        lifecycle_source: Key of :data:`SOURCES` for ``lifecycle``.
        direct_source: Key of :data:`SOURCES` for ``direct``.
    """

    psr: str
    name: str
    fuel: str
    lifecycle: float
    direct: float
    lifecycle_source: str
    direct_source: str

    def value(self, kind: FactorType) -> float:
        """The factor of boundary ``kind``, in gCO2eq/kWh."""
        return self.lifecycle if kind == "lifecycle" else self.direct


SOURCES: dict[str, str] = {
    "ipcc2014": "IPCC 2014, AR5 WG3 Annex III, Table A.III.2",
    "post2014": "UK POST 2014 (POSTnote 383 update)",
    "eia-beis": "EIA 2020 / BEIS 2021 blend (Electricity Maps default)",
    "beis2021": "BEIS 2021 (biogenic CO2 counted as zero)",
    "em-unknown": "Electricity Maps default for unspecified plants (assumes thermal)",
}


def _f(
    psr: str, name: str, fuel: str, lc: float, direct: float, lcs: str, ds: str
) -> EmissionFactor:
    return EmissionFactor(psr, name, fuel, lc, direct, lcs, ds)


#: The factor of every ENTSO-E generating type, by entsoe-py's column name.
FACTORS: dict[str, EmissionFactor] = {
    f.name: f
    for f in (
        _f("B01", "Biomass", "biomass", 230, 0, "ipcc2014", "beis2021"),
        _f("B02", "Fossil Brown coal/Lignite", "coal", 820, 760, "ipcc2014", "ipcc2014"),
        # Coal-derived gas (blast-furnace, coke-oven gas) is grouped with gas by EM.
        _f("B03", "Fossil Coal-derived gas", "gas", 490, 370, "ipcc2014", "ipcc2014"),
        _f("B04", "Fossil Gas", "gas", 490, 370, "ipcc2014", "ipcc2014"),
        _f("B05", "Fossil Hard coal", "coal", 820, 760, "ipcc2014", "ipcc2014"),
        _f("B06", "Fossil Oil", "oil", 650, 406, "post2014", "eia-beis"),
        # Oil shale (Estonia) and peat (Finland, Ireland) burn like coal at least.
        _f("B07", "Fossil Oil shale", "coal", 820, 760, "ipcc2014", "ipcc2014"),
        _f("B08", "Fossil Peat", "coal", 820, 760, "ipcc2014", "ipcc2014"),
        _f("B09", "Geothermal", "geothermal", 38, 0, "ipcc2014", "ipcc2014"),
        _f("B11", "Hydro Run-of-river and pondage", "hydro", 24, 0, "ipcc2014", "ipcc2014"),
        _f("B12", "Hydro Water Reservoir", "hydro", 24, 0, "ipcc2014", "ipcc2014"),
        # Marine and "other renewable" mix technologies; EM treats them as unknown.
        _f("B13", "Marine", "unknown", 700, 575, "em-unknown", "em-unknown"),
        _f("B14", "Nuclear", "nuclear", 12, 0, "ipcc2014", "ipcc2014"),
        _f("B15", "Other renewable", "unknown", 700, 575, "em-unknown", "em-unknown"),
        # 45: between IPCC's rooftop (41) and utility-scale (48) PV medians, as EM.
        _f("B16", "Solar", "solar", 45, 0, "ipcc2014", "ipcc2014"),
        # Waste is grouped with biomass by EM (its fossil share is not published).
        _f("B17", "Waste", "biomass", 230, 0, "ipcc2014", "beis2021"),
        _f("B18", "Wind Offshore", "wind", 12, 0, "ipcc2014", "ipcc2014"),
        _f("B19", "Wind Onshore", "wind", 11, 0, "ipcc2014", "ipcc2014"),
        _f("B20", "Other", "unknown", 700, 575, "em-unknown", "em-unknown"),
    )
}

#: Storage types, left out of the mix (see the module docstring).
STORAGE: frozenset[str] = frozenset({"Hydro Pumped Storage", "Energy storage"})

#: Used for a column entsoe-py names but the table does not list (e.g. ``Mixed``).
UNKNOWN = FACTORS["Other"]


def factor_for(name: str) -> EmissionFactor | None:
    """The factor of entsoe-py column ``name``; None for storage; ``Other``'s if unknown."""
    if name in STORAGE:
        return None
    return FACTORS.get(name, UNKNOWN)
