"""vaultd assembled in one place: the whole pipeline is readable here.

    watch (watchdog, per share) --hints--> settle tracker --settled--> catalog
    reconcile scan (start + cron) ---------------------------------->  catalog
    catalog queue --claim--> worker: decode pool + exiftool --> analyzers
        --> sinks (sidecar, index) --> catalog commit (done)
    query service (Unix socket) <-- vaultctl

`Daemon.start()` brings the stages up in data-flow order, `Daemon.stop()`
takes them down in reverse, draining the worker. `Daemon.reload()` applies a
new config (shares added or removed, throttle) without a restart.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from prometheus_client import CollectorRegistry

from photovault import __version__
from photovault.analyze import registry
from photovault.catalog.store import Catalog, FileRow, display
from photovault.config import Settings, ShareSettings
from photovault.health import StateDirProbe
from photovault.index import (
    IndexSchemaError,
    IndexSettings,
    IndexSink,
    IndexTooNewError,
    PhotoIndex,
)
from photovault.media.metadata import MetadataReader
from photovault.metrics import Exporter, Metrics, serve
from photovault.ops.consistency import (
    IndexDiff,
    check_report,
    index_differences,
    missing_sidecars,
)
from photovault.people.stage import PeopleStage
from photovault.pipeline.throttle import QuietHours, Throttle
from photovault.pipeline.worker import Photo, Sink, Worker
from photovault.problems import Problems
from photovault.query.handlers import Handlers
from photovault.query.server import QueryServer
from photovault.results import parse_signature
from photovault.sidecar.stage import SidecarStage
from photovault.watch.root import probe as probe_root
from photovault.watch.scan import reconcile
from photovault.watch.settle import SettleTracker
from photovault.watch.watcher import ShareWatcher

log = logging.getLogger(__name__)

#: A failed scan is tried again this often while its cause lasts.
SCAN_RETRY_SECONDS = 10.0


class _IndexFollower:
    """Keeps the search index in step with the catalog's deletes and moves."""

    def __init__(self, index: PhotoIndex) -> None:
        self.index = index

    def forgotten(self, share: str, relpath: str) -> None:
        self.index.delete(share, relpath)

    def moved(self, share: str, src: str, dest: str) -> None:
        self.index.move(share, src, dest)

    def share_dropped(self, share: str) -> None:
        self.index.drop_share(share)


class ScanJob:
    """A scan started by `Daemon.scan_async`: which shares, when done, what failed."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.done = threading.Event()
        self.errors: dict[str, str] = {}


class Daemon:
    """Owns every stage; started and stopped by `photovault.daemon_main`."""

    def __init__(
        self,
        settings: Settings,
        *,
        config_path: Path | None = None,
        metrics_registry: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.config_path = config_path
        self.started_at = time.time()
        #: Every current fault, shown first by `vaultctl status` (see problems.py).
        self.problems = Problems()
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        self.catalog = Catalog(settings.catalog_path, max_attempts=settings.ingest.max_attempts)
        self.tracker = SettleTracker(
            settings.ingest.settle_seconds,
            settings.ingest.open_timeout_seconds,
            self._settled,
        )
        self.throttle = self._make_throttle(settings)
        self.watchers: dict[str, ShareWatcher] = {}
        self.scan_lock = threading.Lock()
        self.scanning: set[str] = set()
        self.scheduler = BackgroundScheduler(daemon=True)
        self.metadata = MetadataReader()
        # status() runs only at scrape time, so handing it over before start() is safe.
        self.metrics = Metrics(metrics_registry or CollectorRegistry(), self.status)
        self._exporter: Exporter | None = None
        self._sessions: Any = None
        self.analyzers = registry.load(settings.analyzers.enabled, settings, self._context())
        self.sinks: list[Sink] = []
        # Clusters at start, when the queue drains and on a schedule; follows deletions.
        self.people = PeopleStage.open(
            settings.state_dir,
            settings.faces,
            self.catalog,
            on_changed=self._names_changed,
            queue_depth=self.catalog.queue_depth,
        )
        self.index = self._open_index()
        self.index.on_written = self.catalog.mark_indexed
        self._index_sink = IndexSink(self.index, self.catalog.person_keywords)
        self._index_follower = _IndexFollower(self.index)
        self.catalog.listeners.append(self._index_follower)
        self.catalog.listeners.append(self.people)  # deleted photos' faces leave
        # Order matters: the people sink adds person names that the index stores.
        self.sinks.extend([self.people, self._index_sink])
        self.sidecars = SidecarStage(
            self.catalog,
            settings,
            faces=self.people.faces_for,
            on_adopt=self.people.adopt,
            on_keywords_changed=self._keywords_changed,
            metrics=self.metrics,
            problems=self.problems,
        )
        self.worker = self._make_worker()
        self.server = QueryServer(
            settings.server.socket,
            Handlers(self).handle,
            group=settings.server.socket_group,
            admin_group=settings.server.admin_group,
            request_timeout=settings.server.request_timeout_seconds,
            max_request_bytes=settings.server.max_request_bytes,
        )
        self._models_checked = time.monotonic()
        self._models_seen = self._models_fingerprint()
        self._stop_poll = threading.Event()
        self._repair_lock = threading.Lock()
        self._repair_wanted = False
        self.state_probe = StateDirProbe(settings.state_dir, self.problems)
        self._scan_retry_at = 0.0
        #: share -> why its last scan failed (cleared by a scan that works).
        self.scan_errors: dict[str, str] = {}
        self._poller = threading.Thread(target=self._poll_loop, name="settle", daemon=True)

    # -- assembly ------------------------------------------------------------

    def _context(self) -> Any:
        """What analyzers get to build themselves (models, sessions, state dir)."""
        from photovault.analyze.context import AnalyzerContext
        from photovault.models.session import SessionFactory
        from photovault.models.store import ModelStore

        m = self.settings.models
        if self._sessions is None:
            self._sessions = SessionFactory(
                m.providers,
                m.intra_threads,
                m.inter_threads,
                m.idle_unload_seconds,
                on_load=self._model_loaded,
            )
        return AnalyzerContext(
            self.settings.state_dir, ModelStore(self.settings.models_dir), self._sessions
        )

    def _open_index(self) -> PhotoIndex:
        """The LanceDB index, sized for the CLIP model in use. A dimension change
        (another CLIP model) moves the old index aside and rebuilds from the catalog."""
        clip = next((a for a in self.analyzers.active if a.name == "clip"), None)
        dim = int(getattr(clip, "dim", 0) or 512)
        face_dim = 128 if self.settings.faces.model == "Dlib" else 512
        folder = self.settings.layout.index
        cfg = IndexSettings(
            vector_dim=dim, face_dim=face_dim, memory_ann=self.settings.server.memory_index
        )
        try:
            return PhotoIndex(folder, cfg)
        except IndexSchemaError as exc:
            if isinstance(exc, IndexTooNewError):
                raise
            aside = folder.with_name(f"index.old-{int(time.time())}")
            log.warning(
                "search index %s cannot be used (%s); moved to %s, rebuilding", folder, exc, aside
            )
            folder.rename(aside)
            return PhotoIndex(folder, cfg)

    def photos_from_catalog(self, rows: list[FileRow]) -> list[Photo]:
        """Catalog rows as the sinks see them (no pixels), names from the people store."""
        out = []
        for row in rows:
            content = self.catalog.content(row.sha256) if row.sha256 else None
            path = self.resolve(row.share, row.relpath)
            if content is None or path is None:
                continue
            results = self.people.enrich(content.sha256, content.results)
            out.append(Photo(row, path, content.sha256, content.metadata, results, None))
        return out

    def _index_rows(self, rows: list[FileRow]) -> None:
        """Write the index rows of these catalog files again (the done ones), through
        the sink so that a person's sidecar keywords apply."""
        done = [r for r in rows if r.state == "done"]
        if done:
            self._index_sink.store(self.photos_from_catalog(done))

    def reindex(self, shas: list[str]) -> None:
        self._index_rows([r for sha in shas for r in self.catalog.files_with_content(sha)])

    def _keywords_changed(self, file_ids: list[int]) -> None:
        """A person changed keywords in sidecars: rewrite those files' index rows."""
        rows = [r for i in file_ids if (r := self.catalog.get_by_id(i)) is not None]
        try:
            self._index_rows(rows)
        except Exception:
            log.exception("re-indexing %d photos after a keyword change failed", len(rows))

    def _names_changed(self, shas: list[str]) -> None:
        self.sidecars.wake()
        try:
            self.reindex(shas)
        except Exception:
            log.exception("re-indexing %d photos after a name change failed", len(shas))

    def repair_index(self, *, sidecars: bool = False) -> IndexDiff:
        """Make the index agree with the catalog (the truth): write the rows of done
        files that are missing or stale (a kill -9 lost the write buffer, a move or
        delete was not followed) and delete rows of forgotten files. Runs at start
        and after every rescan; an empty index is simply filled. With `sidecars`
        (a rescan), sidecars we wrote that are gone from disk are written again (a
        stat per photo: not at every start)."""
        with self._repair_lock:
            self.problems.report("index", "checking the search index against the catalog")
            try:
                diff = index_differences(self.catalog, self.index)
                # Rows the index may hold stale (re-analysed, renamed people) though
                # their content and path agree: the catalog marked them until written.
                dirty = {r.id for r in self.catalog.index_dirty(10_000_000)}
                todo = sorted(set(diff.missing) | set(diff.stale) | dirty)
                if diff.extra:
                    self.index.delete_ids(diff.extra)
                n = 0
                for lo in range(0, len(todo), 2000):
                    chunk = todo[lo : lo + 2000]
                    rows = [r for i in chunk if (r := self.catalog.get_by_id(i)) is not None]
                    self.problems.report(
                        "index",
                        f"repairing the search index: {n} of {len(todo)} photos written",
                    )
                    self._index_rows(rows)
                    n += len(chunk)
                self.index.flush()
                self.problems.clear("index")
                if sidecars and self.settings.sidecars.enabled:
                    gone = missing_sidecars(self.catalog)
                    if gone:
                        log.info("%d sidecars we wrote are gone; writing them again", len(gone))
                        self.catalog.forget_sidecars(gone)
                        self.sidecars.wake()
                if diff or todo:
                    log.info(
                        "search index repaired from the catalog: %d missing, %d stale, %d"
                        " left over, %d written",
                        len(diff.missing),
                        len(diff.stale),
                        len(diff.extra),
                        len(todo),
                    )
                return diff
            except Exception as exc:
                self.problems.report("index", f"search index repair failed: {exc}; retrying")
                log.exception("search index repair failed")
                raise

    def _repair_soon(self) -> None:
        threading.Thread(target=self._repair_logged, name="index-repair", daemon=True).start()

    def _repair_logged(self) -> None:
        try:
            self.repair_index()
        except Exception:
            self._repair_wanted = True  # tick() tries again

    def check(self) -> dict[str, Any]:
        """Do catalog, index and sidecars agree? (`vaultctl check`)."""
        self.index.flush()
        return check_report(self.catalog, self.index, sidecars=self.settings.sidecars.enabled)

    def _model_loaded(self, name: str, seconds: float, error: str | None) -> None:
        if error is None:
            self.metrics.model_load(name, seconds)
        else:
            self.metrics.error("model_load")

    @staticmethod
    def _make_throttle(settings: Settings) -> Throttle:
        t = settings.throttle
        return Throttle(t.max_images_per_second, QuietHours(t.quiet_hours), t.quiet_rate)

    def _make_worker(self) -> Worker:
        t = self.settings.throttle
        return Worker(
            self.catalog,
            self.resolve,
            self.analyzers,
            self.throttle,
            self.metadata,
            batch_size=t.batch_size,
            decode_workers=t.decode_workers,
            max_pixels=int(self.settings.decode.max_megapixels * 1_000_000),
            sinks=self.sinks,
            on_batch=lambda *_: self.sidecars.wake(),
            metrics=self.metrics,
            share_ok=self._share_ok,
            offline_shares=self._offline_shares,
        )

    def _share_ok(self, share: str) -> bool:
        """Is the share's root there and readable now (asked when one of its files fails)?"""
        s = self.settings.share(share)
        return s is not None and probe_root(s.path, lambda: self.catalog.count_share(share)).ok

    def _offline_shares(self) -> set[str]:
        return {p.key for p in self.problems.snapshot() if p.kind == "share"}

    def resolve(self, share: str, relpath: str) -> Path | None:
        s = self.settings.share(share)
        return s.path / relpath if s else None

    # -- start / stop ---------------------------------------------------------

    def start(self) -> None:
        recovered = self.catalog.recover()
        if recovered:
            log.info("resuming: %d files that were in flight go back to the queue", recovered)
        self.requeue_stale()
        self.server.start()
        self.metrics.declare_analyzers(a.name for a in self.analyzers.active)
        if self.settings.metrics.listen:
            try:
                self._exporter = serve(self.settings.metrics.listen, self.metrics.registry)
                log.info("metrics on http://%s/metrics", self.settings.metrics.listen)
            except (OSError, ValueError) as exc:
                self.metrics.error("metrics")
                log.error(
                    "metrics exporter not started on %s: %s", self.settings.metrics.listen, exc
                )
        for share in self.settings.shares:
            self._start_share(share)
        self._poller.start()
        self.worker.start()
        self.sidecars.start()
        self.people.start()
        self.index.start()
        # The catalog is the truth: whatever a crash kept from the index is written now.
        self._repair_soon()
        self._schedule()
        self.scheduler.start()
        self.scan_async(None)
        log.info(
            "vaultd %s started: %d shares, analyzers %s",
            __version__,
            len(self.settings.shares),
            self.analyzers.signature or "(none)",
        )

    def stop(self) -> None:
        log.info("stopping: draining the worker")
        try:
            self.scheduler.shutdown(wait=False)
        except Exception:
            log.debug("scheduler already stopped", exc_info=True)
        for w in self.watchers.values():
            w.stop()
        self._stop_poll.set()
        self.worker.stop()
        self.sidecars.stop()
        self.index.close()
        self.people.stop()
        self.server.stop()
        if self._exporter is not None:
            self._exporter.stop()
        self.metadata.close()
        self.analyzers.close()
        self.catalog.close()
        log.info("stopped")

    def _schedule(self) -> None:
        self.scheduler.remove_all_jobs()
        cron = self.settings.ingest.rescan
        if cron:
            self.scheduler.add_job(
                self.scan_async,
                CronTrigger.from_crontab(cron),
                args=[None],
                id="rescan",
                coalesce=True,
                max_instances=1,
            )

    def _start_share(self, share: ShareSettings) -> None:
        watcher = ShareWatcher(
            share.name,
            share.path,
            self.catalog,
            self.tracker,
            mode=share.watch,
            poll_interval=self.settings.ingest.poll_interval_seconds,
            on_sidecar=self.sidecars.sidecar_changed,
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

    # -- the settle -> catalog hand-off -----------------------------------------

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
            self.throttle.wake()

    def _poll_loop(self) -> None:
        interval = min(0.5, max(0.05, self.settings.ingest.settle_seconds / 4))
        while not self._stop_poll.wait(interval):
            try:
                self.tracker.poll()
            except Exception:
                log.exception("settle poll failed")

    # -- scans ----------------------------------------------------------------

    def scan_async(
        self, share: str | None, *, repair: bool = False, forget_missing: bool = False
    ) -> ScanJob:
        """Start a reconcile scan of one share (or all) in the background; with
        `repair`, the index is then checked against the catalog (`vaultctl rescan`);
        with `forget_missing`, a person confirmed that files gone in bulk were
        deleted (`vaultctl rescan SHARE --forget-missing`, see `watch/root.py`)."""
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
                    share = self.settings.share(name)
                    if share is None:
                        continue
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
                            self.problems.report(
                                "share", result.problem, key=name, path=os.fspath(share.path)
                            )
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
                self.throttle.wake()
            if repair:
                try:
                    self.repair_index(sidecars=True)
                except Exception as exc:
                    job.errors["index"] = f"index repair failed: {exc}"
        finally:
            job.done.set()

    # -- control ---------------------------------------------------------------

    def reload(self, settings: Settings) -> None:
        """Apply a new configuration: shares, throttle, ingest timings, analyzers."""
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
        paused = self.throttle.paused
        t = settings.throttle
        self.throttle.max_rate = t.max_images_per_second
        self.throttle.quiet = QuietHours(t.quiet_hours)
        self.throttle.quiet_rate = t.quiet_rate
        if paused:
            self.throttle.pause()
        self.worker.batch_size = t.batch_size
        self.sidecars.settings = settings
        self.catalog.max_attempts = settings.ingest.max_attempts
        if settings.analyzers.enabled != [a.name for a in self.analyzers.active] + list(
            self.analyzers.disabled
        ):
            self.reload_analyzers()
        self._schedule()
        log.info("configuration reloaded")

    def tick(self) -> None:
        """Housekeeping from the main loop: dead observers fall back to polling,
        idle models unload, newly installed models are picked up."""
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
        if self._sessions is not None:
            self._sessions.reap()
        self.check_health()
        now = time.monotonic()
        if now - self._models_checked >= 5.0:
            self._models_checked = now
            seen = self._models_fingerprint()
            if seen != self._models_seen:
                self._models_seen = seen
                log.info("model store changed; reloading analyzers")
                self.reload_analyzers()

    def _models_fingerprint(self) -> tuple[tuple[str, int], ...]:
        try:
            return tuple(
                sorted(
                    (os.fspath(p), p.stat().st_mtime_ns)
                    for p in self.settings.models_dir.glob("*/manifest.json")
                )
            )
        except OSError:
            return ()

    def reload_analyzers(self) -> None:
        """Build the analyzers anew (config or model store changed); requeue what
        lacks a result of the new set, so it is (re-)analyzed in the background."""
        old = self.analyzers
        self.analyzers = registry.load(
            self.settings.analyzers.enabled, self.settings, self._context()
        )
        self.worker.analyzers = self.analyzers
        old.close()
        self.metrics.declare_analyzers(a.name for a in self.analyzers.active)
        clip = next((a for a in self.analyzers.active if a.name == "clip"), None)
        if (
            clip is not None
            and int(getattr(clip, "dim", 0) or 512) != self.index.settings.vector_dim
        ):
            log.info("CLIP embedding size changed; rebuilding the search index")
            self.index.close()
            new = self._open_index()
            new.on_written = self.catalog.mark_indexed
            self.index = new
            self._index_sink.index = self._index_follower.index = new
            new.start()
        self.requeue_stale()

    def requeue_stale(self) -> None:
        required = parse_signature(self.analyzers.signature)
        n = self.catalog.requeue_stale(required)
        if n:
            log.info(
                "%d photos lack results of %s; queued to analyze them", n, self.analyzers.signature
            )
            self.throttle.wake()

    def _stage_threads(self) -> dict[str, threading.Thread | None]:
        """Every loop thread the pipeline needs (None: not started yet)."""
        return {
            "worker": self.worker._thread,
            "sidecars": self.sidecars._thread,
            "people": self.people._thread,
            "index": self.index._ticker,
            "settle": self._poller,
        }

    def dead_stages(self) -> list[str]:
        return [
            name
            for name, t in self._stage_threads().items()
            if t is not None and t.ident is not None and not t.is_alive()
        ]

    def healthy(self) -> bool:
        """For the systemd watchdog: every stage thread lives and the worker is not
        stuck (its loop beats at least every half second between batches, and
        while it backs off from errors; one batch may take minutes on a slow NAS,
        never ten). A dead stage stops the pings, so systemd restarts vaultd."""
        return (
            self.worker.alive()
            and not self.dead_stages()
            and time.monotonic() - self.worker.last_heartbeat < 600
        )

    def check_health(self) -> None:
        """From the main loop, once a second: turn each stage's current fault into a
        problem (and clear it when it is gone), probe the state disk, retry a
        failed index repair."""
        p = self.problems
        dead = self.dead_stages()
        for name in self._stage_threads():
            if name in dead:
                if p.report("stage", f"the {name} stage has stopped", key=name):
                    log.critical("the %s stage thread died; vaultd reports unhealthy", name)
            elif name == "worker" and self.worker.last_error:
                p.report("stage", f"the worker keeps failing: {self.worker.last_error}", key=name)
            elif name == "people" and self.people.last_error:
                p.report("stage", f"face clustering fails: {self.people.last_error}", key=name)
            else:
                p.clear("stage", name)
        if self.worker.metadata_error:
            p.report("exiftool", f"metadata cannot be read: {self.worker.metadata_error}")
        elif not self.worker.last_error:
            p.clear("exiftool")
        if self.index.last_error:
            p.report("index", f"search index writes fail: {self.index.last_error}", key="writes")
        else:
            p.clear("index", "writes")
        now = time.monotonic()
        self.state_probe.tick(now)
        if self._repair_wanted and not self.problems.active("disk"):
            self._repair_wanted = False
            self._repair_soon()
        failed = [n for n in self.scan_errors if n not in self.scanning]
        if failed and now >= self._scan_retry_at and not self.problems.active("disk"):
            # A scan that failed (full disk, I/O error) is tried again by itself.
            self._scan_retry_at = now + SCAN_RETRY_SECONDS
            for name in failed:
                self.scan_async(name)

    # -- status ---------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        counts = self.catalog.counts()
        scans = self.catalog.last_scans()
        rate = self.throttle.measured_rate()
        shares = []
        for s in self.settings.shares:
            c = counts.get(s.name) or dict.fromkeys(
                ("pending", "processing", "done", "failed", "quarantined"), 0
            )
            w = self.watchers.get(s.name)
            shares.append(
                {
                    "name": s.name,
                    "path": os.fspath(s.path),
                    "read_only": s.read_only,
                    "counts": c,
                    "total": sum(c.values()),
                    "watch": w.kind if w else "stopped",
                    "watch_problem": w.fallback_reason if w else None,
                    "scanning": s.name in self.scanning,
                    "last_scan": scans.get(s.name),
                }
            )
        quarantined = [
            {
                "path": os.fspath(self.resolve(r.share, r.relpath) or r.relpath),
                "share": r.share,
                "reason": r.last_error,
            }
            for r in self.catalog.quarantined()
        ]
        finished = [t for t in scans.values() if t]
        return {
            "version": __version__,
            "pid": os.getpid(),
            "uptime_seconds": round(time.time() - self.started_at, 1),
            "shares": shares,
            "queue_depth": self.catalog.queue_depth(),
            "settling": len(self.tracker),
            "index_pending": self.index.pending(),
            "memory_index": self.index.memory_status(),
            "paused": self.throttle.paused,
            "quiet_hours_active": self.throttle.quiet_active(),
            "rate_limit": self.throttle.current_rate(),
            "rate_per_second": round(rate, 2),
            "last_scan": min(finished) if finished and len(finished) == len(shares) else None,
            "scanning": sorted(self.scanning),
            "quarantined": quarantined,
            "problems": [p.as_dict() for p in self.problems.snapshot()],
            "index_dirty": self.catalog.count_index_dirty(),
            "people": self.people.status(),
            "sidecar_warnings": [
                {"path": path, "warning": warning}
                for _fid, path, warning in self.catalog.sidecar_warnings()
            ],
            "analyzers": {
                "active": [
                    {"name": a.name, "version": a.version, **a.status()}
                    for a in self.analyzers.active
                ],
                "disabled": [{"name": n, "reason": r} for n, r in self.analyzers.disabled.items()],
            },
        }
