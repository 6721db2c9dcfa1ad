"""The sidecar stage: keeps every done photo's XMP sidecar in step with the catalog.

It runs in its own thread and takes its work from the catalog (done files
with no sidecar record), not from an in-memory queue: a crash between the
analysis commit and the sidecar write is repaired at the next start, and a
slow disk never holds up inference. It also reads sidecars back when another
program changed them (a face named in digiKam), recognising its own writes by
their fingerprint so that they never cause a loop.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from photovault.analyze.base import photo_tags
from photovault.catalog.store import Catalog, FileRow, display
from photovault.config import Settings
from photovault.sidecar.model import FaceRegion, Keyword, SidecarContent
from photovault.sidecar.naming import sidecar_path
from photovault.sidecar.reader import ReadResult, adopted_names, read_sidecar
from photovault.sidecar.writer import SidecarWriter

log = logging.getLogger(__name__)

#: sha256 -> [{"id", "box", "score", "person"}] of the photo's faces (the people store).
FacesProvider = Callable[[str], list[dict[str, Any]]]
#: (face_id, name or None, previous name) for a name typed on our region elsewhere.
AdoptCallback = Callable[[str, str | None, str | None], None]


def build_content(
    results: dict[str, Any], faces: list[dict[str, Any]], signature: str
) -> SidecarContent:
    """What we write for one photo, from its stored analyzer results."""
    best: dict[tuple[str, ...], Keyword] = {}
    for tag in photo_tags(results):
        path = tuple(p for p in str(tag["tag"]).split("|") if p)
        if not path:
            continue
        conf = tag.get("confidence")
        old = best.get(path)
        if old is None or (conf or 0) > (old.confidence or 0):
            best[path] = Keyword(path, conf, str(tag.get("source") or ""))
    regions = []
    model = (results.get("faces") or {}).get("model") or next(
        (f.get("model") for f in (results.get("faces") or {}).get("faces", []) or []), None
    )
    for f in faces:
        name = f.get("person")
        regions.append(FaceRegion(tuple(f["box"]), name, str(f["id"]), f.get("score"), model))
        if name:
            best.setdefault(("People", name), Keyword(("People", name), None, "faces"))
    versions = dict(part.split(":", 1) for part in signature.split(",") if ":" in part)
    return SidecarContent(
        keywords=tuple(best.values()),
        faces=tuple(regions),
        analyzed_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        model_versions=versions,
    )


def _fingerprint_matches(path: Path, fp: tuple[int, int, str] | None) -> bool:
    if fp is None:
        return False
    try:
        st = os.stat(path)
        if (st.st_mtime_ns, st.st_size) != (fp[0], fp[1]):
            return False
        return hashlib.sha256(path.read_bytes()).hexdigest() == fp[2]
    except OSError:
        return False


class SidecarStage:
    """Writes sidecars for done photos and reads back changes made by people."""

    def __init__(
        self,
        catalog: Catalog,
        settings: Settings,
        *,
        writer: SidecarWriter | None = None,
        faces: FacesProvider | None = None,
        on_adopt: AdoptCallback | None = None,
        metrics: Any = None,
    ) -> None:
        self.catalog = catalog
        self.settings = settings
        self.writer = writer or SidecarWriter()
        self.faces = faces or (lambda sha: [])
        self.on_adopt = on_adopt
        self.metrics = metrics
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._changed: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.written = 0

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sidecars", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.writer.close()

    def wake(self) -> None:
        self._wake.set()

    @property
    def enabled(self) -> bool:
        return self.settings.sidecars.enabled

    def _run(self) -> None:
        while not self._stop.is_set():
            did = 0
            try:
                did += self._read_back_changed()
                if self.enabled:
                    for row in self.catalog.sidecar_work(32):
                        if self._stop.is_set():
                            break
                        self.write_one(row)
                        did += 1
            except Exception:
                log.exception("sidecar stage error")
                self._stop.wait(2.0)
            if not did:
                self._wake.wait(1.0)
                self._wake.clear()

    # -- writing ------------------------------------------------------------------

    def path_for(self, row: FileRow) -> Path | None:
        share = self.settings.share(row.share)
        if share is None:
            return None
        return sidecar_path(
            share.path / row.relpath,
            self.settings.sidecars.naming,
            share_root=share.path,
            read_only=share.read_only,
            mirror_root=self.settings.sidecar_mirror / share.name,
        )

    def content_for(self, row: FileRow) -> tuple[SidecarContent, dict[str, Any]] | None:
        content = self.catalog.content(row.sha256) if row.sha256 else None
        if content is None:
            return None
        built = build_content(content.results, self.faces(content.sha256), content.analyzers)
        return built, content.metadata

    def write_one(self, row: FileRow) -> str:
        target = self.path_for(row)
        built = self.content_for(row)
        if target is None or built is None:
            self.catalog.record_sidecar(row.id, "skipped", None, warning="photo has no results")
            return "skipped"
        content, facts = built
        if not content.keywords and not content.faces and not target.exists():
            self.catalog.record_sidecar(row.id, "empty", os.fspath(target))
            return "empty"
        share = self.settings.share(row.share)
        assert share is not None
        photo = share.path / row.relpath
        if share.read_only:
            target.parent.mkdir(parents=True, exist_ok=True)
        stored = (int(facts.get("width") or 0), int(facts.get("height") or 0))
        started = time.monotonic()
        try:
            result = self.writer.write(
                photo, target, content, stored, int(facts.get("orientation") or 1)
            )
            if self.metrics is not None:
                self.metrics.observe_stage("sidecar", time.monotonic() - started)
                if result.status == "failed":
                    self.metrics.error("sidecar")
        except Exception as exc:
            if self.metrics is not None:
                self.metrics.error("sidecar")
            log.exception("sidecar write failed for %s", photo)
            self.catalog.record_sidecar(
                row.id, "failed", os.fspath(target), warning=f"{type(exc).__name__}: {exc}"
            )
            return "failed"
        fp = result.fingerprint
        warning = "; ".join(result.warnings) or None
        self.catalog.record_sidecar(
            row.id,
            result.status,
            os.fspath(result.sidecar),
            (fp.mtime_ns, fp.size, fp.sha256) if fp else None,
            warning,
        )
        if result.status == "written":
            self.written += 1
            log.info("sidecar written: %s", display(os.fspath(result.sidecar)))
        elif warning:
            log.warning(
                "sidecar %s %s: %s", display(os.fspath(result.sidecar)), result.status, warning
            )
        return result.status

    # -- reading back -----------------------------------------------------------------

    def sidecar_changed(self, share: str, relpath: str) -> None:
        """Called by the watcher for any .xmp change; handled in the stage thread."""
        with self._lock:
            self._changed.add((share, relpath))
        self._wake.set()

    def _photos_for_sidecar(self, share: str, relpath: str) -> list[FileRow]:
        s = self.settings.share(share)
        if s is None:
            return []
        full = os.fspath(s.path / relpath)
        rows = [
            r
            for fid in self.catalog.files_by_sidecar(full)
            if (r := self.catalog.get_by_id(fid)) is not None
        ]
        if rows:
            return rows
        base = relpath[: -len(".xmp")] if relpath.lower().endswith(".xmp") else relpath
        row = self.catalog.get(share, base)
        if row is not None:
            return [row]
        folder, _, stem = base.rpartition("/")
        known = self.catalog.known(share)
        prefix = f"{folder}/{stem}." if folder else f"{stem}."
        return [
            r
            for rel in known
            if rel.startswith(prefix) and "/" not in rel[len(prefix) :]
            if (r := self.catalog.get(share, rel)) is not None
        ]

    def _read_back_changed(self) -> int:
        with self._lock:
            changed, self._changed = self._changed, set()
        for share, relpath in changed:
            s = self.settings.share(share)
            if s is None:
                continue
            path = s.path / relpath
            for row in self._photos_for_sidecar(share, relpath):
                record = self.catalog.sidecar(row.id)
                if record and _fingerprint_matches(path, record["fingerprint"]):
                    continue  # our own write
                self.read_back(row, path)
        return len(changed)

    def read_back(self, row: FileRow, path: Path) -> ReadResult:
        """Adopt names a person gave our faces elsewhere; remember their keywords."""
        content = self.catalog.content(row.sha256) if row.sha256 else None
        orientation = int((content.metadata if content else {}).get("orientation") or 1)
        result = read_sidecar(path, orientation)
        if not result.ok:
            log.warning("sidecar %s not read: %s", display(os.fspath(path)), result.problem)
            return result
        for adoption in adopted_names(None, result):
            if self.on_adopt is not None:
                self.on_adopt(adoption.face_id, adoption.name, adoption.previous_name)
            log.info(
                "adopted face name %r for %s from %s (was %r)",
                adoption.name,
                adoption.face_id,
                display(os.fspath(path)),
                adoption.previous_name,
            )
        self.catalog.record_import(
            row.id,
            os.fspath(path),
            {
                "keywords": ["|".join(k.path) for k in result.keywords if not k.ours],
                "faces": [
                    {"name": f.name, "box": f.box, "ours": f.ours} for f in result.faces if f.name
                ],
            },
        )
        return result

    def import_share(self, share: str | None) -> int:
        """Read every existing sidecar of a share (or all) into the catalog."""
        count = 0
        for s in self.settings.shares:
            if share is not None and s.name != share:
                continue
            for row in self.catalog.files_of_share(s.name):
                path = self.path_for(row)
                if path is not None and path.exists():
                    self.read_back(row, path)
                    count += 1
        log.info("imported %d sidecars", count)
        return count
