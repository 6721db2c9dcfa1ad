"""The reconcile scan: the truth that watcher events only hint at.

inotify drops events on queue overflow (watchdog swallows the notice), a
daemon that was down saw nothing, and a polling fallback is slow. So at start
and on the `rescan` schedule each share is walked and compared by (size,
mtime) with the catalog: new or changed files are queued, vanished ones
forgotten. Symlinks are never followed (no loops, no escaping the share).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from photovault.catalog.store import Catalog, display
from photovault.watch.filters import ignored_dir, wanted
from photovault.watch.settle import SettleTracker

log = logging.getLogger(__name__)


@dataclass
class ScanResult:
    share: str
    seen: int = 0
    queued: int = 0
    settling: int = 0
    forgotten: int = 0
    errors: int = 0
    seconds: float = 0.0


def walk_share(
    root: Path, on_error: Callable[[str, OSError], None]
) -> Iterator[tuple[str, int, int]]:
    """Yield (relpath, size, mtime_ns) of every wanted regular file under root."""
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        folder = root / rel_dir if rel_dir else root
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as exc:
            on_error(rel_dir or ".", exc)
            continue
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    if not ignored_dir(entry.name):
                        stack.append(rel)
                    continue
                if not entry.is_file(follow_symlinks=False) or not wanted(rel):
                    continue
                st = entry.stat(follow_symlinks=False)
            except OSError as exc:
                on_error(rel, exc)
                continue
            yield rel, st.st_size, st.st_mtime_ns


def reconcile(
    share: str,
    root: Path,
    catalog: Catalog,
    tracker: SettleTracker,
    *,
    settle_seconds: float,
    clock: Callable[[], float] = time.time,
) -> ScanResult:
    """Compare a share with the catalog and fix the difference."""
    started = time.monotonic()
    result = ScanResult(share=share)
    known = catalog.known(share)

    def on_error(rel: str, exc: OSError) -> None:
        result.errors += 1
        log.warning("scan %s: cannot read %s: %s", share, display(rel), exc.strerror or exc)

    now = clock()
    for rel, size, mtime_ns in walk_share(root, on_error):
        result.seen += 1
        before = known.pop(rel, None)
        if before == (size, mtime_ns):
            continue
        if now - mtime_ns / 1e9 >= settle_seconds:
            if catalog.observe(share, rel, size, mtime_ns):
                result.queued += 1
        else:
            tracker.touch(share, rel, root / rel, writing=None)
            result.settling += 1
    for rel in known:
        # Gone from disk (or now ignored): forget it; nothing on the share is touched.
        result.forgotten += catalog.forget(share, rel)
        tracker.discard(share, rel)
    catalog.record_scan(share, result.seen)
    result.seconds = time.monotonic() - started
    log.info(
        "scan %s: %d files, %d queued, %d settling, %d forgotten, %d errors in %.1fs",
        share,
        result.seen,
        result.queued,
        result.settling,
        result.forgotten,
        result.errors,
        result.seconds,
    )
    return result
