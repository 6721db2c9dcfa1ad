"""Reverse geocoding: country by boundary, town in that country; forward by name."""

from __future__ import annotations

import pytest

from photovault.geo.places import Geocoder, GeoDataMissing, NotATown, fold
from photovault.results import Place


def where(g: Geocoder, lat: float, lon: float) -> tuple[str | None, str | None]:
    place = g.reverse(lat, lon)
    return (place.country_code, place.city) if place else (None, None)


@pytest.mark.parametrize(
    ("lat", "lon", "code", "city"),
    [
        (31.7587, -106.4869, "US", "El Paso"),  # 2 km apart across the Rio Grande
        (31.7395, -106.4869, "MX", "Ciudad Juárez"),
        (48.5818, 7.7509, "FR", "Strasbourg"),  # Kehl is 4 km east, across the Rhine
        (48.5726, 7.8155, "DE", "Kehl"),
        (45.9410, 13.6220, "IT", "Gorizia"),
        (45.9560, 13.6480, "SI", "Nova Gorica"),
        (32.5320, -117.0370, "MX", "Tijuana"),
        (32.6401, -117.0842, "US", "Chula Vista"),
        (42.3314, -83.0458, "US", "Detroit"),  # Windsor is nearer Detroit's centre than
        (42.3149, -83.0364, "CA", "Windsor"),  # most of Detroit is
        (57.7770, 26.0470, "EE", "Valga"),
        (57.7750, 26.0170, "LV", "Valka"),
        (52.3420, 14.5500, "DE", "Frankfurt (Oder)"),
        (52.3510, 14.5680, "PL", "Słubice"),
        (46.2044, 6.1432, "CH", "Genève"),
        (46.1934, 6.2340, "FR", "Annemasse"),
    ],
)
def test_towns_across_a_border_get_their_own_country_and_town(
    geocoder: Geocoder, lat: float, lon: float, code: str, city: str
) -> None:
    assert where(geocoder, lat, lon) == (code, city)


def test_the_basel_tripoint_area_is_split_between_switzerland_germany_and_france(
    geocoder: Geocoder,
) -> None:
    assert where(geocoder, 47.5580, 7.5880) == ("CH", "Basel")
    assert where(geocoder, 47.5940, 7.6210) == ("DE", "Weil am Rhein")
    assert where(geocoder, 47.5900, 7.5600) == ("FR", "Saint-Louis")
    assert where(geocoder, 47.5840, 7.6470) == ("CH", "Riehen")


def test_enclaves_belong_to_their_own_country(geocoder: Geocoder) -> None:
    # Baarle-Hertog's largest enclave (H1) inside the Netherlands, and Dutch land
    # just south of it.
    assert where(geocoder, 51.4330, 4.9320) == ("BE", "Baarle-Hertog")
    assert where(geocoder, 51.4520, 4.9200) == ("NL", "Baarle-Nassau")
    assert geocoder.country_at(51.4275, 4.9350) == "NL"
    assert where(geocoder, 47.6966, 8.6900) == ("DE", "Büsingen")  # inside Switzerland
    assert where(geocoder, 42.4636, 1.9806) == ("ES", "Llívia")  # inside France


def test_microstates_are_told_apart_from_their_neighbours(geocoder: Geocoder) -> None:
    assert where(geocoder, 41.9022, 12.4539) == ("VA", "Vatican City")  # St Peter's
    assert where(geocoder, 41.9031, 12.4663) == ("IT", "Rome")  # Castel Sant'Angelo, 1 km
    assert where(geocoder, 43.9356, 12.4473) == ("SM", "San Marino")
    place = geocoder.reverse(43.7394, 7.4275)  # the casino
    assert place is not None and (place.country_code, place.country) == ("MC", "Monaco")


def test_kosovo_inside_serbias_time_zone_is_told_apart_by_its_towns(geocoder: Geocoder) -> None:
    assert where(geocoder, 42.6629, 21.1655) == ("XK", "Pristina")
    assert where(geocoder, 44.8176, 20.4569) == ("RS", "Belgrade")
    assert where(geocoder, 43.3209, 21.8958) == ("RS", "Niš")


def test_northern_vietnam_inside_bangkoks_time_zone_is_told_apart_by_its_towns(
    geocoder: Geocoder,
) -> None:
    assert where(geocoder, 21.0285, 105.8542) == ("VN", "Hanoi")
    assert where(geocoder, 13.7563, 100.5018) == ("TH", "Bangkok")
    assert where(geocoder, 18.7883, 98.9853) == ("TH", "Chiang Mai")


def test_the_west_bank_inside_jerusalems_time_zone_is_told_apart_by_its_towns(
    geocoder: Geocoder,
) -> None:
    assert where(geocoder, 31.7000, 35.1167) == ("PS", "Battir")
    assert where(geocoder, 31.9038, 35.2034) == ("PS", "Ramallah")
    assert where(geocoder, 32.0853, 34.7818) == ("IL", "Tel Aviv")
    assert where(geocoder, 32.1750, 34.9069) == ("IL", "Kfar Saba")


def test_a_beach_and_a_harbour_get_the_country_of_the_coast(geocoder: Geocoder) -> None:
    assert geocoder.reverse(38.6975, -9.4205) == Place("PT", "Portugal", "Lisbon", "Cascais")
    assert where(geocoder, 38.7060, -9.1440) == ("PT", "Lisbon")  # Cais do Sodré, on the Tagus
    assert where(geocoder, 38.6850, -9.4200) == ("PT", "Cascais")  # 1.5 km out in the bay


def test_a_boat_in_territorial_waters_is_in_the_country_without_a_town_far_out(
    geocoder: Geocoder,
) -> None:
    place = geocoder.reverse(38.62, -9.42)  # 8 km off Cascais
    assert place is not None and place.country_code == "PT"


def test_the_open_sea_has_no_place(geocoder: Geocoder) -> None:
    assert geocoder.reverse(40.0, -30.0) is None  # mid-Atlantic
    assert geocoder.reverse(38.5, -9.7) is None  # 30 km off Lisbon
    assert geocoder.reverse(56.0, 3.0) is None  # North Sea


def test_a_point_on_a_lake_shore_gets_the_country_of_that_shore(geocoder: Geocoder) -> None:
    assert where(geocoder, 46.5060, 6.6270) == ("CH", "Lausanne")  # Ouchy, Lake Geneva
    assert where(geocoder, 46.4010, 6.5900) == ("FR", "Évian-les-Bains")  # across the lake


def test_a_place_far_from_any_town_names_the_country_only(geocoder: Geocoder) -> None:
    place = geocoder.reverse(23.0, 12.0)  # the Sahara in northern Niger
    assert place == Place("NE", "Niger")


def test_a_district_listed_as_a_place_also_names_the_city_it_lies_in(
    geocoder: Geocoder,
) -> None:
    kreuzberg = geocoder.reverse(52.4997, 13.4034)
    assert kreuzberg is not None and (kreuzberg.city, kreuzberg.within) == ("Kreuzberg", "Berlin")
    assert "Berlin" in kreuzberg.names() and kreuzberg.label() == "Kreuzberg, Germany"
    manhattan = geocoder.reverse(40.7834, -73.9662)
    assert manhattan is not None and manhattan.within == "New York City"
    sagrada = geocoder.reverse(41.4036, 2.1744)
    assert sagrada is not None and sagrada.within == "Barcelona"
    kehl = geocoder.reverse(48.5726, 7.8155)  # Strasbourg covers it, but in France
    assert kehl is not None and kehl.within is None
    assert Place.from_dict(kreuzberg.to_dict()) == kreuzberg
    assert "within" not in kehl.to_dict()


def test_country_names_are_common_english_names(geocoder: Geocoder) -> None:
    assert geocoder.country_name("DE") == "Germany"
    assert geocoder.country_name("KR") == "South Korea"
    assert geocoder.country_name("VA") == "Vatican City"


def test_invalid_positions_have_no_place(geocoder: Geocoder) -> None:
    assert geocoder.reverse(float("nan"), 10.0) is None
    assert geocoder.reverse(91.0, 10.0) is None
    assert geocoder.reverse(10.0, 181.0) is None


def test_forward_finds_a_town_by_its_english_or_local_name_largest_first(
    geocoder: Geocoder,
) -> None:
    hits = geocoder.forward("lisbon")
    towns = [p for p, _, _ in hits if p.city]
    assert towns[0] == Place("PT", "Portugal", "Lisbon", "Lisbon")
    _, lat, lon = next(h for h in hits if h[0].city == "Lisbon")
    assert abs(lat - 38.72) < 0.05 and abs(lon + 9.14) < 0.05
    assert [h[0].country_code for h in hits if h[0].city][:2] == ["PT", "US"]
    for name in ("Köln", "koln", "KÖLN"):
        first = geocoder.forward(name)[0][0]
        assert (first.country_code, first.city) == ("DE", "Köln")


def test_forward_finds_regions_and_countries(geocoder: Geocoder) -> None:
    place, lat, _ = geocoder.forward("Portugal")[0]
    assert place == Place("PT", "Portugal") and abs(lat - 38.72) < 0.1
    assert geocoder.forward("bavaria")[0][0] == Place("DE", "Germany", "Bavaria")
    assert geocoder.forward("USA")[0][0].country_code == "US"
    assert geocoder.forward("no such place anywhere") == []


@pytest.mark.parametrize(
    ("name", "keys"),
    [
        ("USA", ["usa", "us"]),
        ("UK", ["uk", "gb"]),
        ("Holland", ["holland", "nl"]),
        ("Deutschland", ["deutschland", "de"]),
        ("Lisboa", ["lisboa", "lisbon"]),
        ("München", ["munchen", "munich"]),
        ("Wien", ["wien", "vienna"]),
        ("Bayern", ["bayern", "bavaria"]),
        ("Cologne", ["cologne", "koln"]),
        ("Kehl", ["kehl"]),
        ("Lisbn", []),
    ],
)
def test_a_place_name_means_its_aliases_and_a_country_its_code(
    geocoder: Geocoder, name: str, keys: list[str]
) -> None:
    assert geocoder.place_keys_for(name) == keys


@pytest.mark.parametrize(
    ("name", "code", "region", "city"),
    [
        ("Washington", "US", "District of Columbia", "Washington"),  # not the state
        ("Cologne", "DE", "North Rhine-Westphalia", "Köln"),  # not Cologne, Italy
        ("München", "DE", "Bavaria", "Munich"),
        ("Paris", "FR", "Île-de-France", "Paris"),
        ("Paris, Texas", "US", "Texas", "Paris"),
        ("Paris, US", "US", "Texas", "Paris"),
        ("Portland, Maine", "US", "Maine", "Portland"),
        ("Luxembourg", "LU", "Luxembourg", "Luxembourg"),  # a country named by its city
        ("New York", "US", "New York", "New York City"),
    ],
)
def test_a_town_for_near_comes_before_regions_and_takes_a_qualifier(
    geocoder: Geocoder, name: str, code: str, region: str, city: str
) -> None:
    place, _, _ = geocoder.town(name)
    assert (place.country_code, place.region, place.city) == (code, region, city)


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("Georgia", "is a country"),
        ("Bavaria", "is a region"),
        ("Lisbn", "no place called"),
        ("Paris, Narnia", "no town called 'Paris' in 'Narnia'"),
    ],
)
def test_a_name_that_is_no_town_is_refused_for_near(
    geocoder: Geocoder, name: str, says: str
) -> None:
    with pytest.raises(NotATown, match=says):
        geocoder.town(name)


def test_fold_drops_accents_case_and_punctuation() -> None:
    assert fold("Köln") == fold("KOLN") == "koln"
    assert fold("Baarle-Nassau") == "baarle nassau"
    assert fold("  São   Tomé ") == "sao tome"
    assert fold("Straße") == "strasse"
    assert fold("Łódź") == "lodz"
    assert fold("Ærøskøbing") == "aeroskobing"


def test_missing_place_data_is_reported_as_such(tmp_path: object) -> None:
    from pathlib import Path

    g = Geocoder(cities=Path(str(tmp_path)) / "none.gz")
    with pytest.raises(GeoDataMissing):
        g.reverse(38.7, -9.1)
    assert not g.loaded
