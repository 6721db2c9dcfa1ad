"""The watch stage: from files on the shares to rows in the catalog queue.

    watchdog (per share) --hints--> settle tracker --settled--> catalog
    reconcile scan (start, cron, `vaultctl rescan`) -----------> catalog

One `ShareWatcher` per share sends hints; the settle tracker waits until a file
stops changing (SMB copies arrive slowly) and hands it to the catalog. Scans
reconcile each share with the catalog at start, on the cron schedule, after an
outage and on request. A share's outage, a failed scan and a catalog that takes
no writes are problems (problems.py) while they last; a file the catalog could
not take stays in the tracker and is offered again.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from photovault.catalog.store import Catalog, display
from photovault.config import Settings, ShareSettings
from photovault.problems import Problems
from photovault.watch.scan import reconcile
from photovault.watch.settle import SettleTracker
from photovault.watch.watcher import ShareWatcher

log = logging.getLogger(__name__)

#: A failed scan is tried again this often while its cause lasts.
SCAN_RETRY_SECONDS = 10.0


class ScanJob:
    """A scan started by `WatchStage.scan_async`: which shares, when done, what failed."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.done = threading.Event()
        self.errors: dict[str, str] = {}


class WatchStage:
    """Watchers, the settle tracker and scans for every configured share."""

    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        problems: Problems,
        metrics: Any,
        *,
        on_queued: Callable[[], None],
        on_sidecar: Callable[..., Any],
        after_scan: Callable[[], object],
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.problems = problems
        self.metrics = metrics
        self.on_queued = on_queued
        self.on_sidecar = on_sidecar
        #: Run after a scan with `repair` (the index repair of `vaultctl rescan`).
        self.after_scan = after_scan
        self.tracker = SettleTracker(
            settings.ingest.settle_seconds, settings.ingest.open_timeout_seconds, self._settled
        )
        self.watchers: dict[str, ShareWatcher] = {}
        self.scan_lock = threading.Lock()
        self.scanning: set[str] = set()
        #: share -> why its last scan failed (cleared by a scan that works).
        self.scan_errors: dict[str, str] = {}
        self._scan_retry_at = 0.0
        self._stop = threading.Event()
        self.poller = threading.Thread(target=self._poll_loop, name="settle", daemon=True)

    def resolve(self, share: str, relpath: str) -> Any:
        s = self.settings.share(share)
        return s.path / relpath if s else None

    # -- start / stop -------------------------------------------------------------

    def start(self) -> None:
        for share in self.settings.shares:
            self._start_share(share)
        self.poller.start()

    def stop(self) -> None:
        for w in self.watchers.values():
            w.stop()
        self._stop.set()

    def _start_share(self, share: ShareSettings) -> None:
        watcher = ShareWatcher(
            share.name,
            share.path,
            self.catalog,
            self.tracker,
            mode=share.watch,
            poll_interval=self.settings.ingest.poll_interval_seconds,
            on_sidecar=self.on_sidecar,
        )
        try:
            watcher.start()
        except OSError as exc:
            self.metrics.error("watcher")
            log.error(
                "share %s: cannot watch %s: %s (the scheduled scan still covers it)",
                share.name,
                share.path,
                exc,
            )
        if watcher.outage:
            self.problems.report(
                "share", watcher.outage, key=share.name, path=os.fspath(share.path)
            )
        self.watchers[share.name] = watcher

    def reload(self, settings: Settings) -> None:
        """Shares added, removed or moved; new settle timings."""
        old = {s.name: s for s in self.settings.shares}
        new = {s.name: s for s in settings.shares}
        self.settings = settings
        for name, share in old.items():
            if name not in new or new[name].path != share.path or new[name].watch != share.watch:
                watcher = self.watchers.pop(name, None)
                if watcher:
                    watcher.stop()
                self.problems.clear("share", name)
                self.tracker.discard_share(name)
                if name not in new:
                    self.catalog.drop_share(name)
                    log.info("share %s removed", name)
        for name, share in new.items():
            if name not in self.watchers:
                log.info("share %s added: %s", name, share.path)
                self._start_share(share)
                self.scan_async(name)
        self.tracker.settle_seconds = settings.ingest.settle_seconds
        self.tracker.open_timeout_seconds = max(
            settings.ingest.open_timeout_seconds, settings.ingest.settle_seconds
        )

    # -- the settle -> catalog hand-off -------------------------------------------

    def _settled(self, share: str, relpath: str, size: int, mtime_ns: int) -> None:
        try:
            queued = self.catalog.observe(share, relpath, size, mtime_ns)
        except Exception as exc:
            # The catalog cannot take it now (a full state disk): keep the file in the
            # settle tracker so it is offered again, never drop it.
            path = self.resolve(share, relpath)
            if path is not None:
                self.tracker.touch(share, relpath, path, writing=None)
            if self.problems.report("catalog", f"catalog writes fail: {exc}"):
                log.error("catalog write failed for %s/%s: %s", share, display(relpath), exc)
            self.metrics.error("catalog")
            return
        self.problems.clear("catalog")
        if queued:
            log.info("queued %s/%s (%d bytes)", share, display(relpath), size)
            self.on_queued()

    def _poll_loop(self) -> None:
        interval = min(0.5, max(0.05, self.settings.ingest.settle_seconds / 4))
        while not self._stop.wait(interval):
            try:
                self.tracker.poll()
            except Exception:
                log.exception("settle poll failed")

    # -- housekeeping from the main loop ------------------------------------------

    def tick(self, now: float, disk_ok: bool) -> None:
        """Dead observers fall back to polling, a share back after an outage is
        scanned, share outages are problems while they last, failed scans are tried
        again every SCAN_RETRY_SECONDS (not while the state disk is failing)."""
        for watcher in list(self.watchers.values()):
            try:
                if watcher.check():  # back after an outage, or replaced: events were missed
                    self.scan_async(watcher.name)
            except Exception:
                log.exception("share %s: watcher restart failed", watcher.name)
            if watcher.outage:
                self.problems.report(
                    "share", watcher.outage, key=watcher.name, path=os.fspath(watcher.root)
                )
            else:
                self.problems.clear("share", watcher.name)
        failed = [n for n in self.scan_errors if n not in self.scanning]
        if failed and now >= self._scan_retry_at and disk_ok:
            self._scan_retry_at = now + SCAN_RETRY_SECONDS
            for name in failed:
                self.scan_async(name)

    # -- scans --------------------------------------------------------------------

    def scan_async(
        self, share: str | None, *, repair: bool = False, forget_missing: bool = False
    ) -> ScanJob:
        """Start a reconcile scan of one share (or all) in the background; with
        `repair`, `after_scan` runs then (`vaultctl rescan` checks the index); with
        `forget_missing`, a person confirmed that files gone in bulk were deleted
        (`vaultctl rescan SHARE --forget-missing`, see `watch/root.py`)."""
        names = [share] if share else [s.name for s in self.settings.shares]
        job = ScanJob(names)
        threading.Thread(
            target=self._scan, args=(job, repair, forget_missing), name="scan", daemon=True
        ).start()
        return job

    def _scan(self, job: ScanJob, repair: bool = False, forget_missing: bool = False) -> None:
        try:
            with self.scan_lock:
                for name in job.names:
                    if self.settings.share(name) is not None:
                        self._scan_share(job, name, forget_missing)
                self.on_queued()
            if repair:
                try:
                    self.after_scan()
                except Exception as exc:
                    job.errors["index"] = f"index repair failed: {exc}"
        finally:
            job.done.set()

    def _scan_share(self, job: ScanJob, name: str, forget_missing: bool) -> None:
        share = self.settings.share(name)
        assert share is not None
        self.scanning.add(name)
        watcher = self.watchers.get(name)
        try:
            result = reconcile(
                name,
                share.path,
                self.catalog,
                self.tracker,
                settle_seconds=self.settings.ingest.settle_seconds,
                expected_dev=watcher.scanned_dev if watcher else None,
                forget_missing=forget_missing,
            )
        except Exception as exc:
            self.metrics.error("scan")
            reason = f"{type(exc).__name__}: {exc}"
            job.errors[name] = self.scan_errors[name] = reason
            self.problems.report(
                "stage", f"scan of share {name} failed: {reason}", key=f"scan:{name}"
            )
            log.exception("scan of share %s failed", name)
        else:
            self.scan_errors.pop(name, None)
            self.problems.clear("stage", f"scan:{name}")
            if result.problem:  # an outage: nothing was forgotten
                job.errors[name] = result.problem
                self.problems.report("share", result.problem, key=name, path=os.fspath(share.path))
                if watcher and result.held:  # a person must confirm: keep showing it
                    watcher.held = result.problem
            elif watcher:
                watcher.scanned_dev = result.dev
                if watcher.held:
                    watcher.held = None
                    if not watcher.outage:
                        self.problems.clear("share", name)
        finally:
            self.scanning.discard(name)
