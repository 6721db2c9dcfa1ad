"""Photos that look like a given one: near-duplicates first, then by embedding.

Near-duplicates (dHash within `NEAR_DUPLICATE_BITS` bits) are found over the
whole filtered table, so a re-encoded copy comes first even when the vectors
rank it lower; the rest are ranked by image-embedding cosine, video moments
among them (a video by its best frame, with its time). From a video, the
query is the frame nearest a given time, or the clip vector without one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from photovault.index.filters import Filters, python_check, sql_string
from photovault.index.frames import nearest_frame
from photovault.index.search import Hit, Searcher, collect, columns, hit_of, hits, norm

NEAR_DUPLICATE_BITS = 6


def _query_vector(searcher: Searcher, me: dict[str, Any], at: float | None) -> np.ndarray | None:
    """The vector to look for: the photo's (a video's clip vector), or with
    `at` the video's frame nearest that many seconds."""
    if at is None:
        return None if me.get("vector") is None else norm(me["vector"])
    if me.get("kind") != "video":
        raise ValueError("a time ('at') is for videos; this file is not one")
    frames = (
        searcher.frames_table.search()
        .where(f"id = {int(me['id'])}")
        .select(["at", "vector"])
        .limit(None)
        .to_arrow()
    )
    vec = nearest_frame(frames, at)
    if vec is None:
        return None if me.get("vector") is None else norm(me["vector"])
    return norm(vec)


def similar(
    searcher: Searcher,
    photo: int | str,
    limit: int = 50,
    filters: Filters | None = None,
    at: float | None = None,
) -> list[Hit]:
    """Photos and video moments that look like `photo` (catalog file id or
    content sha256): near-duplicates (dHash within 6 bits) first, then by
    image-embedding cosine. For a video, `at` (seconds) looks for its frame
    nearest that time. The photo itself (that file) is left out; other copies
    of it are not."""
    photos = searcher.photos
    where_self = f"id = {int(photo)}" if isinstance(photo, int) else f"sha256 = {sql_string(photo)}"
    src = (
        photos.search()
        .where(where_self)
        .select(["id", "sha256", "dhash_int", "vector", "kind"])
        .limit(1)
        .to_arrow()
    )
    if src.num_rows == 0:
        raise KeyError(f"no indexed photo {photo!r}")
    me = src.to_pylist()[0]
    q = _query_vector(searcher, me, at)
    f = filters or Filters()
    where = searcher.where(f)
    check = python_check(f)
    # The photo itself is dropped after retrieval rather than by an `id !=`
    # prefilter: a prefilter turns LanceDB's flat search into a slow
    # row-by-row one, and dropping one row from limit + 1 costs nothing.
    dups: dict[int, int] = {}
    if me.get("dhash_int") is not None:
        mine = np.array([me["dhash_int"]], dtype=np.int64).view(np.uint64)[0]
        cond = f"({where}) AND dhash_int IS NOT NULL" if where else "dhash_int IS NOT NULL"
        cand = photos.search().select(["id", "dhash_int"]).where(cond).limit(None).to_arrow()
        if cand.num_rows:
            bits = cand["dhash_int"].to_numpy(zero_copy_only=False).astype(np.int64)
            # unsigned view: bitwise_count of a signed value counts its |x|
            dist = np.bitwise_count(bits.view(np.uint64) ^ mine)
            cand_ids = cand["id"].to_numpy(zero_copy_only=False)
            for i in np.flatnonzero(dist <= NEAR_DUPLICATE_BITS):
                if int(cand_ids[i]) != me["id"]:
                    dups[int(cand_ids[i])] = int(dist[i])
        if dups and check is not None:
            # Only the few near-duplicates need the Python-side check.
            listed = ", ".join(str(i) for i in dups)
            rows = (
                photos.search()
                .where(f"id IN ({listed})")
                .select(["id", "lat", "lon", "abs_path"])
                .limit(None)
                .to_arrow()
            )
            keep = {int(i) for i in rows.filter(pa.array(check(rows)))["id"].to_pylist()}
            dups = {i: d for i, d in dups.items() if i in keep}
    found: list[Hit] = []
    cos: dict[int, float] = {}
    if q is not None:
        exact = searcher.exact(where)
        cols = columns(check)
        k = limit + 1 + len(dups)
        t = collect(lambda n: searcher.vector_query(q, where, n, exact, cols), check, k)
        ranked, moments = searcher.with_moments(q, t, where, check, k, exclude=me["id"])
        for row, score in ranked:
            if row["id"] != me["id"]:
                h = hit_of(row, score)
                h.at = moments.get(h.id)
                cos[h.id] = h.score
                found.append(h)
    missing = [i for i in dups if i not in cos]
    if missing:
        rows = searcher.rows_by_id(missing)
        extra = hits(rows, [0.0] * rows.num_rows)
        if q is not None:
            vecs = (
                photos.search()
                .where(f"id IN ({', '.join(str(i) for i in missing)})")
                .select(["id", "vector"])
                .limit(len(missing))
                .to_arrow()
                .to_pylist()
            )
            for r in vecs:
                if r["vector"] is not None:
                    cos[r["id"]] = float(norm(r["vector"]) @ q)
            for h in extra:
                h.score = cos.get(h.id, 0.0)
        found.extend(extra)
    for h in found:
        h.dhash_distance = dups.get(h.id)
    found.sort(key=lambda h: (h.dhash_distance is None, h.dhash_distance or 0, -h.score))
    return found[:limit]
