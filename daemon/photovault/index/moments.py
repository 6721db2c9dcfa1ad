"""Moments in videos: merging each video's best frame into a photo ranking.

A vector search ranks the `photos` rows (a video's row holds its clip vector)
and, apart, every video frame (frames.py); a video scores as its best frame
or its clip, whichever is higher, and carries that frame's time. Frames are
filtered like photos: their file ids go through the same SQL prefilter and
Python check on the `photos` rows. A text search points a video hit at the
time of the first tag (by confidence) that the text or a tag filter matched,
else of the recognized line the text matched, else of a person a person
filter names (`seen_moments`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa

from photovault.index.frames import FrameVectors
from photovault.index.hits import CHECK_COLUMNS, Hit, Ranked, rows_by_id
from photovault.index.records import fold, tag_keys

_WORDS = re.compile(r"[\W_]+")


def passing(photos: Any, where: str | None, check: Any) -> Callable[[list[int]], set[int]] | None:
    """Which of some file ids pass the filters (SQL `where`, Python `check`);
    None when nothing filters."""
    if where is None and check is None:
        return None

    def keep(ids: list[int]) -> set[int]:
        cond = f"id IN ({', '.join(str(i) for i in ids)})"
        cols = ["id", *(["abs_path", *CHECK_COLUMNS] if check is not None else [])]
        t = (
            photos.search()
            .where(f"{cond} AND ({where})" if where else cond)
            .select(cols)
            .limit(None)
            .to_arrow()
        )
        if check is not None and t.num_rows:
            t = t.filter(pa.array(check(t)))
        return {int(i) for i in t["id"].to_pylist()}

    return keep


def merge(
    photos: Any,
    frames: FrameVectors,
    q: Any,
    ranked: Ranked,
    keep: Callable[[list[int]], set[int]] | None,
    k: int,
    cols: list[str],
    exclude: int | None = None,
) -> tuple[Ranked, dict[int, float]]:
    """The k best of photo-ranked rows (cosine scores) and videos by their best
    frame for unit `q`, by score, and each video's moment {id: seconds}. `keep`
    filters the frames' videos (see `passing`); `exclude` is a file left out."""
    if not len(frames):
        return ranked[:k], {}
    found = {m.id: m for m in frames.best(q, k + (exclude is not None), keep) if m.id != exclude}
    scores = {row["id"]: score for row, score in ranked}
    rows = {row["id"]: row for row, _ in ranked}
    for row, _ in ranked:  # a video ranked by its clip: its moment all the same
        if row.get("kind") == "video" and row["id"] not in found:
            m = frames.moment(q, row["id"])
            if m is not None:
                found[m.id] = m
    for i, m in found.items():
        scores[i] = max(scores.get(i, m.score), m.score)
    order = sorted(scores, key=lambda i: -scores[i])[:k]  # stable: the photo ranking first
    new = [i for i in order if i not in rows]  # only the videos that made the list
    if new:
        rows.update((r["id"], r) for r in rows_by_id(photos, new, cols).to_pylist())
    order = [i for i in order if i in rows]  # (a row deleted meanwhile)
    return [(rows[i], scores[i]) for i in order], {i: found[i].at for i in order if i in found}


def seen_moments(
    photos: Any,
    hits: list[Hit],
    words: Sequence[str] = (),
    tags: Sequence[str] = (),
    persons: Sequence[str] = (),
) -> None:
    """Set `at` of video hits that have none to when what the search matched was
    seen: the first tag (by confidence) that a tag filter names (as `tag_keys`:
    "dog", "Animals|Dog") or the search words match, else the recognized line
    the text matched (`text_match`), else the first person a person filter
    names; each where it has a time (`tag_times`, `text_times`, `person_times`)."""
    videos = [h for h in hits if h.kind == "video" and h.at is None]
    wanted = set(words)
    named = {"|".join(p.strip() for p in t.lower().split("|")) for t in tags}
    people = [p.strip().lower() for p in persons if p.strip()]
    if not videos or not (wanted or named or people):
        return
    cols = ["id", "tag_times", "text_times", "person_times"]
    rows = {r["id"]: r for r in rows_by_id(photos, [h.id for h in videos], cols).to_pylist()}
    for h in videos:
        row = rows.get(h.id) or {}
        h.at = _tag_time(h, row.get("tag_times"), wanted, named)
        if h.at is None and h.text_match:
            h.at = _line_time(h.text_match, row.get("text_times"))
        if h.at is None and people:
            h.at = _person_time(people, row.get("person_times"))


def _times(items: Any, key: str) -> list[tuple[str, float]]:
    return [
        (str(it[key]), float(it["at"]))
        for it in items or []
        if it and it.get(key) is not None and it.get("at") is not None
    ]


def _tag_time(h: Hit, stored: Any, wanted: set[str], named: set[str]) -> float | None:
    at = dict(_times(stored, "tag"))
    for tag in h.tags:  # by confidence
        if tag in at and (
            named & set(tag_keys([{"tag": tag}]))
            or wanted & set(_WORDS.split(fold(tag.replace("|", " "))))
        ):
            return at[tag]
    return None


def _line_time(snippet: str, stored: Any) -> float | None:
    """The time of the line a hit's `text_match` is (TextQuery.snippet: the
    line stripped, a long one cut short with an ellipsis)."""
    cut = snippet.endswith("\u2026")
    head = snippet[:-1] if cut else snippet
    for text, at in _times(stored, "text"):
        line = text.strip()
        if line == snippet or (cut and line.startswith(head)):
            return at
    return None


def _person_time(people: list[str], stored: Any) -> float | None:
    at = {name.lower(): t for name, t in _times(stored, "person")}
    return next((at[p] for p in people if p in at), None)
