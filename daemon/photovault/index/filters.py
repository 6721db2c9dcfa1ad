"""Search filters: what LanceDB can evaluate in SQL, and what only Python can.

Everything that can be a SQL predicate is pushed into the LanceDB query as a
prefilter, so the limit applies to matching rows (a post-filter after LIMIT
would silently return fewer hits than asked). Two checks stay in Python: the
exact great-circle distance (SQL gets a bounding box that contains the circle)
and the caller's permission predicate, which only the socket server can
evaluate. For those the search over-fetches and repeats with a larger window
until it has `limit` hits or has seen every candidate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from photovault.index.records import fold, restore_path, storable

EARTH_RADIUS_KM = 6371.0088
KM_PER_DEGREE_LAT = math.pi * EARTH_RADIUS_KM / 180.0

# Characters with a meaning in Rust's `regex` syntax (used by regexp_like).
_REGEX_META = set("\\.+*?()|[]{}^$#&-~")
# One character of a path in its stored form (records.storable): an escaped
# byte that is not UTF-8, an escaped backslash, or any other character.
_ONE_STORED_CHAR = r"(?:\\x[89a-f][0-9a-f]|\\\\|[^\\])"


#: What the `kind` filter may ask for.
KINDS = ("photo", "video")


@dataclass(frozen=True)
class Near:
    lat: float
    lon: float
    km: float


@dataclass
class Filters:
    """Restrictions on a search; every given one must hold.

    persons: names that must all appear in the photo (case-insensitive).
    tags:    each must equal a tag path, an ancestor path or a segment
             ("dog", "Animals|Dog", "animals"), case-insensitive.
    after:   capture time >= this (a date means its midnight), wall-clock time.
    before:  capture time < this.
    near:    within `km` of (lat, lon), great-circle distance.
    camera:  substring of the camera name, case-insensitive.
    place:   a town, region, country or country code where the photo was taken,
             exactly, accent- and case-insensitive ("lisboa", "PT", "Portugal").
    place_also: other folded place keys that name the same place (the server
             resolves aliases: "USA" -> "us", "München" -> "munich"); a photo
             with any of them, or `place`, passes. Never read from the wire.
    path:    fnmatch-style glob ('*' also crosses '/'); a pattern starting with
             '/' matches the absolute path, any other the share-relative path.
    shares:  only these shares (cheap, pushed into SQL; use it when a caller can
             read whole shares only).
    kind:    "photo" (stills, motion photos included) or "video".
    allowed: permission check on the absolute path: a predicate, or a collection
             of allowed absolute paths. Applied before the limit.
    """

    persons: Sequence[str] = ()
    tags: Sequence[str] = ()
    after: date | datetime | None = None
    before: date | datetime | None = None
    near: Near | tuple[float, float, float] | None = None
    camera: str | None = None
    place: str | None = None
    place_also: Sequence[str] = ()
    path: str | None = None
    shares: Collection[str] | None = None
    kind: str | None = None
    allowed: Callable[[str], bool] | Collection[str] | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Filters:
        """Filters from a query-protocol object (JSON): dates as ISO strings, near as
        {"lat", "lon", "km"} or [lat, lon, km]. Unknown keys are refused so a typo
        in a client does not silently widen a search. `allowed` is never read from
        the wire: the server sets it from the caller's credentials."""
        known = {
            "persons",
            "tags",
            "after",
            "before",
            "near",
            "camera",
            "place",
            "path",
            "shares",
            "kind",
        }
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown filter(s): {', '.join(sorted(unknown))}")

        def when(key: str) -> date | datetime | None:
            value = data.get(key)
            if value in (None, ""):
                return None
            text = str(value)
            return date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)

        def strings(key: str) -> tuple[str, ...]:
            value = data.get(key) or ()
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{key!r} must be a list of strings")
            return tuple(value)

        def text(key: str) -> str | None:
            value = data.get(key) or None
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{key!r} must be a string")
            return value

        def number(value: Any, what: str, low: float, high: float) -> float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"near {what} must be a number")
            if not (math.isfinite(value) and low <= value <= high):
                raise ValueError(f"near {what} must be between {low:g} and {high:g}")
            return float(value)

        near = data.get("near")
        if near is not None:
            if isinstance(near, dict):
                near = (near.get("lat"), near.get("lon"), near.get("km"))
            if not isinstance(near, list | tuple) or len(near) != 3:
                raise ValueError("'near' must be {lat, lon, km} or [lat, lon, km]")
            near = Near(
                number(near[0], "lat", -90, 90),
                number(near[1], "lon", -180, 180),
                number(near[2], "km", 0, 20_100),
            )
        shares = data.get("shares")
        kind = text("kind")
        if kind not in (None, *KINDS):
            raise ValueError(f"'kind' must be one of {', '.join(KINDS)}")
        return cls(
            persons=strings("persons"),
            tags=strings("tags"),
            after=when("after"),
            before=when("before"),
            near=near,
            camera=text("camera"),
            place=text("place"),
            path=text("path"),
            shares=None if shares is None else strings("shares"),
            kind=kind,
        )

    def near_spec(self) -> Near | None:
        if self.near is None:
            return None
        if isinstance(self.near, Near):
            return self.near
        lat, lon, km = self.near
        return Near(float(lat), float(lon), float(km))


def sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _timestamp(value: date | datetime) -> str:
    if not isinstance(value, datetime):
        value = datetime.combine(value, time())
    value = value.replace(tzinfo=None)
    return "timestamp " + sql_string(value.isoformat(sep=" "))


def glob_to_regex(pattern: str) -> str:
    """fnmatch syntax to an anchored regex that Rust's `regex` crate accepts
    (fnmatch.translate emits look-arounds that it rejects), matched against the
    stored form of paths: literal characters are escaped as `storable` escapes
    them (a backslash, a byte that is not UTF-8), and `?` and `*` take escapes whole.
    A bracket expression matches one stored character (an escape inside one
    counts as its characters, so it only approximates there)."""
    out = ["^"]
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            out.append(_ONE_STORED_CHAR + "*")
        elif c == "?":
            out.append(_ONE_STORED_CHAR)
        elif c == "[":
            j = i
            if j < n and pattern[j] == "!":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:
                out.append("\\[")
                continue
            body = pattern[i:j]
            i = j + 1
            neg = body.startswith("!")
            if neg:
                body = body[1:]
            chars = "".join("\\" + ch if ch in "\\[]^&~" else ch for ch in storable(body))
            out.append("[" + ("^" if neg else "") + chars + "]")
        else:
            out.extend("\\" + s if s in _REGEX_META else s for s in storable(c))
    out.append("$")
    return "(?s)" + "".join(out)


def bounding_box(near: Near) -> str:
    """SQL for a lat/lon box that contains the circle, dateline and poles included."""
    dlat = near.km / KM_PER_DEGREE_LAT
    lat_lo, lat_hi = near.lat - dlat, near.lat + dlat
    parts = [f"lat >= {max(lat_lo, -90.0)!r}", f"lat <= {min(lat_hi, 90.0)!r}"]
    if lat_lo <= -90.0 or lat_hi >= 90.0:
        parts.append("lon IS NOT NULL")  # the circle covers a pole: every longitude
        return "(" + " AND ".join(parts) + ")"
    cos_lat = max(math.cos(math.radians(max(abs(lat_lo), abs(lat_hi)))), 1e-9)
    dlon = near.km / (KM_PER_DEGREE_LAT * cos_lat)
    if dlon >= 180.0:
        parts.append("lon IS NOT NULL")
        return "(" + " AND ".join(parts) + ")"
    lon_lo, lon_hi = near.lon - dlon, near.lon + dlon
    if lon_lo < -180.0:
        parts.append(f"(lon >= {lon_lo + 360.0!r} OR lon <= {lon_hi!r})")
    elif lon_hi > 180.0:
        parts.append(f"(lon >= {lon_lo!r} OR lon <= {lon_hi - 360.0!r})")
    else:
        parts.append(f"lon >= {lon_lo!r}")
        parts.append(f"lon <= {lon_hi!r}")
    return "(" + " AND ".join(parts) + ")"


def haversine_km(lat1: float, lon1: float, lat2: Any, lon2: Any) -> Any:
    """Great-circle distance; lat2/lon2 may be numpy arrays."""
    import numpy as np

    p1, p2 = math.radians(lat1), np.radians(lat2)
    dphi = p2 - p1
    dlmb = np.radians(lon2) - math.radians(lon1)
    a = np.sin(dphi / 2) ** 2 + math.cos(p1) * np.cos(p2) * np.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def to_sql(f: Filters, cameras: Collection[str] | None = None) -> str | None:
    """The prefilter for LanceDB, or None when nothing restricts in SQL.

    `cameras`, when given, holds every camera name in the index (a superset is
    fine): the camera substring is then matched here against those few names
    and the prefilter becomes `camera IN (...)`, which a bitmap index answers,
    instead of a substring test over every row (at 1M photos that scan cost
    ~100 ms of a filtered search; the IN list ~2 ms).
    """
    parts: list[str] = []
    for name in f.persons:
        parts.append(f"array_has(people_keys, {sql_string(name.strip().lower())})")
    for tag in f.tags:
        key = "|".join(p.strip() for p in tag.lower().split("|"))
        parts.append(f"array_has(tag_keys, {sql_string(key)})")
    if f.after is not None:
        parts.append(f"taken_local >= {_timestamp(f.after)}")
    if f.before is not None:
        parts.append(f"taken_local < {_timestamp(f.before)}")
    near = f.near_spec()
    if near is not None:
        parts.append(bounding_box(near))
    if f.camera:
        needle = f.camera.lower()
        if cameras is None:
            parts.append(f"strpos(lower(camera), {sql_string(needle)}) > 0")
        else:
            names = sorted(c for c in cameras if needle in c.lower())
            parts.append(
                "camera IN (" + ", ".join(sql_string(c) for c in names) + ")" if names else "false"
            )
    if f.place is not None:
        keys = [k for k in dict.fromkeys([fold(f.place), *f.place_also]) if k]
        tests = [f"array_has(place_keys, {sql_string(k)})" for k in keys]
        parts.append("(" + " OR ".join(tests) + ")" if tests else "false")
    if f.path:
        column = "abs_path" if f.path.startswith("/") else "path"
        parts.append(f"regexp_like({column}, {sql_string(glob_to_regex(f.path))})")
    if f.shares is not None:
        shares = sorted(set(f.shares))
        if not shares:
            parts.append("false")
        else:
            parts.append("share IN (" + ", ".join(sql_string(s) for s in shares) + ")")
    if f.kind == "video":
        parts.append("kind = 'video'")
    elif f.kind is not None:  # rows written before schema 5 have no kind: photos
        parts.append("(kind IS NULL OR kind <> 'video')")
    return " AND ".join(parts) if parts else None


def python_check(f: Filters) -> Callable[[Any], Any] | None:
    """A vectorised check over an Arrow table of candidates (columns lat, lon,
    abs_path) returning a boolean numpy mask, or None when SQL did everything."""
    import numpy as np

    near = f.near_spec()
    allowed = f.allowed
    if near is None and allowed is None:
        return None
    if allowed is not None and not callable(allowed):
        allowed_set = frozenset(allowed)

        def allowed_fn(p: str) -> bool:
            return p in allowed_set
    else:
        allowed_fn = allowed  # type: ignore[assignment]

    def check(table: Any) -> Any:
        mask = np.ones(table.num_rows, dtype=bool)
        if near is not None:
            lat = table["lat"].to_numpy(zero_copy_only=False).astype(np.float64)
            lon = table["lon"].to_numpy(zero_copy_only=False).astype(np.float64)
            with np.errstate(invalid="ignore"):
                mask &= (
                    np.nan_to_num(haversine_km(near.lat, near.lon, lat, lon), nan=np.inf) <= near.km
                )
        if allowed_fn is not None:
            paths = table["abs_path"].to_pylist()
            for i, p in enumerate(paths):
                if mask[i]:  # the stored form escapes bytes that are not UTF-8
                    mask[i] = p is not None and bool(allowed_fn(restore_path(p)))
        return mask

    return check
