"""The local (wall-clock) capture time and where its UTC offset came from.

Cameras record the wall clock where they are, usually without an offset. So:

* a time with the offset the file recorded ("exif"): the wall clock is the time as
  written, the offset is the file's;
* a time without an offset, with GPS ("position"): the wall clock is the time as
  written, the offset is the zone's at the GPS position on that date (DST right);
* a time known to be UTC (ends in "Z": GPS time stamps, QuickTime's CreateDate), or
  one whose offset the caller says is not the file's local one, with GPS
  ("position"): converted to the zone's wall clock at the position;
* a time known to be UTC without GPS (a phone video with location off) ("host"):
  converted to the wall clock of the time zone this NAS is set to (`TZ`, else
  /etc/localtime): the family's own zone is a far better guess than UTC, which
  would put a clip shot at 00:30 in Tokyo on the previous day;
* nothing known: the wall clock as written, offset, zone and source None.

So a photo taken at 23:30 on 24 December without an offset stays on the 24th,
and date filters and "Christmas morning" use the local day.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from photovault.results import LocalTime

log = logging.getLogger(__name__)


def format_offset(delta: timedelta | None) -> str | None:
    """timedelta(hours=5, minutes=30) -> "+05:30"; None stays None."""
    if delta is None:
        return None
    minutes = int(delta.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{mins:02d}"


_OFFSET = re.compile(r"(?:[Zz]|[+-]\d{2}(?::?\d{2})?)$")


def _as_written(text: str) -> str:
    """The wall clock of an ISO time as it was written, its offset cut off
    ("2024-07-01T14:03:22.25+02:00" -> "2024-07-01T14:03:22.25")."""
    return _OFFSET.sub("", text) if "T" in text or " " in text else text


def _wall(moment: datetime) -> str:
    """ISO wall clock without an offset, fractions kept."""
    return moment.replace(tzinfo=None).isoformat()


def _default_zone_at(lat: float, lon: float) -> str | None:
    from photovault.geo import zones

    return zones.zone_at(lat, lon)


def local_time(
    taken_at: str | None,
    exif_offset_known: bool,
    lat: float | None,
    lon: float | None,
    *,
    zone_at: Callable[[float, float], str | None] | None = None,
    host_zone: Callable[[], str | None] | None = None,
) -> tuple[str | None, LocalTime | None]:
    """(wall-clock capture time as ISO without offset, where its offset came from).

    `taken_at` is ISO 8601, with an offset when the file records one.
    `exif_offset_known`: the offset in `taken_at` is the local one the file recorded;
    False when it only says the instant is UTC. A "Z" always means UTC. `zone_at`
    finds the IANA zone at a position (injected by tests; timezonefinder by default);
    `host_zone` names this machine's zone (injected by tests; `TZ` or /etc/localtime).
    Returns (None, None) without a time or for one that cannot be read.
    """
    if not taken_at:
        return None, None
    text = taken_at.strip()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None, None
    has_gps = lat is not None and lon is not None
    is_utc = text.endswith(("Z", "z")) or (moment.tzinfo is not None and not exif_offset_known)
    written = _as_written(text)
    if moment.tzinfo is not None and is_utc and not has_gps:
        name = (host_zone or machine_zone)()
        zone = _zone(name)
        if name is not None and zone is not None and name not in ("UTC", "Etc/UTC"):
            local = moment.astimezone(zone)
            return _wall(local), LocalTime(format_offset(local.utcoffset()), name, "host")
    if moment.tzinfo is not None and not (is_utc and has_gps):
        return written, LocalTime(format_offset(moment.utcoffset()), None, "exif")
    if not has_gps:
        return written, LocalTime(None, None, None)
    assert lat is not None and lon is not None
    zone_name = (zone_at or _default_zone_at)(lat, lon)
    zone = _zone(zone_name)
    if zone_name is None or zone is None:
        if moment.tzinfo is not None:
            return written, LocalTime(format_offset(moment.utcoffset()), None, "exif")
        return written, LocalTime(None, None, None)
    if moment.tzinfo is not None:  # a UTC instant: the wall clock there and then
        local = moment.astimezone(UTC).astimezone(zone)
        return _wall(local), LocalTime(format_offset(local.utcoffset()), zone_name, "position")
    # A camera's wall clock: kept as it is; the zone says its offset on that date.
    # An hour that happens twice at the end of DST reads as the first (fold=0).
    offset = moment.replace(tzinfo=zone).utcoffset()
    return written, LocalTime(format_offset(offset), zone_name, "position")


def machine_zone() -> str | None:
    """The IANA name of the zone this machine is set to: `TZ`, else the target of
    /etc/localtime (".../zoneinfo/Europe/Berlin"), else /etc/timezone; None if unset."""
    tz = os.environ.get("TZ", "").lstrip(":").strip()
    if tz:
        return tz
    target = os.path.realpath("/etc/localtime")
    if "/zoneinfo/" in target:
        return target.split("/zoneinfo/", 1)[1]
    try:
        with open("/etc/timezone", encoding="utf-8") as fh:
            return fh.read().strip() or None
    except OSError:
        return None


def _zone(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("unknown time zone %s", name)
        return None
