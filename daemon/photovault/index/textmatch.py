"""Matching a search text: whole words, and words inside OCR's joined words.

OCR joins words ("PERINDUSTRIANBALAKONG") and splits them ("SDN BHD"), so a
photo is ranked by how many query words it matches, as words of its full-text
document or inside its squashed recognized text, then by how many as whole
words, then BM25. The n-gram index proposes the photos holding every 4-gram of
a term; the whole term is checked here. The user's text is words, never query
syntax. Why these choices: bench/README.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations, groupby
from math import comb
from typing import Any

import pyarrow as pa
from lancedb.query import BooleanQuery, MatchQuery, Occur

from photovault.index.filters import sql_string
from photovault.index.hits import (
    CHECK_COLUMNS,
    Ranked,
    SearchQueryError,
    collect,
    columns,
    rows_by_id,
)
from photovault.index.records import fold, joined_text, squash
from photovault.index.tables import IndexTables

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


class TextSearch:
    """Text ranking over one open index (Searcher's text strategy)."""

    def __init__(self, tables: IndexTables) -> None:
        self._t = tables

    def ranked(self, query: TextQuery, where: str | None, check: Any, k: int) -> Ranked:
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
            rows = rows_by_id(self._t.photos, probed, columns(check, text=True))
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

    def _text_query(self, text: str, where: str | None, k: int, columns: list[str]) -> pa.Table:
        # A match query: the user's text is words, never query syntax ('"' would
        # ask for a phrase, which an index without positions refuses).
        match = MatchQuery(text, "search_text")  # type: ignore[call-arg]
        b = self._t.photos.search(match, query_type="fts").limit(k).select([*columns, "_score"])
        if where:
            b = b.where(where, prefilter=True)
        return _run_fts(b)
