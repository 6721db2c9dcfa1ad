"""Where a photo's sidecar lives.

digiKam and darktable name a sidecar after the whole file name (``IMG_1.jpg.xmp``),
Lightroom and Capture One after the stem (``IMG_1.xmp``). We default to the former
and honour ``[sidecars] naming = "base"``; either way, a sidecar that already exists
under the other name is used rather than creating a second one, because two
sidecars for one photo means two programs that disagree about it.

Shares mounted read-only get their sidecars in a mirror tree under the state
directory, at the photo's path relative to its share. So does a photo whose
sidecar name would be longer than its folder allows (a 255-byte file name plus
``.xmp``); when even the mirror cannot hold that name, the mirror name is the
name cut short plus a hash of the full name (`mirror_name`), the same on every
call, so `vaultctl sidecar` finds it again. A photo whose full path is so long
that its sidecar path (and the writer's temp file beside it) would pass the
system's PATH_MAX goes to the mirror tree too; when even the mirror path is too
long the writer skips the sidecar with that reason (a permanent condition, not
a fault to retry).

Caveat of "base" naming: ``IMG_1.CR2`` and ``IMG_1.jpg`` map to the same
``IMG_1.xmp``. That is what Lightroom does too; "ext" naming avoids it.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

Naming = Literal["ext", "base"]

SIDECAR_SUFFIXES = (".xmp", ".XMP")
#: Marker in the names of the temp files the writer renames into place.
TEMP_MARKER = ".pvtmp-"
#: NAME_MAX of Linux file systems: no file name is longer, in bytes.
NAME_MAX = 255
#: PATH_MAX of Linux (bytes, the terminating NUL included).
PATH_MAX = 4096
#: How much longer than its sidecar's name the writer's temp file name is:
#: ``.`` + NAME + ``.pvtmp-`` + 12 hex + ``.xmp``.
TEMP_EXTRA = len(".") + len(".pvtmp-") + 12 + len(".xmp")
#: Exactly the names of our temp files: ``.<sidecar name>.pvtmp-<12 hex>.xmp``
#: (the sidecar name ends in .xmp/.XMP, or is a hash when the full one is too long).
OWN_TEMP_RE = re.compile(rb"\..+\.(?:xmp|XMP)\.pvtmp-[0-9a-f]{12}\.xmp\Z", re.DOTALL)
_HASH_CHARS = 16


@dataclass(frozen=True)
class SidecarLocation:
    """Where a photo's sidecar lives, and why it is not beside the photo."""

    path: Path
    #: Set when the sidecar is in the mirror tree although the share is writable.
    mirrored_because: str | None = None


def candidate_names(photo_name: str, naming: Naming) -> list[str]:
    """Sidecar names for a photo, preferred first (both suffix spellings)."""
    if naming not in ("ext", "base"):
        raise ValueError(f"sidecar naming must be 'ext' or 'base', got {naming!r}")
    stem = photo_name.rsplit(".", 1)[0] if "." in photo_name.lstrip(".") else photo_name
    ext_names = [photo_name + s for s in SIDECAR_SUFFIXES]
    base_names = [stem + s for s in SIDECAR_SUFFIXES]
    return ext_names + base_names if naming == "ext" else base_names + ext_names


def _limit(folder: Path, key: str, ceiling: int) -> int:
    """`os.pathconf(folder, key)`, at most `ceiling` (the ceiling when unknown). A folder
    that does not exist yet is asked through its nearest existing parent."""
    folder = Path(folder)
    for candidate in (folder, *folder.parents):
        try:
            limit = os.pathconf(candidate, key)
        except (OSError, ValueError):
            continue
        return min(ceiling, limit) if limit and limit > 0 else ceiling
    return ceiling


def name_max(folder: Path) -> int:
    """The longest file name (bytes) `folder` takes: PC_NAME_MAX, at most NAME_MAX."""
    return _limit(folder, "PC_NAME_MAX", NAME_MAX)


def path_max(folder: Path) -> int:
    """The most bytes a path under `folder` may have, NUL included: PC_PATH_MAX."""
    return _limit(folder, "PC_PATH_MAX", PATH_MAX)


def fits(name: str, limit: int) -> bool:
    return len(os.fsencode(name)) <= limit


def path_fits(path: Path) -> bool:
    """Whether the sidecar `path` and the writer's temp file beside it stay under
    the system's PATH_MAX."""
    return len(os.fsencode(path)) + TEMP_EXTRA < path_max(Path(path).parent)


def _cut(raw: bytes, size: int) -> bytes:
    """The first `size` bytes of a name, not ending inside a UTF-8 character."""
    head = raw[:size]
    for drop in range(4):
        try:
            (head[: len(head) - drop]).decode("utf-8")
        except UnicodeDecodeError:
            continue
        return head[: len(head) - drop]
    return head  # not UTF-8 anyway: bytes are bytes


def mirror_name(name: str, limit: int) -> str:
    """`name` when it fits in `limit` bytes, else its start, ``~``, a hash, ``.xmp``.

    The same input always gives the same name, so the sidecar is found again.
    """
    if fits(name, limit):
        return name
    raw = os.fsencode(name)
    digest = hashlib.sha256(raw).hexdigest()[:_HASH_CHARS]
    tail = f"~{digest}.xmp".encode()
    # Leave room for the writer's temp name (.NAME.pvtmp-XXXXXXXXXXXX.xmp) too.
    keep = max(0, min(limit, 200) - len(tail))
    return os.fsdecode(_cut(raw, keep) + tail)


def temp_name(sidecar_name: str, token: str, limit: int) -> str:
    """The writer's temp file name for a sidecar; a hash stands in for a sidecar
    name too long to carry in it, so the temp name always fits the folder."""
    name = f".{sidecar_name}{TEMP_MARKER}{token}.xmp"
    if fits(name, limit):
        return name
    digest = hashlib.sha256(os.fsencode(sidecar_name)).hexdigest()[:_HASH_CHARS]
    return f".{digest}.xmp{TEMP_MARKER}{token}.xmp"


def is_own_temp(name: str | bytes) -> bool:
    """True only for names the writer gives its temp files (exact pattern)."""
    return OWN_TEMP_RE.fullmatch(os.fsencode(name)) is not None


def _lexists(path: Path) -> bool:
    """Whether a directory entry exists (a symbolic link counts, dangling or not)."""
    try:
        os.lstat(path)
    except OSError as err:
        if err.errno in (errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG):
            return False
        raise
    return True


def _relative(photo: Path, share_root: Path) -> Path:
    try:
        return photo.parent.relative_to(share_root)
    except ValueError as err:
        raise ValueError(f"{photo} is not under its share root {share_root}") from err


def locate_sidecar(
    photo: Path,
    naming: Naming = "ext",
    *,
    share_root: Path,
    read_only: bool = False,
    mirror_root: Path | None = None,
) -> SidecarLocation:
    """The sidecar to read and write for `photo`, and why it is mirrored if it is.

    Returns the first existing candidate (preferred naming first, then the other
    naming), else the preferred name. For a read-only share the folder is
    ``mirror_root / <photo's folder relative to share_root>``; `mirror_root` is then
    required. A preferred name longer than the folder allows (`name_max`) puts the
    sidecar in that mirror folder too, under `mirror_name`. Pure path logic plus
    `lstat` checks: nothing is created, nothing is followed.
    """
    photo = Path(photo)
    names = candidate_names(photo.name, naming)
    if read_only:
        if mirror_root is None:
            raise ValueError("a read-only share needs a mirror_root for its sidecars")
        folder = Path(mirror_root) / _relative(photo, share_root)
    else:
        folder = photo.parent
    limit = name_max(folder)
    for name in names:
        candidate = folder / name
        if fits(name, limit) and _lexists(candidate):
            return SidecarLocation(candidate)
    if fits(names[0], limit) and (read_only or path_fits(folder / names[0])):
        return SidecarLocation(folder / names[0])
    if read_only:  # the mirror itself cannot hold the name: cut it short, keep it unique
        return SidecarLocation(folder / mirror_name(names[0], limit))
    if fits(names[0], limit):
        full = len(os.fsencode(folder / names[0]))
        why = (
            f"sidecar path is {full} bytes, too long for the system "
            f"(under {path_max(folder) - TEMP_EXTRA} with the writer's temp file)"
        )
    else:
        why = (
            f"sidecar name is {len(os.fsencode(names[0]))} bytes, longer than the {limit} "
            "its folder allows"
        )
    if mirror_root is None:
        raise ValueError(f"{why}, and there is no mirror tree for it")
    mirror = Path(mirror_root) / _relative(photo, share_root)
    return SidecarLocation(
        mirror / mirror_name(names[0], name_max(mirror)), f"{why}; kept in the mirror tree"
    )


def sidecar_path(
    photo: Path,
    naming: Naming = "ext",
    *,
    share_root: Path,
    read_only: bool = False,
    mirror_root: Path | None = None,
) -> Path:
    """`locate_sidecar(...).path`: the sidecar to read and write for `photo`."""
    return locate_sidecar(
        photo, naming, share_root=share_root, read_only=read_only, mirror_root=mirror_root
    ).path


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
