"""Memory handed back to the system: freed heap pages, and file pages at rest.

`fix_mmap_threshold` runs once at vaultd's start: glibc serves a large block
(over 128 KiB) with its own mmap, unmapped when freed, but every such free
raises that threshold (up to 32 MiB) and the heap's trim threshold with it,
and from then on what the place data and the models allocate in each idle
cycle stays in the heap of the thread that loaded them: ``malloc_trim`` could
not hand 30-45 MiB of an unload back (a thread loading and dropping the place
data: 46 MiB resident after the first unload, 90 after the sixth). Setting the
threshold turns that sliding off (48-49 MiB at 1 MiB or at 32 MiB). 1 MiB also
gives a batch's large buffers back as soon as they are freed: vaultd's peak
during ingest 1152 -> 913 MiB against 32 MiB, for ~6% on CLIP's image tower
(batch of 8: 267 ms against 249-252); a NAS's memory is the scarcer. vaultd
over the cycles: bench/README.md.

`release_memory` (glibc's `malloc_trim`) runs after every model load and unload
(models/session.py has the measurements). `page_out_file_pages` runs when the
daemon comes to rest (Linux `MADV_PAGEOUT`):

Ingest runs code that searching never does: lancedb's write and compaction
paths alone leave 36 MiB of its library resident, onnxruntime, arrow and dlib
more (bench/rss.py). Those pages are clean copies of files: the kernel drops
them under pressure anyway, but until then they count in vaultd's RSS and its
cgroup's memory on a NAS whose RAM is shared with everything else. Once the
daemon is at rest (every batch model unloaded), it asks the kernel to reclaim
them now, as Android does for cached apps; what a search or the watcher still
runs comes back from the page cache or disk on first touch (the first search
at rest takes ~120 ms instead of ~20, see bench/README.md). Only mappings
without anonymous or dirty pages are advised, so nothing is ever written to
swap by this.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _libc_function(name: str, argtypes: list[Any]) -> Callable[..., int] | None:
    """A C library function returning int, with its argument types; None where the
    C library has none (musl has no ``malloc_trim``) or cannot be loaded."""
    try:
        func = getattr(ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True), name)
    except (OSError, AttributeError):
        return None
    func.argtypes = argtypes
    func.restype = ctypes.c_int
    return func  # type: ignore[no-any-return]


_trim = _libc_function("malloc_trim", [ctypes.c_size_t])
_mallopt = _libc_function("mallopt", [ctypes.c_int, ctypes.c_int])
_madvise = _libc_function("madvise", [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int])

M_MMAP_THRESHOLD = -3  # malloc.h
#: Blocks of at least this size get their own mapping, given back when freed
#: (fixed: glibc's sliding threshold is off, see the module docstring).
MMAP_THRESHOLD = 1 << 20


def fix_mmap_threshold(nbytes: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at `nbytes` (see the module docstring); False
    where that cannot be done or the environment already sets it
    (``MALLOC_MMAP_THRESHOLD_``, glibc's own tunable, wins)."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or _mallopt is None:
        return False
    return bool(_mallopt(M_MMAP_THRESHOLD, nbytes))


def release_memory() -> bool:
    """Hand the heap's free pages back to the OS; False where that cannot be done.

    glibc keeps freed memory for reuse and gives back only what sits at the top
    of each heap, so a model's weights, freed from the middle, stay resident.
    ``malloc_trim(0)`` releases every free page of every arena (a few ms).
    """
    if _trim is None:
        return False
    _trim(0)
    return True


MADV_PAGEOUT = 21  # linux/mman.h, kernel 5.4+
_HEADER = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ (\d+)\s*(.*)$")
_DIRTY = ("Anonymous:", "Private_Dirty:", "Shared_Dirty:", "Swap:")

_unsupported = False


def clean_file_mappings(smaps: str) -> list[tuple[int, int, int]]:
    """(start, end, resident KiB) of each file-backed mapping with resident pages
    that holds nothing anonymous or dirty, from /proc/PID/smaps text."""
    out: list[tuple[int, int, int]] = []
    current: list[int] | None = None  # start, end, rss, inode, dirty

    def close() -> None:
        if current is not None and current[3] != 0 and current[2] > 0 and not current[4]:
            out.append((current[0], current[1], current[2]))

    for line in smaps.splitlines():
        head = _HEADER.match(line)
        if head:
            close()
            # Device files (a GPU driver's maps) are not page cache: left alone.
            inode = 0 if head[4].startswith("/dev/") else int(head[3])
            current = [int(head[1], 16), int(head[2], 16), 0, inode, 0]
            continue
        if current is None:
            continue
        if line.startswith("Rss:"):
            current[2] = int(line.split()[1])
        elif line.startswith(_DIRTY) and int(line.split()[1]) > 0:
            current[4] = 1
    close()
    return out


def page_out_file_pages(smaps_path: Path = Path("/proc/self/smaps")) -> int:
    """Advise the kernel to reclaim this process's clean file-backed pages.
    Returns the KiB that were resident in the advised mappings (0 where the
    kernel or platform cannot do it; it is then not tried again)."""
    global _unsupported
    if _unsupported or _madvise is None or not sys.platform.startswith("linux"):
        return 0
    try:
        mappings = clean_file_mappings(smaps_path.read_text())
    except OSError as exc:
        log.debug("cannot read %s for the page-out at rest: %s", smaps_path, exc)
        return 0
    advised = failed = 0
    for start, end, rss in mappings:
        if _madvise(start, end - start, MADV_PAGEOUT) == 0:
            advised += rss
            continue
        err = ctypes.get_errno()
        if err in (errno.EPERM, errno.ENOSYS):  # forbidden here (a seccomp filter)
            _unsupported = True
            log.info("this system does not page out on request (errno %d); skipped", err)
            return 0
        # EINVAL: a locked or special mapping (or a kernel before 5.4, when every
        # one fails); ENOMEM: the mapping went away since smaps was read.
        failed += 1
    if failed and not advised:
        _unsupported = True
        log.info("this kernel does not page out on request; skipped from now on")
    return advised
