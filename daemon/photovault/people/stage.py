"""The people stage: feeds faces into the people store, keeps clustering caught up,
follows deletions, and keeps names flowing.

When a clustering pass runs (each one re-clusters every face, see store.py):

* at start, when anything changed since the last finished pass (faces
  waiting after a crash or a `kill -9` mid-pass, deletions, other settings);
* as soon as the queue is empty (a bulk load finished or pauses);
* during a long bulk load, every `cluster_every` seconds but never more than
  a fifth of the time (the spacing grows with the last pass's duration);
* on a schedule (`consistency_every`), as a consistency pass, even when
  nothing seems to have changed.

A pass computes without the store's lock and, while the worker is busy,
sleeps as long as it computes between blocks, so ingest and search go on.
`status()["clustering"]` is "running" during a pass, "pending" while
anything waits for one, else "idle": when the queue is empty and clustering
idle, people are complete.

Deleted photos: the catalog tells its listeners (`forgotten`,
`share_dropped`); a moment later the stage drops the faces of every photo
whose content no catalogued file shows any more. A photo still shown by
another file (same content) keeps its faces; a photo whose analysis is not
committed yet (in flight in the worker, or lost in a crash) is left alone.

Names flow both ways. A name given with vaultctl, or a face joining a named
person, marks that person's photos for a sidecar rewrite, so the name reaches
the MWG/MP regions and a `People|Name` keyword in every sidecar. A name a
person typed on a face region in digiKam comes back through the sidecar stage
(`adopt`) and is applied to the person, which again rewrites that person's
other sidecars.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from photovault.catalog.store import Catalog
from photovault.people.store import ClusterReport, PeopleError, PeopleStore
from photovault.pipeline.worker import Photo

log = logging.getLogger(__name__)

#: Deletions are gathered this long before their faces are dropped.
PRUNE_DELAY = 1.0
#: While the worker is busy, passes are this many times their own duration apart.
BUSY_SPACING = 4.0
#: How often the queue depth is asked while a pass paces itself.
QUEUE_CHECK_SECONDS = 1.0
#: Photos remembered as in flight (stored here, not yet committed by the catalog).
IN_FLIGHT_MAX = 4096
IN_FLIGHT_SECONDS = 3600.0


class _Stopped(Exception):
    """The stage is stopping: the pass in progress is abandoned (nothing written)."""


class PeopleStage:
    """A worker sink, a catalog listener, and the clustering thread around one PeopleStore."""

    name = "people"

    def __init__(
        self,
        store: PeopleStore,
        catalog: Catalog,
        *,
        on_changed: Any = None,
        queue_depth: Callable[[], int] | None = None,
        cluster_every: float = 5.0,
        consistency_every: float = 24 * 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.people = store
        self.catalog = catalog
        self.on_changed = on_changed or (lambda shas: None)
        self.queue_depth = queue_depth or (lambda: 0)
        self.cluster_every = cluster_every
        self.consistency_every = consistency_every
        self._clock = clock
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._running = False
        self._started = False  # the first step after start runs a pending pass at once
        self._passes = 0
        self._last_pass_end = float("-inf")
        self._last_pass_seconds = 0.0
        self._next_consistency = clock() + consistency_every
        self._prune_lock = threading.Lock()
        self._prune_at: float | None = clock()  # at start: deletions missed while down
        self._in_flight: dict[str, tuple[float, set[int]]] = {}
        self._queue_checked = float("-inf")
        self._queue_busy = False
        self._paced_at = 0.0
        #: The last pass (for status and the bench), and the last error of the thread.
        self.last_report: ClusterReport | None = None
        self.last_error: str | None = None

    @classmethod
    def open(cls, state_dir: Path, face_settings: Any, catalog: Catalog, **kw: Any) -> PeopleStage:
        return cls(PeopleStore.for_settings(state_dir, face_settings), catalog, **kw)

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="people", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.people.close()

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        backoff = 0.0
        while not self._stop.is_set():
            try:
                self.step()
                backoff = 0.0
                self.last_error = None
            except _Stopped:
                return
            except Exception as exc:  # the thread never dies of one failure
                self.last_error = f"{type(exc).__name__}: {exc}"
                backoff = min(max(backoff * 2, 5.0), 300.0)
                log.exception("people stage failed; trying again in %.0f s", backoff)
                if self._stop.wait(backoff):
                    return
            self._wake.wait(self._wait_seconds())
            self._wake.clear()

    def _wait_seconds(self) -> float:
        if self._prune_at is not None or self.people.pending():
            return 1.0
        return max(1.0, min(60.0, self._next_consistency - self._clock()))

    def step(self) -> ClusterReport | None:
        """One round of the stage's loop: drop deleted photos' faces, then run a pass
        when one is due. Returns the pass's report, if one ran."""
        now = self._clock()
        if self._prune_at is not None and now >= self._prune_at:
            self.prune()
        first, self._started = not self._started, True
        forced = now >= self._next_consistency
        if not (forced or self.people.pending()):
            return None
        if not (forced or first or self._pass_due(now)):
            return None
        return self.run_pass()

    def _pass_due(self, now: float) -> bool:
        if not self._busy(force=True):
            return True  # the queue drained: catch up now
        spacing = max(self.cluster_every, BUSY_SPACING * self._last_pass_seconds)
        return now - self._last_pass_end >= spacing

    def _busy(self, force: bool = False) -> bool:
        now = self._clock()
        if force or now - self._queue_checked >= QUEUE_CHECK_SECONDS:
            self._queue_checked = now
            try:
                self._queue_busy = self.queue_depth() > 0
            except Exception:
                log.debug("queue depth unavailable", exc_info=True)
                self._queue_busy = False
        return self._queue_busy

    def _pace(self, fraction: float) -> None:
        """Between blocks of a pass: stop when asked; while the worker is busy, sleep as
        long as the pass computed since the last call (half the CPU stays with ingest)."""
        if self._stop.is_set():
            raise _Stopped
        now = self._clock()
        worked = now - self._paced_at
        if self._busy() and self._stop.wait(min(worked, 1.0)):
            raise _Stopped
        self._paced_at = self._clock()

    def run_pass(self) -> ClusterReport:
        """A full clustering pass now (in the calling thread)."""
        self._running = True
        self._paced_at = self._clock()
        try:
            report = self.people.cluster(pace=self._pace)
        finally:
            self._running = False
        now = self._clock()
        self._passes += 1
        self._last_pass_end = now
        self._last_pass_seconds = report.seconds
        self._next_consistency = now + self.consistency_every
        self.last_report = report
        if report.stale:
            self._wake.set()
        if report.named_photos:
            self.rewrite_photos(report.named_photos)
        return report

    # -- the worker's sink ------------------------------------------------------------

    def store(self, photos: list[Photo]) -> None:
        """Worker sink: remember each analyzed photo's faces (ids kept across re-analysis)
        and hand the later sinks (the index) results that carry person names."""
        now = self._clock()
        for ph in photos:
            result = ph.results.get("faces")
            if not isinstance(result, dict) or "faces" not in result:
                continue  # analyzer off or failed on this photo: keep what we had
            with self._prune_lock:
                _, ids = self._in_flight.pop(ph.sha256, (now, set()))
                self._in_flight[ph.sha256] = (now, ids | {ph.file.id})
            self.people.add_photo_faces(ph.sha256, result["faces"])
            ph.results = self.enrich(ph.sha256, ph.results)
        with self._prune_lock:
            if len(self._in_flight) > IN_FLIGHT_MAX:
                old = [k for k, (t, _) in self._in_flight.items() if now - t > IN_FLIGHT_SECONDS]
                for key in old:
                    del self._in_flight[key]
        self._wake.set()

    def enrich(self, sha256: str, results: dict[str, Any]) -> dict[str, Any]:
        """A copy of `results` whose faces carry their id, person id and person name.

        A copy, so the catalog keeps pure analyzer output and names stay in one
        place (the people store)."""
        result = results.get("faces")
        if not isinstance(result, dict) or not result.get("faces"):
            return results
        known = self.people.photo_faces(sha256)
        faces = []
        for i, f in enumerate(result["faces"]):
            extra = known[i] if i < len(known) else {}
            faces.append(
                {
                    **f,
                    "id": extra.get("id"),
                    "person_id": extra.get("person_id"),
                    "person": extra.get("person"),
                }
            )
        return {**results, "faces": {**result, "faces": faces}}

    # -- the catalog's listener: deleted photos ----------------------------------------

    def forgotten(self, share: str, relpath: str) -> None:
        self._want_prune()

    def share_dropped(self, share: str) -> None:
        self._want_prune()

    def moved(self, share: str, src: str, dest: str) -> None:
        """A move keeps the content, so the faces stay."""

    def _want_prune(self) -> None:
        with self._prune_lock:
            if self._prune_at is None:
                self._prune_at = self._clock() + PRUNE_DELAY
        self._wake.set()

    def _still_in_flight(self, sha256: str) -> bool:
        """Did the worker store this photo's faces without the catalog committing it yet?"""
        with self._prune_lock:
            entry = self._in_flight.get(sha256)
        if entry is None:
            return False
        for file_id in entry[1]:
            row = self.catalog.get_by_id(file_id)
            if row is not None and row.state in ("pending", "processing"):
                return True
        with self._prune_lock:
            self._in_flight.pop(sha256, None)
        return False

    def prune(self) -> int:
        """Drop the faces of photos that no catalogued file shows any more."""
        with self._prune_lock:
            self._prune_at = None
        photos = self.people.photos()
        if not photos:
            return 0
        shown: set[str] = set()
        for batch in self.catalog.done_keys():
            shown.update(sha for _id, _share, _rel, sha in batch if sha)
        gone = []
        for sha in photos:
            if sha in shown or self.catalog.files_with_content(sha):
                continue
            if self._still_in_flight(sha):
                continue
            if self.catalog.content(sha) is None:
                continue  # never committed (a crash mid-ingest): the worker stores it again
            gone.append(sha)
        if not gone:
            return 0
        removed = self.people.remove_photos(gone)
        log.info("forgot %d faces of %d deleted photos", removed, len(gone))
        self._wake.set()
        return removed

    # -- for the sidecar stage and `show` ----------------------------------------------

    def faces_for(self, sha256: str) -> list[dict[str, Any]]:
        return self.people.photo_faces(sha256)

    def rewrite_photos(self, shas: set[str] | list[str]) -> int:
        """Names changed on these photos: rewrite their sidecars and index rows. (Every
        user operation ends here; the pass that follows it is due now.)"""
        self._wake.set()
        shas = list(shas)
        n = self.catalog.reset_sidecars_of(shas)
        if n:
            log.info("rewriting %d sidecars for changed names", n)
        self.on_changed(shas)
        return n

    def rewrite_person(self, person_id: int) -> int:
        return self.rewrite_photos(self.people.photos_of(person_id))

    # -- user operations (vaultctl people ...) -----------------------------------------

    def name_person(self, person_id: int, name: str) -> dict[str, Any]:
        self.people.name(person_id, name)
        return {"id": person_id, "name": name.strip(), "sidecars": self.rewrite_person(person_id)}

    def rename(self, old: str, new: str) -> dict[str, Any]:
        pid = self.people.rename(old, new)
        return {"id": pid, "name": new.strip(), "sidecars": self.rewrite_person(pid)}

    def merge(self, keep: int, other: int) -> dict[str, Any]:
        moved = self.people.photos_of(other)
        self.people.merge(keep, other)
        return {
            "id": keep,
            "sidecars": self.rewrite_photos(set(moved) | set(self.people.photos_of(keep))),
        }

    def reject(self, face_id: int, person_id: int) -> dict[str, Any]:
        photos = [f["photo"] for f in self.people.faces_of(person_id) if f["id"] == face_id]
        self.people.reject(face_id, person_id)
        return {"face_id": face_id, "person_id": person_id, "sidecars": self.rewrite_photos(photos)}

    def suggest(self, faces_each: int = 3) -> list[dict[str, Any]]:
        """Likely merges from the last pass, nearest first: both people, the distance of
        their nearest faces, and a few faces of each ({"id", "photo", "box", "person_id"},
        the nearest pair first) for a contact sheet."""
        people = {p["id"]: p for p in self.people.people()}
        out = []
        for s in self.people.suggestions():
            a, b = people.get(s["a"]), people.get(s["b"])
            if a is None or b is None:
                continue
            faces = []
            for pid, nearest in ((s["a"], s["face_a"]), (s["b"], s["face_b"])):
                others = [f["id"] for f in self.people.faces_of(pid) if f["id"] != nearest]
                for fid in [nearest, *others[: faces_each - 1]]:
                    try:
                        faces.append(self.people.face(fid))
                    except PeopleError:
                        continue
            out.append({"a": a, "b": b, "distance": round(s["distance"], 3), "faces": faces})
        return out

    # -- names typed in other programs -------------------------------------------------

    def adopt(self, face_id: str, name: str | None, previous: str | None) -> None:
        """A person named (or renamed, or unnamed) one of our faces in another program."""
        try:
            fid = int(face_id)
            pid = self.people.person_of(fid)
        except (ValueError, PeopleError):
            log.warning("sidecar names face %s, which we do not know; ignored", face_id)
            return
        current = next((p for p in self.people.people() if p["id"] == pid), None)
        current_name = current["name"] if current else None
        try:
            if name is None:
                if pid is not None:
                    self.people.reject(fid, pid)
                    log.info(
                        "face %s: name removed in a sidecar; no longer %s",
                        fid,
                        current_name or f"person {pid}",
                    )
                    self.rewrite_person(pid)
                return
            if name == current_name:
                return
            try:
                named = self.people.person_by_name(name)
            except PeopleError:
                named = None
            if named is not None:
                if pid is not None and current_name is None:
                    self.people.merge(named, pid)  # the whole cluster is that person
                else:
                    self.people.assign(fid, named)
                target = named
            elif pid is not None and (current_name is None or current_name == previous):
                self.people.name(pid, name)  # name or rename the whole person
                target = pid
            else:
                target = self.people.create_person(name)
                self.people.assign(fid, target)
            log.info("face %s named %r in a sidecar; applied to person %s", fid, name, target)
            self.rewrite_person(target)
        except PeopleError as exc:
            log.warning("cannot adopt name %r for face %s: %s", name, face_id, exc)

    def status(self) -> dict[str, Any]:
        """{"faces", "waiting", "unassigned", "people", "clustering"}: clustering is
        "running" during a pass, "pending" while faces or deletions wait for one."""
        counts: dict[str, Any] = dict(self.people.counts())
        if self._running:
            counts["clustering"] = "running"
        elif self._prune_at is not None or counts["waiting"] or self.people.pending():
            # `waiting` counts too: a pass that ends between reading the counts and
            # asking pending() must not make waiting faces look idle (never "idle"
            # while anything waits: that is the moment people must be complete).
            counts["clustering"] = "pending"
        else:
            counts["clustering"] = "idle"
        if self.last_report is not None:
            counts["last_pass_seconds"] = round(self.last_report.seconds, 2)
        return counts
