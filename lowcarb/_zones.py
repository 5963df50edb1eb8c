"""Zone ids, the zone catalog, and resolving locations (lat/lon, cloud regions) to zones.

Canonical zone ids are Electricity Maps zone keys (``DE``, ``GB``, ``US-CAL-CISO``).
A location can also be written as ``LAT,LON`` or ``PROVIDER:REGION`` for a cloud region
(``aws:eu-central-1``, ``gcp:europe-west3``, ``azure:germanywestcentral``). Resolution
is never silent: :class:`ZoneResolution` says how a zone was found.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from lowcarb.exceptions import InvalidInputError, UnknownZoneError

__all__ = [
    "CLOUD_REGIONS",
    "ZONE_CATALOG",
    "ZoneInfo",
    "ZoneResolution",
    "parse_location",
    "resolve_zone",
    "suggest_zones",
]


@dataclass(frozen=True)
class ZoneInfo:
    """One grid zone.

    Attributes:
        zone: Electricity Maps zone key.
        name: Human-readable name.
        country: Country name.
        continent: One of Africa, Asia, Europe, North America, Oceania, South America.
        lat: Latitude of a representative point (degrees), for nearest-zone lookup.
        lon: Longitude of a representative point (degrees).
        timezone: IANA time zone of the zone's main load centre.
    """

    zone: str
    name: str
    country: str
    continent: str
    lat: float
    lon: float
    timezone: str


def _z(
    zone: str, name: str, country: str, continent: str, lat: float, lon: float, tz: str
) -> ZoneInfo:
    return ZoneInfo(zone, name, country, continent, lat, lon, tz)


_EU, _NA, _AS, _OC, _SA, _AF = (
    "Europe",
    "North America",
    "Asia",
    "Oceania",
    "South America",
    "Africa",
)

#: Zones lowcarb knows by name. Representative points are approximate load centres,
#: good for "which zone is this site in" when a provider cannot answer, not for borders.
ZONE_CATALOG: dict[str, ZoneInfo] = {
    z.zone: z
    for z in (
        _z("AT", "Austria", "Austria", _EU, 48.2, 16.37, "Europe/Vienna"),
        _z("BE", "Belgium", "Belgium", _EU, 50.85, 4.35, "Europe/Brussels"),
        _z("BG", "Bulgaria", "Bulgaria", _EU, 42.7, 23.32, "Europe/Sofia"),
        _z("CH", "Switzerland", "Switzerland", _EU, 47.37, 8.54, "Europe/Zurich"),
        _z("CZ", "Czechia", "Czechia", _EU, 50.08, 14.44, "Europe/Prague"),
        _z("DE", "Germany", "Germany", _EU, 51.0, 10.4, "Europe/Berlin"),
        _z("DK-DK1", "West Denmark", "Denmark", _EU, 56.2, 9.5, "Europe/Copenhagen"),
        _z("DK-DK2", "East Denmark", "Denmark", _EU, 55.68, 12.57, "Europe/Copenhagen"),
        _z("EE", "Estonia", "Estonia", _EU, 59.44, 24.75, "Europe/Tallinn"),
        _z("ES", "Spain", "Spain", _EU, 40.42, -3.7, "Europe/Madrid"),
        _z("FI", "Finland", "Finland", _EU, 60.17, 24.94, "Europe/Helsinki"),
        _z("FR", "France", "France", _EU, 46.6, 2.4, "Europe/Paris"),
        _z("GB", "Great Britain", "Great Britain", _EU, 52.5, -1.5, "Europe/London"),
        _z("GR", "Greece", "Greece", _EU, 37.98, 23.73, "Europe/Athens"),
        _z("HR", "Croatia", "Croatia", _EU, 45.81, 15.98, "Europe/Zagreb"),
        _z("HU", "Hungary", "Hungary", _EU, 47.5, 19.04, "Europe/Budapest"),
        _z("IE", "Ireland", "Ireland", _EU, 53.35, -6.26, "Europe/Dublin"),
        _z("IT-NO", "North Italy", "Italy", _EU, 45.46, 9.19, "Europe/Rome"),
        _z("IT-CNO", "Central North Italy", "Italy", _EU, 43.77, 11.25, "Europe/Rome"),
        _z("IT-CSO", "Central South Italy", "Italy", _EU, 41.9, 12.5, "Europe/Rome"),
        _z("IT-SO", "South Italy", "Italy", _EU, 40.85, 14.27, "Europe/Rome"),
        _z("IT-SIC", "Sicily", "Italy", _EU, 37.6, 14.0, "Europe/Rome"),
        _z("IT-SAR", "Sardinia", "Italy", _EU, 40.0, 9.0, "Europe/Rome"),
        _z("LT", "Lithuania", "Lithuania", _EU, 54.69, 25.28, "Europe/Vilnius"),
        _z("LV", "Latvia", "Latvia", _EU, 56.95, 24.11, "Europe/Riga"),
        _z("NL", "Netherlands", "Netherlands", _EU, 52.37, 4.9, "Europe/Amsterdam"),
        _z("NO-NO1", "Southeast Norway", "Norway", _EU, 59.91, 10.75, "Europe/Oslo"),
        _z("NO-NO2", "Southwest Norway", "Norway", _EU, 58.97, 5.73, "Europe/Oslo"),
        _z("NO-NO3", "Middle Norway", "Norway", _EU, 63.43, 10.4, "Europe/Oslo"),
        _z("NO-NO4", "North Norway", "Norway", _EU, 69.65, 18.96, "Europe/Oslo"),
        _z("NO-NO5", "West Norway", "Norway", _EU, 60.39, 5.32, "Europe/Oslo"),
        _z("PL", "Poland", "Poland", _EU, 52.23, 21.01, "Europe/Warsaw"),
        _z("PT", "Portugal", "Portugal", _EU, 38.72, -9.14, "Europe/Lisbon"),
        _z("RO", "Romania", "Romania", _EU, 44.43, 26.1, "Europe/Bucharest"),
        _z("RS", "Serbia", "Serbia", _EU, 44.79, 20.45, "Europe/Belgrade"),
        _z("SE-SE1", "North Sweden", "Sweden", _EU, 65.58, 22.15, "Europe/Stockholm"),
        _z("SE-SE2", "North Central Sweden", "Sweden", _EU, 62.39, 17.31, "Europe/Stockholm"),
        _z("SE-SE3", "South Central Sweden", "Sweden", _EU, 59.33, 18.07, "Europe/Stockholm"),
        _z("SE-SE4", "South Sweden", "Sweden", _EU, 55.6, 13.0, "Europe/Stockholm"),
        _z("SI", "Slovenia", "Slovenia", _EU, 46.06, 14.51, "Europe/Ljubljana"),
        _z("SK", "Slovakia", "Slovakia", _EU, 48.15, 17.11, "Europe/Bratislava"),
        _z("CA-AB", "Alberta", "Canada", _NA, 51.05, -114.07, "America/Edmonton"),
        _z("CA-BC", "British Columbia", "Canada", _NA, 49.28, -123.12, "America/Vancouver"),
        _z("CA-ON", "Ontario", "Canada", _NA, 43.65, -79.38, "America/Toronto"),
        _z("CA-QC", "Québec", "Canada", _NA, 45.5, -73.57, "America/Toronto"),
        _z("MX", "Mexico", "Mexico", _NA, 19.43, -99.13, "America/Mexico_City"),
        _z("US-CAL-CISO", "CAISO", "USA", _NA, 37.0, -120.0, "America/Los_Angeles"),
        _z("US-CAL-LDWP", "Los Angeles DWP", "USA", _NA, 34.05, -118.24, "America/Los_Angeles"),
        _z("US-CAR-DUK", "Duke Energy Carolinas", "USA", _NA, 35.23, -80.84, "America/New_York"),
        _z("US-CAR-SCEG", "Dominion SC", "USA", _NA, 34.0, -81.03, "America/New_York"),
        _z("US-CENT-SWPP", "Southwest Power Pool", "USA", _NA, 37.69, -97.34, "America/Chicago"),
        _z("US-FLA-FPL", "Florida Power & Light", "USA", _NA, 26.12, -80.14, "America/New_York"),
        _z("US-MIDA-PJM", "PJM Interconnection", "USA", _NA, 39.95, -77.0, "America/New_York"),
        _z("US-MIDW-MISO", "MISO", "USA", _NA, 41.6, -93.6, "America/Chicago"),
        _z("US-NE-ISNE", "ISO New England", "USA", _NA, 42.36, -71.06, "America/New_York"),
        _z("US-NW-BPAT", "Bonneville Power", "USA", _NA, 45.6, -121.2, "America/Los_Angeles"),
        _z("US-NY-NYIS", "New York ISO", "USA", _NA, 42.5, -75.5, "America/New_York"),
        _z("US-SE-SOCO", "Southern Company", "USA", _NA, 33.75, -84.39, "America/New_York"),
        _z("US-SW-AZPS", "Arizona Public Service", "USA", _NA, 33.45, -112.07, "America/Phoenix"),
        _z("US-TEX-ERCO", "ERCOT", "USA", _NA, 31.0, -97.5, "America/Chicago"),
        _z("AU-NSW", "New South Wales", "Australia", _OC, -33.87, 151.21, "Australia/Sydney"),
        _z("AU-QLD", "Queensland", "Australia", _OC, -27.47, 153.03, "Australia/Brisbane"),
        _z("AU-SA", "South Australia", "Australia", _OC, -34.93, 138.6, "Australia/Adelaide"),
        _z("AU-TAS", "Tasmania", "Australia", _OC, -42.88, 147.33, "Australia/Hobart"),
        _z("AU-VIC", "Victoria", "Australia", _OC, -37.81, 144.96, "Australia/Melbourne"),
        _z("AU-WA", "Western Australia", "Australia", _OC, -31.95, 115.86, "Australia/Perth"),
        _z("NZ", "New Zealand", "New Zealand", _OC, -41.29, 174.78, "Pacific/Auckland"),
        _z("BR-CS", "Central Brazil", "Brazil", _SA, -23.55, -46.63, "America/Sao_Paulo"),
        _z("BR-N", "North Brazil", "Brazil", _SA, -1.46, -48.5, "America/Belem"),
        _z("BR-NE", "North-East Brazil", "Brazil", _SA, -8.05, -34.9, "America/Recife"),
        _z("BR-S", "South Brazil", "Brazil", _SA, -30.03, -51.23, "America/Sao_Paulo"),
        _z(
            "CL-SEN", "Sistema Eléctrico Nacional", "Chile", _SA, -33.45, -70.67, "America/Santiago"
        ),
        _z("UY", "Uruguay", "Uruguay", _SA, -34.9, -56.16, "America/Montevideo"),
        _z("IN-EA", "Eastern India", "India", _AS, 22.57, 88.36, "Asia/Kolkata"),
        _z("IN-NO", "Northern India", "India", _AS, 28.61, 77.21, "Asia/Kolkata"),
        _z("IN-SO", "Southern India", "India", _AS, 13.08, 80.27, "Asia/Kolkata"),
        _z("IN-WE", "Western India", "India", _AS, 19.08, 72.88, "Asia/Kolkata"),
        _z("JP-KN", "Kansai", "Japan", _AS, 34.69, 135.5, "Asia/Tokyo"),
        _z("JP-TK", "Tōkyō", "Japan", _AS, 35.68, 139.69, "Asia/Tokyo"),
        _z("KR", "South Korea", "South Korea", _AS, 37.57, 126.98, "Asia/Seoul"),
        _z("SG", "Singapore", "Singapore", _AS, 1.35, 103.82, "Asia/Singapore"),
        _z("TW", "Taiwan", "Taiwan", _AS, 25.03, 121.57, "Asia/Taipei"),
        _z("HK", "Hong Kong", "Hong Kong", _AS, 22.32, 114.17, "Asia/Hong_Kong"),
        _z("IL", "Israel", "Israel", _AS, 32.08, 34.78, "Asia/Jerusalem"),
        _z("AE", "United Arab Emirates", "United Arab Emirates", _AS, 25.2, 55.27, "Asia/Dubai"),
        _z("BH", "Bahrain", "Bahrain", _AS, 26.23, 50.59, "Asia/Bahrain"),
        _z("ZA", "South Africa", "South Africa", _AF, -26.2, 28.05, "Africa/Johannesburg"),
        _z("KE", "Kenya", "Kenya", _AF, -1.29, 36.82, "Africa/Nairobi"),
    )
}

#: Cloud regions mapped to the grid zone of their metro area ("provider:region").
CLOUD_REGIONS: dict[str, str] = {
    # Amazon Web Services
    "aws:us-east-1": "US-MIDA-PJM",
    "aws:us-east-2": "US-MIDA-PJM",
    "aws:us-west-1": "US-CAL-CISO",
    "aws:us-west-2": "US-NW-BPAT",
    "aws:ca-central-1": "CA-QC",
    "aws:eu-west-1": "IE",
    "aws:eu-west-2": "GB",
    "aws:eu-west-3": "FR",
    "aws:eu-central-1": "DE",
    "aws:eu-central-2": "CH",
    "aws:eu-north-1": "SE-SE3",
    "aws:eu-south-1": "IT-NO",
    "aws:eu-south-2": "ES",
    "aws:ap-northeast-1": "JP-TK",
    "aws:ap-northeast-2": "KR",
    "aws:ap-northeast-3": "JP-KN",
    "aws:ap-southeast-1": "SG",
    "aws:ap-southeast-2": "AU-NSW",
    "aws:ap-southeast-4": "AU-VIC",
    "aws:ap-south-1": "IN-WE",
    "aws:ap-east-1": "HK",
    "aws:sa-east-1": "BR-CS",
    "aws:af-south-1": "ZA",
    "aws:me-south-1": "BH",
    "aws:il-central-1": "IL",
    # Google Cloud
    "gcp:us-central1": "US-MIDW-MISO",
    "gcp:us-east1": "US-CAR-SCEG",
    "gcp:us-east4": "US-MIDA-PJM",
    "gcp:us-west1": "US-NW-BPAT",
    "gcp:us-west2": "US-CAL-LDWP",
    "gcp:us-south1": "US-TEX-ERCO",
    "gcp:northamerica-northeast1": "CA-QC",
    "gcp:northamerica-northeast2": "CA-ON",
    "gcp:southamerica-east1": "BR-CS",
    "gcp:southamerica-west1": "CL-SEN",
    "gcp:europe-west1": "BE",
    "gcp:europe-west2": "GB",
    "gcp:europe-west3": "DE",
    "gcp:europe-west4": "NL",
    "gcp:europe-west6": "CH",
    "gcp:europe-west9": "FR",
    "gcp:europe-north1": "FI",
    "gcp:europe-central2": "PL",
    "gcp:asia-northeast1": "JP-TK",
    "gcp:asia-northeast2": "JP-KN",
    "gcp:asia-northeast3": "KR",
    "gcp:asia-southeast1": "SG",
    "gcp:asia-south1": "IN-WE",
    "gcp:asia-east1": "TW",
    "gcp:asia-east2": "HK",
    "gcp:australia-southeast1": "AU-NSW",
    "gcp:australia-southeast2": "AU-VIC",
    "gcp:africa-south1": "ZA",
    # Microsoft Azure
    "azure:eastus": "US-MIDA-PJM",
    "azure:eastus2": "US-MIDA-PJM",
    "azure:westus": "US-CAL-CISO",
    "azure:westus2": "US-NW-BPAT",
    "azure:centralus": "US-MIDW-MISO",
    "azure:southcentralus": "US-TEX-ERCO",
    "azure:canadacentral": "CA-ON",
    "azure:canadaeast": "CA-QC",
    "azure:brazilsouth": "BR-CS",
    "azure:northeurope": "IE",
    "azure:westeurope": "NL",
    "azure:uksouth": "GB",
    "azure:francecentral": "FR",
    "azure:germanywestcentral": "DE",
    "azure:swedencentral": "SE-SE3",
    "azure:switzerlandnorth": "CH",
    "azure:norwayeast": "NO-NO1",
    "azure:polandcentral": "PL",
    "azure:italynorth": "IT-NO",
    "azure:japaneast": "JP-TK",
    "azure:japanwest": "JP-KN",
    "azure:koreacentral": "KR",
    "azure:southeastasia": "SG",
    "azure:eastasia": "HK",
    "azure:centralindia": "IN-WE",
    "azure:australiaeast": "AU-NSW",
    "azure:australiasoutheast": "AU-VIC",
    "azure:southafricanorth": "ZA",
    "azure:uaenorth": "AE",
}

_CLOUD_ALIASES = {"amazon": "aws", "google": "gcp", "gcloud": "gcp", "microsoft": "azure"}
_LATLON = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*$")

ResolutionMethod = Literal["zone", "name", "cloud-region", "nearest-zone", "provider"]


@dataclass(frozen=True)
class ZoneResolution:
    """How a location given by the user became a zone.

    Attributes:
        query: What the user wrote.
        zone: The resolved zone id.
        method: ``zone`` (given directly), ``name`` (the zone's or country's name, when
            it names exactly one served zone), ``cloud-region`` (table), ``nearest-zone``
            (closest representative point; approximate), or ``provider`` (the provider's
            own lookup).
        distance_km: For ``nearest-zone``, the distance to the zone's representative point.
    """

    query: str
    zone: str
    method: ResolutionMethod
    distance_km: float | None = None

    def describe(self) -> str:
        """One line for humans, e.g. ``aws:eu-central-1 -> DE (cloud-region table)``."""
        if self.method == "zone":
            return self.zone
        if self.method == "nearest-zone":
            detail = f"nearest zone, {self.distance_km or 0:.0f} km away, approximate"
        else:
            detail = {
                "name": "zone name",
                "cloud-region": "cloud-region table",
                "provider": "provider lookup",
            }[self.method]
        return f"{self.query} -> {self.zone} ({detail})"


# More load centres for zones that span a large area, so that a site is matched to the
# zone it is in rather than to a neighbour whose single point happens to be closer
# (Munich is nearer Zurich than the middle of Germany). (lat, lon) in degrees.
_EXTRA_POINTS: dict[str, tuple[tuple[float, float], ...]] = {
    "DE": (
        (52.52, 13.40),
        (53.55, 9.99),
        (48.14, 11.58),
        (50.94, 6.96),
        (50.11, 8.68),
        (48.78, 9.18),
        (51.34, 12.37),
        (49.45, 11.08),
    ),
    "FR": (
        (48.86, 2.35),
        (45.76, 4.84),
        (43.30, 5.37),
        (43.60, 1.44),
        (50.63, 3.06),
        (48.57, 7.75),
        (47.22, -1.55),
        (44.84, -0.58),
    ),
    "GB": (
        (51.51, -0.13),
        (53.48, -2.24),
        (52.49, -1.89),
        (55.86, -4.25),
        (55.95, -3.19),
        (51.48, -3.18),
        (53.80, -1.55),
        (50.72, -3.53),
    ),
    "ES": ((41.39, 2.17), (39.47, -0.38), (37.39, -5.98), (43.26, -2.93)),
    "IT-NO": ((45.07, 7.69), (45.44, 12.32), (44.49, 11.34)),
    "PL": ((50.06, 19.94), (54.35, 18.65), (51.11, 17.04)),
    "US-CAL-CISO": ((37.77, -122.42), (32.72, -117.16), (38.58, -121.49), (36.74, -119.79)),
    "US-MIDA-PJM": (
        (39.95, -75.17),
        (38.90, -77.04),
        (41.88, -87.63),
        (40.44, -80.00),
        (39.29, -76.61),
        (39.96, -83.00),
        (37.54, -77.44),
    ),
    "US-NY-NYIS": ((40.71, -74.01), (42.89, -78.88), (42.65, -73.76), (43.05, -76.15)),
    "US-TEX-ERCO": ((32.78, -96.80), (29.76, -95.37), (30.27, -97.74), (29.42, -98.49)),
    "US-MIDW-MISO": (
        (44.98, -93.27),
        (39.77, -86.16),
        (42.33, -83.05),
        (38.63, -90.20),
        (29.95, -90.07),
    ),
    "US-NE-ISNE": ((41.82, -71.41), (41.76, -72.67), (43.66, -70.26)),
    "CA-ON": ((45.42, -75.70), (42.98, -81.25), (46.49, -80.99)),
    "CA-QC": ((46.81, -71.21),),
    "AU-NSW": ((-32.93, 151.78), (-34.42, 150.89), (-35.28, 149.13)),
    "AU-VIC": ((-38.15, 144.36), (-37.56, 143.85)),
    "BR-CS": ((-22.91, -43.17), (-15.79, -47.88), (-19.92, -43.94), (-16.69, -49.26)),
    "CL-SEN": ((-23.65, -70.40), (-36.83, -73.05), (-41.47, -72.94)),
    "IN-WE": ((18.52, 73.86), (23.02, 72.57), (21.15, 79.09)),
    "JP-TK": ((36.39, 139.06), (35.45, 139.64)),
    "KR": ((35.18, 129.08), (35.87, 128.60), (35.16, 126.85)),
    "ZA": ((-33.92, 18.42), (-29.86, 31.02), (-25.75, 28.19)),
}


@lru_cache(maxsize=1)
def _representative_points() -> tuple[tuple[str, float, float], ...]:
    points = [(z.zone, z.lat, z.lon) for z in ZONE_CATALOG.values()]
    points += [(zone, lat, lon) for zone, extra in _EXTRA_POINTS.items() for lat, lon in extra]
    return tuple(points)


def _nearest_served(zone: str, served: list[str], n: int = 3) -> list[str]:
    """Served zones closest to ``zone``'s point (for suggestions; spelling means nothing here)."""
    origin = ZONE_CATALOG.get(zone)
    if origin is None:
        return suggest_zones(zone, served, n)
    known = [ZONE_CATALOG[z] for z in served if z in ZONE_CATALOG]
    known.sort(key=lambda z: _haversine_km(origin.lat, origin.lon, z.lat, z.lon))
    return [z.zone for z in known[:n]]


def parse_location(text: str) -> tuple[float, float] | None:
    """Return ``(lat, lon)`` if ``text`` looks like ``LAT,LON``, else None.

    Raises:
        InvalidInputError: If it looks like coordinates but they are out of range.
    """
    match = _LATLON.match(text)
    if not match:
        return None
    lat, lon = float(match.group(1)), float(match.group(2))
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise InvalidInputError(
            f"location {text!r}: latitude must be in [-90, 90] and longitude in [-180, 180]"
        )
    return lat, lon


def _haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(min(1.0, a)))


def suggest_zones(zone: str, known: Iterable[str], n: int = 3) -> list[str]:
    """Return up to ``n`` close matches for ``zone`` among ``known`` (case-insensitive)."""
    known = list(known)
    by_upper = {k.upper(): k for k in known}
    hits = difflib.get_close_matches(zone.upper(), list(by_upper), n=n, cutoff=0.5)
    prefix = [
        k for k in known if k.upper().startswith(zone.upper()) and by_upper[k.upper()] not in hits
    ]
    return [by_upper[h] for h in hits] + prefix[: max(0, n - len(hits))]


def resolve_zone(
    query: str,
    served: Iterable[str],
    *,
    max_distance_km: float = 1500.0,
    where: str = "",
) -> ZoneResolution:
    """Resolve a zone id, ``LAT,LON`` or ``provider:region`` to a zone in ``served``.

    Args:
        query: What the user wrote.
        served: The zones the provider serves.
        max_distance_km: For coordinates, the farthest acceptable representative point.
        where: Provider name, for error messages.

    Raises:
        UnknownZoneError: If nothing in ``served`` matches.
        InvalidInputError: If coordinates are out of range.
    """
    served = list(served)
    text = query.strip()
    exact = {z.upper(): z for z in served}
    if text.upper() in exact:
        return ZoneResolution(query, exact[text.upper()], "zone")

    coords = parse_location(text)
    if coords is not None:
        # Nearest over the whole catalog first: a site in France must not silently become
        # Great Britain because the provider lacks FR.
        best: dict[str, float] = {}
        for zone, lat, lon in _representative_points():
            d = _haversine_km(*coords, lat, lon)
            best[zone] = min(d, best.get(zone, math.inf))
        distances = sorted((d, z) for z, d in best.items())
        distance, nearest = distances[0]
        if distance > max_distance_km:
            raise UnknownZoneError(
                query,
                [],
                where=where or "the zone catalog",
                detail=f"no zone within {max_distance_km:.0f} km",
            )
        if nearest.upper() in exact:
            return ZoneResolution(query, exact[nearest.upper()], "nearest-zone", round(distance, 1))
        served_near = [z for d, z in distances if z.upper() in exact and d <= max_distance_km][:3]
        raise UnknownZoneError(
            query,
            served_near,
            where=where,
            detail=f"nearest zone {nearest}, {distance:.0f} km away, is not served",
        )

    by_name = [
        z
        for z in served
        if z in ZONE_CATALOG
        and text.lower() in (ZONE_CATALOG[z].name.lower(), ZONE_CATALOG[z].country.lower())
    ]
    if len(by_name) == 1:
        return ZoneResolution(query, by_name[0], "name")

    if ":" in text:
        cloud, _, region = text.partition(":")
        key = f"{_CLOUD_ALIASES.get(cloud.lower(), cloud.lower())}:{region.lower()}"
        mapped = CLOUD_REGIONS.get(key)
        if mapped is None:
            raise UnknownZoneError(
                query, suggest_zones(key, CLOUD_REGIONS), where="the cloud-region table"
            )
        if mapped.upper() not in exact:
            raise UnknownZoneError(
                query, _nearest_served(mapped, served), where=where, detail=f"it is in {mapped}"
            )
        return ZoneResolution(query, exact[mapped.upper()], "cloud-region")

    known = {z.upper(): z for z in ZONE_CATALOG}.get(text.upper()) or next(
        (
            z
            for z, info in ZONE_CATALOG.items()
            if text.lower() in (info.name.lower(), info.country.lower())
        ),
        None,
    )
    if known is not None:
        # A real zone the provider does not serve: its neighbours help, its spelling does not
        # (FR is not ZA or KR).
        info = ZONE_CATALOG[known]
        raise UnknownZoneError(
            query,
            _nearest_served(known, served),
            where=where,
            detail=f"{known}, {info.name}, is not served; nearest served zones first",
        )
    # A country or zone name's words starting with the text: "fr" is France, not
    # South Africa.
    named = [
        z
        for z in served
        if z in ZONE_CATALOG
        and any(
            word.startswith(text.lower())
            for word in f"{ZONE_CATALOG[z].country} {ZONE_CATALOG[z].name}".lower().split()
        )
    ]
    raise UnknownZoneError(query, (named + suggest_zones(text, served))[:5], where=where)
