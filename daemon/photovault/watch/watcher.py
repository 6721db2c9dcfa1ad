"""Per-share watchdog observers. Events are hints fed to the settle tracker.

One observer per share, so a share that runs out of inotify watches falls
back to polling on its own while the others keep inotify. A fallback is
logged and shown in `vaultctl status` (`"watch": "polling"`).
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from photovault.catalog.store import Catalog, display
from photovault.sidecar.naming import is_sidecar_name, is_temp_name
from photovault.watch.filters import ignored_dir, wanted
from photovault.watch.scan import walk_share
from photovault.watch.settle import SettleTracker

log = logging.getLogger(__name__)

#: errnos meaning "the kernel will not give us more inotify watches/instances".
_EXHAUSTED = (errno.ENOSPC, errno.EMFILE, errno.ENFILE)


def _as_str(p: str | bytes) -> str:
    return os.fsdecode(p)


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: ShareWatcher) -> None:
        self.w = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        try:
            self.w.handle(event)
        except Exception:  # one bad event must not kill the observer thread
            log.exception("share %s: error handling %s", self.w.name, event)


class ShareWatcher:
    """Watches one share and turns events into tracker/catalog updates."""

    def __init__(
        self,
        name: str,
        root: Path,
        catalog: Catalog,
        tracker: SettleTracker,
        *,
        mode: str = "auto",
        poll_interval: float = 10.0,
        inotify_factory: Callable[[], BaseObserver] = Observer,
        on_sidecar: Callable[[str, str], None] | None = None,
    ) -> None:
        self.name = name
        self.root = root
        self.catalog = catalog
        self.tracker = tracker
        self.mode = mode
        self.poll_interval = poll_interval
        self._inotify_factory = inotify_factory
        self._on_sidecar = on_sidecar
        self.kind = "stopped"  # "inotify" | "polling" | "stopped"
        self.fallback_reason: str | None = None
        self._observer: BaseObserver | None = None

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> None:
        if self.mode in ("auto", "inotify"):
            try:
                self._start(self._inotify_factory(), "inotify")
                return
            except OSError as exc:
                if exc.errno not in _EXHAUSTED or self.mode == "inotify":
                    raise
                self.fallback_reason = f"inotify unavailable: {exc.strerror or exc}"
                log.warning(
                    "share %s: %s; falling back to polling every %.0fs "
                    "(raise fs.inotify.max_user_watches to fix)",
                    self.name,
                    self.fallback_reason,
                    self.poll_interval,
                )
        self._start(PollingObserver(timeout=self.poll_interval), "polling")

    def _start(self, observer: BaseObserver, kind: str) -> None:
        observer.schedule(_Handler(self), str(self.root), recursive=True)
        try:
            observer.start()
        except BaseException:
            try:
                observer.stop()
            except Exception:  # best effort cleanup
                log.debug("observer cleanup failed", exc_info=True)
            raise
        self._observer = observer
        self.kind = kind
        log.info("share %s: watching %s with %s", self.name, self.root, kind)

    def healthy(self) -> bool:
        """False when the observer thread died (e.g. watches ran out in a new folder)."""
        return self._observer is not None and self._observer.is_alive()

    def check(self) -> None:
        """Restart a dead observer, on polling when inotify was what failed."""
        if self.kind == "stopped" or self.healthy():
            return
        log.warning("share %s: %s observer stopped; switching to polling", self.name, self.kind)
        self.fallback_reason = "inotify observer stopped (watch limit?)"
        self.stop()
        self._start(PollingObserver(timeout=self.poll_interval), "polling")

    def stop(self) -> None:
        obs, self._observer = self._observer, None
        self.kind = "stopped"
        if obs is not None:
            obs.stop()
            obs.join(timeout=5)

    # -- events --------------------------------------------------------------

    def _rel(self, path: str | bytes) -> str | None:
        p = _as_str(path)
        root = str(self.root)
        if p == root:
            return None
        if not p.startswith(root + os.sep):
            return None
        return p[len(root) + 1 :]

    def handle(self, event: FileSystemEvent) -> None:
        if isinstance(event, (FileMovedEvent, DirMovedEvent)):
            self._moved(event)
            return
        rel = self._rel(event.src_path)
        if rel is None:
            return
        if event.is_directory:
            if isinstance(event, DirCreatedEvent):
                self._dir_appeared(rel)
            elif event.event_type == "deleted":
                self.tracker.discard(self.name, rel)
                self.catalog.forget(self.name, rel)
            return
        if self._sidecar_event(rel, event):
            return
        if not wanted(rel):
            return
        path = self.root / rel
        if isinstance(event, FileDeletedEvent):
            self.tracker.discard(self.name, rel)
            if self.catalog.forget(self.name, rel):
                log.info("share %s: %s deleted, removed from catalog", self.name, display(rel))
        elif isinstance(event, FileClosedEvent):
            self.tracker.touch(self.name, rel, path, writing=False)
        elif isinstance(event, (FileCreatedEvent, FileModifiedEvent)):
            # Polling cannot report closes, so a polled file only has to be stable.
            self.tracker.touch(self.name, rel, path, writing=self.kind == "inotify")

    def _sidecar_event(self, rel: str, event: FileSystemEvent) -> bool:
        """Sidecars are not photos; a finished change to one goes to the read-back path."""
        name = rel.rsplit("/", 1)[-1]
        if not is_sidecar_name(name):
            return False
        if is_temp_name(name) or any(ignored_dir(p) for p in rel.split("/")[:-1]):
            return True
        finished = isinstance(event, (FileClosedEvent, FileMovedEvent)) or (
            self.kind == "polling" and isinstance(event, (FileModifiedEvent, FileCreatedEvent))
        )
        if finished and self._on_sidecar is not None:
            self._on_sidecar(self.name, rel)
        return True

    def _moved(self, event: FileSystemEvent) -> None:
        src = self._rel(event.src_path)
        dest = self._rel(event.dest_path)
        if dest is not None and not event.is_directory and self._sidecar_event(dest, event):
            return
        if src is not None:
            self.tracker.discard(self.name, src)
        if dest is None or any(ignored_dir(p) for p in dest.split("/")):
            # Moved out of the share (or into a recycle bin): it is gone for us.
            if src is not None:
                self.catalog.forget(self.name, src)
            return
        if event.is_directory:
            moved = self.catalog.move(self.name, src, dest) if src is not None else 0
            if not moved:
                self._dir_appeared(dest)
            return
        if not wanted(dest):
            if src is not None:
                self.catalog.forget(self.name, src)  # e.g. renamed to .tmp
            return
        if src is not None and wanted(src) and self.catalog.move(self.name, src, dest):
            log.info(
                "share %s: %s moved to %s (results kept)", self.name, display(src), display(dest)
            )
            return
        # New under this name (e.g. "upload.part" renamed to "IMG_1.jpg"): a
        # rename is atomic, so the file is complete once it has settled.
        self.tracker.touch(self.name, dest, self.root / dest, writing=False)

    def _dir_appeared(self, rel: str) -> None:
        """A folder was created or moved in: its files may never get their own events."""
        if any(ignored_dir(p) for p in rel.split("/")):
            return
        base = self.root / rel

        def on_error(sub: str, exc: OSError) -> None:
            log.warning("share %s: cannot read %s: %s", self.name, display(sub), exc.strerror)

        for sub, _size, _mtime in walk_share(base, on_error):
            full = f"{rel}/{sub}"
            self.tracker.touch(self.name, full, self.root / full, writing=None)
