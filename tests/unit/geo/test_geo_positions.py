"""The held-out check of issue #18: positions chosen from maps (many within a few km of
a border, enclaves, coasts, open sea), every country right, >= 85% of towns right."""

from __future__ import annotations

import csv
from pathlib import Path

from photovault.geo.places import Geocoder

POSITIONS = Path(__file__).resolve().parents[2] / "fixtures" / "places" / "positions.csv"


def test_every_country_is_right_and_most_towns_are(geocoder: Geocoder) -> None:
    rows = list(csv.DictReader(POSITIONS.open(encoding="utf-8")))
    assert len(rows) >= 40
    wrong_country, wrong_town = [], []
    for row in rows:
        place = geocoder.reverse(float(row["lat"]), float(row["lon"]))
        got = (place.country_code, place.city) if place else ("", "")
        if got[0] != row["country_code"]:
            wrong_country.append((row["name"], row["country_code"], got))
        elif row["city"] and got[1] != row["city"]:
            wrong_town.append((row["name"], row["city"], got[1]))
    assert wrong_country == []
    with_town = sum(1 for row in rows if row["city"])
    assert len(wrong_town) <= 0.15 * with_town, wrong_town
