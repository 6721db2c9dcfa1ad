"""The batch worker: claim -> decode (pool) -> metadata -> analyze -> sinks -> commit.

One thread drives it. Up to LOOKAHEAD batches are in flight, so the decode
processes work on the next batch while this thread runs the analyzers on the
current one (rclip's LOOKAHEAD_BATCHES). Results are committed together with
the `done` state, so a crash never leaves a photo half-done, and the sinks
(sidecar, index) are idempotent so a retried batch does no harm.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from photovault.analyze.base import AnalysisItem, AnalyzerError
from photovault.analyze.registry import LoadedAnalyzers
from photovault.catalog.store import Catalog, FileRow, display
from photovault.media.formats import is_video
from photovault.media.types import DecodedImage, MediaError, PhotoMetadata
from photovault.pipeline import frames, livephoto
from photovault.pipeline.decodepool import DecodeOutcome, DecodePool
from photovault.pipeline.facts import basic_facts, readable_metadata, signature_without
from photovault.pipeline.throttle import Throttle
from photovault.results import parse_signature

log = logging.getLogger(__name__)

LOOKAHEAD = 2
#: Videos in one batch at most: each holds up to 60 sampled frames of at most
#: 768 px (about 60 MB) from decode until its batch is analyzed.
VIDEOS_PER_BATCH = 2


class MetadataDown(RuntimeError):
    """exiftool failed for a whole batch; the batch goes back to the queue."""


@dataclass
class Photo:
    """A finished photo as the sinks see it."""

    file: FileRow
    path: Path
    sha256: str
    facts: dict[str, Any]
    results: dict[str, Any]
    image: DecodedImage | None  # None when results were reused without decoding


class Sink(Protocol):
    """A stage after analysis that stores results somewhere (sidecar, index)."""

    name: str

    def store(self, photos: list[Photo]) -> None: ...


class MetadataSource(Protocol):
    def read(self, paths: list[Path]) -> dict[Path, PhotoMetadata | MediaError]: ...


@dataclass
class _Batch:
    rows: list[FileRow]
    paths: list[Path]
    decodes: list[Future[DecodeOutcome]]
    metadata: Future[dict[Path, PhotoMetadata | MediaError]]
    claimed_at: float = field(default_factory=time.monotonic)


class Worker:
    """Runs batches until stopped. Construct, then `start()`; `stop()` drains."""

    def __init__(
        self,
        catalog: Catalog,
        resolve: Any,  # (share, relpath) -> Path | None
        analyzers: LoadedAnalyzers,
        throttle: Throttle,
        metadata: MetadataSource,
        *,
        batch_size: int,
        decode_workers: int,
        max_pixels: int,
        sinks: list[Sink] | None = None,
        on_batch: Any = None,
        metrics: Any = None,
        share_ok: Callable[[str], bool] | None = None,
        offline_shares: Callable[[], set[str]] | None = None,
        live: livephoto.LivePairs | None = None,
        idle_release_seconds: float = 600.0,
    ) -> None:
        self.catalog = catalog
        self.resolve = resolve
        self.analyzers = analyzers
        self.throttle = throttle
        self.metadata = metadata
        self.batch_size = batch_size
        self.decode_workers = decode_workers
        self.max_pixels = max_pixels
        self.sinks = sinks or []
        self.on_batch = on_batch
        self.metrics = metrics
        #: Is this share's root present and readable now? A file missing beside a
        #: missing root is an outage, not a deletion (the file is kept, not counted).
        self.share_ok = share_ok or (lambda share: True)
        #: Shares whose files wait in the queue (their root is known to be missing).
        self.offline_shares = offline_shares or set
        self.stopping = threading.Event()
        #: Live photos: which file is whose half, and keeping both records in step.
        self.live = live or livephoto.LivePairs(catalog)
        self._pool = DecodePool(decode_workers)
        #: With nothing to do for this long, the decode processes are stopped.
        self.idle_release_seconds = idle_release_seconds
        self._meta_exec = ThreadPoolExecutor(max_workers=1, thread_name_prefix="exiftool")
        self._inflight: deque[_Batch] = deque()
        self._thread: threading.Thread | None = None
        self.last_heartbeat = time.monotonic()
        self._drain = 4.0
        #: Why the loop last failed (None while it works), and since when.
        self.last_error: str | None = None
        self.error_since: float | None = None
        #: Claimed files of a failed batch not yet given back (see _requeue_retry).
        self._unfinished: set[int] = set()
        #: Why exiftool failed on the last batch (None when it worked).
        self.metadata_error: str | None = None

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="worker", daemon=True)
        threading.Thread(target=self._pool.warm, name="warm-pool", daemon=True).start()
        self._thread.start()

    def stop(self, drain_seconds: float = 4.0) -> None:
        """Finish what is in flight within `drain_seconds`, requeue the rest.

        A batch still inside an analyzer after that is abandoned (the thread is a
        daemon thread); its files stay `processing` and go back to the queue at the
        next start, so SIGTERM always exits within systemd's 10 s.
        """
        self._drain = drain_seconds
        self.stopping.set()
        self.throttle.wake()
        if self._thread is not None:
            self._thread.join(timeout=drain_seconds + 2)
        ids = set(self._unfinished)
        for batch in self._inflight:
            ids.update(r.id for r in batch.rows)
        self._inflight.clear()
        try:
            self.catalog.requeue(sorted(ids))
        except Exception:
            log.exception("could not requeue %d files; the next start requeues them", len(ids))
        self._pool.shutdown()
        self._meta_exec.shutdown(wait=False, cancel_futures=True)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- loop ------------------------------------------------------------------

    def _run(self) -> None:
        """The loop survives every error: it logs the first, counts each, backs off
        (a full state disk fails every catalog write) and tries again, so work
        resumes by itself once the cause is gone. `last_error` says why meanwhile."""
        deadline: float | None = None
        backoff = 0.0
        while True:
            self.last_heartbeat = time.monotonic()
            try:
                self._requeue_retry()
                if self.stopping.is_set():
                    deadline = deadline or time.monotonic() + self._drain
                    if not self._inflight or time.monotonic() > deadline:
                        return
                else:
                    self._fill()
                if not self._inflight:
                    if self._pool.release_idle(self.idle_release_seconds):
                        log.info("decode processes stopped while idle; they start with new work")
                    self.throttle.wait(self.stopping, 0.5)
                    self._ok()
                    backoff = 0.0
                    continue
                head = self._inflight[0]
                done, _ = wait(head.decodes, timeout=0.2)
                if len(done) < len(head.decodes):
                    continue
                self._inflight.popleft()
                try:
                    self._process(head)
                except Exception:
                    self._unfinished.update(r.id for r in head.rows)
                    raise
                self._ok()
                backoff = 0.0
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"
                if reason != self.last_error:
                    log.exception("worker: %s; retrying", reason)
                self.last_error = reason
                self.error_since = self.error_since or time.time()
                self._error("worker")
                if self.stopping.is_set():
                    return  # stop() requeues what it can; the next start the rest
                backoff = min(max(backoff * 2, 0.5), 30.0)
                self.stopping.wait(backoff)

    def _ok(self) -> None:
        if self.last_error is not None:
            log.info("worker: working again after: %s", self.last_error)
        self.last_error = None
        self.error_since = None

    def _requeue_retry(self) -> None:
        """Give back files of a batch that failed midway (the requeue itself may
        have failed on a full disk: keep trying)."""
        if self._unfinished:
            ids = sorted(self._unfinished)
            self.catalog.requeue(ids)
            self._unfinished.difference_update(ids)
            log.info("worker: %d files of an unfinished batch went back to the queue", len(ids))

    def _fill(self) -> None:
        while len(self._inflight) < LOOKAHEAD:
            n = self.throttle.current_rate()
            if n == 0.0:
                return
            allowed = self.throttle.acquire(self.batch_size, self.stopping) if n else 0
            rows = self.catalog.claim(allowed or self.batch_size, self.offline_shares())
            if not rows:
                return
            rows = self._few_videos(rows)
            self._submit(rows)

    def _few_videos(self, rows: list[FileRow]) -> list[FileRow]:
        """At most VIDEOS_PER_BATCH videos a batch; the others go back to the queue's front."""
        videos = [r for r in rows if is_video(r.relpath)]
        if len(videos) <= VIDEOS_PER_BATCH:
            return rows
        later = {r.id for r in videos[VIDEOS_PER_BATCH:]}
        self.catalog.requeue(sorted(later))
        return [r for r in rows if r.id not in later]

    def _submit(self, rows: list[FileRow]) -> None:
        side = self.analyzers.image_side
        paths: list[Path] = []
        futures: list[Future[DecodeOutcome]] = []
        for row in rows:
            path = self.resolve(row.share, row.relpath)
            paths.append(path)
            futures.append(self._decode(path, side))
        metadata = self._meta_exec.submit(self._read_metadata, paths)
        self._inflight.append(_Batch(rows, paths, futures, metadata))

    def _read_metadata(
        self, paths: Sequence[Path | None]
    ) -> dict[Path, PhotoMetadata | MediaError]:
        started = time.monotonic()
        try:
            return self.metadata.read([p for p in paths if p is not None])
        except Exception:
            self._error("metadata")
            raise
        finally:
            self._stage("metadata", time.monotonic() - started)

    def _stage(self, stage: str, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.observe_stage(stage, seconds)

    def _error(self, kind: str, n: int = 1) -> None:
        if self.metrics is not None:
            for _ in range(n):
                self.metrics.error(kind)

    def _decode(self, path: Path | None, side: int) -> Future[DecodeOutcome]:
        if path is None:
            f: Future[DecodeOutcome] = Future()
            f.set_result(DecodeOutcome("", None, -1, -1, error="share no longer configured"))
            return f
        try:
            return self._pool.submit(path, side, self.max_pixels)
        except BrokenProcessPool:
            self._restart_pool()
            return self._pool.submit(path, side, self.max_pixels)

    def _restart_pool(self) -> None:
        log.error("a decode process died; restarting the decode pool")
        self._pool.shutdown()
        self._pool = DecodePool(self.decode_workers)

    # -- one batch ---------------------------------------------------------------

    def _outcome(self, f: Future[DecodeOutcome], path: Path) -> DecodeOutcome:
        try:
            return f.result()
        except BrokenProcessPool:
            self._restart_pool()
            return DecodeOutcome(str(path), None, -1, -1, error="decoder process crashed")
        except Exception as exc:
            return DecodeOutcome(str(path), None, -1, -1, error=f"decode failed: {exc}")

    def _process(self, batch: _Batch) -> None:
        try:
            meta_map = batch.metadata.result()
        except Exception as exc:
            # exiftool is down: analysing without it would store photos with no date,
            # camera or place for good. Give the batch back; the loop backs off.
            self.metadata_error = f"{type(exc).__name__}: {exc}"
            raise MetadataDown(f"exiftool failed: {exc}") from exc
        self.metadata_error = None
        groups: dict[str, list[tuple[FileRow, Path, DecodeOutcome]]] = {}
        for row, path, fut in zip(batch.rows, batch.paths, batch.decodes, strict=True):
            out = self._outcome(fut, path)
            if out.seconds:
                self._stage("decode", out.seconds)
            if out.error is not None or out.sha256 is None:
                self._failed(row, path, out)
                continue
            groups.setdefault(out.sha256, []).append((row, path, out))

        signature = parse_signature(self.analyzers.signature)
        Member = tuple[FileRow, Path, DecodeOutcome]
        finished: list[tuple[str, dict[str, Any], dict[str, Any], list[Member], str | None]]
        finished = []
        to_analyze: list[tuple[str, list[str], dict[str, Any], list[Member]]] = []
        lives: dict[str, dict[str, str]] = {}  # sha256 -> live-photo fields of its file
        for sha, members in groups.items():
            known = self.catalog.content(sha)
            have = parse_signature(known.analyzers) if known else {}
            missing = [n for n, v in signature.items() if have.get(n) != v]
            _row0, path0, out0 = members[0]
            kind = out0.image.kind if out0.image else "photo"
            meta0, _why = readable_metadata(meta_map, [path0])
            lives[sha] = self.live.fields([r for r, _p, _o in members], path0, kind, meta0, sha)
            if known and livephoto.changed(known.results, lives[sha]) and "metadata" in signature:
                missing.append("metadata")  # its other half arrived (or left): record that
                if not lives[sha].get("live_photo_of"):  # no longer a half: analyze it
                    missing += livephoto.skipped_names(known.results)
            self._complete_missing(missing, kind)
            prior = known.results if known else {}
            if known and not missing:
                photos = [
                    Photo(r, p, sha, known.metadata, known.results, o.image) for r, p, o in members
                ]
                for r, _p, _o in members:
                    log.info(
                        "reused results for %s/%s (same content as an analyzed photo)",
                        r.share,
                        display(r.relpath),
                    )
                self._store(photos)
                for r, _p, o in members:
                    self.catalog.complete(r.id, sha256=sha, size=o.size, mtime_ns=o.mtime_ns)
                continue
            to_analyze.append((sha, missing, prior, members))

        unreadable: dict[str, str] = {}  # sha256 -> why exiftool read none of its files
        if to_analyze:
            items = []
            for sha, _missing, prior, members in to_analyze:
                row, path, out = members[0]
                meta, why = readable_metadata(meta_map, [p for _r, p, _o in members])
                if why is not None:
                    log.warning("metadata unreadable for %s: %s", path, why)
                    unreadable[sha] = why
                assert out.image is not None
                items.append(
                    AnalysisItem(row.id, path, sha, out.image, meta or PhotoMetadata(), dict(prior))
                )
            halves = {i for i, t in enumerate(to_analyze) if lives[t[0]].get("live_photo_of")}
            batch_items = frames.expand(
                items, [m for _s, m, _p, _mm in to_analyze], skip_frames=halves
            )
            errors = frames.fold(
                items, batch_items, self._analyze(batch_items.items, batch_items.missing)
            )
            for i, (item, (sha, _missing, _prior, members), err) in enumerate(
                zip(items, to_analyze, errors, strict=True)
            ):
                if i in halves:  # part of its still: nothing of it is analyzed but metadata
                    for name in signature:
                        if name not in frames.ONCE_PER_VIDEO:
                            still = lives[sha]["live_photo_of"]
                            item.results[name] = livephoto.skipped_result(still)
                facts = frames.stamp_media(
                    item.results,
                    basic_facts(item.metadata, item.image),
                    frames.media_facts(item.image, item.metadata, lives[sha]),
                )
                finished.append((sha, facts, item.results, members, err))

        for sha, facts, results, members, err in finished:
            photos = [Photo(r, p, sha, facts, results, o.image) for r, p, o in members]
            self._store(photos)
            # Record only the analyzers that succeeded: a failed one (exiftool
            # included) is then missing for this content, so a copy of it or
            # the next start runs it again instead of reusing an empty result.
            failed = {n for n, res in results.items() if isinstance(res, dict) and "error" in res}
            if sha in unreadable:
                failed.add("metadata")
                err = "; ".join(filter(None, [err, f"metadata: {unreadable[sha]}"]))
            self.catalog.store_content(
                sha,
                signature_without(self.analyzers.signature, failed),
                facts,
                results,
                [(r.id, o.size, o.mtime_ns) for r, _p, o in members],
                error=err,
            )
            for ph in photos:
                log.info(
                    "analyzed %s/%s%s",
                    ph.file.share,
                    display(ph.file.relpath),
                    f" (with errors: {err})" if err else "",
                )
            for r, _p, _o in members:
                self.live.stored(r, lives[sha])
        n_ok = sum(len(m) for m in groups.values())
        self.throttle.record_done(n_ok)
        if self.on_batch is not None:
            self.on_batch(len(batch.rows), n_ok, time.monotonic() - batch.claimed_at)

    def _complete_missing(self, missing: list[str], kind: str) -> None:
        """Add what builds on a missing result, and for a video what a missing one
        reads (`tags` reads `clip`): frames sampled now need not be those stored."""
        for a in self.analyzers.active:
            if a.name in missing and kind == "video":
                missing += [r for r in a.requires if r not in missing]
        for a in self.analyzers.active:  # results built on a stale one are stale too
            if a.name not in missing and any(r in missing for r in a.requires):
                missing.append(a.name)

    def _analyze(self, items: list[AnalysisItem], missing: list[list[str]]) -> list[str | None]:
        """Run each active analyzer on the items that lack its result."""
        errors: list[list[str]] = [[] for _ in items]
        for analyzer in self.analyzers.active:
            idx = [i for i, m in enumerate(missing) if analyzer.name in m]
            if not idx:
                continue
            sub = [items[i] for i in idx]
            started = time.monotonic()
            try:
                results = analyzer.analyze(sub)
                if len(results) != len(sub):
                    raise RuntimeError(f"returned {len(results)} results for {len(sub)} photos")
            except Exception as exc:
                log.exception("analyzer %s failed on a batch of %d", analyzer.name, len(sub))
                results = [AnalyzerError(f"{type(exc).__name__}: {exc}")] * len(sub)
            self._stage(f"analyzer:{analyzer.name}", time.monotonic() - started)
            failed = sum(isinstance(r, AnalyzerError) for r in results)
            self._error("analyzer", failed)
            if self.metrics is not None:
                self.metrics.photos_analyzed(analyzer.name, len(sub) - failed)
            for i, res in zip(idx, results, strict=True):
                if isinstance(res, AnalyzerError):
                    items[i].results[analyzer.name] = {"error": str(res)}
                    errors[i].append(f"{analyzer.name}: {res}")
                    log.warning("%s failed on %s: %s", analyzer.name, items[i].path, res)
                else:
                    items[i].results[analyzer.name] = res
        return ["; ".join(e) if e else None for e in errors]

    def _store(self, photos: list[Photo]) -> None:
        for sink in self.sinks:
            started = time.monotonic()
            try:
                sink.store(photos)
            except Exception:
                self._error(sink.name)
                log.exception("%s stage failed for %d photos", sink.name, len(photos))
            self._stage(sink.name, time.monotonic() - started)

    def _failed(self, row: FileRow, path: Path | None, out: DecodeOutcome) -> None:
        if path is not None and not self.share_ok(row.share):
            self.catalog.requeue([row.id])
            log.info("%s not readable while its share is offline; kept in the queue", path)
            return
        if path is not None and not path.exists() and not path.is_symlink():
            self.catalog.forget(row.share, row.relpath)
            log.info("%s vanished before it was processed; forgotten", path)
            return
        reason = out.error or "unknown error"
        self._error("decode")
        state = self.catalog.fail(row.id, reason, permanent=out.permanent)
        if state == "quarantined":
            log.warning("quarantined %s: %s", path, reason)
        else:
            log.info("will retry %s: %s", path, reason)
