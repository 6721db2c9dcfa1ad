"""Searching the index: `Hit` and the strategies that produce hits.

A query with a vector is ranked semantically: by the in-memory index when it
serves and can apply the filters itself, else by LanceDB's vector search
(exact below `ann_threshold`, IVF_SQ with a prefilter above). Text is ranked
by BM25 over the full-text document, whole words first, then photos whose
recognized text holds a query word inside a longer one (OCR joins words:
"PERINDUSTRIANBALAKONG"). A query with both is one ranking: the vector list
and the text list fused by reciprocal rank (so a photo that matches both
leads). Filters alone list newest first. Filters, permissions included, hold
before the limit. Why these choices: bench/README.md.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from lancedb.query import BooleanQuery, MatchQuery, Occur

from photovault.index.filters import Filters, python_check, to_sql
from photovault.index.memann import Facts
from photovault.index.memory import MemoryLoader
from photovault.index.records import fold, restore_path, squash
from photovault.index.tables import IndexTables
from photovault.results import Place

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
    "country_code",
    "country",
    "region",
    "city",
]
# What the Python-side check (filters.python_check) reads besides abs_path.
# Fetched only when there is such a check: every column costs 2-5 ms of a
# 20-hit search at 1M photos.
CHECK_COLUMNS = ["lat", "lon"]
#: What a search with text reads besides: the recognized text, for the snippet.
TEXT_COLUMNS = ["ocr_text"]

#: Reciprocal rank fusion (Cormack et al., SIGIR 2009): a photo scores
#: sum(1 / (RRF_K + rank)) over the lists it is in. 60 is the paper's constant:
#: it keeps one list's top hit from outweighing agreement between both lists.
RRF_K = 60
#: How deep each list is read for fusion (or `limit`, if more).
FUSION_DEPTH = 60
#: Query words at least this long also match inside the recognized text's
#: words; shorter ones would match inside too many ("bal", "sdn" stay whole words).
MIN_SUBSTRING = 4
#: N-gram candidates a substring search reads at most, widening as it goes.
SUBSTRING_CANDIDATES = 4096
#: The longest snippet a hit carries.
SNIPPET_CHARS = 120

_WORDS = re.compile(r"[\W_]+")


@dataclass
class Hit:
    """One search result. `score`: cosine similarity for vector searches, BM25
    for text (substring matches follow the word matches, their score capped at
    the last word match's), the fused reciprocal-rank score for text with a
    vector, 0 for filters alone. `dhash_distance` is set by `similar`.
    `text_match` is the recognized line that matches the query text, `place`
    the place's names (results.Place.to_dict). `path` and `abs_path` are the
    real paths (`restore_path` of the stored form): a name that is not UTF-8
    has its bad bytes as surrogates (os.fsencode gives the bytes back)."""

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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TextQuery:
    """A search text as the matching sees it: its folded words, and the
    substrings looked for in the squashed recognized text (records.squash):
    every word of `MIN_SUBSTRING` letters or more, and each pair of adjacent
    words written together (OCR splits too: "sdn bhd" finds "SDNBHD")."""

    words: tuple[str, ...]
    terms: tuple[str, ...]

    @classmethod
    def of(cls, text: str) -> TextQuery:
        words = tuple(w for w in _WORDS.split(fold(text)) if w)
        terms = {w for w in words if len(w) >= MIN_SUBSTRING}
        terms.update(a + b for a, b in pairwise(words))
        return cls(words, tuple(sorted(t for t in terms if len(t) >= MIN_SUBSTRING)))

    def found_in(self, joined: str | None) -> int:
        """How many terms the squashed text holds."""
        return sum(t in joined for t in self.terms) if joined else 0

    def snippet(self, text: str | None) -> str | None:
        """The recognized line that best matches: most whole query words, then
        most substring terms; None when no line matches."""
        if not text or not self.words:
            return None
        wanted = set(self.words)
        best, best_key = None, (0, 0)
        for line in text.splitlines():
            words = set(_WORDS.split(fold(line)))
            key = (len(wanted & words), self.found_in(squash(line)))
            if key > best_key:
                best, best_key = line.strip(), key
        if best is not None and len(best) > SNIPPET_CHARS:
            best = best[: SNIPPET_CHARS - 1] + "\u2026"
        return best


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
    )


def hits(table: pa.Table, scores: Sequence[float], query: TextQuery | None = None) -> list[Hit]:
    return [hit_of(row, score, query) for row, score in zip(table.to_pylist(), scores, strict=True)]


Ranked = list[tuple[dict[str, Any], float]]


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
    if (
        f.persons
        or f.tags
        or f.near_spec() is not None
        or f.place is not None
        or f.path
        or f.shares is not None
    ):
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
            depth = max(limit, FUSION_DEPTH) if words else limit
            table = self._vector_ranked(norm(text_vector), f, where, check, depth, bool(words))
            if not words:
                return hits(table, (1.0 - table["_distance"].to_numpy()).tolist())
            query = TextQuery.of(words)
            by_text = [row for row, _ in self._text_ranked(words, query, where, check, depth)]
            # Text first: on a tie (one list's 1st against the other's 1st) the
            # literal match leads, the more precise of the two signals.
            fused = fuse([by_text, table.to_pylist()])[:limit]
            return [hit_of(row, score, query) for row, score in fused]
        if words:
            query = TextQuery.of(words)
            ranked = self._text_ranked(words, query, where, check, limit)
            return [hit_of(row, score, query) for row, score in ranked]
        return self._filter_only(where, check, limit)

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

    def _text_ranked(
        self, text: str, query: TextQuery, where: str | None, check: Any, k: int
    ) -> Ranked:
        """Up to k photos by their text: whole-word BM25 hits, then photos whose
        recognized text holds a query term inside longer words."""
        cols = columns(check, text=True)
        out: Ranked = []
        if "search_text" in self._t.indexes:
            table = collect(lambda n: self._text_query(text, where, n, cols), check, k)
            out = list(zip(table.to_pylist(), table["_score"].to_pylist(), strict=True))
        if len(out) < k and query.terms and "ocr_joined" in self._t.indexes:
            seen = {row["id"] for row, _ in out}
            cap = out[-1][1] if out else None
            for row, score in self._substring_query(query, where, check, k - len(out), seen):
                cap = score if cap is None else min(cap, score)
                out.append((row, cap))
        return out

    def _substring_query(
        self, query: TextQuery, where: str | None, check: Any, k: int, seen: set[int]
    ) -> Ranked:
        """Photos (not in `seen`) whose squashed recognized text holds a query
        term: the n-gram index proposes candidates (any shared 4-gram), which
        are checked here for the whole term; more terms found rank first. Only
        the candidates' ids and squashed text are read until they are known."""
        probe = ["id", "ocr_joined", *(["abs_path", *CHECK_COLUMNS] if check is not None else [])]
        # (lancedb's query models are pydantic classes: mypy misses their defaults)
        matches = [MatchQuery(term, "ocr_joined") for term in query.terms]  # type: ignore[call-arg]
        fts: Any = (
            matches[0] if len(matches) == 1 else BooleanQuery([(Occur.SHOULD, m) for m in matches])
        )
        n = min(max(k * 4, 64), SUBSTRING_CANDIDATES)
        while True:
            b = self._t.photos.search(fts, query_type="fts").limit(n).select([*probe, "_score"])
            if where:
                b = b.where(where, prefilter=True)
            t = b.to_arrow()
            mask = np.ones(t.num_rows, dtype=bool) if check is None else check(t)
            found: list[tuple[int, int, int, float]] = []
            for i, (pid, joined, score) in enumerate(
                zip(
                    t["id"].to_pylist(),
                    t["ocr_joined"].to_pylist(),
                    t["_score"].to_pylist(),
                    strict=True,
                )
            ):
                terms = query.found_in(joined) if mask[i] and pid not in seen else 0
                if terms:
                    found.append((-terms, i, pid, float(score)))
            if len(found) >= k or t.num_rows < n or n >= SUBSTRING_CANDIDATES:
                break
            n = min(n * 4, SUBSTRING_CANDIDATES)
        found.sort(key=lambda x: (x[0], x[1]))
        found = found[:k]
        rows = self.rows_by_id([pid for _, _, pid, _ in found], columns(check, text=True))
        by_id = {row["id"]: row for row in rows.to_pylist()}
        return [(by_id[pid], score) for _, _, pid, score in found if pid in by_id]

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
        photos = self._t.photos
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
