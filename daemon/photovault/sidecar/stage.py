"""The sidecar stage: keeps every done photo's XMP sidecar in step with the catalog.

It runs in its own thread and takes its work from the catalog (done files
with no sidecar record), not from an in-memory queue: a crash between the
analysis commit and the sidecar write is repaired at the next start, and a
slow disk never holds up inference. It also reads sidecars back when another
program changed them (a face named in digiKam), recognising its own writes by
their fingerprint so that they never cause a loop.

One photo's trouble stays with that photo: every step for it (finding the
sidecar, building the content, writing, recording) runs under one handler that
records the sidecar as failed with the reason, so the stage goes on with the
next photo and `vaultctl status` shows the reason. Failed sidecars are tried
again after `RETRY_SECONDS`, after new work. A sidecar that can never be
written where it is (a folder in its place, a path too long even for the mirror
tree: see `writer.permanent_reason`) is recorded as skipped with the reason,
shown among the sidecar warnings, not retried and not a "sidecars" problem. A
keyword of ours that a person removed from a sidecar is remembered in the
catalog and not written again; when a person's keywords change (one of ours
removed, one of theirs added or dropped) `on_keywords_changed` gets the file ids,
so the daemon rewrites their search index rows (`sidecar.keywords.person_tags`).
What a sidecar holds is built by `content.build_content` (importable from here too).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from photovault.catalog.store import Catalog, FileRow, display
from photovault.config import Settings
from photovault.problems import Problems
from photovault.results import metadata_of
from photovault.sidecar.commit import fingerprint_matches, remove_stale_temps
from photovault.sidecar.content import build_content as build_content  # tests import it here
from photovault.sidecar.model import SidecarContent
from photovault.sidecar.naming import SidecarLocation, locate_sidecar
from photovault.sidecar.reader import ReadResult, adopted_names, read_sidecar
from photovault.sidecar.writer import SidecarWriter, permanent_reason

log = logging.getLogger(__name__)

#: A failed sidecar is tried again after this long (new work goes first).
RETRY_SECONDS = 600.0
#: The "sidecars" problem is recounted at most this often while there is work.
PROBLEM_REFRESH_SECONDS = 5.0

#: sha256 -> [{"id", "box", "score", "person"}] of the photo's faces (the people store).
FacesProvider = Callable[[str], list[dict[str, Any]]]
#: (face_id, name or None, previous name) for a name typed on our region elsewhere.
AdoptCallback = Callable[[str, str | None, str | None], None]
#: File ids whose keywords a person changed in the sidecar (removed one of ours,
#: added or dropped one of theirs): their search index rows are rewritten.
KeywordsCallback = Callable[[list[int]], None]


def _orientation(facts: dict[str, Any]) -> int:
    """The EXIF orientation (1-8) of a file's facts; 1 where there is none or it is
    not an EXIF value (a video's rotation is in degrees and has no stored frame)."""
    try:
        value = int(facts.get("orientation") or 1)
    except (TypeError, ValueError):
        return 1
    return value if 1 <= value <= 8 else 1


def _text(value: object) -> str:
    """A printable form of a message that may carry undecodable file name bytes."""
    return str(value).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


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
        on_keywords_changed: KeywordsCallback | None = None,
        metrics: Any = None,
        problems: Problems | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.catalog = catalog
        self.settings = settings
        self.writer = writer or SidecarWriter()
        self.faces = faces or (lambda sha: [])
        self.on_adopt = on_adopt
        self.on_keywords_changed = on_keywords_changed
        self.metrics = metrics
        self.problems = problems
        self._clock = clock
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._changed: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        #: file id -> clock time: photos whose failure could not even be recorded
        #: (catalog trouble), held back so that they cannot starve the others.
        self._held_back: dict[int, float] = {}
        self._problems_checked = -PROBLEM_REFRESH_SECONDS
        self._new_failure = False
        self.written = 0
        self.temps_removed = 0

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
        try:
            self.remove_stale_temps()
        except Exception:
            log.exception("removing stale sidecar temp files failed")
        self._refresh_problems(force=True)
        while not self._stop.is_set():
            did = 0
            try:
                did += self._read_back_changed()
                if self.enabled:
                    did += self.write_batch(32)
            except Exception:
                log.exception("sidecar stage error")
                self._stop.wait(2.0)
            self._refresh_problems(force=False, worked=bool(did))
            if not did:
                self._wake.wait(1.0)
                self._wake.clear()

    def write_batch(self, limit: int) -> int:
        """Write the sidecars of up to `limit` photos that need one; how many were tried."""
        now = self._clock()
        self._held_back = {i: t for i, t in self._held_back.items() if t > now}
        done = 0
        for row in self.catalog.sidecar_work(limit, RETRY_SECONDS, exclude=self._held_back):
            if self._stop.is_set():
                break
            self.write_one(row)
            done += 1
        return done

    def remove_stale_temps(self) -> int:
        """Remove the temp files a crash left in the writable shares and the mirror."""
        roots = [s.path for s in self.settings.shares if not s.read_only]
        roots.append(self.settings.sidecar_mirror)
        removed = 0
        for root in roots:
            if self._stop.is_set():
                break
            removed += remove_stale_temps(root, should_stop=self._stop.is_set)
        if removed:
            log.info("removed %d sidecar temp files left by a crash", removed)
        self.temps_removed += removed
        return removed

    def _refresh_problems(self, *, force: bool, worked: bool = False) -> None:
        """Keep the "sidecars" problem in step with the failed sidecars."""
        if self.problems is None:
            return
        now = self._clock()
        active = self.problems.active("sidecars")
        due = now - self._problems_checked >= PROBLEM_REFRESH_SECONDS
        first = self._new_failure and not active  # the first failure is shown at once
        if not (force or first or (due and (worked or active))):
            return
        self._problems_checked = now
        self._new_failure = False
        try:
            count, path, reason = self.catalog.sidecar_failures()
        except Exception:
            log.exception("counting failed sidecars failed")
            return
        if not count:
            if self.problems.clear("sidecars"):
                log.info("every sidecar can be written again")
            return
        where = display(path) if path else "a photo"
        message = (
            f"{count} sidecar{'s' if count != 1 else ''} cannot be written "
            f"(retried every {RETRY_SECONDS / 60:g} minutes), e.g. {where}: {reason}"
        )
        if self.problems.report(
            "sidecars", message, path=display(path) if path else None, count=count
        ):
            log.warning("%s", message)

    # -- writing ------------------------------------------------------------------

    def locate(self, row: FileRow) -> SidecarLocation | None:
        """Where this photo's sidecar is (None for a share no longer configured)."""
        share = self.settings.share(row.share)
        if share is None:
            return None
        return locate_sidecar(
            share.path / row.relpath,
            self.settings.sidecars.naming,
            share_root=share.path,
            read_only=share.read_only,
            mirror_root=self.settings.sidecar_mirror / share.name,
        )

    def path_for(self, row: FileRow) -> Path | None:
        """The photo's sidecar: beside it, or in the mirror tree (read-only share,
        name too long); None for a share no longer configured."""
        location = self.locate(row)
        return location.path if location is not None else None

    def content_for(self, row: FileRow) -> tuple[SidecarContent, dict[str, Any]] | None:
        content = self.catalog.content(row.sha256) if row.sha256 else None
        if content is None:
            return None
        built = build_content(content.results, self.faces(content.sha256), content.analyzers)
        rejected = self.catalog.rejected_keywords(row.id)
        if rejected:
            built = replace(
                built,
                keywords=tuple(k for k in built.keywords if "|".join(k.path) not in rejected),
            )
        return built, content.metadata

    def write_one(self, row: FileRow) -> str:
        """Write one photo's sidecar; never raises: a failure is recorded with its
        reason (retried after `RETRY_SECONDS`) and the stage goes on."""
        target: Path | None = None
        location: SidecarLocation | None = None
        try:
            location = self.locate(row)
            target = location.path if location is not None else None
            return self._write(row, location)
        except Exception as exc:
            permanent = permanent_reason(exc, target)
            if permanent is not None:
                if location is not None and location.mirrored_because:
                    permanent = f"{location.mirrored_because}, but {permanent}"
                return self._skip_permanent(row, target, _text(permanent))
            self._new_failure = True
            reason = _text(f"{type(exc).__name__}: {exc}")
            if self.metrics is not None:
                self.metrics.error("sidecar")
            log.warning("sidecar of %s failed: %s", display(row.relpath), reason, exc_info=True)
            try:
                self.catalog.record_sidecar(
                    row.id, "failed", os.fspath(target) if target else None, warning=reason
                )
            except Exception:
                log.exception("could not record the failed sidecar of %s", display(row.relpath))
                self._held_back[row.id] = self._clock() + RETRY_SECONDS
            return "failed"

    def _skip_permanent(self, row: FileRow, target: Path | None, reason: str) -> str:
        """Record a sidecar that cannot be written where it is (not a fault to retry)."""
        log.warning("sidecar of %s skipped: %s", display(row.relpath), reason)
        try:
            self.catalog.record_sidecar(
                row.id, "skipped", os.fspath(target) if target else None, warning=reason
            )
        except Exception:
            log.exception("could not record the skipped sidecar of %s", display(row.relpath))
            self._held_back[row.id] = self._clock() + RETRY_SECONDS
            return "failed"
        return "skipped"

    def _write(self, row: FileRow, location: SidecarLocation | None) -> str:
        built = self.content_for(row)
        if location is None or built is None:
            self.catalog.record_sidecar(row.id, "skipped", None, warning="photo has no results")
            return "skipped"
        target = location.path
        content, facts = built
        if content.live_photo_of:
            # The video half of a live photo: the still's sidecar describes both.
            self.catalog.record_sidecar(row.id, "empty", None)
            log.debug("no sidecar for %s: part of %s", display(row.relpath), content.live_photo_of)
            return "empty"
        nothing = not (content.keywords or content.faces or content.place or content.text)
        if nothing and not os.path.lexists(target):
            self.catalog.record_sidecar(row.id, "empty", os.fspath(target))
            return "empty"
        share = self.settings.share(row.share)
        assert share is not None
        photo = share.path / row.relpath
        # No record (a first write, `sidecars rewrite`) over a sidecar that exists:
        # what the person put in it is read after the write, which keeps it.
        import_after = self.catalog.sidecar(row.id) is None and os.path.lexists(target)
        if target.parent != photo.parent:  # the mirror tree
            target.parent.mkdir(parents=True, exist_ok=True)
        stored = (int(facts.get("width") or 0), int(facts.get("height") or 0))
        started = time.monotonic()
        orientation = 1 if content.is_video else _orientation(facts)
        result = self.writer.write(photo, target, content, stored, orientation)
        if self.metrics is not None:
            self.metrics.observe_stage("sidecar", time.monotonic() - started)
            if result.status == "failed":
                self.metrics.error("sidecar")
        if result.status == "failed":
            self._new_failure = True
        if result.rejected and self._remember_rejected(row, result.rejected, result.sidecar):
            self._keywords_changed(row)
        if result.person_fields and result.ok:
            log.info(
                "place fields a person changed or removed in %s are theirs now: %s",
                display(os.fspath(result.sidecar)),
                ", ".join(result.person_fields),
            )
        fp = result.fingerprint
        warnings = list(result.warnings)
        if location.mirrored_because and result.status != "failed":
            warnings.insert(0, location.mirrored_because)
        warning = "; ".join(_text(w) for w in warnings) or None
        self.catalog.record_sidecar(
            row.id,
            result.status,
            os.fspath(result.sidecar),
            (fp.mtime_ns, fp.size, fp.sha256) if fp else None,
            warning,
        )
        if import_after and result.ok:
            self.read_back(row, result.sidecar)
        if result.status == "written":
            self.written += 1
            log.info("sidecar written: %s", display(os.fspath(result.sidecar)))
        elif warning:
            log.warning(
                "sidecar %s %s: %s", display(os.fspath(result.sidecar)), result.status, warning
            )
        return result.status

    def _remember_rejected(self, row: FileRow, paths: list[tuple[str, ...]], where: Path) -> bool:
        """Remember keywords a person removed; whether any was new."""
        new = self.catalog.reject_keywords(row.id, ["|".join(p) for p in paths])
        if new:
            log.info(
                "keywords removed by a person from %s are not written again: %s",
                display(os.fspath(where)),
                ", ".join("|".join(p) for p in paths),
            )
        return bool(new)

    def _keywords_changed(self, row: FileRow) -> None:
        """Tell the daemon that this file's tags as the person sees them changed."""
        if self.on_keywords_changed is None:
            return
        try:
            self.on_keywords_changed([row.id])
        except Exception:
            log.exception("keywords of %s changed, but not passed on", display(row.relpath))

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
            try:
                rows = self._photos_for_sidecar(share, relpath)
            except Exception:
                log.exception("sidecar %s not read back", display(os.fspath(path)))
                continue
            for row in rows:
                try:
                    record = self.catalog.sidecar(row.id)
                    if record and fingerprint_matches(path, record["fingerprint"]):
                        continue  # our own write
                    self.read_back(row, path)
                except Exception:
                    log.exception(
                        "sidecar %s not read back for %s",
                        display(os.fspath(path)),
                        display(row.relpath),
                    )
        return len(changed)

    def read_back(self, row: FileRow, path: Path) -> ReadResult:
        """Adopt names a person gave our faces elsewhere; remember their keywords."""
        content = self.catalog.content(row.sha256) if row.sha256 else None
        video = content is not None and metadata_of(content.results).is_video
        orientation = 1 if video else _orientation(content.metadata if content else {})
        result = read_sidecar(path, orientation)
        if not result.ok:
            log.warning("sidecar %s not read: %s", display(os.fspath(path)), result.problem)
            if result.exists and path == self.path_for(row):
                # Its sidecar is no longer one we can edit: say so until it is.
                self.catalog.record_sidecar(
                    row.id, "skipped", os.fspath(path), warning=_text(result.problem)
                )
            return result
        changed = bool(result.removed) and self._remember_rejected(row, result.removed, path)
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
        before = self.catalog.person_keywords(row.id)[1]
        added = ["|".join(k.path) for k in result.keywords if not k.ours]
        self.catalog.record_import(
            row.id,
            os.fspath(path),
            {
                "keywords": added,
                "faces": [
                    {"name": f.name, "box": f.box, "ours": f.ours} for f in result.faces if f.name
                ],
            },
        )
        if changed or added != before:
            self._keywords_changed(row)
        return result

    def import_share(self, share: str | None) -> int:
        """Read every existing sidecar of a share (or all) into the catalog."""
        count = 0
        for s in self.settings.shares:
            if share is not None and s.name != share:
                continue
            for row in self.catalog.files_of_share(s.name):
                try:
                    path = self.path_for(row)
                    if path is not None and os.path.lexists(path):
                        self.read_back(row, path)
                        count += 1
                except Exception:
                    log.exception("sidecar of %s not imported", display(row.relpath))
        log.info("imported %d sidecars", count)
        return count
