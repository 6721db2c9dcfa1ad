"""Offline places: load time, memory and lookup speed of `photovault.geo`.

    .venv/bin/python bench/places.py [--points 10000]

Prints the load seconds and the RSS the place data adds (numpy and scipy are
imported first: the daemon has them loaded anyway), then reverse lookups on
random land points (uniform on the sphere, kept where there is a country), as
us per lookup and lookups/s, against a baseline measured in the same run: the
nearest town centre of all GeoNames places in one k-d tree, with no boundary
(what a distance-only geocoder costs). Last, how many countries and towns of the
held-out positions (tests/fixtures/places/positions.csv) each gets right.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
import scipy.spatial

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))

from photovault.geo import zones
from photovault.geo.places import Geocoder, _unit_vectors

POSITIONS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "places" / "positions.csv"


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def land_points(g: Geocoder, n: int, seed: int = 0) -> list[tuple[float, float]]:
    rng = np.random.default_rng(seed)
    out: list[tuple[float, float]] = []
    while len(out) < n:
        z = rng.uniform(-1, 1, 4 * n)
        lat = np.degrees(np.arcsin(z))
        lon = rng.uniform(-180, 180, 4 * n)
        for la, lo in zip(lat.tolist(), lon.tolist(), strict=True):
            if g.country_at(la, lo) is not None:
                out.append((la, lo))
                if len(out) == n:
                    break
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=10_000)
    args = parser.parse_args()

    before = rss_mib()
    start = time.perf_counter()
    zones.finder()
    tz_seconds = time.perf_counter() - start
    tz_rss = rss_mib() - before
    g = Geocoder()
    g.load()
    load_seconds = time.perf_counter() - start
    added = rss_mib() - before
    print(f"load: {load_seconds:.2f} s (zone polygons {tz_seconds:.2f} s, towns the rest)")
    print(f"RSS added: {added:.0f} MiB (zone polygons {tz_rss:.0f} MiB)")

    points = land_points(g, args.points)
    start = time.perf_counter()
    for lat, lon in points:
        g.reverse(lat, lon)
    ours = (time.perf_counter() - start) / len(points)

    # Baseline: nearest town centre anywhere (one tree, no country boundary).
    tree = scipy.spatial.cKDTree(_unit_vectors(g._lat, g._lon))
    start = time.perf_counter()
    for lat, lon in points:
        tree.query(_unit_vectors(lat, lon), k=1)
    base = (time.perf_counter() - start) / len(points)
    print(
        f"reverse: {ours * 1e6:.1f} us/lookup, {1 / ours:,.0f} lookups/s on {len(points)} land"
        f" points; nearest-centre baseline {base * 1e6:.1f} us ({ours / base:.1f}x)"
    )
    start = time.perf_counter()
    for name in ("lisbon", "koln", "portugal", "bavaria", "springfield"):
        g.forward(name)
    print(
        f"forward: first call (builds the name index) {time.perf_counter() - start:.2f} s;"
        f" RSS now +{rss_mib() - before:.0f} MiB"
    )

    rows = list(csv.DictReader(POSITIONS.open(encoding="utf-8")))
    ok_country = ok_town = base_country = base_town = towns = 0
    for row in rows:
        lat, lon = float(row["lat"]), float(row["lon"])
        place = g.reverse(lat, lon)
        ok_country += (place.country_code if place else "") == row["country_code"]
        _, i = tree.query(_unit_vectors(lat, lon), k=1)
        base_code = g._region_codes[g._region[int(i)]] if row["country_code"] else ""
        base_country += base_code == row["country_code"]
        if row["city"]:
            towns += 1
            ok_town += bool(place and place.city == row["city"])
            base_town += g._names[int(i)] == row["city"]
    print(
        f"held-out positions ({len(rows)}): countries right {ok_country}/{len(rows)},"
        f" towns {ok_town}/{towns}; nearest-centre baseline {base_country}/{len(rows)},"
        f" {base_town}/{towns}"
    )


if __name__ == "__main__":
    main()
