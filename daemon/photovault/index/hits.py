"""What a search returns (`Hit`) and how rows become hits.

Every strategy (vector, text, filters, similar) reads the same columns and
builds hits the same way; kept here, below the strategies, so that each can
use it without importing the others.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from photovault.index.records import restore_path
from photovault.results import Place

if TYPE_CHECKING:
    from photovault.index.textmatch import TextQuery

# What a result shows. Each column costs 1-3 ms of a 20-hit fetch at 1M
# photos (the content hash was dropped for that: no caller showed it).
HIT_COLUMNS = [
    "id",
    "share",
    "path",
    "abs_path",
    "taken_at",
    "tags",
    "people",
    "country_code",
    "country",
    "region",
    "city",
    "kind",
]
# What the Python-side check (filters.python_check) reads besides abs_path.
# Fetched only when there is such a check: every column costs 2-5 ms of a
# 20-hit search at 1M photos.
CHECK_COLUMNS = ["lat", "lon"]
#: What a search with text reads besides: the recognized text, for the snippet.
TEXT_COLUMNS = ["ocr_text"]


@dataclass
class Hit:
    """One search result. `score`: cosine similarity for vector searches, BM25
    for text (substring matches follow the word matches, their score capped at
    the last word match's), the fused reciprocal-rank score for text with a
    vector, 0 for filters alone. `dhash_distance` is set by `similar`.
    `text_match` is the recognized line that matches the query text, `place`
    the place's names (results.Place.to_dict). `path` and `abs_path` are the
    real paths (`restore_path` of the stored form): a name that is not UTF-8
    has its bad bytes as surrogates (os.fsencode gives the bytes back).
    `kind` is "photo", "video" or "motion_photo"; `at` the moment of a video
    hit in seconds (its best frame, or the time of the tag the text matched)."""

    id: int
    share: str
    path: str
    abs_path: str | None
    score: float
    taken_at: str | None
    tags: list[str] = field(default_factory=list)
    people: list[str] = field(default_factory=list)
    dhash_distance: int | None = None
    text_match: str | None = None
    place: dict[str, Any] | None = None
    kind: str = "photo"
    at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SearchQueryError(ValueError):
    """The full-text index refused a search text (the handler answers bad_request)."""


def columns(check: Any, text: bool = False) -> list[str]:
    return [
        *HIT_COLUMNS,
        *(CHECK_COLUMNS if check is not None else ()),
        *(TEXT_COLUMNS if text else ()),
    ]


def hit_of(row: dict[str, Any], score: float, query: TextQuery | None = None) -> Hit:
    tags = sorted(row.get("tags") or [], key=lambda t: -(t.get("confidence") or 0.0))
    abs_path = row.get("abs_path")
    place = Place.from_dict(row)
    return Hit(
        id=row["id"],
        share=row["share"],
        path=restore_path(row["path"]),
        abs_path=None if abs_path is None else restore_path(abs_path),
        score=float(score),
        taken_at=row.get("taken_at"),
        tags=[t["tag"] for t in tags if t.get("tag")],
        people=list(row.get("people") or []),
        text_match=query.snippet(row.get("ocr_text")) if query is not None else None,
        place=place.to_dict() if place is not None else None,
        kind=row.get("kind") or "photo",
    )


def hits(table: pa.Table, scores: Sequence[float], query: TextQuery | None = None) -> list[Hit]:
    return [hit_of(row, score, query) for row, score in zip(table.to_pylist(), scores, strict=True)]


Ranked = list[tuple[dict[str, Any], float]]


def collect(fetch: Callable[[int], pa.Table], check: Any, limit: int) -> pa.Table:
    """Fetch ranked candidates; with a Python-side check, over-fetch and
    widen until `limit` pass or the candidates run out."""
    if check is None:
        return fetch(limit)
    k = max(limit * 4, 64)
    while True:
        t = fetch(k)
        kept = t.filter(pa.array(check(t))) if t.num_rows else t
        if kept.num_rows >= limit or t.num_rows < k:
            return kept.slice(0, limit)
        k *= 4


def rows_by_id(photos: Any, ids: list[int], cols: list[str] | None = None) -> pa.Table:
    """The hit columns (or `cols`) of these photos, in this order (missing
    ones left out)."""
    cols = cols or HIT_COLUMNS
    if not ids:
        return photos.schema.empty_table().select(cols)
    t = (
        photos.search()
        .where(f"id IN ({', '.join(str(i) for i in ids)})")
        .select(cols)
        .limit(len(ids))
        .to_arrow()
    )
    pos = {v: i for i, v in enumerate(t["id"].to_pylist())}
    return t.take(pa.array([pos[i] for i in ids if i in pos], pa.int64()))
