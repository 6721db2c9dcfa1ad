"""Hold candidate files until they are complete.

SMB clients write in chunks, may pause for seconds and keep a file open; an
inotify event only says "something happened". A candidate is released to the
catalog when its size and mtime have not changed for `settle_seconds` and it
has been closed after its last write (or, when no close event can come — a
file found by the scan or by polling — when it has merely been stable; a
file held open without writes is released after `open_timeout_seconds`).
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

ReadyCallback = Callable[[str, str, int, int], None]


@dataclass
class _Candidate:
    path: Path
    size: int = -1
    mtime_ns: int = -1
    stable_since: float = 0.0
    open_for_write: bool = False


class SettleTracker:
    """Candidates keyed by (share, relpath); `poll()` releases the settled ones."""

    def __init__(
        self,
        settle_seconds: float,
        open_timeout_seconds: float,
        on_ready: ReadyCallback,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settle_seconds = settle_seconds
        self.open_timeout_seconds = max(open_timeout_seconds, settle_seconds)
        self._on_ready = on_ready
        self._clock = clock
        self._lock = threading.Lock()
        self._items: dict[tuple[str, str], _Candidate] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def touch(self, share: str, relpath: str, path: Path, *, writing: bool | None) -> None:
        """Note an event for a file.

        writing=True: it was written to (modify); False: it was closed after
        writing, or renamed into place; None: seen without knowing (scan, poll).
        """
        key = (share, relpath)
        with self._lock:
            cand = self._items.get(key)
            if cand is None:
                cand = self._items[key] = _Candidate(path=path, stable_since=self._clock())
            cand.path = path
            if writing is True:
                cand.open_for_write = True
                cand.stable_since = self._clock()
            elif writing is False:
                cand.open_for_write = False

    def discard(self, share: str, relpath: str) -> None:
        """Forget a file (and, for a folder, everything below it)."""
        prefix = relpath + "/"
        with self._lock:
            for key in [
                k
                for k in self._items
                if k[0] == share and (k[1] == relpath or k[1].startswith(prefix))
            ]:
                del self._items[key]

    def discard_share(self, share: str) -> None:
        with self._lock:
            for key in [k for k in self._items if k[0] == share]:
                del self._items[key]

    def poll(self) -> int:
        """Stat every candidate once; release those that settled. Returns how many."""
        now = self._clock()
        with self._lock:
            items = list(self._items.items())
        ready: list[tuple[tuple[str, str], int, int]] = []
        gone: list[tuple[str, str]] = []
        for key, cand in items:
            try:
                st = os.lstat(cand.path)
            except FileNotFoundError:
                gone.append(key)
                continue
            except OSError as exc:
                log.warning("cannot stat %s: %s", cand.path, exc.strerror)
                gone.append(key)
                continue
            if not stat.S_ISREG(st.st_mode):
                gone.append(key)
                continue
            if (st.st_size, st.st_mtime_ns) != (cand.size, cand.mtime_ns):
                cand.size, cand.mtime_ns = st.st_size, st.st_mtime_ns
                cand.stable_since = now
                continue
            quiet = now - cand.stable_since
            if quiet < self.settle_seconds:
                continue
            if cand.open_for_write and quiet < self.open_timeout_seconds:
                continue
            ready.append((key, st.st_size, st.st_mtime_ns))
        with self._lock:
            for key in gone:
                self._items.pop(key, None)
            released = []
            for key, size, mtime in ready:
                now_cand = self._items.get(key)
                # Skip when an event arrived while we were stat-ing.
                if now_cand is not None and (now_cand.size, now_cand.mtime_ns) == (size, mtime):
                    del self._items[key]
                    released.append((key, size, mtime))
        for (share, relpath), size, mtime in released:
            self._on_ready(share, relpath, size, mtime)
        return len(released)
