"""Searching the index: `Hit` and the strategies that produce hits.

A query with a vector is ranked semantically: by the in-memory index when it
serves and can apply the filters itself, else by LanceDB's vector search
(exact below `ann_threshold`, IVF_SQ with a prefilter above). Text is ranked
by how many query words a photo matches, as words of its full-text document
or inside its recognized text's longer words (OCR joins words:
"PERINDUSTRIANBALAKONG"), then by how many as whole words, then BM25. The
user's text is words, never query syntax. A query with both is one ranking: the vector list
and the text list fused by reciprocal rank (so a photo that matches both
leads). Filters alone list newest first. Filters, permissions included, hold
before the limit. Why these choices: bench/README.md.

Videos: a vector also ranks every video frame, and a video takes the score
and time of its best one (moments.py); a text match on a tag or a line seen
at a time, or a person filter on someone seen at one, points there.

The text matching is textmatch.py's; `Hit` and the row-to-hit helpers are
hits.py's (re-exported here, where callers import them).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from photovault.index.filters import Filters, python_check, to_sql
from photovault.index.frames import FrameVectors
from photovault.index.hits import (
    CHECK_COLUMNS,
    HIT_COLUMNS,
    TEXT_COLUMNS,
    Hit,
    Ranked,
    SearchQueryError,
    collect,
    columns,
    hit_of,
    hits,
    rows_by_id,
)
from photovault.index.memann import Facts
from photovault.index.memory import MemoryLoader
from photovault.index.moments import merge, passing, seen_moments
from photovault.index.tables import IndexTables
from photovault.index.textmatch import TextQuery, TextSearch

__all__ = [
    "CHECK_COLUMNS",
    "HIT_COLUMNS",
    "TEXT_COLUMNS",
    "Hit",
    "Ranked",
    "SearchQueryError",
    "Searcher",
    "TextQuery",
    "collect",
    "columns",
    "fuse",
    "hit_of",
    "hits",
    "norm",
]

log = logging.getLogger(__name__)

ALL_PARTITIONS = 1 << 20  # as `maximum_nprobes`: LanceDB stops at the last partition

#: Reciprocal rank fusion (Cormack et al., SIGIR 2009): a photo scores
#: sum(1 / (RRF_K + rank)) over the lists it is in. 60 is the paper's constant:
#: it keeps one list's top hit from outweighing agreement between both lists.
RRF_K = 60
#: How deep each list is read for fusion (or `limit`, if more).
FUSION_DEPTH = 60


def fuse(lists: Iterable[Sequence[dict[str, Any]]], k: int = RRF_K) -> Ranked:
    """Reciprocal rank fusion of ranked rows (by "id"): best first; ties keep
    the order in which the rows were first seen."""
    scores: dict[int, float] = {}
    rows: dict[int, dict[str, Any]] = {}
    for ranked in lists:
        for rank, row in enumerate(ranked, 1):
            pid = row["id"]
            scores[pid] = scores.get(pid, 0.0) + 1.0 / (k + rank)
            rows.setdefault(pid, row)
    order = sorted(scores, key=lambda pid: -scores[pid])  # stable: first seen first
    return [(rows[pid], scores[pid]) for pid in order]


def _at(moments: dict[int, float], found: list[Hit]) -> list[Hit]:
    for h in found:
        h.at = moments.get(h.id)
    return found


def norm(v: Any) -> np.ndarray:
    a = np.asarray(v, dtype=np.float32).reshape(-1)
    n = float(np.linalg.norm(a))
    return a / n if n > 0 else a


def _memory_facts(f: Filters) -> tuple[bool, Facts | None]:
    """Whether the in-memory index can answer these filters itself, and how:
    capture dates and the camera it holds; people, tags, places, paths and
    shares go to LanceDB. (A permission check runs on the hits either way.)"""
    if (
        f.persons
        or f.tags
        or f.near_spec() is not None
        or f.place is not None
        or f.path
        or f.shares is not None
        or f.kind is not None
    ):
        return False, None
    if f.after is None and f.before is None and not f.camera:
        return True, None
    return True, Facts(after=f.after, before=f.before, camera=f.camera)


class Searcher:
    """The search strategies over one open index."""

    def __init__(self, tables: IndexTables, memory: MemoryLoader, frames: FrameVectors) -> None:
        self._t = tables
        self._memory = memory
        self._text = TextSearch(tables)
        self.frames = frames

    @property
    def photos(self) -> Any:
        return self._t.photos

    @property
    def frames_table(self) -> Any:
        return self._t.frames

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
        """Semantic ranking when only a vector is given, full-text (BM25 over
        tags, labels, names, path words, places and recognized text; substrings
        of the recognized text after whole words) when only text is, both fused
        by reciprocal rank when both are, newest first for filters alone.
        Filters, permissions included, hold before the limit."""
        f = filters or Filters()
        where = self.where(f)
        check = python_check(f)
        if limit <= 0:
            return []
        words = text.strip() if text else ""
        if text_vector is not None:
            q = norm(text_vector)
            depth = max(limit, FUSION_DEPTH) if words else limit
            table = self._vector_ranked(q, f, where, check, depth, bool(words))
            by_vector, at = self.with_moments(q, table, where, check, depth, bool(words))
            if not words:
                found = _at(at, [hit_of(row, score) for row, score in by_vector])
                seen_moments(self._t.photos, found, (), f.tags, f.persons)  # videos without frames
                return found
            query = TextQuery.of(words)
            by_text = [row for row, _ in self._text.ranked(query, where, check, depth)]
            # Text first: on a tie (one list's 1st against the other's 1st) the
            # literal match leads, the more precise of the two signals.
            fused = fuse([by_text, [row for row, _ in by_vector]])[:limit]
            found = _at(at, [hit_of(row, score, query) for row, score in fused])
            seen_moments(self._t.photos, found, query.units, f.tags, f.persons)
            return found
        if words:
            query = TextQuery.of(words)
            ranked = self._text.ranked(query, where, check, limit)
            found = [hit_of(row, score, query) for row, score in ranked]
            seen_moments(self._t.photos, found, query.units, f.tags, f.persons)
            return found
        found = self._filter_only(where, check, limit)
        seen_moments(self._t.photos, found, (), f.tags, f.persons)
        return found

    def with_moments(
        self,
        q: np.ndarray,
        table: pa.Table,
        where: str | None,
        check: Any,
        k: int,
        text: bool = False,
        exclude: int | None = None,
    ) -> tuple[Ranked, dict[int, float]]:
        """Vector-ranked rows (`_distance`) merged with the videos' best frames
        that pass the same filters: (row, cosine) best first, and each video's
        moment."""
        scores = (1.0 - table["_distance"].to_numpy()).tolist() if table.num_rows else []
        ranked = list(zip(table.drop_columns(["_distance"]).to_pylist(), scores, strict=True))
        keep = passing(self._t.photos, where, check)
        cols = columns(check, text)
        return merge(self._t.photos, self.frames, q, ranked, keep, k, cols, exclude)

    def _vector_ranked(
        self, q: np.ndarray, f: Filters, where: str | None, check: Any, k: int, text: bool
    ) -> pa.Table:
        """The k nearest photos that pass the filters, with `_distance` (and
        their recognized text when `text`)."""
        memory, facts = _memory_facts(f)
        cols = columns(check, text)
        if memory and self._memory.serves():
            return collect(lambda n: self._memory_query(q, n, cols, facts), check, k)
        exact = self.exact(where)
        return collect(lambda n: self.vector_query(q, where, n, exact, cols), check, k)

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

    def places(self, f: Filters) -> list[dict[str, Any]]:
        """The places of the photos that pass `f` (permissions included), with
        photo counts: countries, their regions, their towns; most photos first.
        A photo with a country but no region or town counts under None there."""
        where = self.where(f)
        check = python_check(f)
        cond = "country_code IS NOT NULL" + (f" AND ({where})" if where else "")
        cols = ["country_code", "country", "region", "city"]
        if check is not None:
            cols += ["abs_path", *CHECK_COLUMNS]
        t = self._t.photos.search().where(cond).select(cols).limit(None).to_arrow()
        if check is not None and t.num_rows:
            t = t.filter(pa.array(check(t)))
        groups = t.group_by(["country_code", "country", "region", "city"], use_threads=False)
        counts = groups.aggregate([([], "count_all")]).to_pylist()
        countries: dict[str, dict[str, Any]] = {}
        for g in counts:
            n = int(g["count_all"])
            c = countries.setdefault(
                g["country_code"],
                {"country_code": g["country_code"], "country": g["country"], "photos": 0},
            )
            c["photos"] += n
            region = c.setdefault("_regions", {}).setdefault(
                g["region"], {"region": g["region"], "photos": 0, "_cities": {}}
            )
            region["photos"] += n
            region["_cities"][g["city"]] = region["_cities"].get(g["city"], 0) + n

        def most(items: Iterable[dict[str, Any]], key: str) -> list[dict[str, Any]]:
            return sorted(items, key=lambda d: (-d["photos"], d[key] is None, d[key] or ""))

        out = []
        for c in countries.values():
            regions = []
            for r in c.pop("_regions").values():
                cities = [{"city": k, "photos": v} for k, v in r.pop("_cities").items()]
                regions.append({**r, "cities": most(cities, "city")})
            out.append({**c, "regions": most(regions, "region")})
        return most(out, "country")

    def rows_by_id(self, ids: list[int], cols: list[str] | None = None) -> pa.Table:
        """The hit columns (or `cols`) of these photos, in this order (missing
        ones left out)."""
        return rows_by_id(self._t.photos, ids, cols)
