"""The `show` and `sidecar` operations: everything known about one photo.

Kept apart from search: these read one catalogued photo (its facts, analyzer
results, faces and sidecar state), never the index. A video shows its kind
and duration; its faces, tags and text lines carry "at", the seconds into it
where each was seen; the halves of a live photo name each other.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from photovault.query.access import HandlerBase
from photovault.query.args import path_fields
from photovault.query.server import Caller
from photovault.results import faces_of, metadata_of, photo_tags, tagger_of, text_of
from photovault.sidecar.keywords import person_tags
from photovault.sidecar.reader import read_sidecar


class ShowHandlers(HandlerBase):
    """One photo's catalog record and sidecar, for a caller who may open it."""

    def sidecar(self, args: dict[str, Any], caller: Caller) -> Any:
        """What we wrote into a photo's sidecar, read back from the file itself."""
        _share, _rel, row = self._row(args, caller)
        path = self.vault.sidecars.path_for(row)
        record = self.vault.catalog.sidecar(row.id) or {}
        out: dict[str, Any] = {
            "sidecar": os.fspath(path) if path else None,
            "state": record.get("state", "pending"),
            "warning": record.get("warning"),
            "exists": False,
            "keywords": [],
            "faces": [],
        }
        if path is not None and path.exists():
            content = self.vault.catalog.content(row.sha256) if row.sha256 else None
            orientation = int((content.metadata if content else {}).get("orientation") or 1)
            result = read_sidecar(path, orientation)
            out["exists"] = True
            out["problem"] = result.problem
            out["keywords"] = ["|".join(k.path) for k in result.keywords if k.ours]
            out["other_keywords"] = ["|".join(k.path) for k in result.keywords if not k.ours]
            out["faces"] = [
                {
                    "face_id": f.face_id,
                    "name": f.name,
                    "box": f.box,
                    "confidence": f.confidence,
                    "model": f.model,
                }
                for f in result.faces
                if f.ours
            ]
        return out

    def show(self, args: dict[str, Any], caller: Caller) -> Any:
        share, rel, row = self._row(args, caller)
        path = self.vault.resolve(share, rel) or Path(rel)
        out: dict[str, Any] = {
            **path_fields(os.fspath(path)),
            "share": share,
            "state": row.state,
            "attempts": row.attempts,
            "error": row.last_error,
            "sha256": row.sha256,
            "size": row.size,
            "taken_at": None,
            "gps": None,
            "camera": None,
            "lens": None,
            "width": None,
            "height": None,
            "orientation": None,
            "taken_local": None,
            "local_time": None,
            "place": None,
            "text": [],
            "kind": "photo",
        }
        seen_at: dict[tuple[float, ...], float] = {}  # a face's box -> its time in a video
        content = self.vault.catalog.content(row.sha256) if row.sha256 else None
        if content is not None:
            facts = content.metadata
            for key in (
                "taken_at",
                "gps",
                "camera",
                "lens",
                "width",
                "height",
                "orientation",
                "mime",
            ):
                out[key] = facts.get(key)
            meta = metadata_of(content.results)
            out["kind"] = meta.kind
            if meta.is_video:
                out["duration"] = meta.duration
            if meta.live_photo_of:
                out["live_photo_of"] = meta.live_photo_of
            if meta.live_video:
                out["live_video"] = meta.live_video
            seen_at = _seen_at(content.results)
            out["taken_local"] = meta.taken_local
            out["local_time"] = meta.local_time.to_dict() if meta.local_time else None
            out["place"] = meta.place.to_dict() if meta.place else None
            out["text"] = [line.to_dict() for line in text_of(content.results).lines]
            out["analyzers"] = content.analyzers
            out["tags"] = person_tags(
                photo_tags(content.results), *self.vault.catalog.person_keywords(row.id)
            )
            out["labels"] = list(tagger_of(content.results).labels)
            out["results"] = {k: v for k, v in content.results.items() if k not in ("clip",)}
        out["faces"] = [
            {
                "id": f["id"],
                "box": f["box"],
                "person_id": f["person_id"],
                "person": f["person"],
                "score": f["score"],
                **_face_at(f, seen_at),
            }
            for f in (self.vault.people.faces_for(row.sha256) if row.sha256 else [])
        ]
        record = self.vault.catalog.sidecar(row.id)
        sidecar = self.vault.sidecars.path_for(row)
        out["sidecar"] = os.fspath(sidecar) if sidecar and sidecar.exists() else None
        if record:
            out["sidecar_state"] = record["state"]
            if record["warning"]:
                out["sidecar_warning"] = record["warning"]
            if record["imported"]:
                out["sidecar_keywords"] = record["imported"]["keywords"]
        return out


def _seen_at(results: dict[str, Any]) -> dict[tuple[float, ...], float]:
    """Box -> time, for the faces the analyzer saw in a video (empty for a photo):
    the people store keeps boxes, the analyzer's result keeps when."""
    return {_box_key(f.box): f.at for f in faces_of(results).faces if f.at is not None}


class FaceTimes:
    """The times of people-store faces seen in videos, for one request: each
    photo's content is read once, however many of its faces are asked about (a
    video's results hold its frames' CLIP vectors: reading them per face, for
    a person seen in one video many times, cost seconds)."""

    def __init__(self, catalog: Any) -> None:
        self._catalog = catalog
        self._seen: dict[str, dict[tuple[float, ...], float]] = {}

    def seen_at(self, sha256: str | None) -> dict[tuple[float, ...], float]:
        """Box -> time of the faces seen in this photo's video (empty for a photo)."""
        if not sha256:
            return {}
        if sha256 not in self._seen:
            content = self._catalog.content(sha256)
            self._seen[sha256] = {} if content is None else _seen_at(content.results)
        return self._seen[sha256]

    def of(self, face: dict[str, Any]) -> dict[str, float]:
        """{"at": seconds} for a people-store face seen in a video, {} otherwise."""
        if face.get("at") is not None:  # the store's own time: no need to read
            return _face_at(face, {})
        return _face_at(face, self.seen_at(face.get("photo")))


def _box_key(box: Any) -> tuple[float, ...]:
    return tuple(round(float(v), 4) for v in box)


def _face_at(face: dict[str, Any], seen_at: dict[tuple[float, ...], float]) -> dict[str, float]:
    """{"at": seconds} for a face of a video (the people store's own time, else
    the analyzer's for the same box); {} for a photo's."""
    at = face.get("at")
    if at is None and isinstance(face.get("box"), list | tuple):
        at = seen_at.get(_box_key(face["box"]))
    return {} if at is None else {"at": float(at)}
