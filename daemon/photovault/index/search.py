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
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from itertools import combinations, groupby
from math import comb
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from lancedb.query import BooleanQuery, MatchQuery, Occur

from photovault.index.filters import Filters, python_check, sql_string, to_sql
from photovault.index.memann import Facts
from photovault.index.memory import MemoryLoader
from photovault.index.records import fold, joined_text, restore_path, squash
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
#: A run of single letters ("D.I.Y.") is matched written together from this
#: length: the letters alone are dropped by the full-text index.
MIN_RUN = 3
#: The n-gram index's gram length (writes.FTS_INDEXES): shorter terms are scanned for.
GRAM = 4
#: The most unit combinations one n-gram query asks for (else any unit will do).
MAX_GROUPS = 10
#: What ranking a text hit reads: its full-text document and squashed recognized text.
MATCH_COLUMNS = ["search_text", "ocr_joined"]
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


class SearchQueryError(ValueError):
    """The full-text index refused a search text (the handler answers bad_request)."""


@dataclass(frozen=True)
class TextQuery:
    """A search text as the matching sees it. `words`: its folded words;
    `units`: the words with each run of single letters written together
    ("D.I.Y." folds to d, i, y: the unit is "diy"), what a photo is ranked by
    matching. `terms`: the substrings looked for in the squashed recognized
    text (records.squash), each with the units it covers: every unit of
    `MIN_SUBSTRING` letters or more (a run of single letters from
    `MIN_RUN`), each pair of adjacent units written together (OCR splits too:
    "sdn bhd" finds "SDNBHD") and the whole query squashed."""

    words: tuple[str, ...]
    units: tuple[str, ...] = ()
    terms: tuple[str, ...] = ()
    covers: tuple[frozenset[int], ...] = ()

    @classmethod
    def of(cls, text: str) -> TextQuery:
        words = tuple(w for w in _WORDS.split(fold(text)) if w)
        units: list[str] = []
        runs: set[int] = set()  # units that are runs of single letters
        for single, group in groupby(words, key=lambda w: len(w) == 1):
            letters = list(group)
            if single and len(letters) >= MIN_RUN:
                runs.add(len(units))
                units.append("".join(letters))
            else:
                units.extend(letters)
        terms: dict[str, set[int]] = {}

        def add(term: str, covered: Iterable[int], minimum: int = MIN_SUBSTRING) -> None:
            if len(term) >= minimum:
                terms.setdefault(term, set()).update(covered)

        for i, u in enumerate(units):
            add(u, [i], MIN_RUN if i in runs else MIN_SUBSTRING)
        for i in range(len(units) - 1):
            add(units[i] + units[i + 1], [i, i + 1])
        add("".join(units), range(len(units)))
        order = sorted(terms)
        return cls(words, tuple(units), tuple(order), tuple(frozenset(terms[t]) for t in order))

    @property
    def fts_text(self) -> str:
        """What the whole-word index is asked for: the words and the runs."""
        return " ".join(dict.fromkeys([*self.words, *self.units]))

    def found_in(self, joined: str | None) -> int:
        """How many terms the squashed text holds."""
        return sum(t in joined for t in self.terms) if joined else 0

    def coverage(self, document: str | None, joined: str | None) -> tuple[int, int]:
        """(units matched, units matched as whole words) by a photo: a unit is
        matched as a word of its full-text document or inside its squashed
        recognized text (by a term that covers it)."""
        whole: set[int] = set()
        if document:
            doc = set(_WORDS.split(fold(document)))
            whole = {i for i, u in enumerate(self.units) if u in doc}
        found = set(whole)
        if joined:
            for term, covered in zip(self.terms, self.covers, strict=True):
                if not covered <= found and term in joined:
                    found |= covered
        return len(found), len(whole)

    def snippet(self, text: str | None) -> str | None:
        """The recognized line that best matches: most whole query words, then
        most substring terms; None when no line matches."""
        if not text or not self.words:
            return None
        wanted = set(self.words) | set(self.units)
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


def _holding(groups: Sequence[Sequence[str]]) -> Any:
    """An n-gram index query for the photos that hold every gram of every term
    of a group (one group or another). Each gram is its own required clause:
    the match query's AND operator is ignored by an n-gram index (lancedb 0.40)."""
    # (lancedb's query models are pydantic classes: mypy misses their defaults)
    per_group = [
        BooleanQuery(
            [
                (Occur.MUST, MatchQuery(gram, "ocr_joined"))  # type: ignore[call-arg]
                for gram in dict.fromkeys(
                    term[i : i + GRAM] for term in group for i in range(len(term) - GRAM + 1)
                )
            ]
        )
        for group in groups
    ]
    if len(per_group) == 1:
        return per_group[0]
    return BooleanQuery([(Occur.SHOULD, q) for q in per_group])


def _rank_key(
    query: TextQuery, row: dict[str, Any], source: int, rank: int
) -> tuple[int, int, int, int]:
    """Most units matched, then most as whole words, then whole-word hits
    (source 0) before substring-only ones (1), then each list's own order."""
    joined = row["ocr_joined"] if "ocr_joined" in row else joined_text(row.get("ocr_text") or "")
    covered, whole = query.coverage(row.get("search_text"), joined)
    return (-covered, -whole, source, rank)


def _run_fts(builder: Any) -> pa.Table:
    """Run a full-text query; the index refusing it is the query's fault."""
    try:
        return builder.to_arrow()
    except ValueError as exc:
        raise SearchQueryError(f"the search text cannot be searched: {exc}") from exc


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
            by_text = [row for row, _ in self._text_ranked(query, where, check, depth)]
            # Text first: on a tie (one list's 1st against the other's 1st) the
            # literal match leads, the more precise of the two signals.
            fused = fuse([by_text, table.to_pylist()])[:limit]
            return [hit_of(row, score, query) for row, score in fused]
        if words:
            query = TextQuery.of(words)
            ranked = self._text_ranked(query, where, check, limit)
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

    def _text_ranked(self, query: TextQuery, where: str | None, check: Any, k: int) -> Ranked:
        """Up to k photos by their text: most query units matched first (a unit
        matches as a word of the full-text document or inside the recognized
        text's squashed words), then most matched as whole words, then whole-word
        hits in BM25 order before substring-only ones. Scores never rise down
        the list (each is capped at the one before). With k whole-word hits,
        the substring search looks only for photos matching more units than
        the k-th of them: no other can rank above it."""
        # One word: a whole-word hit matches it all; nothing more to read.
        one = len(query.words) == 1
        cols = [*columns(check, text=True), *([] if one else ["search_text"])]
        keyed: list[tuple[tuple[int, int, int, int], dict[str, Any], float]] = []
        if "search_text" in self._t.indexes and query.fts_text:
            table = collect(lambda n: self._text_query(query.fts_text, where, n, cols), check, k)
            for i, (row, score) in enumerate(
                zip(table.to_pylist(), table["_score"].to_pylist(), strict=True)
            ):
                key = (-1, -1, 0, i) if one else _rank_key(query, row, 0, i)
                keyed.append((key, row, float(score)))
        # With k whole-word hits, only a photo matching more units than the
        # k-th of them can still enter the list.
        need = 1 - sorted(key for key, _, _ in keyed)[k - 1][0] if len(keyed) >= k else 1
        if need <= len(query.units) and query.terms and "ocr_joined" in self._t.indexes:
            seen = {row["id"] for _, row, _ in keyed}
            found = self._substring_query(query, where, check, k, seen, need)
            for i, (row, score) in enumerate(found):
                keyed.append((_rank_key(query, row, 1, i), row, score))
        keyed.sort(key=lambda x: x[0])
        keyed = keyed[:k]
        # Substring-only hits were probed with few columns: fetch the rest now.
        probed = [row["id"] for key, row, _ in keyed if key[2] == 1]
        full: dict[int, dict[str, Any]] = {}
        if probed:
            rows = self.rows_by_id(probed, columns(check, text=True))
            full = {r["id"]: r for r in rows.to_pylist()}
        out: Ranked = []
        cap: float | None = None
        for key, row, score in keyed:
            if key[2] == 1:
                if row["id"] not in full:
                    continue  # deleted since
                row = full[row["id"]]
            cap = score if cap is None else min(cap, score)
            out.append((row, cap))
        return out

    def _substring_query(
        self, query: TextQuery, where: str | None, check: Any, k: int, seen: set[int], need: int
    ) -> Ranked:
        """Photos (not in `seen`) whose squashed recognized text holds a query
        term, best n-gram score first: the n-gram index proposes the photos that
        hold every 4-gram of a term (of `need` units at once, when that is
        what can still rank), checked here for the whole term (terms shorter
        than a gram are looked for by a scan). Reads more candidates
        until k pass every check or there are no more: a permission or
        distance check that rejects most of them loses none. Only the probe
        columns are read."""
        probe = [
            "id",
            *MATCH_COLUMNS,
            *(["abs_path", *CHECK_COLUMNS] if check is not None else []),
        ]
        # A photo holding "coffeebread" holds "coffee": look for the shortest
        # terms only (every term still counts in the ranking).
        wanted = [t for t in query.terms if not any(o != t and o in t for o in query.terms)]
        groups = [[t] for t in wanted if len(t) >= GRAM]
        short = [t for t in wanted if len(t) < GRAM]
        units = query.units
        if need > 1 and min(map(len, units)) >= GRAM and comb(len(units), need) <= MAX_GROUPS:
            # Photos holding `need` units or more: far fewer to read.
            groups, short = [list(c) for c in combinations(units, need)], []
        # A Python-side check rejects some: start wider than the whole-word
        # search does (which has already had to widen by then).
        n = max(k * 4, 64) * (1 if check is None else 4)
        while True:
            parts: list[pa.Table] = []
            if groups:
                b = self._t.photos.search(_holding(groups), query_type="fts").limit(n)
                b = b.select([*probe, "_score"])
                parts.append(_run_fts(b.where(where, prefilter=True) if where else b))
            if short:
                cond = " OR ".join(f"strpos(ocr_joined, {sql_string(t)}) > 0" for t in short)
                cond = f"({cond})" + (f" AND ({where})" if where else "")
                t = self._t.photos.search().where(cond).select(probe).limit(n).to_arrow()
                parts.append(t.append_column("_score", pa.array([0.0] * t.num_rows, pa.float32())))
            exhausted = all(p.num_rows < n for p in parts)
            # The whole term first (cheap), then the checks on what holds it.
            found: Ranked = []
            passed: set[int] = set()
            for t in parts:
                t = t.filter(
                    pa.array(
                        [bool(query.found_in(j)) for j in t["ocr_joined"].to_pylist()], pa.bool_()
                    )
                )
                if check is not None and t.num_rows:
                    t = t.filter(pa.array(check(t)))
                for row in t.to_pylist():
                    pid = row["id"]
                    if pid not in passed:
                        passed.add(pid)
                        if pid not in seen:
                            found.append((row, float(row.pop("_score"))))
            # Enough when k pass: the n-gram score puts photos holding more
            # terms first, so the best k are among them.
            if len(passed) >= k or exhausted:
                return found
            n *= 4

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
        # A match query: the user's text is words, never query syntax ('"' would
        # ask for a phrase, which an index without positions refuses).
        match = MatchQuery(text, "search_text")  # type: ignore[call-arg]
        b = self._t.photos.search(match, query_type="fts").limit(k).select([*columns, "_score"])
        if where:
            b = b.where(where, prefilter=True)
        return _run_fts(b)

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
