"""Published factors a report quotes, each with its source, and the data licences it names.

Equivalents turn grams and kilowatt-hours into things a reader has a feel for. Each factor
is a plain published number, so a reader can check it: change it here with its source.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["EQUIVALENTS", "DataSource", "Equivalent", "data_source"]


@dataclass(frozen=True)
class Equivalent:
    """One "as much as" comparison.

    Attributes:
        key: Machine name (``car_km``).
        label: What the number counts, for a sentence ("km driven by an average car").
        unit: The unit of the result.
        per: What the factor divides: ``emissions_g`` (gCO2eq) or ``energy_kwh`` (kWh).
        factor: How much of ``per`` one ``unit`` takes (g per km, kWh per day).
        factor_unit: The factor's unit, as printed.
        source: Where the factor comes from, with how it was derived.
    """

    key: str
    label: str
    unit: str
    per: str
    factor: float
    factor_unit: str
    source: str

    def of(self, emissions_g: float, energy_kwh: float) -> float:
        """The equivalent of a run's emissions (gCO2eq) or energy (kWh)."""
        amount = emissions_g if self.per == "emissions_g" else energy_kwh
        return amount / self.factor


EQUIVALENTS: tuple[Equivalent, ...] = (
    Equivalent(
        key="car_km",
        label="km driven by an average US passenger car (tailpipe CO2)",
        unit="km",
        per="emissions_g",
        # 8,887 g CO2 per gallon of gasoline at 22.0 miles per gallon is 404 g per mile,
        # 251 g per km (1 mile = 1.609344 km).
        factor=8887 / 22.0 / 1.609344,
        factor_unit="gCO2/km",
        source=(
            "US EPA, Greenhouse Gas Emissions from a Typical Passenger Vehicle "
            "(EPA-420-F-18-008): 8,887 g CO2 per gallon of gasoline at 22.0 miles per "
            "gallon, 404 g per mile"
        ),
    ),
    Equivalent(
        key="household_days",
        label="days of an average US household's electricity",
        unit="days",
        per="energy_kwh",
        factor=10_715 / 365,
        factor_unit="kWh/day",
        source=(
            "US EIA, How much electricity does an American home use? (FAQ 97): "
            "10,715 kWh in 2020 for the average residential customer, over 365 days"
        ),
    ),
)


@dataclass(frozen=True)
class DataSource:
    """Who made the intensities a run used, and on what terms.

    Attributes:
        provider: The lowcarb provider's registry name.
        name: The data's origin.
        terms: Its licence or terms of use, as far as lowcarb knows them.
        attribution: The line to print where results are published, if one is required.
    """

    provider: str
    name: str
    terms: str
    attribution: str | None = None


_SOURCES = {
    "default": DataSource(
        "default",
        "synthetic series from lowcarb's statistics of Electricity Maps data "
        "(16 zones, 2021-2023); not measurements",
        "Open Database License (ODbL 1.0)",
        "Contains data from Electricity Maps (ODbL).",
    ),
    "ukcarbon": DataSource(
        "ukcarbon",
        "Carbon Intensity API (NESO, Great Britain)",
        "CC BY 4.0",
        "Carbon Intensity API, NESO",
    ),
    "electricitymaps": DataSource(
        "electricitymaps",
        "Electricity Maps API",
        "the terms of your Electricity Maps plan",
        "Electricity Maps",
    ),
    "watttime": DataSource("watttime", "WattTime API", "the terms of your WattTime account"),
    "entsoe": DataSource(
        "entsoe",
        "ENTSO-E Transparency Platform, converted with lifecycle or direct factors",
        "the ENTSO-E Transparency Platform's terms of use",
    ),
    "carbonaware": DataSource(
        "carbonaware",
        "Carbon Aware SDK (the data source it is configured with)",
        "the terms of the SDK's data source",
    ),
    "file": DataSource("file", "a file you supplied", "the licence of that file"),
}


def data_source(provider: str) -> DataSource:
    """What lowcarb knows about the data a provider serves (a registry name)."""
    known = _SOURCES.get(provider.split(" ")[0].lower())
    return known or DataSource(provider, f"the {provider!r} provider", "see the provider's terms")
