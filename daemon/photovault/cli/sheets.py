"""Contact sheets vaultctl renders itself, from photos this user can read.

The decoders and the drawing (numpy, Pillow) are imported only when a sheet
is asked for, so the other commands stay fast.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from photovault.cli.output import clock


def render_sheet(faces: list[dict[str, Any]], out: str, columns: int | None = None) -> int:
    """Contact sheet of face crops, rendered here from photos this user can read (a
    face seen in a video from the frame it was seen in)."""
    from photovault.media.types import MediaError
    from photovault.people.sheet import crop_face, render_face_sheet

    crops, labels = [], []
    cache: dict[str, Any] = {}
    for f in faces[:120]:
        path = f.get("path")
        if not path:
            continue
        key = f"{path}@{f['at']}" if f.get("at") is not None else path
        if key not in cache:
            try:
                at = f.get("at")
                cache[key] = _picture(Path(path), None if at is None else float(at), 1024)
            except (MediaError, OSError) as exc:
                print(f"vaultctl: skipped {path}: {exc}", file=sys.stderr)
                cache[key] = None
        if cache[key] is not None:
            crops.append(crop_face(cache[key], f["box"]))
            labels.append(f.get("label") or f"face {f['id']}")
    render_face_sheet(crops, out, labels=labels, columns=columns)
    return len(crops)


def render_contact_sheet(results: list[dict[str, Any]], out: str) -> int:
    """Thumbnails of results with their rank and file name, for people who would
    rather look than read; a video hit shows its frame at the moment found.
    Rendered here, from files this user can read."""
    from photovault.media.types import MediaError
    from photovault.people.sheet import render_face_sheet

    thumbs, labels = [], []
    for rank, r in enumerate(results, 1):
        at = r.get("at")
        if at is None and r.get("kind") == "video":
            at_or_start: float | None = 0.0  # no moment (a match on no frame): its start
        else:
            at_or_start = None if at is None else float(at)
        try:
            thumbs.append(_picture(Path(r["path"]), at_or_start, 256))
        except (MediaError, OSError) as exc:
            print(f"vaultctl: skipped {r['path']}: {exc}", file=sys.stderr)
            continue
        name = os.fsencode(Path(r["path"]).name).decode("utf-8", "replace")  # drawable
        labels.append(f"{rank}. {name}" + (f" @ {clock(at)}" if at is not None else ""))
    render_face_sheet(thumbs, out, tile=200, labels=labels)
    return len(thumbs)


def _picture(path: Path, at: float | None, side: int) -> Any:
    """The upright RGB pixels to show of a file: a video's frame at `at` seconds;
    with no time, the image, or the first frame of a video that was not known
    to be one (a hit or face without "at", e.g. its metadata failed): a video
    never fails to show for want of a time."""
    from photovault.media.decode import decode_image
    from photovault.media.types import MediaError
    from photovault.media.video import frame_at

    if at is not None:
        return frame_at(path, at, side)
    try:
        return decode_image(path, side).pixels
    except MediaError as exc:
        try:
            return frame_at(path, 0.0, side)
        except MediaError:
            raise exc from None
