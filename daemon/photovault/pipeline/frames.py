"""Videos through the photo analyzers: one item per sampled frame, one result per clip.

A video is one catalogued file with one result per analyzer, like a photo, so the
catalog, sidecars and index need no second path. Its sampled frames go through the
analyzers as separate items (a batch of frames costs what a batch of photos does),
and `merge` folds their results back into one, keeping *when*:

* tags and classifier labels: the union, each with its best score and the time
  (`at`) of the frame that scored it;
* CLIP: each frame's embedding with its time (searchable per frame), and the
  normalised mean as the clip's own vector;
* faces: one face per person seen (faces of consecutive frames closer than a
  conservative same-person distance are one face), the best-scored sighting with
  its time; the People keywords follow from that count;
* text: each distinct line once, from the frame that read it most surely.

The `metadata` analyzer runs once per video, on its first kept frame: capture
facts belong to the file, not to a frame.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from photovault.analyze.base import AnalysisItem
from photovault.analyze.faces import people_tags
from photovault.media.types import DecodedImage, PhotoMetadata

#: Analyzers that run once per video on its first frame, not on every frame.
ONCE_PER_VIDEO = frozenset({"metadata"})

#: Two faces of one clip closer than this are the same person: the distance people
#: clustering joins faces at (people/cluster.py: dlib 0.5 euclidean; deepface's
#: verification thresholds x0.8, cosine). Merging less would leave one person seen
#: in several frames as several faces: a wrong `People|Group`, and a person of its
#: own in the clustering, from a single clip.
SAME_FACE = {
    "Dlib": ("euclidean", 0.5),
    "ArcFace": ("cosine", 0.54),
    "Facenet512": ("cosine", 0.24),
    "Facenet": ("cosine", 0.32),
    "SFace": ("cosine", 0.47),
    "VGG-Face": ("cosine", 0.54),
}
SAME_FACE_COSINE = 0.3


def frame_items(item: AnalysisItem) -> list[tuple[float, AnalysisItem]]:
    """(time, item) per sampled frame of a video item (none for a photo). A frame
    item shares the video's file, content hash and metadata; its `stored_size` is the
    frame's own, so an analyzer never goes back to the file for more pixels."""
    out = []
    for frame in item.image.frames or []:
        h, w = frame.pixels.shape[:2]
        image = DecodedImage(frame.pixels, (w, h), 1, item.image.source, "video_frame")
        out.append(
            (frame.at, AnalysisItem(item.file_id, item.path, item.sha256, image, item.metadata))
        )
    return out


def merge(name: str, results: list[tuple[float, Any]]) -> dict[str, Any]:
    """One result for a video from its frames' results [(at, result)], in time order.
    An analyzer that failed on every frame failed on the video (its first error)."""
    good = [(at, r) for at, r in results if isinstance(r, dict) and "error" not in r]
    if not good:
        errors = [r for _at, r in results if isinstance(r, dict) and "error" in r]
        return errors[0] if errors else {"error": "no frame could be analyzed"}
    merger = MERGERS.get(name, _merge_generic)
    out = merger(good)
    out["frames_analyzed"] = len(good)
    return out


def _stamp(entry: dict[str, Any], at: float) -> dict[str, Any]:
    return {**entry, "at": round(at, 3)}


def _best_by(
    good: list[tuple[float, dict[str, Any]]], field: str, key: str, score: str
) -> list[dict[str, Any]]:
    """The union of the `field` lists, one entry per `key` with the best `score` (None
    scores count as 0: the first frame's entry stands) and the time it was seen."""
    best: dict[Any, tuple[float, dict[str, Any]]] = {}
    for at, result in good:
        for entry in result.get(field) or []:
            if not isinstance(entry, dict) or entry.get(key) is None:
                continue
            value = entry.get(score)
            s = float(value) if isinstance(value, int | float) else 0.0
            k = entry[key]
            if k not in best or s > best[k][0]:
                best[k] = (s, _stamp(entry, at))
    return [e for _s, e in sorted(best.values(), key=lambda se: -se[0])]


def _merge_generic(good: list[tuple[float, dict[str, Any]]]) -> dict[str, Any]:
    """Fields of the first frame, with `tags` and `labels` as unions (best of each)."""
    out = dict(good[0][1])
    if any("tags" in r for _at, r in good):
        out["tags"] = _best_by(good, "tags", "tag", "confidence")
    if any("labels" in r for _at, r in good):
        labels = _best_by(good, "labels", "synset", "score")
        out["labels"] = labels[: max(len(r.get("labels") or []) for _at, r in good)]
    return out


def _merge_clip(good: list[tuple[float, dict[str, Any]]]) -> dict[str, Any]:
    frames = [
        (at, np.asarray(r["embedding"], dtype=np.float32))
        for at, r in good
        if isinstance(r.get("embedding"), list | tuple) and r["embedding"]
    ]
    out = {k: v for k, v in good[0][1].items() if k not in ("embedding", "frames")}
    if not frames:
        return out
    mean = np.mean([v for _at, v in frames], axis=0)
    norm = float(np.linalg.norm(mean))
    out["embedding"] = [round(float(v), 6) for v in (mean / norm if norm > 0 else mean)]
    out["frames"] = [
        {"at": round(at, 3), "embedding": [round(float(x), 6) for x in v]} for at, v in frames
    ]
    return out


def _face_distance(
    model: str | None,
) -> tuple[Callable[[np.ndarray, np.ndarray], float], float]:
    """(distance, same-person limit) for faces of this recognition model."""
    metric, limit = SAME_FACE.get(model or "", ("cosine", SAME_FACE_COSINE))
    if metric == "euclidean":
        return (lambda a, b: float(np.linalg.norm(a - b))), limit

    def cosine(a: np.ndarray, b: np.ndarray) -> float:
        d = float(np.linalg.norm(a) * np.linalg.norm(b))
        return 1.0 - float(a @ b) / d if d > 0 else 2.0

    return cosine, limit


def _merge_faces(good: list[tuple[float, dict[str, Any]]]) -> dict[str, Any]:
    """One face per person seen: a face joins the nearest earlier face within the
    same-person distance that was not seen in its own frame (two faces of one frame
    are two people, however alike), and replaces it when its detector score is
    higher. Faces without an embedding cannot be told apart and are kept from the
    frame with the most faces."""
    people: list[tuple[np.ndarray, dict[str, Any], float]] = []  # (vector, face, last seen)
    loose: list[dict[str, Any]] = []
    for at, result in good:
        for face in result.get("faces") or []:
            if not isinstance(face, dict):
                continue
            emb = face.get("embedding")
            if not isinstance(emb, list | tuple) or not emb:
                loose.append(_stamp(face, at))
                continue
            v = np.asarray(emb, dtype=np.float32)
            distance, limit = _face_distance(face.get("model"))
            near = [
                (distance(v, seen), i)
                for i, (seen, _kept, when) in enumerate(people)
                if when != at and distance(v, seen) < limit
            ]
            if not near:
                people.append((v, _stamp(face, at), at))
                continue
            _d, i = min(near)
            kept = people[i][1]
            if float(face.get("score", 0)) > float(kept.get("score", 0)):
                kept = _stamp(face, at)
            people[i] = (v, kept, at)
    if loose:
        by_at: dict[float, list[dict[str, Any]]] = {}
        for face in loose:
            by_at.setdefault(face["at"], []).append(face)
        loose = max(by_at.values(), key=len)
    faces = sorted([f for _v, f, _w in people] + loose, key=lambda f: (f["at"], f["box"][0]))
    out = {k: v for k, v in good[0][1].items() if k != "faces"}
    out["faces"] = faces
    out["tags"] = [_stamp(t, faces[0]["at"]) for t in people_tags(len(faces))] if faces else []
    return out


def _fold(text: str) -> str:
    return re.sub(r"\W+", " ", text.casefold()).strip()


def _merge_text(good: list[tuple[float, dict[str, Any]]]) -> dict[str, Any]:
    """Each distinct line once (folded: case and punctuation aside), from the frame
    that read it with the highest score, in time then reading order; the document
    kind and keywords of the frame with the most lines."""
    best: dict[str, tuple[float, int, dict[str, Any]]] = {}
    order = 0
    for at, result in good:
        for line in result.get("lines") or []:
            if not isinstance(line, dict) or not _fold(str(line.get("text") or "")):
                continue
            key = _fold(str(line["text"]))
            score = float(line.get("score") or 0.0)
            if key not in best:
                best[key] = (score, order, _stamp(line, at))
                order += 1
            elif score > best[key][0]:
                best[key] = (score, best[key][1], _stamp(line, at))
    at_most, fullest = max(good, key=lambda ar: len(ar[1].get("lines") or []))
    out = dict(fullest)
    out["lines"] = [line for _s, _o, line in sorted(best.values(), key=lambda v: v[1])]
    out["tags"] = [_stamp(t, at_most) for t in fullest.get("tags") or []]
    out["truncated"] = any(bool(r.get("truncated")) for _at, r in good)
    return out


MERGERS: dict[str, Callable[[list[tuple[float, dict[str, Any]]]], dict[str, Any]]] = {
    "clip": _merge_clip,
    "faces": _merge_faces,
    "text": _merge_text,
}


def video_facts(image: DecodedImage) -> dict[str, Any]:
    """What the decoder knows of the item's kind: {"kind"} for a photo or motion
    photo, plus "duration" and the number of sampled frames for a video."""
    out: dict[str, Any] = {"kind": image.kind}
    if image.kind == "video":
        out["duration"] = round(image.duration, 3) if image.duration is not None else None
        out["frames_sampled"] = len(image.frames or [])
    return out


@dataclass
class Expanded:
    """A batch with each video replaced by itself (for the once-per-video analyzers)
    and its frames (for the others): what `Worker._analyze` runs, and where each
    video's frames went."""

    items: list[AnalysisItem]
    missing: list[list[str]]
    #: Per input item: its position in `items`, and its frames' (position, time).
    spans: list[tuple[int, list[tuple[int, float]]]]


def expand(
    items: list[AnalysisItem], missing: list[list[str]], *, skip_frames: set[int] | None = None
) -> Expanded:
    """Items and the analyzers each lacks, with videos' frames as items of their own.
    A video whose index is in `skip_frames` (the video half of a live photo) gets the
    once-per-video analyzers only."""
    out = Expanded([], [], [])
    for i, (item, names) in enumerate(zip(items, missing, strict=True)):
        frames = [] if skip_frames and i in skip_frames else frame_items(item)
        if item.image.kind != "video":
            out.spans.append((len(out.items), []))
            out.items.append(item)
            out.missing.append(names)
            continue
        pos = len(out.items)
        out.items.append(item)
        out.missing.append([n for n in names if n in ONCE_PER_VIDEO])
        placed = []
        per_frame = [n for n in names if n not in ONCE_PER_VIDEO]
        for at, fitem in frames:
            placed.append((len(out.items), at))
            out.items.append(fitem)
            out.missing.append(per_frame)
        out.spans.append((pos, placed))
    return out


def fold(items: list[AnalysisItem], batch: Expanded, errors: list[str | None]) -> list[str | None]:
    """Merge each video's frame results into the video item (see `merge`); returns
    one error text per input item (None when every analyzer worked)."""
    out: list[str | None] = []
    for item, (pos, placed) in zip(items, batch.spans, strict=True):
        if not placed:
            out.append(errors[pos])
            continue
        own = errors[pos]
        problems = [own] if own else []
        for name in batch.missing[placed[0][0]]:
            merged = merge(name, [(at, batch.items[p].results.get(name)) for p, at in placed])
            item.results[name] = merged
            if "error" in merged:
                problems.append(f"{name}: {merged['error']}")
        out.append("; ".join(problems) or None)
    return out


def media_facts(
    image: DecodedImage, metadata: PhotoMetadata, live: dict[str, str]
) -> dict[str, Any]:
    """`video_facts`, the live-photo fields and Apple's live-photo mark of a video
    (`content_identifier`: its still recognises it by that)."""
    cid = metadata.extra.get("content_identifier")
    return {
        **video_facts(image),
        **live,
        **({"content_identifier": str(cid)} if cid else {}),
    }


def stamp_media(
    results: dict[str, Any], basic: dict[str, Any], media: dict[str, Any]
) -> dict[str, Any]:
    """Record what kind of item this is (and a video's duration, a live photo's other
    half) in its metadata result, and return the catalog facts. Without a metadata
    result (the analyzer is off) the facts exiftool read stand in for one, so every
    reader finds the kind in the same place; a failed one stays failed (it is retried)
    and only the facts get the fields."""
    meta = results.get("metadata")
    if isinstance(meta, dict) and "error" not in meta:
        for key in ("live_photo_of", "live_video"):
            meta.pop(key, None)
        meta.update(media)
        return meta
    facts = {**basic, **media}
    if meta is None:
        results["metadata"] = facts
    return facts
