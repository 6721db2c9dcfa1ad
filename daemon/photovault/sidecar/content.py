"""What we write into one photo's sidecar, built from its stored analyzer results.

`build_content` is pure: the tags (best confidence per keyword path), the face
regions with their person names (each name also a ``People|name`` keyword), the
model versions, the place and the recognized text. A video's faces give
``People|name`` keywords but no regions (time-based regions have no standard).
The sidecar stage calls it for every photo it writes; tests and tools call it
to see what would be written.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from photovault.results import faces_of, metadata_of, photo_tags, text_of
from photovault.sidecar.model import FaceRegion, Keyword, SidecarContent


def build_content(
    results: dict[str, Any], faces: list[dict[str, Any]], signature: str
) -> SidecarContent:
    """What we write for one photo, from its stored analyzer results."""
    best: dict[tuple[str, ...], Keyword] = {}
    for tag in photo_tags(results):
        path = tuple(p for p in str(tag["tag"]).split("|") if p)
        if not path:
            continue
        conf = tag.get("confidence")
        old = best.get(path)
        if old is None or (conf or 0) > (old.confidence or 0):
            best[path] = Keyword(path, conf, str(tag.get("source") or ""))
    meta = metadata_of(results)
    regions = []
    model = faces_of(results).model
    for f in faces:
        name = f.get("person")
        if not meta.is_video:
            regions.append(FaceRegion(tuple(f["box"]), name, str(f["id"]), f.get("score"), model))
        if name:
            best.setdefault(("People", name), Keyword(("People", name), None, "faces"))
    versions = dict(part.split(":", 1) for part in signature.split(",") if ":" in part)
    return SidecarContent(
        keywords=tuple(best.values()),
        faces=tuple(regions),
        analyzed_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        model_versions=versions,
        place=meta.place,
        text=text_of(results).text or None,
        kind=meta.kind,
        live_photo_of=meta.live_photo_of,
    )
