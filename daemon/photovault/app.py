"""vaultd assembled in one place: the whole pipeline is readable here.

    watch/ (watchdog, settle tracker, scans) --settled--> catalog/ queue
    pipeline/ worker --claim--> media/ decode + exiftool --> analyze/
        --> sinks: people/, index/ (ops/repair.py) --> catalog commit (done)
    sidecar/ stage: done photos --> XMP sidecars (and people's edits back)
    query/ service (Unix socket) <-- vaultctl (cli/)

`Daemon.__init__` builds the stages in that order (numbered below);
`Daemon.start()` brings them up in data-flow order, `Daemon.stop()`
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
from photovault.catalog.store import Catalog
from photovault.config import Settings
from photovault.geo.places import release_idle as release_places
from photovault.health import StateDirProbe
from photovault.index import (
    IndexSchemaError,
    IndexSettings,
    IndexTooNewError,
    PhotoIndex,
)
from photovault.media.metadata import MetadataReader
from photovault.media.video import TOOL_MISSING_PREFIX
from photovault.media.videotools import VideoToolsProbe
from photovault.memory import page_out_file_pages
from photovault.metrics import Exporter, Metrics, serve
from photovault.ops.consistency import IndexDiff
from photovault.ops.repair import IndexKeeper
from photovault.people.stage import PeopleStage
from photovault.pipeline.livephoto import LivePairs
from photovault.pipeline.throttle import QuietHours, Throttle
from photovault.pipeline.worker import Sink, Worker
from photovault.problems import Problems
from photovault.query.handlers import Handlers
from photovault.query.server import QueryServer
from photovault.query.status import status_of
from photovault.results import parse_signature
from photovault.sidecar.stage import SidecarStage
from photovault.watch.root import probe as probe_root
from photovault.watch.stage import ScanJob, WatchStage

log = logging.getLogger(__name__)


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
        self.state_probe = StateDirProbe(settings.state_dir, self.problems)
        self.tools_probe = VideoToolsProbe(
            self.problems, lambda: self.catalog.retry_failed_with(f"{TOOL_MISSING_PREFIX}%")
        )
        # status() runs only at scrape time, so handing it over before start() is safe.
        self.metrics = Metrics(metrics_registry or CollectorRegistry(), self.status)
        self._exporter: Exporter | None = None
        self.scheduler = BackgroundScheduler(daemon=True)

        # 1. catalog/: every file's state and the work queue; the truth.
        self.catalog = Catalog(settings.catalog_path, max_attempts=settings.ingest.max_attempts)
        # 2. watch/: files on the shares -> the catalog queue (watchers, settling, scans).
        self.watch = WatchStage(
            settings,
            self.catalog,
            self.problems,
            self.metrics,
            on_queued=lambda: self.throttle.wake(),
            on_sidecar=lambda *a: self.sidecars.sidecar_changed(*a),
            after_scan=lambda: self.keeper.repair(sidecars=True),
        )
        # 3. pipeline/ + media/ + analyze/: claim, decode, read metadata, analyze.
        self.throttle: Throttle = self._make_throttle(settings)
        self.metadata = MetadataReader()
        self._sessions: Any = None
        self.analyzers = registry.load(settings.analyzers.enabled, settings, self._context())
        # 4. the sinks of done photos, in order: people/ (faces -> people; adds the
        #    names the index stores), then index/ (kept in step by ops/repair.py).
        self.people = PeopleStage.open(
            settings.state_dir,
            settings.faces,
            self.catalog,
            on_changed=lambda shas: self.keeper.names_changed(shas),
            queue_depth=self.catalog.queue_depth,
        )
        self.catalog.listeners.append(self.people)  # deleted photos' faces leave
        self.live_pairs = LivePairs(self.catalog)
        self.catalog.listeners.append(self.live_pairs)  # a still gone frees its live video
        self.index = self._open_index()
        self.keeper: IndexKeeper = IndexKeeper(
            self.catalog,
            self.index,
            resolve=self.resolve,
            enrich=self.people.enrich,
            problems=self.problems,
            sidecars_enabled=lambda: self.settings.sidecars.enabled,
            wake_sidecars=lambda: self.sidecars.wake(),
        )
        self.sinks: list[Sink] = [self.people, self.keeper.sink]
        self.worker = self._make_worker()
        # 5. sidecar/: XMP beside each done photo, from the catalog (its own thread).
        self.sidecars: SidecarStage = SidecarStage(
            self.catalog,
            settings,
            faces=self.people.faces_for,
            on_adopt=self.people.adopt,
            on_keywords_changed=self.keeper.keywords_changed,
            metrics=self.metrics,
            problems=self.problems,
        )
        # 6. query/: the Unix-socket service vaultctl talks to.
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
        clip = self.clip()
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

    def repair_index(self, *, sidecars: bool = False) -> IndexDiff:
        """Make the index agree with the catalog (ops/repair.py)."""
        return self.keeper.repair(sidecars=sidecars)

    def check(self) -> dict[str, Any]:
        """Do catalog, index and sidecars agree? (`vaultctl check`)."""
        return self.keeper.check()

    def reindex(self, shas: list[str]) -> None:
        self.keeper.reindex(shas)

    def clip(self) -> Any:
        """The active CLIP analyzer, or None (the query service encodes searches)."""
        return next((a for a in self.analyzers.active if a.name == "clip"), None)

    def embed_image(self, row: Any) -> list[float]:
        """The active CLIP model's embedding of one catalogued photo, made now (`vaultctl
        embed image` on a photo not analyzed by this model yet). ValueError: the file
        cannot be decoded; RuntimeError: no CLIP model, or it failed on the photo."""
        from photovault.analyze.base import AnalysisItem
        from photovault.media.decode import decode_image
        from photovault.media.types import MediaError, PhotoMetadata

        clip = self.clip()
        path = self.resolve(row.share, row.relpath)
        if clip is None or path is None:
            raise RuntimeError("no CLIP model is active")
        try:
            image = decode_image(path, clip.image_side)
        except MediaError as exc:
            raise ValueError(str(exc)) from exc
        (res,) = clip.analyze(
            [AnalysisItem(row.id, path, row.sha256 or "", image, PhotoMetadata())]
        )
        if not isinstance(res, dict):
            raise RuntimeError(str(res))
        return [float(v) for v in res["embedding"]]

    def search_latency(self, seconds: float) -> None:
        self.metrics.search_latency(seconds)

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
            live=self.live_pairs,
            idle_release_seconds=self.settings.models.idle_unload_seconds,
        )

    def _share_ok(self, share: str) -> bool:
        """Is the share's root there and readable now (asked when one of its files fails)?"""
        s = self.settings.share(share)
        return s is not None and probe_root(s.path, lambda: self.catalog.count_share(share)).ok

    def _offline_shares(self) -> set[str]:
        return {p.key for p in self.problems.snapshot() if p.kind == "share"}

    def scan_async(
        self, share: str | None, *, repair: bool = False, forget_missing: bool = False
    ) -> ScanJob:
        """A reconcile scan in the background (watch/stage.py)."""
        return self.watch.scan_async(share, repair=repair, forget_missing=forget_missing)

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
        self.watch.start()
        self.worker.start()
        self.sidecars.start()
        self.people.start()
        self.index.start()
        # The catalog is the truth: whatever a crash kept from the index is written now.
        self.keeper.repair_soon()
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
        self.watch.stop()
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

    # -- control ---------------------------------------------------------------

    def reload(self, settings: Settings) -> None:
        """Apply a new configuration: shares, throttle, ingest timings, analyzers."""
        self.settings = settings
        self.watch.reload(settings)
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
        """Housekeeping from the main loop: dead observers fall back to polling, idle
        models and place data unload (at rest file pages too), new models load."""
        reaped = self._sessions.reap() if self._sessions is not None else 0
        m = self.settings.models
        places = release_places(m.idle_unload_seconds)
        rest = (reaped or places) and (self._sessions is None or self._sessions.at_rest())
        if rest and m.page_out_at_rest and (kib := page_out_file_pages()):
            log.info("at rest: %d MiB of clean file pages handed back", kib // 1024)
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
            self.index = new
            self.keeper.replace(new)
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
            "settle": self.watch.poller,
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
        self.tools_probe.tick(now)
        if self.keeper.wanted and not self.problems.active("disk"):
            self.keeper.wanted = False
            self.keeper.repair_soon()
        self.watch.tick(now, disk_ok=not self.problems.active("disk"))

    # -- status ---------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """`vaultctl status` (query/status.py assembles it)."""
        return status_of(self)
