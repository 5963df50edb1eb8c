import pytest

from lowcarb import ZONE_CATALOG, InvalidInputError, UnknownZoneError, resolve_zone
from lowcarb._zones import CLOUD_REGIONS, parse_location

SERVED = ["DE", "GB", "US-CAL-CISO", "AU-NSW", "AU-VIC"]


def test_exact_zone_case_insensitive():
    r = resolve_zone("us-cal-ciso", SERVED)
    assert (r.zone, r.method) == ("US-CAL-CISO", "zone")
    assert r.describe() == "US-CAL-CISO"


def test_cloud_region():
    r = resolve_zone("aws:eu-central-1", SERVED)
    assert (r.zone, r.method) == ("DE", "cloud-region")
    assert "cloud-region table" in r.describe()
    assert resolve_zone("Google:europe-west2", SERVED).zone == "GB"


def test_cloud_region_unknown_suggests_regions():
    with pytest.raises(UnknownZoneError) as exc:
        resolve_zone("aws:eu-centrl-1", SERVED)
    assert "aws:eu-central-1" in exc.value.suggestions


def test_cloud_region_to_unserved_zone():
    with pytest.raises(UnknownZoneError, match="FR"):
        resolve_zone("aws:eu-west-3", SERVED, where="default")


def test_coordinates_nearest_zone_is_reported_as_approximate():
    r = resolve_zone("52.52,13.40", SERVED)  # Berlin
    assert (r.zone, r.method) == ("DE", "nearest-zone")
    assert r.distance_km is not None and r.distance_km < 500
    assert "approximate" in r.describe()


def test_coordinates_in_an_unserved_zone_never_become_a_neighbour():
    with pytest.raises(UnknownZoneError) as exc:
        resolve_zone("48.85,2.35", SERVED)  # Paris: France, not served
    assert "FR" in str(exc.value)
    assert exc.value.suggestions[:2] == ["GB", "DE"] or set(exc.value.suggestions[:2]) == {
        "GB",
        "DE",
    }


def test_coordinates_far_from_everything():
    with pytest.raises(UnknownZoneError, match="no zone within"):
        resolve_zone("0,-140", SERVED)


def test_bad_coordinates():
    with pytest.raises(InvalidInputError, match="latitude"):
        parse_location("95,10")
    assert parse_location("DE") is None


def test_names_resolve_and_typos_suggest():
    assert resolve_zone("Germany", SERVED).method == "name"
    with pytest.raises(UnknownZoneError) as exc:
        resolve_zone("Australia", SERVED)  # two zones: ambiguous, suggested instead
    assert {"AU-NSW", "AU-VIC"} <= set(exc.value.suggestions)
    with pytest.raises(UnknownZoneError) as exc:
        resolve_zone("US-CAL-CSO", SERVED)
    assert exc.value.suggestions[0] == "US-CAL-CISO"


def test_catalog_consistency():
    for zone, info in ZONE_CATALOG.items():
        assert zone == info.zone
        assert -90 <= info.lat <= 90 and -180 <= info.lon <= 180
        assert info.continent in {
            "Africa",
            "Asia",
            "Europe",
            "North America",
            "Oceania",
            "South America",
        }
    assert set(CLOUD_REGIONS.values()) <= set(ZONE_CATALOG)
