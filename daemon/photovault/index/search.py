"""Searching the index: `Hit` and the strategies that produce hits.

A query with a vector is ranked semantically: by the in-memory index when it
serves and can apply the filters itself, else by LanceDB's vector search
(exact below `ann_threshold`, IVF_SQ with a prefilter above). Text alone is
ranked by BM25 over the full-text document; filters alone list newest first.
Filters, permissions included, hold before the limit. Why these choices:
bench/README.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from photovault.index.filters import Filters, python_check, to_sql
from photovault.index.memann import Facts
from photovault.index.memory import MemoryLoader
from photovault.index.records import restore_path
from photovault.index.tables import IndexTables

log = logging.getLogger(__name__)

ALL_PARTITIONS = 1 << 20  # as `maximum_nprobes`: LanceDB stops at the last partition

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
]
# What the Python-side check (filters.python_check) reads besides abs_path.
# Fetched only when there is such a check: every column costs 2-5 ms of a
# 20-hit search at 1M photos.
CHECK_COLUMNS = ["lat", "lon"]


@dataclass
class Hit:
    """One search result. `score`: cosine similarity for vector searches, BM25
    for text, 0 for filters alone. `dhash_distance` is set by `similar`.
    `path` and `abs_path` are the real paths (`restore_path` of the stored form):
    a name that is not UTF-8 has its bad bytes as surrogates (os.fsencode gives
    the bytes back)."""

    id: int
    share: str
    path: str
    abs_path: str | None
    score: float
    taken_at: str | None
    tags: list[str] = field(default_factory=list)
    people: list[str] = field(default_factory=list)
    dhash_distance: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def columns(check: Any) -> list[str]:
    return HIT_COLUMNS if check is None else [*HIT_COLUMNS, *CHECK_COLUMNS]


def hits(table: pa.Table, scores: Sequence[float]) -> list[Hit]:
    out: list[Hit] = []
    for row, score in zip(table.to_pylist(), scores, strict=True):
        tags = sorted(row.get("tags") or [], key=lambda t: -(t.get("confidence") or 0.0))
        abs_path = row.get("abs_path")
        out.append(
            Hit(
                id=row["id"],
                share=row["share"],
                path=restore_path(row["path"]),
                abs_path=None if abs_path is None else restore_path(abs_path),
                score=float(score),
                taken_at=row.get("taken_at"),
                tags=[t["tag"] for t in tags if t.get("tag")],
                people=list(row.get("people") or []),
            )
        )
    return out


def norm(v: Any) -> np.ndarray:
    a = np.asarray(v, dtype=np.float32).reshape(-1)
    n = float(np.linalg.norm(a))
    return a / n if n > 0 else a


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


def _memory_facts(f: Filters) -> tuple[bool, Facts | None]:
    """Whether the in-memory index can answer these filters itself, and how:
    capture dates and the camera it holds; people, tags, places, paths and
    shares go to LanceDB. (A permission check runs on the hits either way.)"""
    if f.persons or f.tags or f.near_spec() is not None or f.path or f.shares is not None:
        return False, None
    if f.after is None and f.before is None and not f.camera:
        return True, None
    return True, Facts(after=f.after, before=f.before, camera=f.camera)


class Searcher:
    """The search strategies over one open index."""

    def __init__(self, tables: IndexTables, memory: MemoryLoader) -> None:
        self._t = tables
        self._memory = memory

    @property
    def photos(self) -> Any:
        return self._t.photos

    def count(self, where: str | None = None) -> int:
        return int(self._t.photos.count_rows(where))

    def get(self, photo_id: int) -> dict[str, Any] | None:
        t = self._t.photos.search().where(f"id = {int(photo_id)}").limit(1).to_arrow()
        return t.to_pylist()[0] if t.num_rows else None

    def search(
        self,
        text_vector: np.ndarray | None = None,
        text: str | None = None,
        filters: Filters | None = None,
        limit: int = 50,
    ) -> list[Hit]:
        """Semantic ranking when a vector is given, full-text (BM25 over tags,
        labels, names, path words) when only text is, newest first for filters
        alone. Filters, permissions included, hold before the limit."""
        f = filters or Filters()
        where = self.where(f)
        check = python_check(f)
        if limit <= 0:
            return []
        memory, facts = _memory_facts(f)
        if text_vector is not None and memory and self._memory.serves():
            q = norm(text_vector)
            cols = columns(check)
            table = collect(lambda k: self._memory_query(q, k, cols, facts), check, limit)
            return hits(table, (1.0 - table["_distance"].to_numpy()).tolist())
        if text_vector is not None:
            q = norm(text_vector)
            exact = self.exact(where)
            cols = columns(check)
            table = collect(lambda k: self.vector_query(q, where, k, exact, cols), check, limit)
            return hits(table, (1.0 - table["_distance"].to_numpy()).tolist())
        if text is not None and text.strip():
            if "search_text" not in self._t.indexes:
                return []
            table = collect(
                lambda k: self._text_query(text, where, k, columns(check)), check, limit
            )
            return hits(table, table["_score"].to_numpy().tolist())
        return self._filter_only(where, check, limit)

    def where(self, f: Filters) -> str | None:
        return to_sql(f, self._t.cameras.names() if f.camera else None)

    def exact(self, where: str | None) -> bool:
        """Whether a vector search must bypass the ANN index: there is none, or
        it was built before its partitions were recorded and the filter matches
        at most `exact_below` photos."""
        if not self._t.has_ann:
            return True
        if where is None:
            return False
        if self._t.partitions() is not None:
            return False  # probes go on until enough matches are found
        return self.count(where) <= self._t.settings.exact_below

    def vector_query(
        self, q: np.ndarray, where: str | None, k: int, exact: bool, columns: list[str]
    ) -> pa.Table:
        s = self._t.settings
        b = (
            self._t.photos.search(q, vector_column_name="vector")
            .distance_type("cosine")
            .limit(k)
            .select([*columns, "_distance"])
        )
        if where:
            b = b.where(where, prefilter=True)
        if exact:
            return b.bypass_vector_index().to_arrow()
        b = b.nprobes(s.nprobes).refine_factor(s.refine_factor)
        if not where or self._t.partitions() is None:
            return b.to_arrow()
        # A filtered search first probes as many partitions as an unfiltered
        # one; only when that finds fewer than k matches does it go on probing
        # (up to every partition) until it has them. LanceDB's own
        # `maximum_nprobes` alone probes far more partitions than needed.
        first = b.to_arrow()
        if first.num_rows >= k:
            return first
        # Every partition: LanceDB splits large ones, so there may be more than built.
        return b.maximum_nprobes(ALL_PARTITIONS).to_arrow()

    def _memory_query(
        self, q: np.ndarray, k: int, columns: list[str], facts: Facts | None = None
    ) -> pa.Table:
        """The in-memory index's k best, with their columns from LanceDB, in rank
        order. Scores come from the int8 codes of the residuals; no re-ranking on
        stored vectors (fetching them costs more than it gains)."""
        photos = self._t.photos
        r = self._memory.mem.search(q, k, facts=facts)
        cols = [*dict.fromkeys(["id", *columns])]
        if not r.ids.size:
            empty = photos.schema.empty_table().select(columns)
            return empty.append_column("_distance", pa.array([], pa.float32()))
        parts: list[pa.Table] = []
        known = r.rowids >= 0
        if known.any():
            try:
                parts.append(
                    photos.take_row_ids([int(x) for x in r.rowids[known]]).select(cols).to_arrow()
                )
            except Exception as exc:  # a row id gone since: fetch those by id below
                log.debug("take by row id failed (%s); fetching by id", exc)
        # A row id may be stale (the row was rewritten since): whatever did not
        # come back under its photo id is fetched by id.
        got = set(parts[0]["id"].to_pylist()) if parts else set()
        missing = [int(i) for i in r.ids if int(i) not in got]
        if missing:
            parts.append(
                photos.search()
                .where(f"id IN ({', '.join(str(i) for i in missing)})")
                .select(cols)
                .limit(len(missing))
                .to_arrow()
            )
        rows = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
        pos: dict[int, int] = {}
        for i, v in enumerate(rows["id"].to_pylist()):
            pos.setdefault(v, i)
        keep = [
            (pos[i], 1.0 - float(sc))
            for i, sc in zip(r.ids.tolist(), r.scores, strict=True)
            if i in pos
        ]
        out = rows.take(pa.array([p for p, _ in keep], pa.int64())).select(columns)
        return out.append_column("_distance", pa.array([d for _, d in keep], pa.float32()))

    def _text_query(self, text: str, where: str | None, k: int, columns: list[str]) -> pa.Table:
        b = (
            self._t.photos.search(text, query_type="fts", fts_columns="search_text")
            .limit(k)
            .select([*columns, "_score"])
        )
        if where:
            b = b.where(where, prefilter=True)
        return b.to_arrow()

    def _filter_only(self, where: str | None, check: Any, limit: int) -> list[Hit]:
        b = self._t.photos.search().select(["id", "taken_local", "path", "lat", "lon", "abs_path"])
        if where:
            b = b.where(where)
        t = b.limit(None).to_arrow()
        if check is not None and t.num_rows:
            t = t.filter(pa.array(check(t)))
        if t.num_rows == 0:
            return []
        order = pc.sort_indices(t, sort_keys=[("taken_local", "descending"), ("path", "ascending")])
        ids = t["id"].take(order).slice(0, limit).to_pylist()
        rows = self.rows_by_id(ids)
        return hits(rows, [0.0] * rows.num_rows)

    def rows_by_id(self, ids: list[int]) -> pa.Table:
        """The hit columns of these photos, in this order (missing ones left out)."""
        photos = self._t.photos
        if not ids:
            return photos.schema.empty_table().select(HIT_COLUMNS)
        t = (
            photos.search()
            .where(f"id IN ({', '.join(str(i) for i in ids)})")
            .select(HIT_COLUMNS)
            .limit(len(ids))
            .to_arrow()
        )
        pos = {v: i for i, v in enumerate(t["id"].to_pylist())}
        return t.take(pa.array([pos[i] for i in ids if i in pos], pa.int64()))
