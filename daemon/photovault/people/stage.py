"""The people stage: feeds faces into the people store, clusters, and keeps names flowing.

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
from pathlib import Path
from typing import Any

from photovault.catalog.store import Catalog
from photovault.people.store import PeopleError, PeopleStore
from photovault.pipeline.worker import Photo

log = logging.getLogger(__name__)


class PeopleStage:
    """A worker sink plus a debounced clustering thread around one PeopleStore."""

    name = "people"

    def __init__(
        self,
        store: PeopleStore,
        catalog: Catalog,
        *,
        on_changed: Any = None,
        cluster_every: float = 5.0,
    ) -> None:
        self.people = store
        self.catalog = catalog
        self.on_changed = on_changed or (lambda shas: None)
        self.cluster_every = cluster_every
        self._pending = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def open(cls, state_dir: Path, face_settings: Any, catalog: Catalog, **kw: Any) -> PeopleStage:
        return cls(PeopleStore.for_settings(state_dir, face_settings), catalog, **kw)

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="people", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._pending.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.people.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._pending.wait()
            if self._stop.wait(self.cluster_every):  # gather a few batches first
                return
            self._pending.clear()
            try:
                report = self.people.cluster()
            except Exception:
                log.exception("face clustering failed")
                continue
            if report.named_photos:
                self.rewrite_photos(report.named_photos)

    # -- the worker's sink ------------------------------------------------------------

    def store(self, photos: list[Photo]) -> None:
        """Worker sink: remember each analyzed photo's faces (ids kept across re-analysis)
        and hand the later sinks (the index) results that carry person names."""
        added = False
        for ph in photos:
            result = ph.results.get("faces")
            if not isinstance(result, dict) or "faces" not in result:
                continue  # analyzer off or failed on this photo: keep what we had
            self.people.add_photo_faces(ph.sha256, result["faces"])
            added = added or bool(result["faces"])
            ph.results = self.enrich(ph.sha256, ph.results)
        if added:
            self._pending.set()

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

    # -- for the sidecar stage and `show` ----------------------------------------------

    def faces_for(self, sha256: str) -> list[dict[str, Any]]:
        return self.people.photo_faces(sha256)

    def rewrite_photos(self, shas: set[str] | list[str]) -> int:
        """Names changed on these photos: rewrite their sidecars and index rows."""
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
        return self.people.counts()
