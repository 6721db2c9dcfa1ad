"""What the index stores per photo, and how pipeline results become rows.

The pipeline hands sinks a `Photo` (catalog row + facts + analyzer results);
`record_from_photo` is the one place that knows the shape of those results,
so a change in an analyzer's output touches this file and nothing else in
the index. Derived columns (lookup keys, full-text document, wall-clock time)
are computed here, at write time, so searches stay simple predicates.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa

from photovault.geo.places import fold
from photovault.index.schema import photos_schema
from photovault.results import (
    Place,
    clip_of,
    faces_of,
    metadata_of,
    photo_tags,
    tagger_of,
    text_of,
)
from photovault.sidecar.keywords import person_tags

log = logging.getLogger(__name__)

_WORD_SPLIT = re.compile(r"[\s/\\|_\-.,;:()\[\]{}+]+")
_NOT_WORD = re.compile(r"[\W_]+")


@dataclass
class FaceRecord:
    """One detected face. `box` is (x, y, w, h) as fractions of the upright image."""

    box: tuple[float, float, float, float]
    score: float = 1.0
    person_id: int | None = None
    person: str | None = None
    embedding: np.ndarray | None = None


@dataclass
class PhotoRecord:
    """One catalogued file, as the index wants it. Only id, share and path are required."""

    id: int
    share: str
    path: str  # relative to the share root, '/'-separated; stored form (`storable`)
    abs_path: str | None = None  # stored form too
    sha256: str | None = None
    size: int | None = None
    mtime_ns: int | None = None
    taken_at: str | None = None  # ISO 8601 as the camera recorded it, offset optional
    lat: float | None = None
    lon: float | None = None
    camera: str | None = None
    width: int | None = None
    height: int | None = None
    tags: list[dict[str, Any]] = field(default_factory=list)  # {"tag", "confidence", "source"}
    labels: list[dict[str, Any]] = field(default_factory=list)  # {"synset", "label", "score"}
    people: list[str] = field(default_factory=list)
    person_ids: list[int] = field(default_factory=list)
    dhash: str | None = None
    vector: np.ndarray | None = None  # CLIP image embedding, L2-normalised
    # As analyzed; only their names and person ids are stored (people, person_ids).
    faces: list[FaceRecord] | None = None
    # Wall-clock capture time at the place (ISO, no offset) when the metadata
    # analyzer knew it; else `taken_at` without its offset (see `wall_clock`).
    taken_local: str | None = None
    text: str = ""  # recognized text, one line per line, in reading order
    place: Place | None = None
    kind: str = "photo"  # "photo", "video" or "motion_photo"
    duration: float | None = None  # seconds, videos only
    #: A video's sampled frames as (seconds, CLIP vector); None leaves the stored
    #: frames as they are (a move rewrites the row, not its frames).
    frames: list[tuple[float, np.ndarray]] | None = None
    #: The still this video is the live-photo half of: such a file has no row
    #: of its own (writing it deletes any), it is part of its still.
    live_photo_of: str | None = None
    #: A video's recognized lines with when each was read ({"text", "at"}), and
    #: its people with when each was seen best ({"person", "at"}). Tags carry
    #: their own "at" (stored apart as `tag_times`).
    text_times: list[dict[str, Any]] = field(default_factory=list)
    person_times: list[dict[str, Any]] = field(default_factory=list)


def _vector(value: Any) -> np.ndarray | None:
    if value is None:
        return None
    arr = np.asarray(value, dtype=np.float32).reshape(-1)
    return arr if arr.size else None


def record_from_photo(
    photo: Any, rejected: Collection[str] = (), added: Iterable[str] = ()
) -> PhotoRecord:
    """Map the worker's `Photo` (pipeline/worker.py) to a `PhotoRecord`.

    Its tags are as the person sees them (`sidecar.keywords.person_tags`): without
    the keywords they `rejected` in the sidecar, with those they `added`.

    Metadata (capture time, GPS, camera, place, local time) and recognized text
    are read through `photovault.results`; the other results (any may be missing
    or hold {"error": ...}):
    - tagger:   {"tags": [{"tag", "confidence", "source"}], "labels": [{"synset", "label",
                "score"}]}; tags also from the CLIP `tags` analyzer (results.photo_tags)
    - clip:     {"embedding": 512 floats} (or "vector"); a video's also {"frames":
                [{"at", "embedding"}]}
    - faces:    {"faces": [{"box": [x, y, w, h], "score", "person_id", "person",
                "embedding"}]}
    A video's tags carry "at", the time where each was seen best (`tag_times`);
    its text lines and faces too (`text_times`, `person_times`).
    `photo.facts` (exiftool) fills what the metadata analyzer did not.
    """
    f = photo.file
    facts = dict(photo.facts or {})
    results = photo.results or {}
    meta = metadata_of(results)
    gps = facts.get("gps") or {}
    lat: float | None = meta.lat
    lon: float | None = meta.lon
    if lat is None or lon is None:
        lat, lon = gps.get("lat"), gps.get("lon")
    taken_at = meta.taken_at or facts.get("taken_at")
    faces: list[FaceRecord] | None = None
    if "faces" in results:  # the analyzer ran (or failed): its faces, maybe none
        faces = [
            FaceRecord(
                box=fr.box,
                score=fr.score,
                person_id=fr.person_id,
                person=fr.person,
                embedding=_vector(fr.embedding),
            )
            for fr in faces_of(results).faces
        ]
    text = text_of(results)
    clip = clip_of(results)
    frames = [(fr.at, v) for fr in clip.frames if (v := _vector(fr.embedding)) is not None]
    people = sorted({fr.person for fr in faces or [] if fr.person})
    person_ids = sorted({int(fr.person_id) for fr in faces or [] if fr.person_id is not None})
    return PhotoRecord(
        id=int(f.id),
        share=f.share,
        path=storable(f.relpath),
        abs_path=storable(str(photo.path)) if photo.path is not None else None,
        sha256=photo.sha256,
        size=getattr(f, "size", None),
        mtime_ns=getattr(f, "mtime_ns", None),
        taken_at=taken_at,
        lat=lat,
        lon=lon,
        camera=meta.camera or facts.get("camera"),
        width=meta.width if meta.width is not None else facts.get("width"),
        height=meta.height if meta.height is not None else facts.get("height"),
        tags=person_tags(photo_tags(results), rejected, added),
        labels=list(tagger_of(results).labels),
        people=people,
        person_ids=person_ids,
        dhash=meta.dhash or facts.get("dhash"),
        vector=_vector(clip.embedding),
        faces=faces,
        taken_local=meta.taken_local if meta.taken_at else None,
        text=text.text,
        place=meta.place,
        kind=meta.kind,
        duration=meta.duration,
        frames=frames,
        live_photo_of=meta.live_photo_of,
        text_times=[{"text": ln.text, "at": ln.at} for ln in text.lines if ln.at is not None],
        person_times=_person_times(faces_of(results).faces),
    )


def _person_times(faces: Iterable[Any]) -> list[dict[str, Any]]:
    """{"person", "at"} of each named person seen at a time in a video: the
    time of their best-scored face."""
    best: dict[str, tuple[float, float]] = {}
    for fr in faces:
        if fr.person and fr.at is not None and fr.score > best.get(fr.person, (-1.0, 0.0))[0]:
            best[fr.person] = (fr.score, float(fr.at))
    return [{"person": p, "at": at} for p, (_, at) in sorted(best.items())]


def _timed(items: Any, key: str) -> list[dict[str, Any]]:
    """Stored {key, "at"} structs back as dicts, those with both."""
    return [
        {key: it[key], "at": float(it["at"])}
        for it in items or []
        if it and it.get(key) is not None and it.get("at") is not None
    ]


def record_from_row(row: dict[str, Any]) -> PhotoRecord:
    """A stored row back into a record (for moves and renames, which rewrite rows).

    Everything a row holds comes back, a video's times included: its tags get
    their "at" again from `tag_times` (the tags struct has none), so writing the
    record gives the same row. Its frames are left as they are (`frames` None)."""
    vec = row.get("vector")
    taken = row.get("taken_local")
    seen = {t["tag"]: t["at"] for t in _timed(row.get("tag_times"), "tag")}
    tags = [
        {**t, "at": seen[t["tag"]]} if t.get("tag") in seen else dict(t)
        for t in row.get("tags") or []
    ]
    return PhotoRecord(
        id=row["id"],
        share=row["share"],
        path=row["path"],
        abs_path=row.get("abs_path"),
        sha256=row.get("sha256"),
        size=row.get("size"),
        mtime_ns=row.get("mtime_ns"),
        taken_at=row.get("taken_at"),
        lat=row.get("lat"),
        lon=row.get("lon"),
        camera=row.get("camera"),
        width=row.get("width"),
        height=row.get("height"),
        tags=tags,
        labels=list(row.get("labels") or []),
        people=list(row.get("people") or []),
        person_ids=list(row.get("person_ids") or []),
        dhash=row.get("dhash"),
        vector=np.asarray(vec, dtype=np.float32) if vec is not None else None,
        faces=None,
        taken_local=taken.isoformat() if isinstance(taken, datetime) else None,
        text=row.get("ocr_text") or "",
        place=Place.from_dict(row),
        kind=row.get("kind") or "photo",
        duration=row.get("duration"),
        text_times=_timed(row.get("text_times"), "text"),
        person_times=_timed(row.get("person_times"), "person"),
    )


# -- derived columns ---------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _keys_of(name: str) -> tuple[str, ...]:
    parts = [p.strip().lower() for p in name.split("|") if p.strip()]
    keys: set[str] = set()
    for i, part in enumerate(parts):
        keys.add(part)
        keys.add("|".join(parts[: i + 1]))
    return tuple(keys)


def tag_keys(tags: Iterable[dict[str, Any]]) -> list[str]:
    """Lowercased keys a tag filter may name: the full path, every ancestor path
    and every segment ("Animals|Dog" -> animals, animals|dog, dog). Cached per
    tag name: the vocabulary is small and this runs for every written row."""
    keys: set[str] = set()
    for t in tags:
        name = t.get("tag")
        if name:
            keys.update(_keys_of(str(name)))
    return sorted(keys)


def storable(path: str) -> str:
    """A path as the index stores it: valid UTF-8 (Arrow strings must be), and
    lossless (`restore_path` gives the same path back, so the same bytes).

    File names are bytes on Linux and need not be UTF-8; Python keeps the bad
    bytes as lone surrogates (surrogateescape). Each such byte is stored as
    `\\xNN` (two lowercase hex digits, always 80-ff) and a backslash as `\\\\`;
    every other character is itself. So nearly every path is stored as it is,
    '/' stays '/', and the form of a folder is a prefix of the form of
    everything in it (delete and move match prefixes in SQL).
    """
    if "\\" not in path:
        try:
            path.encode("utf-8")
            return path
        except UnicodeEncodeError:
            pass
    return os.fsencode(path.replace("\\", "\\\\")).decode("utf-8", "backslashreplace")


_STORED_ESCAPE = re.compile(r"\\(\\|x[89a-f][0-9a-f])")


def restore_path(stored: str) -> str:
    """The path `storable` was given (a str with surrogates for bytes that are
    not UTF-8; `os.fsencode` of it is the name on disk).

    A backslash that starts no escape is read as itself: index schema 1 kept
    backslashes as they were (its migration escapes them, see schema.py).
    """
    if "\\" not in stored:
        return stored
    raw = bytearray()
    pos = 0
    for match in _STORED_ESCAPE.finditer(stored):
        raw += os.fsencode(stored[pos : match.start()])
        escape = match.group(1)
        raw += b"\\" if escape == "\\" else bytes([int(escape[1:], 16)])
        pos = match.end()
    raw += os.fsencode(stored[pos:])
    return os.fsdecode(bytes(raw))


def path_words(path: str) -> str:
    """Words of a path for full-text search: "2023/Beach_Trip/IMG_01.jpg" ->
    "2023 Beach Trip IMG 01 jpg" (the FTS tokenizer lowercases)."""
    return " ".join(w for w in _WORD_SPLIT.split(path) if w)


def search_text(rec: PhotoRecord) -> str:
    """One document per photo for the full-text index (LanceDB's native FTS
    indexes one column): tags, classifier labels, person names, path words,
    camera, place names and the recognized text."""
    parts: list[str] = []
    for t in rec.tags:
        parts.append(str(t.get("tag") or "").replace("|", " "))
    for lab in rec.labels:
        parts.append(str(lab.get("label") or ""))
    parts.extend(rec.people)
    parts.append(path_words(rec.path))
    if rec.camera:
        parts.append(rec.camera)
    if rec.place is not None:
        parts.extend(n for n in (rec.place.city, rec.place.region, rec.place.country) if n)
    if rec.text:
        parts.append(rec.text.replace("\n", " "))
    return " ".join(p for p in parts if p)


def tag_times(tags: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """{"tag", "at"} of each tag seen at a time in a video (the frame where it
    scored best): a text search that matches the tag points at that moment."""
    out = []
    for t in tags:
        at = t.get("at")
        if t.get("tag") and isinstance(at, int | float) and not isinstance(at, bool):
            out.append({"tag": str(t["tag"]), "at": float(at)})
    return out


def place_keys(place: Place | None) -> list[str]:
    """What `--place` may name: town, region, country or its code, folded as
    the geocoder folds names (accents, case and punctuation do not matter)."""
    if place is None:
        return []
    return sorted({fold(n) for n in place.names() if fold(n)})


def squash(text: str) -> str:
    """Folded text with everything but letters and digits removed: the form in
    which OCR's joins and splits stop mattering ("SDN BHD" and "SDNBHD" are both
    "sdnbhd")."""
    return _NOT_WORD.sub("", fold(text))


def joined_text(text: str) -> str | None:
    """The recognized text for substring matching: each line squashed, lines
    apart (a match does not run from one line into the next)."""
    lines = [squash(line) for line in text.splitlines()]
    out = " ".join(line for line in lines if line)
    return out or None


def wall_clock(rec: PhotoRecord) -> datetime | None:
    """The capture time at the place: the metadata analyzer's `taken_local`, else
    the camera's time without its offset."""
    if rec.taken_local:
        try:
            return datetime.fromisoformat(rec.taken_local).replace(tzinfo=None)
        except ValueError:
            log.debug("unparseable taken_local %r", rec.taken_local)
    return local_time(rec.taken_at)


def dhash_int(value: str | None) -> int | None:
    """A 16-hex-digit dHash as a signed 64-bit integer (same bits), or None."""
    if not value:
        return None
    try:
        bits = int(value, 16)
    except ValueError:
        return None
    if bits >> 64:
        return None
    return bits - (1 << 64) if bits >> 63 else bits


def local_time(taken_at: str | None) -> datetime | None:
    """The wall-clock capture time (offset dropped), or None when unparseable."""
    if not taken_at:
        return None
    text = taken_at.strip().replace("Z", "+00:00")
    if len(text) >= 19 and text[4] == ":" and text[7] == ":":  # EXIF "YYYY:MM:DD HH:MM:SS"
        text = text[:4] + "-" + text[5:7] + "-" + text[8:]
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        log.debug("unparseable taken_at %r", taken_at)
        return None
    return dt.replace(tzinfo=None)


def photos_table(records: Sequence[PhotoRecord], vector_dim: int) -> pa.Table:
    """Arrow rows for `photos`. A vector of the wrong size is stored as null
    (and logged) rather than failing the whole batch."""
    schema = photos_schema(vector_dim)
    n = len(records)
    flat = np.zeros((n, vector_dim), dtype=np.float32)
    valid = np.zeros(n, dtype=bool)
    for i, r in enumerate(records):
        if r.vector is None:
            continue
        if r.vector.shape != (vector_dim,):
            log.warning(
                "photo %s/%s: CLIP vector of shape %s ignored (expected %d floats)",
                r.share,
                r.path,
                r.vector.shape,
                vector_dim,
            )
            continue
        flat[i] = r.vector
        valid[i] = True
    finite = np.isfinite(flat).all(axis=1)
    for bad in np.flatnonzero(valid & ~finite).tolist():
        log.warning(
            "photo %s/%s: CLIP vector with NaN or inf ignored",
            records[bad].share,
            records[bad].path,
        )
    valid &= finite
    vectors = pa.FixedSizeListArray.from_arrays(
        pa.array(flat.reshape(-1)), vector_dim, mask=pa.array(~valid)
    )
    cols: dict[str, Any] = {
        "id": [r.id for r in records],
        "share": [r.share for r in records],
        "path": [r.path for r in records],
        "abs_path": [r.abs_path for r in records],
        "sha256": [r.sha256 for r in records],
        "size": [r.size for r in records],
        "mtime_ns": [r.mtime_ns for r in records],
        "taken_at": [r.taken_at for r in records],
        "taken_local": [wall_clock(r) for r in records],
        "lat": [r.lat for r in records],
        "lon": [r.lon for r in records],
        "camera": [r.camera for r in records],
        "width": [r.width for r in records],
        "height": [r.height for r in records],
        # pyarrow takes the analyzer dicts as they are (missing keys -> null,
        # extra keys ignored), which saves a copy per tag.
        "tags": [r.tags for r in records],
        "tag_keys": [tag_keys(r.tags) for r in records],
        "labels": [r.labels for r in records],
        "people": [list(r.people) for r in records],
        "people_keys": [sorted({p.lower() for p in r.people}) for r in records],
        "person_ids": [list(r.person_ids) for r in records],
        "dhash": [r.dhash for r in records],
        "dhash_int": [dhash_int(r.dhash) for r in records],
        "search_text": [search_text(r) for r in records],
        "ocr_text": [r.text or None for r in records],
        "ocr_joined": [joined_text(r.text) for r in records],
        "country_code": [r.place.country_code if r.place else None for r in records],
        "country": [r.place.country if r.place else None for r in records],
        "region": [r.place.region if r.place else None for r in records],
        "city": [r.place.city if r.place else None for r in records],
        "place_keys": [place_keys(r.place) for r in records],
        "kind": [r.kind for r in records],
        "duration": [r.duration for r in records],
        "tag_times": [tag_times(r.tags) for r in records],
        "text_times": [r.text_times for r in records],
        "person_times": [r.person_times for r in records],
    }
    arrays = [
        vectors if f.name == "vector" else pa.array(cols[f.name], type=f.type) for f in schema
    ]
    return pa.Table.from_arrays(arrays, schema=schema)
