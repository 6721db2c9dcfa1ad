"""The time zone at a position, and the country each zone lies in.

One `TimezoneFinder` per process (`finder()`), loaded on first use with its
polygons in memory: about 0.4 s and 60 MB, then a few microseconds a lookup;
dropped again when idle (`release_idle`, with the place data).
Its polygons come from timezone-boundary-builder (OpenStreetMap boundaries,
territorial waters included; ODbL); the open sea has "Etc/GMT+N" zones, which
`land_zone_at` leaves out.
"""

from __future__ import annotations

import threading
import time
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

_lock = threading.Lock()
_finder: Any = None
_last_used = 0.0

#: tz's own table of zones by country, where Python's tzdata package is missing.
SYSTEM_ZONE_TAB = Path("/usr/share/zoneinfo/zone.tab")


def finder() -> Any:
    """The process's `timezonefinder.TimezoneFinder`, in memory, loaded when needed."""
    global _finder, _last_used
    _last_used = time.monotonic()
    found = _finder
    if found is None:
        with _lock:
            if _finder is None:
                from timezonefinder import TimezoneFinder

                _finder = TimezoneFinder(in_memory=True)
            found = _finder
    return found


def release_idle(idle_seconds: float) -> bool:
    """Drop the polygons when unused for `idle_seconds`; a lookup running now keeps
    its own reference, the next one loads them again. True when dropped."""
    global _finder
    with _lock:
        if _finder is None or time.monotonic() - _last_used < idle_seconds:
            return False
        _finder = None
    return True


def zone_at(lat: float, lon: float) -> str | None:
    """The IANA zone at a position, sea included ("Etc/GMT+2" far out at sea)."""
    zone: str | None = finder().timezone_at(lng=lon, lat=lat)
    return zone


def land_zone_at(lat: float, lon: float) -> str | None:
    """The zone of the country at a position (its territorial waters included);
    None at sea beyond them."""
    zone: str | None = finder().timezone_at_land(lng=lon, lat=lat)
    return zone


@cache
def zone_countries() -> dict[str, str]:
    """IANA zone -> ISO 3166 alpha-2 code of the country it lies in (tz's zone.tab)."""
    try:
        text = resources.files("tzdata").joinpath("zoneinfo", "zone.tab").read_text("utf-8")
    except (ModuleNotFoundError, FileNotFoundError, OSError):
        text = SYSTEM_ZONE_TAB.read_text("utf-8")
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) >= 3:
            out[parts[2].strip()] = parts[0].strip()
    return out


def country_of_zone(zone: str | None) -> str | None:
    """ "Europe/Busingen" -> "DE"; None for sea zones ("Etc/GMT+2") and unknown ones."""
    return zone_countries().get(zone) if zone else None
