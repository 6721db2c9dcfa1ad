"""Every GeoNames place in the shipped data gets its own country back.

This is what finds time-zone polygons that cover more than their own country
(`places.SHARED_ZONES`: Europe/Belgrade holds Kosovo, Asia/Bangkok northern
Vietnam, Asia/Jerusalem much of the West Bank). What remains is border noise: a
few dozen of 155 000 places whose GeoNames point lies a little across a border
or in a disputed area (Western Sahara, the Golan Heights), hence the tolerance.
"""

from __future__ import annotations

from collections import Counter

from photovault.geo import zones
from photovault.geo.places import Geocoder

#: Share of places that must get their own country back.
MIN_RIGHT = 0.995
#: No one zone may misplace more places than this: more is a whole region.
MAX_WRONG_IN_ONE_ZONE = 10


def test_every_geonames_place_gets_its_own_country_back(geocoder: Geocoder) -> None:
    geocoder.load()  # read the tables once: an idle unload elsewhere may drop them later
    lat, lon = geocoder._lat.tolist(), geocoder._lon.tolist()
    codes = [geocoder._region_codes[r] for r in geocoder._region.tolist()]
    wrong: Counter[tuple[str | None, str, str | None]] = Counter()
    for row, (la, lo) in enumerate(zip(lat, lon, strict=True)):
        expected = codes[row]
        place = geocoder.reverse(la, lo)
        got = place.country_code if place is not None else None
        if got != expected:
            wrong[(zones.land_zone_at(la, lo), expected, got)] += 1
    right = 1 - sum(wrong.values()) / len(lat)
    assert right >= MIN_RIGHT, wrong.most_common(10)
    by_zone: Counter[str | None] = Counter()
    for (zone, _, _), count in wrong.items():
        by_zone[zone] += count
    assert max(by_zone.values(), default=0) <= MAX_WRONG_IN_ONE_ZONE, by_zone.most_common(5)
