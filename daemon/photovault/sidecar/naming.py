"""Where a photo's sidecar lives.

digiKam and darktable name a sidecar after the whole file name (``IMG_1.jpg.xmp``),
Lightroom and Capture One after the stem (``IMG_1.xmp``). We default to the former
and honour ``[sidecars] naming = "base"``; either way, a sidecar that already exists
under the other name is used rather than creating a second one, because two
sidecars for one photo means two programs that disagree about it.

Shares mounted read-only get their sidecars in a mirror tree under the state
directory, at the photo's path relative to its share.

Caveat of "base" naming: ``IMG_1.CR2`` and ``IMG_1.jpg`` map to the same
``IMG_1.xmp``. That is what Lightroom does too; "ext" naming avoids it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

Naming = Literal["ext", "base"]

SIDECAR_SUFFIXES = (".xmp", ".XMP")
#: Marker in the names of the temp files the writer renames into place.
TEMP_MARKER = ".pvtmp-"


def candidate_names(photo_name: str, naming: Naming) -> list[str]:
    """Sidecar names for a photo, preferred first (both suffix spellings)."""
    if naming not in ("ext", "base"):
        raise ValueError(f"sidecar naming must be 'ext' or 'base', got {naming!r}")
    stem = photo_name.rsplit(".", 1)[0] if "." in photo_name.lstrip(".") else photo_name
    ext_names = [photo_name + s for s in SIDECAR_SUFFIXES]
    base_names = [stem + s for s in SIDECAR_SUFFIXES]
    return ext_names + base_names if naming == "ext" else base_names + ext_names


def sidecar_path(
    photo: Path,
    naming: Naming = "ext",
    *,
    share_root: Path,
    read_only: bool = False,
    mirror_root: Path | None = None,
) -> Path:
    """The sidecar to read and write for `photo`.

    Returns the first existing candidate (preferred naming first, then the other
    naming), else the preferred name. For a read-only share the folder is
    ``mirror_root / <photo's folder relative to share_root>``; `mirror_root` is then
    required. Pure path logic plus `exists()` checks: nothing is created.
    """
    photo = Path(photo)
    if read_only:
        if mirror_root is None:
            raise ValueError("a read-only share needs a mirror_root for its sidecars")
        try:
            relative = photo.parent.relative_to(share_root)
        except ValueError as err:
            raise ValueError(f"{photo} is not under its share root {share_root}") from err
        folder = Path(mirror_root) / relative
    else:
        folder = photo.parent
    names = candidate_names(photo.name, naming)
    for name in names:
        candidate = folder / name
        if candidate.exists():
            return candidate
    return folder / names[0]


def is_sidecar_name(name: str) -> bool:
    """True for sidecar files and for our own temp files.

    The watcher uses it so that a sidecar is never queued as a photo; sidecar
    changes go to the sidecar read-back path instead (see `reader.adopted_names`),
    and our temp files are ignored entirely (see `is_temp_name`).
    """
    return name.endswith(SIDECAR_SUFFIXES) or is_temp_name(name)


def is_temp_name(name: str) -> bool:
    """True for the writer's temp files (``.IMG_1.jpg.xmp.pvtmp-<random>``)."""
    return name.startswith(".") and TEMP_MARKER in name
