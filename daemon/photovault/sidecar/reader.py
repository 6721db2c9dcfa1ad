"""Read a sidecar back: keywords, face regions with names, and what is ours.

The daemon reads a sidecar when the watcher reports it changed (a person named a
face in digiKam, say) and before every write. Sidecars are user files written by
many programs, so this module never raises on their content: a file that cannot
be read safely gives a `ReadResult` with `problem` set, and oddities that can be
worked around (pixel-unit regions, missing fields) are listed in `warnings`. The
photo is indexed either way.

A sidecar is only ever opened with ``O_NOFOLLOW`` (`read_regular`): a symbolic
link, which a share user may point at a file only vaultd's user can read, is
never followed, and neither is anything that is not a regular file (a FIFO
would block the stage).
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from photovault.sidecar import geometry, schema
from photovault.sidecar.rdf import XmpSyntaxError, find_rdf, parse_xml, properties
from photovault.sidecar.schema import DC, DIGIKAM, LR, PV, k

log = logging.getLogger(__name__)

#: Sidecars larger than this are not parsed (nor rewritten); real ones are < 1 MiB.
MAX_SIDECAR_BYTES = 16 * 1024 * 1024

#: Two boxes with at least this overlap (IoU) are taken to be the same face.
SAME_FACE_IOU = 0.5


@dataclass(frozen=True)
class Fingerprint:
    """What identifies one version of a file: the watcher compares it with the
    fingerprint of our last write to recognise its own change and not loop."""

    mtime_ns: int
    size: int
    sha256: str


def fingerprint_bytes(path: Path, data: bytes) -> Fingerprint | None:
    """Fingerprint of `data` as the current content of `path` (None if gone)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return Fingerprint(st.st_mtime_ns, st.st_size, hashlib.sha256(data).hexdigest())


class UnsafeSidecar(Exception):
    """The sidecar is a symbolic link or not a regular file: never read, never replaced."""


def read_regular(path: Path, max_bytes: int) -> tuple[bytes, os.stat_result] | None:
    """Up to `max_bytes` + 1 bytes of a sidecar and its `fstat`, None when missing.

    Opened with ``O_NOFOLLOW | O_NONBLOCK``: raises `UnsafeSidecar` (naming the
    file) for a symbolic link or anything but a regular file, `OSError` for other
    trouble (permissions, I/O).
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError:
        if os.path.islink(path):  # ELOOP on Linux, EMLINK on some BSDs
            raise UnsafeSidecar(
                f"{Path(path).name} is a symbolic link; not followed, left untouched"
            ) from None
        raise
    try:
        st = os.fstat(fd)
    except BaseException:
        os.close(fd)
        raise
    if not stat.S_ISREG(st.st_mode):  # before fdopen, which refuses a folder (EISDIR)
        os.close(fd)
        what = "a folder, not a regular file" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise UnsafeSidecar(f"{Path(path).name} is {what}; left untouched")
    with os.fdopen(fd, "rb") as fh:
        return fh.read(max_bytes + 1), st


@dataclass(frozen=True)
class ReadKeyword:
    """A keyword found in the sidecar; `ours` when one of our writes added it."""

    path: tuple[str, ...]
    ours: bool


@dataclass(frozen=True)
class ReadFace:
    """A face region found in the sidecar.

    `box` is top-left (x, y, w, h), normalized, in the ORIENTED frame (converted
    with the orientation passed to `read_sidecar`), None when the region cannot be
    placed. `written_name` is the name our last write gave it; a different `name`
    means a person named or renamed it elsewhere. `source` is "mwg" or "mp".
    """

    box: tuple[float, float, float, float] | None
    name: str | None
    type: str | None
    face_id: str | None
    ours: bool
    written_name: str | None = None
    confidence: float | None = None
    model: str | None = None
    source: str = "mwg"


@dataclass
class ReadResult:
    """Everything `read_sidecar` learned. `problem` set means: not safely readable,
    leave the file alone (the writer will not touch it either)."""

    path: Path
    exists: bool = False
    problem: str | None = None
    warnings: list[str] = field(default_factory=list)
    subjects: list[str] = field(default_factory=list)
    hierarchical: list[str] = field(default_factory=list)
    tags_list: list[str] = field(default_factory=list)
    keywords: list[ReadKeyword] = field(default_factory=list)
    #: Keyword paths of ours that a person removed (`schema.removed_keywords`).
    removed: list[tuple[str, ...]] = field(default_factory=list)
    faces: list[ReadFace] = field(default_factory=list)
    applied_to_dimensions: tuple[float, float] | None = None
    analyzed_at: str | None = None
    #: Place fields the file holds: "photoshop:City" -> (value, ours); not ours
    #: when a person or another program set it, or changed the value we wrote.
    place: dict[str, tuple[str, bool]] = field(default_factory=dict)
    #: Our recognized text (photovault:Text), None when there is none.
    text: str | None = None
    fingerprint: Fingerprint | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def encoding_problem(data: bytes) -> str | None:
    """Why bytes must not be parsed/rewritten as UTF-8 XMP, or None.

    A UTF-8 byte order mark is fine (kept as is). UTF-16/32 sidecars are legal XMP
    but rare; splicing UTF-8 into them would corrupt them, so they are left alone.
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or (len(data) > 1 and b"\x00" in data[:4]):
        return "sidecar is UTF-16/UTF-32 encoded; left untouched (only UTF-8 is rewritten)"
    return None


def parse_packet(data: bytes) -> tuple[dict[str, object] | None, str | None]:
    """(properties, None) or (None, problem) for the bytes of a sidecar."""
    if len(data) > MAX_SIDECAR_BYTES:
        return None, f"sidecar is {len(data)} bytes, over the {MAX_SIDECAR_BYTES} byte limit"
    problem = encoding_problem(data)
    if problem:
        return None, problem
    if not data.strip(b" \t\r\n\xef\xbb\xbf"):
        return None, "sidecar is empty"
    try:
        return properties(find_rdf(parse_xml(data))), None
    except XmpSyntaxError as err:
        return None, f"sidecar is not valid XMP: {err}"


def _keywords(result: ReadResult, props: dict[str, object]) -> None:
    result.subjects = schema.texts(props.get(k(DC, "subject")))
    result.hierarchical = schema.texts(props.get(k(LR, "hierarchicalSubject")))
    result.tags_list = schema.texts(props.get(k(DIGIKAM, "TagsList")))
    for ns, local, _own, _sep in schema.KEYWORD_ARRAYS:
        value = props.get(k(ns, local))
        if value is not None and not isinstance(value, schema.Arr):
            result.warnings.append(f"{local} is not an array; ignored")
    ours_flat = schema.owned(props, "Subjects")
    ours_hier = schema.owned(props, "HierarchicalSubjects")
    ours_tags = schema.owned(props, "TagsList")
    seen: dict[tuple[str, ...], bool] = {}
    for entry in result.hierarchical:
        path = tuple(p for p in entry.split("|") if p)
        if path:
            seen[path] = seen.get(path, False) or entry in ours_hier
    for entry in result.tags_list:
        path = tuple(p for p in entry.split("/") if p)
        if path:
            seen[path] = seen.get(path, False) or entry in ours_tags
    leaves = {p[-1] for p in seen}
    for entry in result.subjects:
        if entry not in leaves:
            seen[(entry,)] = entry in ours_flat
    result.keywords = [ReadKeyword(p, o) for p, o in seen.items()]
    result.removed = schema.removed_keywords(props)


def _faces(result: ReadResult, props: dict[str, object], orientation: int) -> None:
    result.applied_to_dimensions = schema.applied_dims(props)
    for region in schema.mwg_regions(props):
        if region.problem:
            result.warnings.append(f"MWG region {region.name or '(unnamed)'}: {region.problem}")
        if region.area is not None and region.unit in (None, ""):
            result.warnings.append(
                f"MWG region {region.name or '(unnamed)'}: stArea:unit missing, read as normalized"
            )
        box = None
        if region.area is not None:
            box = geometry.stored_to_oriented(geometry.from_centre(region.area), orientation)
        result.faces.append(
            ReadFace(
                box=box,
                name=region.name,
                type=region.type,
                face_id=region.face_id,
                ours=region.ours,
                written_name=region.written_name,
                confidence=region.confidence,
                model=region.model,
            )
        )
    owned_rects = schema.owned(props, "MPRegions")
    for mp in schema.mp_regions(props):
        rect = geometry.parse_mp_rectangle(mp.rectangle or "")
        if rect is None:
            result.warnings.append(f"MP region {mp.name or '(unnamed)'}: bad Rectangle")
        box = geometry.stored_to_oriented(rect, orientation) if rect else None
        result.faces.append(ReadFace(box, mp.name, "Face", None, mp.ours(owned_rects), source="mp"))


def read_sidecar(path: Path, orientation: int = 1) -> ReadResult:
    """Read one sidecar; never raises for bad file content (only for a bad
    `orientation` argument, which is a programming error).

    A missing sidecar is not a problem: `exists` is False and the lists are empty.
    """
    geometry._check(orientation)
    result = ReadResult(Path(path))
    try:
        found = read_regular(Path(path), MAX_SIDECAR_BYTES)
    except UnsafeSidecar as err:
        result.exists = True
        result.problem = str(err)
        log.warning("sidecar %s: %s", path, result.problem)
        return result
    except OSError as err:
        result.problem = f"cannot read sidecar: {err.strerror or err}"
        log.warning("sidecar %s: %s", path, result.problem)
        return result
    if found is None:
        return result
    data, st = found
    result.exists = True
    result.fingerprint = Fingerprint(st.st_mtime_ns, st.st_size, hashlib.sha256(data).hexdigest())
    props, problem = parse_packet(data)
    if props is None:
        result.problem = problem
        log.warning("sidecar %s: %s", path, problem)
        return result
    _keywords(result, props)
    _faces(result, props, orientation)
    result.analyzed_at = schema.text_of(props.get(k(PV, "AnalyzedAt")))
    result.place = schema.place_fields(props)
    result.text = schema.text_of(props.get(k(PV, "Text"))) or None
    for warning in result.warnings:
        log.info("sidecar %s: %s", path, warning)
    return result


@dataclass(frozen=True)
class Adoption:
    """A person gave (or changed, or removed: `name` None) the name of one of our
    faces in another program; the pipeline adopts it without new inference."""

    face_id: str
    name: str | None
    previous_name: str | None
    matched_by: str  # "face_id" or "overlap"


def adopted_names(before: ReadResult | None, after: ReadResult) -> list[Adoption]:
    """Faces whose name a person set in another program.

    A region that still carries our FaceID and whose name differs from the one we
    wrote is matched by id. When the other program dropped our Extensions, a region
    of `after` without FaceID that overlaps one of our regions of `before` by
    IoU >= 0.5 and has a different name is matched by overlap. `before` is the last
    read (or None); both must be read with the same orientation.
    """
    out: dict[str, Adoption] = {}
    ours_after = {f.face_id: f for f in after.faces if f.ours and f.face_id}
    for face in ours_after.values():
        if face.name != face.written_name and face.face_id:
            out[face.face_id] = Adoption(face.face_id, face.name, face.written_name, "face_id")
    if before is None:
        return list(out.values())
    foreign_after = [f for f in after.faces if not f.ours and f.source == "mwg" and f.box]
    for old in before.faces:
        if not (old.ours and old.face_id and old.box) or old.face_id in ours_after:
            continue
        best = max(foreign_after, key=lambda f: geometry.iou(f.box, old.box), default=None)  # type: ignore[arg-type]
        if best is None or geometry.iou(best.box, old.box) < SAME_FACE_IOU:  # type: ignore[arg-type]
            continue
        if best.name and best.name != old.name:
            out[old.face_id] = Adoption(old.face_id, best.name, old.name, "overlap")
    return list(out.values())
