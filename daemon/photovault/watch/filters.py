"""Which names the watcher and the scan ignore.

SMB clients, NAS firmware and desktop tools leave temp files, lock files,
thumbnail caches and recycle bins on shares; none of them is a photo, and a
half-written `*.part` must never be queued. Our own sidecars and their temp
files are ignored too, or every write of ours would wake the watcher.
"""

from __future__ import annotations

import fnmatch

from photovault.media.formats import is_supported

#: Files never looked at (fnmatch patterns, matched case-insensitively).
IGNORED_FILES = (
    "~$*",
    "*.tmp",
    "*.part",
    "*.partial",
    "*.crdownload",
    ".~lock*",
    "._*",
    ".ds_store",
    "thumbs.db",
    "desktop.ini",
    "*.xmp",
    ".*.xmp.*",  # our sidecar temp files (.<name>.xmp.<random>)
    ".photovault-*",
)

#: Folders never descended into (matched case-insensitively, whole name).
IGNORED_DIRS = (
    "@eadir",
    "#recycle",
    ".trash-*",
    ".stversions",
    "#snapshot",
    ".snapshot",
    "$recycle.bin",
    ".photovault",
)


def ignored_dir(name: str) -> bool:
    low = name.lower()
    return any(fnmatch.fnmatchcase(low, pat) for pat in IGNORED_DIRS)


def ignored_file(name: str) -> bool:
    low = name.lower()
    return any(fnmatch.fnmatchcase(low, pat) for pat in IGNORED_FILES)


def wanted(relpath: str) -> bool:
    """True when a path relative to its share is a photo we should index."""
    parts = relpath.split("/")
    if any(ignored_dir(p) for p in parts[:-1]):
        return False
    name = parts[-1]
    return not ignored_file(name) and is_supported(name)
