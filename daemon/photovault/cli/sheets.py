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
    from photovault.media.decode import decode_image
    from photovault.media.types import MediaError
    from photovault.media.video import frame_at
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
                cache[key] = (
                    frame_at(Path(path), float(f["at"]), 1024)
                    if f.get("at") is not None
                    else decode_image(Path(path), 1024).pixels
                )
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
    from photovault.media.decode import decode_image
    from photovault.media.types import MediaError
    from photovault.people.sheet import render_face_sheet

    thumbs, labels = [], []
    for rank, r in enumerate(results, 1):
        at = r.get("at")
        try:
            if r.get("kind") == "video":
                thumbs.append(_video_frame(Path(r["path"]), float(at or 0.0), 256))
            else:
                thumbs.append(decode_image(Path(r["path"]), 256).pixels)
        except (MediaError, OSError) as exc:
            print(f"vaultctl: skipped {r['path']}: {exc}", file=sys.stderr)
            continue
        name = os.fsencode(Path(r["path"]).name).decode("utf-8", "replace")  # drawable
        labels.append(f"{rank}. {name}" + (f" @ {clock(at)}" if at is not None else ""))
    render_face_sheet(thumbs, out, tile=200, labels=labels)
    return len(thumbs)


def _video_frame(path: Path, at: float, side: int) -> Any:
    """The upright RGB frame of a video at `at` seconds (media.video decodes it)."""
    from photovault.media.video import frame_at

    return frame_at(path, at, side)
