"""The second check before a merged sidecar is committed: exiftool's view.

``exiftool -j -struct -G1 -n`` of the old and the new file must agree on every
tag except the items we removed and our own namespace (`exiftool_loss`). This
is independent of our own RDF reader, so a mistake in one is caught by the other.
"""

from __future__ import annotations

import json
from typing import Any

from photovault.sidecar import schema

#: exiftool JSON keys that differ between any two files and say nothing of content.
_SKIP_GROUPS = ("System:", "File:", "ExifTool:", "XMP-photovault:")
_SKIP_TAGS = {"SourceFile", "XMP-x:XMPToolkit"}
_KEYWORD_TAGS = ("XMP-dc:Subject", "XMP-lr:HierarchicalSubject", "XMP-digiKam:TagsList")


def exiftool_loss(
    before: dict[str, Any], after: dict[str, Any], removed: dict[str, list[str]] | None = None
) -> str | None:
    """Compare two ``exiftool -j -struct -G1 -n`` records of a sidecar.

    Every tag of `before` must be in `after` with the same value, except that our
    namespace is ignored, keyword lists may lose the items in `removed` and gain
    items, region lists may lose and gain regions carrying our FaceID (MWG) or
    listed in our MPRegions (MP), and a place field still holding the value our
    photovault:Written<Field> recorded is ours to change. Returns None, or the
    first difference.
    """
    removed = removed or {}
    owned_rects = set(_as_list(before.get("XMP-photovault:MPRegions")))
    ours = {
        f.exiftool
        for f in schema.PLACE_FIELDS
        if f.exiftool in before
        and str(before[f.exiftool]) == str(before.get(f"XMP-photovault:{f.record}"))
    }
    for tag, value in before.items():
        if tag in _SKIP_TAGS or tag.startswith(_SKIP_GROUPS) or tag in ours:
            continue
        if tag not in after and tag not in _KEYWORD_TAGS:  # an emptied keyword list goes
            return f"{tag} is gone"
        new = after.get(tag)
        if tag in _KEYWORD_TAGS:
            pool = _as_list(new)
            for item in _as_list(value):
                if item in removed.get(tag, []):
                    continue
                if item not in pool:
                    return f"{tag} lost {item!r}"
                pool.remove(item)
        elif tag == "XMP-mwg-rs:RegionInfo":
            problem = _struct_list_loss(value, new, "RegionList", _is_our_mwg_region)
            if problem:
                return f"{tag}: {problem}"
        elif tag == "XMP-MP:RegionInfoMP":
            problem = _struct_list_loss(
                value, new, "Regions", lambda r: r.get("Rectangle") in owned_rects
            )
            if problem:
                return f"{tag}: {problem}"
        elif value != new:
            return f"{tag} changed"
    return None


def _as_list(value: Any) -> list[Any]:
    if value is None or value == "":
        return []
    return list(value) if isinstance(value, list) else [value]


def _is_our_mwg_region(region: Any) -> bool:
    ext = region.get("Extensions") if isinstance(region, dict) else None
    return isinstance(ext, dict) and any(key.endswith("FaceID") for key in ext)


def _struct_list_loss(before: Any, after: Any, list_key: str, is_ours) -> str | None:
    if not isinstance(before, dict):
        return None if before == after else "changed"
    if not isinstance(after, dict):
        return "is no longer a struct"
    for key, value in before.items():
        if key == list_key:
            pool = [r for r in _as_list(after.get(key)) if not is_ours(r)]
            for region in _as_list(value):
                if is_ours(region):
                    continue
                if region not in pool:
                    return f"{key} lost or changed {json.dumps(region)[:80]}"
                pool.remove(region)
        elif after.get(key) != value:
            return f"{key} changed"
    return None
