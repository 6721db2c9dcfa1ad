"""Per-share watchdog observers. Events are hints fed to the settle tracker.

One observer per share, so a share that runs out of inotify watches falls
back to polling on its own while the others keep inotify. A fallback is
logged and shown in `vaultctl status` (`"watch": "polling"`).

Directory symlinks are never followed, the same rule as the scan's: watchdog
puts no inotify watch on them, the polling fallback lists them with `lstat`,
and a folder event whose path passes through a symlink is ignored (`ln -s ..
d/up` would otherwise add the share again below itself, up to 40 times).

An outage is not a deletion (see `root.py`): deletions and moves are believed
only while the root path still leads to the folder being watched; `check()`,
called once a second, stops the observer while the root is missing,
unreadable or emptied (`outage` says why, `"watch": "offline"`), and watches
it afresh when it is back, returning True so that the share is rescanned.
A scan that kept files gone in bulk sets `held`, which `outage` reports too
while the root stays watched.

A mode or owner change (`chmod`, `chown`) on a quarantined file, or on the
folder of one quarantined for a permission error, gives it another try.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path

from watchdog.events import (
    DirAttribEvent,
    DirCreatedEvent,
    DirMovedEvent,
    FileAttribEvent,
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
from watchdog.observers.polling import PollingObserverVFS

from photovault.catalog.store import Catalog, display
from photovault.sidecar.naming import is_sidecar_name, is_temp_name
from photovault.watch.filters import ignored_dir, wanted
from photovault.watch.root import Ident, probe
from photovault.watch.scan import walk_share
from photovault.watch.settle import SettleTracker

log = logging.getLogger(__name__)

#: errnos meaning "the kernel will not give us more inotify watches/instances".
_EXHAUSTED = (errno.ENOSPC, errno.EMFILE, errno.ENFILE)


def _as_str(p: str | bytes) -> str:
    return os.fsdecode(p)


def polling_observer(root: Path, interval: float) -> BaseObserver:
    """watchdog's polling observer, not following symlinks below the root.

    Its default `os.stat` takes a symlink to a folder for the folder and walks
    `ln -s .. d/up` until the kernel's 40-link limit: every file 40 times.
    """
    top = os.path.abspath(root)

    def no_follow(path: str) -> os.stat_result:
        return os.stat(path) if path == top else os.lstat(path)

    return PollingObserverVFS(no_follow, os.scandir, polling_interval=interval)


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
        self.kind = "stopped"  # "inotify" | "polling" | "offline" | "stopped"
        self.fallback_reason: str | None = None
        #: Why the share root cannot be used now (missing, unreadable, emptied);
        #: None while it is fine.
        self._outage: str | None = None
        #: Set by the daemon when a scan kept files gone in bulk (see `root.py`):
        #: why; cleared by the next scan that completes. The root is watched.
        self.held: str | None = None
        #: The root's st_dev at the share's last complete scan (`ScanResult.dev`).
        self.scanned_dev: int | None = None
        self._observer: BaseObserver | None = None
        self._ident: Ident | None = None  # the root folder being watched
        self._active = False  # start() was called and stop() was not

    @property
    def outage(self) -> str | None:
        """What is wrong with the share now (reported as a "share" problem by the
        daemon): its root cannot be used, or a scan kept files gone in bulk."""
        return self._outage or self.held

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> None:
        """Watch the share. A root that cannot be used now is an outage, not an
        error: `check()` starts watching once it is back."""
        self._active = True
        state = probe(self.root, self._catalogued)
        if not state.ok:
            self._offline(state.problem)
            return
        self._ident = state.ident
        self._outage = None
        self._start_observer()

    def _start_observer(self) -> None:
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
        self._start(polling_observer(self.root, self.poll_interval), "polling")

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

    def check(self) -> bool:
        """Once a second from the main loop: follow the share root's outages and
        restart a dead observer (on polling when inotify was what failed).

        Returns True when the share was watched afresh after an outage or after
        its root was replaced: events were missed, so it must be rescanned.
        """
        if not self._active:
            return False
        state = probe(self.root, self._catalogued)
        if not state.ok:
            self._offline(state.problem)
            return False
        if self._outage is not None or state.ident != self._ident:
            if self._outage is not None:
                log.warning("share %s: root is back; watching it again and rescanning", self.name)
            else:
                log.warning(
                    "share %s: root %s is another folder now (renamed, or a disk"
                    " mounted on it); watching it afresh and rescanning",
                    self.name,
                    self.root,
                )
            self._stop_observer()
            self._outage = None
            self._ident = state.ident
            try:
                self._start_observer()
            except OSError as exc:
                log.error(
                    "share %s: cannot watch %s: %s (the scheduled scan still covers it)",
                    self.name,
                    self.root,
                    exc,
                )
            return True
        if self.kind == "stopped" or self.healthy():
            return False
        log.warning("share %s: %s observer stopped; switching to polling", self.name, self.kind)
        self.fallback_reason = "inotify observer stopped (watch limit?)"
        self._stop_observer()
        self._start(polling_observer(self.root, self.poll_interval), "polling")
        return False

    def _offline(self, problem: str | None) -> None:
        """The root cannot be used: stop believing (and receiving) events."""
        if self._outage is None:
            log.warning("share %s: %s; not watching it until it is back", self.name, problem)
        self._outage = problem or "share root unavailable"
        self._stop_observer()
        self.kind = "offline"

    def _catalogued(self) -> int:
        try:
            return self.catalog.count_share(self.name)
        except Exception:  # cannot tell: an empty root is then taken for an outage
            log.debug("share %s: cannot count its catalogued files", self.name, exc_info=True)
            return -1

    def stop(self) -> None:
        self._active = False
        self._stop_observer()

    def _stop_observer(self) -> None:
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

    def root_intact(self) -> bool:
        """Does the root path still lead to the folder being watched? inotify
        follows a renamed folder, so events of a share renamed away (or of an
        unmounted disk) arrive with the share's paths; none of them is a deletion."""
        try:
            st = os.stat(self.root)
        except OSError:
            return False
        return self._ident is not None and (st.st_dev, st.st_ino) == self._ident

    def _real_dir(self, rel: str) -> bool:
        """True when rel is a folder reached from the root without a symlink."""
        path = self.root
        for part in rel.split("/"):
            path = path / part
            try:
                st = os.lstat(path)
            except OSError:
                return False
            if not stat.S_ISDIR(st.st_mode):
                return False
        return True

    def handle(self, event: FileSystemEvent) -> None:
        if isinstance(event, (FileMovedEvent, DirMovedEvent)):
            if not self.root_intact():
                log.info("share %s: root changed; ignoring %s", self.name, event)
                return
            self._moved(event)
            return
        rel = self._rel(event.src_path)
        if rel is None:
            return
        if event.is_directory:
            if isinstance(event, DirCreatedEvent):
                self._dir_appeared(rel)
            elif isinstance(event, DirAttribEvent):
                self._retry_below(rel)
            elif event.event_type == "deleted":
                if not self.root_intact():
                    log.info("share %s: root changed; not forgetting %s", self.name, display(rel))
                    return
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
            if not self.root_intact():
                log.info("share %s: root changed; not forgetting %s", self.name, display(rel))
                return
            if self.catalog.forget(self.name, rel):
                log.info("share %s: %s deleted, removed from catalog", self.name, display(rel))
        elif isinstance(event, FileClosedEvent):
            self.tracker.touch(self.name, rel, path, writing=False)
        elif isinstance(event, (FileCreatedEvent, FileModifiedEvent)):
            # Polling cannot report closes, so a polled file only has to be stable.
            self.tracker.touch(self.name, rel, path, writing=self.kind == "inotify")
        elif isinstance(event, FileAttribEvent) and self.catalog.retry_quarantined(self.name, rel):
            # chmod/chown: a file quarantined for "Permission denied" may be readable now.
            log.info("share %s: %s changed permissions; retrying it", self.name, display(rel))

    def _retry_below(self, rel: str) -> None:
        """A folder's mode or owner changed: retry what could not be opened below it."""
        n = self.catalog.retry_quarantined(
            self.name, rel, below=True, reason_like="%permission denied%"
        )
        if n:
            log.info(
                "share %s: %s changed permissions; retrying %d files", self.name, display(rel), n
            )

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
        """A folder was created or moved in: its files may never get their own events.

        watchdog reports a symlink to a folder as a folder (`os.walk` lists it among
        the subfolders of a new folder); it is not followed, like the scan does not.
        """
        if any(ignored_dir(p) for p in rel.split("/")):
            return
        if not self._real_dir(rel):
            log.debug("share %s: %s is not a folder (a symlink?); not followed", self.name, rel)
            return
        base = self.root / rel

        def on_error(sub: str, exc: OSError) -> None:
            log.warning("share %s: cannot read %s: %s", self.name, display(sub), exc.strerror)

        for sub, _st in walk_share(base, on_error):
            full = f"{rel}/{sub}"
            self.tracker.touch(self.name, full, self.root / full, writing=None)
