"""A private file mapped and read in, to watch its pages leave the process (memory.py)."""

from __future__ import annotations

import mmap
import os
from pathlib import Path


def mapped_file(path: Path, mib: int = 8) -> mmap.mmap:
    """`path` filled with `mib` MiB, mapped read-only and every page read (resident).
    Written back to disk first: dirty page-cache pages are not reclaimed."""
    with path.open("wb") as out:
        out.write(os.urandom(mib << 20))
        out.flush()
        os.fsync(out.fileno())
    with path.open("rb") as handle:
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    sum(mapped[i] for i in range(0, len(mapped), mmap.PAGESIZE))
    return mapped


def resident_kib(path: Path) -> int:
    """Resident KiB of this process's mappings of `path` (from /proc/self/smaps)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if line[:1] in "0123456789abcdef" and "-" in line.split(" ", 1)[0]:
            inside = line.rstrip().endswith(str(path))
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1])
    return total
