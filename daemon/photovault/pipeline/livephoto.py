"""Apple live photos: a still (`IMG_1.HEIC`) and a short video (`IMG_1.MOV`) that
belong together.

The pair is one item: the still is analyzed, indexed and searched; the video half
is catalogued (so `show` knows it, and export copies it) but not analyzed frame
by frame nor indexed on its own, or every live photo would come up twice. A video
is the video half when Apple marked it as one (QuickTime `ContentIdentifier`, which
only live-photo videos carry) and its still lies beside it under the same name.
The still is looked for, not assumed: a clip copied without its still is a video.

Which half arrives first is up to the copy: when the still comes second, its video
half is sent through the pipeline again (`companions_to_recheck`), which costs one
short decode and re-runs only the metadata step.
"""

from __future__ import annotations

import os
from pathlib import Path

from photovault.media.formats import RASTER_EXTENSIONS
from photovault.media.types import PhotoMetadata

#: Extensions a live photo's still and video use (iPhones write HEIC or JPEG + MOV).
STILL_EXTENSIONS = ("heic", "heif", "jpg", "jpeg")
VIDEO_EXTENSIONS = ("mov",)


def _sibling(path: Path, extensions: tuple[str, ...]) -> str | None:
    """The name of a file beside `path` with its stem and one of these extensions in
    either case, if one exists (checked by name: a folder may hold 10k files)."""
    stem = path.name.rpartition(".")[0]
    if not stem:
        return None
    for ext in extensions:
        for variant in (ext.upper(), ext):
            name = f"{stem}.{variant}"
            if name != path.name and os.path.isfile(path.parent / name):
                return name
    return None


def still_of(path: Path, kind: str, meta: PhotoMetadata | None) -> str | None:
    """For the video half of a live photo, its still's file name; else None."""
    if kind != "video" or meta is None or not meta.extra.get("content_identifier"):
        return None
    return _sibling(path, STILL_EXTENSIONS)


def video_of(path: Path, kind: str) -> str | None:
    """For a still with a live-photo video beside it, that video's file name."""
    if kind == "video" or path.name.rpartition(".")[2].lower() not in RASTER_EXTENSIONS:
        return None
    return _sibling(path, VIDEO_EXTENSIONS)


def live_fields(path: Path, kind: str, meta: PhotoMetadata | None) -> dict[str, str]:
    """{"live_photo_of": still} for a video half, {"live_video": video} for a still
    with one, {} otherwise: what the item's metadata result records."""
    still = still_of(path, kind, meta)
    if still:
        return {"live_photo_of": still}
    video = video_of(path, kind)
    return {"live_video": video} if video else {}


def changed(stored: dict[str, object], live: dict[str, str]) -> bool:
    """Whether the live-photo fields of stored results differ from `live` (the
    other half arrived or went since the item was analyzed)."""
    meta = stored.get("metadata")
    if not isinstance(meta, dict) or "error" in meta:
        return False
    return any(meta.get(k) != live.get(k) for k in ("live_photo_of", "live_video"))
