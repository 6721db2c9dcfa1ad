"""Sidecar stage: XMP read, merge and atomic write.

Users see our tags and faces in digiKam, darktable, Lightroom and exiftool through
the sidecars, and keep them if they leave us; a sidecar often already holds a
person's own work, so this package never rewrites what it does not own.

Public API
----------
model
    ``Keyword(path, confidence=None, source="")``,
    ``FaceRegion(box, name=None, face_id=None, confidence=None, model=None)`` with
    ``box`` = normalized top-left (x, y, w, h) in the ORIENTED image,
    ``SidecarContent(keywords=(), faces=(), analyzed_at="", model_versions={},
    place=None, text=None, kind="photo", live_photo_of=None)`` (``place`` a
    `photovault.results.Place`, ``text`` the recognized lines joined by line
    breaks; a ``kind="video"`` gets no face regions, only ``People|name``
    keywords, and the video half of a live photo, ``live_photo_of`` set, no
    sidecar at all).
geometry
    ``oriented_to_stored(box, orientation)``, ``stored_to_oriented(box, orientation)``
    for EXIF orientations 1-8; ``to_centre`` / ``from_centre`` (MWG),
    ``mp_rectangle`` / ``parse_mp_rectangle`` (Microsoft MP), ``clamp``, ``iou``.
naming
    ``sidecar_path(photo, naming="ext"|"base", *, share_root, read_only=False,
    mirror_root=None) -> Path`` and ``locate_sidecar(...) -> SidecarLocation``
    (``path``, ``mirrored_because``: a name too long for its folder, or a path too
    long for the system, goes to the mirror tree); ``is_sidecar_name(name)``,
    ``is_temp_name(name)`` (the watcher's ignore rule), ``is_own_temp(name)``
    (exactly our temp files).
writer
    ``SidecarWriter(*, exiftool="exiftool", config=CONFIG_PATH,
    verify_with_exiftool=True, max_attempts=3, max_bytes=...)`` with
    ``write(photo, sidecar, content, stored_size, orientation) -> WriteResult``
    (``status`` written/unchanged/skipped/failed, ``fingerprint``, ``warnings``),
    ``read_json(*paths)`` (paths go to exiftool as their raw bytes) and
    ``close()``; thread-safe (one lock, one exiftool). ``permanent_reason(err,
    path)``: why an OSError means the sidecar can never be written there (a
    folder in its place, ENOTDIR, ELOOP, ENAMETOOLONG), else None.
    ``remove_stale_temps(root, *, before=None, should_stop=...) -> int``: the temp
    files a crash left under a share (links not followed).
reader
    ``read_sidecar(path, orientation=1) -> ReadResult`` (never raises on file
    content; ``removed`` lists keywords of ours a person took out; ``place``
    maps each place field held to (value, ours); ``text`` is our text),
    ``adopted_names(before, after) -> list[Adoption]``, ``Fingerprint``,
    ``read_regular(path, max_bytes)`` (``O_NOFOLLOW``; ``UnsafeSidecar`` for a link).

What we write: dc:subject (leaves), lr:hierarchicalSubject ("A|B"),
digiKam:TagsList ("A/B"), MWG face regions in the stored frame (centre-based,
normalized, with AppliedToDimensions), Microsoft MP regions (top-left, same
frame, as digiKam writes them) and the place: photoshop:City, photoshop:State
(region), photoshop:Country and Iptc4xmpCore:CountryCode, each only where the
file has no value of its own. Provenance lives in our namespace
``photovault`` = ``http://ns.photovault.local/xmp/1.0/`` (``exiftool.config``
teaches exiftool its tags): per photo SchemaVersion, AnalyzedAt, Models, Text
(the recognized text; never dc:description, which is the person's),
KeywordDetails, the ownership lists Subjects / HierarchicalSubjects / TagsList
/ MPRegions, the place values we wrote (WrittenCity / WrittenState /
WrittenCountry / WrittenCountryCode: a field still holding it is ours to update
or remove) and PersonFields (place fields a person changed or removed after our
write: never written by us again); per region, inside ``mwg-rs:Extensions``:
FaceID, Confidence, Model, AnalyzedAt, WrittenName.

Never followed, never wider: a sidecar that is a symbolic link (or not a regular
file) is neither read nor replaced, and a sidecar is never more readable than its
photo (see `writer`).

How it works: `merge` splices bytes (see its docstring for why no XMP library's
re-serialization is safe), `writer` verifies with our RDF reader and exiftool and
commits atomically, `rdf` is the span-keeping RDF parser both use.
"""
